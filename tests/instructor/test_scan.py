"""The tampering scan (grader.instructor.scan): every known way of reaching into the
grader's or torch's machinery is named, with its cell and line; an honest student's
code, and the course's own notebooks, are not."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.instructor import scan
from helpers import LOCKED, SOLUTION, scanned_notebook as notebook

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ROOT / "tests" / "hostile"
MASTERS = sorted((ROOT / "grader" / "course" / "source").glob("*/*.ipynb"))

TEST = {"nbgrader": {"solution": False, "grade": True, "grade_id": "t", "locked": True, "points": 1,
                     "schema_version": 3}}


def flagged_at(found: list[str], cell: int, line: int, word: str) -> bool:
    return any(f.startswith(f"cell {cell}, line {line}: ") and word in f for f in found)


# Each case: the student's cells, and what must be named: (index of the student's cell, from 0; line; a word).
ATTACKS = {
    # ---- 1. the grader through a name that is not literally `grader`
    "getmodule_then_store": (["import inspect\nm = inspect.getmodule(grader.check)\nm.FORBIDDEN_OPS = ()"],
                             [(0, 2, "inspect.getmodule"), (0, 3, "m.FORBIDDEN_OPS")]),
    "sys_modules_then_store": (["import sys\nm = sys.modules['grader.checks']\nm.FORBIDDEN_OPS = ()"],
                               [(0, 2, "sys.modules"), (0, 3, "grader.checks.FORBIDDEN_OPS")]),
    "sys_modules_loop": (["import sys\nfor name, module in list(sys.modules.items()):\n"
                          "    if hasattr(module, 'FORBIDDEN_OPS'):\n        module.FORBIDDEN_OPS = ()"],
                         [(0, 2, "sys.modules"), (0, 4, "module.FORBIDDEN_OPS")]),
    "vars_of_grader": (["vars(grader)['check'] = None"], [(0, 1, "vars"), (0, 1, "changing the grader")]),
    "type_of_grader": (["t = type(grader)\nt.__setattr__(grader, 'check', None)"],
                       [(0, 1, "type of grader"), (0, 2, "__setattr__")]),
    "function_globals": (["g = grader.check.__globals__\ng['FORBIDDEN_OPS'] = ()"],
                         [(0, 1, "__globals__"), (0, 2, "changing the grader")]),
    "alias_of_grader": (["g = grader\ng.x = 1"], [(0, 2, "g.x, which is grader.x")]),
    "from_import_alias": (["from grader import check as c\nc.__defaults__ = (None,)"],
                          [(0, 2, "__defaults__"), (0, 2, "changing the grader")]),
    "alias_of_functional": (["f = torch.nn.functional\nf.binary_cross_entropy = lambda *a: 0"],
                            [(0, 2, "torch.nn.functional.binary_cross_entropy")]),
    "setattr_on_torch": (["setattr(torch.nn.functional, 'binary_cross_entropy', None)"],
                         [(0, 1, "setattr on torch.nn.functional")]),
    "setattr_alias": (["s = setattr\ns(torch, 'allclose', None)"], [(0, 2, "setattr")]),
    "object_setattr": (["object.__setattr__(grader, 'check', None)"], [(0, 1, "object.__setattr__")]),
    "operator_setitem": (["import operator\noperator.setitem(grader.__dict__, 'check', None)"],
                         [(0, 2, "operator.setitem")]),
    "attrgetter_computed": (["import operator\nname = 'chec' + 'k'\nget = operator.attrgetter(name)\nget(grader)"],
                            [(0, 3, "computed")]),
    "getattr_computed": (["name = '_bat' + 'tery'\nm = getattr(grader, name)"], [(0, 2, "computed")]),
    "getattr_private": (["m = getattr(grader, '_battery')"], [(0, 1, "._battery")]),
    "reduce_getattr": (["import functools\nm = functools.reduce(getattr, ['_battery', 'guard'], grader)"],
                       [(0, 2, "passes getattr")]),
    "dunder_import": (["m = __import__('grader.checks', fromlist=['x'])\nm.FORBIDDEN_OPS = ()"],
                      [(0, 1, "__import__"), (0, 2, "grader.checks.FORBIDDEN_OPS")]),
    "import_module": (["import importlib\nm = importlib.import_module('grader._battery.guard')\nm.FORBIDDEN_OPS = ()"],
                      [(0, 1, "importlib"), (0, 3, "grader._battery.guard.FORBIDDEN_OPS")]),
    "import_internals": (["from grader._battery import guard\nguard.FORBIDDEN_OPS = ()"],
                         [(0, 1, "grader._battery"), (0, 2, "changing the grader")]),
    "mutates_in_place": (["grader.datasets.PROPERTIES.append('x')"], [(0, 1, "in place")]),
    "unittest_mock": (["from unittest import mock\nwith mock.patch('torch.allclose', lambda *a: True):\n    pass"],
                      [(0, 1, "unittest.mock")]),
    "grader_file": (["import os\npath = os.path.dirname(grader.__file__)"], [(0, 2, "grader's files")]),
    "getfile_of_grader": (["import inspect\ninspect.getfile(grader)"], [(0, 2, "grader's files")]),
    # ---- 2. inside magics, and magics that run code
    "capture_body": (["%%capture\nimport inspect\nm = inspect.getmodule(grader.check)\nm.FORBIDDEN_OPS = ()"],
                     [(0, 3, "getmodule"), (0, 4, "FORBIDDEN_OPS")]),
    "capture_after_blank_lines": (["\n\n%%capture out\nx = 1\ntorch.x = 2"], [(0, 5, "torch.x")]),
    "time_body": (["%%time\ntorch.allclose = lambda *a, **k: True"], [(0, 2, "torch.allclose")]),
    "timeit_body": (["%%timeit -n 1\nx = 1\ntorch.Tensor.any = None"], [(0, 3, "torch.Tensor.any")]),
    "prun_body": (["%%prun\nimport gc\ngc.get_objects()"], [(0, 2, "garbage collector")]),
    "debug_body": (["%%debug\nimport sys\nsys.settrace(None)"], [(0, 3, "tracer")]),
    "nested_cell_magics": (["%%time\n%%capture\nx = 1\ntorch.x = 1"], [(0, 4, "torch.x")]),
    "shell_inside_capture": (["%%capture\nx = 1\n!python evil.py"], [(0, 3, "!python evil.py")]),
    "writefile_then_import": (["%%writefile evil.py\nimport grader\ngrader.check = None", "import evil"],
                              [(0, 1, "writes a file")]),
    "script_python": (["%%script python\nprint(1)"], [(0, 1, "shell script")]),
    "bash": (["%%bash\necho hi"], [(0, 1, "%%bash")]),
    "sh": (["x = 1", "%%sh\nls"], [(1, 1, "%%sh")]),
    "javascript": (["%%javascript\nIPython.notebook.kernel.execute('x')"], [(0, 1, "JavaScript")]),
    "unknown_cell_magic": (["%%cython\ncdef int x = 1"], [(0, 1, "cannot read")]),
    "run": (["x = 1\n%run evil.py"], [(0, 2, "%run")]),
    "load": (["%load evil.py"], [(0, 1, "%load")]),
    "load_ext": (["%load_ext evil"], [(0, 1, "extension")]),
    "unknown_line_magic": (["%some_magic x"], [(0, 1, "cannot read")]),
    "bang_python": (["!python evil.py"], [(0, 1, "shell command (!python evil.py)")]),
    "bang_assignment": (["x = 1\nout = !python -c 'print(1)'"], [(0, 2, "shell command")]),
    "bang_chained": (["!pip install x && python evil.py"], [(0, 1, "shell command")]),
    "bang_expansion": (["!ls {__import__('os').getcwd()}"], [(0, 1, "__import__"), (0, 1, "shell command")]),
    "pip_expansion": (["%pip install {__import__('os').getcwd()}"], [(0, 1, "__import__")]),
    "config_code": (["%config InteractiveShell.ast_transformers = [__import__('x')]"], [(0, 1, "%config")]),
    "run_cell": (["get_ipython().run_cell('torch.allclose = None')"],
                 [(0, 1, "run_cell"), (0, 1, "torch.allclose")]),
    "run_cell_computed": (["code = 'torch.' + 'x = 1'\nget_ipython().run_cell(code)"], [(0, 2, "built at run time")]),
    "explicit_system": (["get_ipython().system('python evil.py')"], [(0, 1, "get_ipython().system")]),
    "explicit_run_line_magic": (["get_ipython().run_line_magic('run', 'evil.py')"], [(0, 1, "%run")]),
    "line_time": (["%time torch.allclose = None"], [(0, 1, "monkeypatching torch")]),
    "line_timeit_options": (["%timeit -n 1 -r 1 setattr(torch, 'x', 1)"], [(0, 1, "setattr")]),
    "line_time_second_line": (["x = 1\n%time del torch.Tensor.any"], [(0, 2, "deletes torch.Tensor.any")]),
    "line_magic_in_function": (["def f():\n    %time torch.x = 1\n    return 1"], [(0, 2, "torch.x")]),
    "events": (["get_ipython().events.register('pre_run_cell', print)"], [(0, 1, "get_ipython().events")]),
    "ast_transformers": (["get_ipython().ast_transformers.append(object())"], [(0, 1, "ast_transformers")]),
    "shell_alias": (["ip = get_ipython()\nip.run_line_magic('matplotlib', 'inline')"],
                    [(0, 2, "reaches into IPython")]),
    "showtraceback": (["get_ipython().showtraceback = lambda *a, **k: None"],
                      [(0, 1, "assigns to get_ipython().showtraceback")]),
    "subprocess": (["import subprocess\nsubprocess.run(['python', 'evil.py'])"], [(0, 1, "subprocess")]),
    "os_system": (["import os\nos.system('python evil.py')"], [(0, 2, "os.system")]),
    "timeit_string": (["import timeit\ntimeit.timeit('import torch; torch.x = 1', number=1)"],
                      [(0, 2, "torch.x")]),
    "eval": (["eval('1')"], [(0, 1, "eval")]),
    "exec": (["exec('torch.x = 1')"], [(0, 1, "exec")]),
    "writes_python_file": (["open('evil.py', 'w').write('x = 1')"], [(0, 1, "evil.py")]),
    # ---- 3. monkeypatching torch, followed through bindings
    "tensor_any": (["torch.Tensor.any = lambda self, *a, **k: torch.tensor(False)"],
                   [(0, 1, "assigns to torch.Tensor.any (monkeypatching torch)")]),
    "allclose": (["torch.allclose = lambda *a, **k: True"], [(0, 1, "torch.allclose")]),
    "functional": (["torch.nn.functional.binary_cross_entropy = None"], [(0, 1, "monkeypatching torch")]),
    "delete": (["del torch.allclose"], [(0, 1, "deletes torch.allclose")]),
    "augmented": (["torch.nn.functional.x += 1"], [(0, 1, "monkeypatching torch")]),
    "from_torch_import": (["from torch import nn\nnn.BCELoss.forward = lambda self, a, b: 0"],
                          [(0, 2, "torch.nn.BCELoss.forward")]),
    "import_as": (["import torch.nn.functional as G\nG.binary_cross_entropy = None"], [(0, 2, "monkeypatching")]),
    "for_loop": (["for m in (torch, grader):\n    m.x = 1"], [(0, 2, "m.x")]),
    "with_as": (["import contextlib\nwith contextlib.nullcontext(torch) as t:\n    t.allclose = None"],
                [(0, 3, "torch.allclose")]),
    "walrus": (["if (t := torch.Tensor):\n    t.any = None"], [(0, 2, "torch.Tensor.any")]),
    "default_argument": (["def patch(m=torch.nn.functional):\n    m.binary_cross_entropy = None"],
                         [(0, 2, "monkeypatching torch")]),
    "argument_at_call": (["def patch(m):\n    m.binary_cross_entropy = None\n\npatch(torch.nn.functional)"],
                         [(0, 2, "monkeypatching torch")]),
    "return_value": (["def get():\n    return torch.nn.functional\n\nf = get()\nf.binary_cross_entropy = None"],
                     [(0, 5, "monkeypatching torch")]),
    "lambda_return": (["get = lambda: torch\nget().allclose = None"], [(0, 2, "monkeypatching torch")]),
    "across_cells": (["G = torch.nn.functional", "x = 1\nG.binary_cross_entropy = None"],
                     [(1, 2, "monkeypatching torch")]),
    "bound_in_a_later_cell": (["G.binary_cross_entropy = None", "G = torch.nn.functional"],
                              [(0, 1, "monkeypatching torch")]),
    "container": (["mods = [torch]\nmods[0].allclose = None"], [(0, 2, "monkeypatching torch")]),
    "appended_container": (["mods = []\nmods.append(torch)\nmods[0].allclose = None"],
                           [(0, 3, "monkeypatching torch")]),
    "dict_container": (["mods = {'t': torch}\nmods['t'].allclose = None"], [(0, 2, "monkeypatching torch")]),
    "type_of_tensor": (["type(torch.tensor(1.0)).any = None"], [(0, 1, "changing a class")]),
    "type_of_variable": (["t = torch.tensor(1.0)\nk = type(t)\nk.any = None"], [(0, 3, "changing a class")]),
    "class_of_tensor": (["torch.tensor(1.0).__class__.any = None"], [(0, 1, "__class__")]),
    "module_dict": (["torch.nn.functional.__dict__['binary_cross_entropy'] = None"],
                    [(0, 1, "__dict__"), (0, 1, "monkeypatching torch")]),
    "builtins": (["import builtins\nbuiltins.AssertionError = Warning"],
                 [(0, 1, "built-ins"), (0, 2, "changing Python's built-ins")]),
    "redefines_assertion_error": (["AssertionError = Warning"], [(0, 1, "redefines AssertionError")]),
    "rebinds_torch": (["torch = None"], [(0, 1, "rebinds torch")]),
    "imports_over_torch": (["import numpy as torch"], [(0, 1, "rebinds torch")]),
    "rebinds_a_setup_name": (["sys = None"], [(0, 1, "rebinds sys")]),
    "deletes_grader": (["del grader"], [(0, 1, "deletes grader")]),
    "class_named_grader": (["class grader:\n    check = print"], [(0, 1, "rebinds grader")]),
    "global_in_function": (["def f():\n    global torch\n    torch = None"], [(0, 3, "rebinds torch")]),
    "torch_function": (["class T(torch.Tensor):\n    def __torch_function__(self, *a):\n        return 0"],
                       [(0, 2, "__torch_function__")]),
    "torch_library": (["import torch.library"], [(0, 1, "torch.library")]),
    "cpp_extension": (["from torch.utils.cpp_extension import load_inline"], [(0, 1, "C++")]),
    "private_torch": (["torch._C._nn.binary_cross_entropy"], [(0, 1, "._C")]),
    "private_attribute": (["x = torch.ones(1)\nx._version"], [(0, 2, "._version")]),
    "weights_only_false": (["torch.load('m.pt', weights_only=False)"], [(0, 1, "unpickles")]),
    # ---- 4. frames, tracebacks, tracers, memory
    "inspect_stack": (["import inspect\nframes = inspect.stack()"], [(0, 2, "walks the call stack (inspect.stack)")]),
    "currentframe": (["import inspect\ninspect.currentframe().f_back.f_globals"],
                     [(0, 2, "inspect.currentframe"), (0, 2, ".f_back"), (0, 2, ".f_globals")]),
    "stack_alias": (["from inspect import stack as s\nframes = s()"],
                    [(0, 1, "inspect.stack"), (0, 2, "inspect.stack")]),
    "getframe": (["import sys\nsys._getframe(1).f_locals"], [(0, 2, "sys._getframe"), (0, 2, ".f_locals")]),
    "traceback_frame": (["try:\n    1 / 0\nexcept Exception as e:\n    f = e.__traceback__.tb_frame"],
                        [(0, 4, "__traceback__"), (0, 4, ".tb_frame")]),
    "generator_frame": (["def gen():\n    yield 1\n\ng = gen()\ng.gi_frame"], [(0, 5, ".gi_frame")]),
    "gc_objects": (["import gc\nobjects = gc.get_objects()"], [(0, 1, "garbage collector"), (0, 2, "gc")]),
    "gc_referrers": (["import gc\ngc.get_referrers(grader.check)"], [(0, 2, "garbage collector")]),
    "settrace": (["import sys\nsys.settrace(lambda *a: None)"], [(0, 2, "tracer")]),
    "setprofile": (["import sys\nsys.setprofile(print)"], [(0, 2, "tracer")]),
    "threading_settrace": (["import threading\nthreading.settrace(print)"], [(0, 2, "tracer")]),
    "audit_hook": (["import sys\nsys.addaudithook(print)"], [(0, 2, "audit hook")]),
    "ctypes": (["import ctypes\nctypes.string_at(0)"], [(0, 1, "raw memory")]),
    "signal": (["import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)"], [(0, 1, "signal")]),
    "user_ns_hidden": (["hidden = get_ipython().user_ns_hidden"], [(0, 1, "user_ns_hidden")]),
    "history_magic": (["%history -g"], [(0, 1, "history")]),
    "history_manager": (["get_ipython().history_manager.get_range()"], [(0, 1, "history")]),
    "proc_mem": (["open('/proc/self/mem', 'rb')"], [(0, 1, "memory")]),
    # ---- 5. inspect: its dangerous uses only
    "getmembers_of_grader": (["import inspect\ninspect.getmembers(grader)"], [(0, 2, "members of grader")]),
    "getclosurevars": (["import inspect\ninspect.getclosurevars(grader.check)"], [(0, 2, "getclosurevars")]),
    "unwrap": (["import inspect\ninspect.unwrap(torch.nn.functional.binary_cross_entropy)"], [(0, 2, "unwrap")]),
    "getargvalues": (["import inspect, traceback\nfor frame, _ in traceback.walk_stack(None):\n"
                      "    print(inspect.getargvalues(frame).locals)"],
                     [(0, 2, "traceback.walk_stack"), (0, 3, "inspect.getargvalues")]),
    "generator_locals": (["import inspect\ninspect.getgeneratorlocals(g)"], [(0, 2, "getgeneratorlocals")]),
    # ---- 6. the grader's internals by a name resolved at run time, frames by other routes
    "pkgutil_resolve_name": (["import pkgutil\nm = pkgutil.resolve_name('grader.' + '_battery.ownwork')\nm.x = 1"],
                             [(0, 1, "(pkgutil)"), (0, 2, "(pkgutil)")]),
    "pkgutil_from_import": (["from pkgutil import resolve_name as r\nm = r('grader.' + '_battery')"],
                            [(0, 1, "(pkgutil)"), (0, 2, "(pkgutil)")]),
    "pydoc_locate": (["import pydoc\nm = pydoc.locate('grader.' + '_battery.ownwork')"], [(0, 2, "(pydoc)")]),
    "find_spec": (["from importlib.util import find_spec, module_from_spec\n"
                   "m = module_from_spec(find_spec('grader.' + '_battery'))"], [(0, 1, "importlib")]),
    "logging_config": (["import logging.config\nlogging.config.dictConfig({'version': 1, 'handlers': "
                        "{'h': {'()': 'grader.' + '_battery.x'}}})"], [(0, 1, "logging.config")]),
    "walk_stack_alias": (["from traceback import walk_stack as w\nframes = list(w(None))"],
                         [(0, 1, "traceback.walk_stack"), (0, 2, "traceback.walk_stack")]),
    "walk_tb": (["import sys, traceback\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n"
                 "    frames = list(traceback.walk_tb(sys.exc_info()[2]))"], [(0, 5, "traceback.walk_tb")]),
    # ---- 7. the grader or torch under another name, through map, filter, min and max
    "next_map": (["holder = next(map(lambda m: m, [grader]))\nholder.assert_passes = lambda *a, **k: 'ok'"],
                 [(0, 2, "holder.assert_passes, which is grader.assert_passes")]),
    "list_map": (["h = list(map(lambda m: m, [torch.nn.functional]))[0]\nh.binary_cross_entropy = None"],
                 [(0, 2, "monkeypatching torch")]),
    "map_own_function": (["def same(m):\n    return m\n\nfor g in map(same, [grader]):\n    g.check = None"],
                         [(0, 5, "g.check, which is grader.check")]),
    "map_second_iterable": (["h = next(map(lambda a, b: b, [1], [grader]))\nh.check = None"],
                            [(0, 2, "changing the grader")]),
    "map_changes_in_place": (["list(map(lambda m: m.datasets.PROPERTIES.append('x'), [grader]))"],
                             [(0, 1, "in place")]),
    "map_own_function_stores": (["def patch(m):\n    m.assert_passes = print\n\nlist(map(patch, [grader]))"],
                                [(0, 2, "m.assert_passes, which is grader.assert_passes")]),
    "filter": (["holder = next(filter(None, [grader]))\nholder.assert_passes = print"],
               [(0, 2, "changing the grader")]),
    "min_of_one": (["holder = min([grader], key=id)\nholder.assert_passes = print"], [(0, 2, "changing the grader")]),
}


@pytest.mark.parametrize("case", sorted(ATTACKS))
def test_each_attack_is_named_with_its_cell_and_line(case):
    sources, expected = ATTACKS[case]
    found = scan.suspicious(notebook(*sources))
    for index, line, word in expected:
        assert flagged_at(found, 3 + index, line, word), (case, (3 + index, line, word), found)


HONEST = [
    "import math\nprint(math.log(2.0))",
    "import numpy as np\nx = np.array([1.0, 2.0])\nx[0] = 3.0",
    "from torch import nn\ncriterion = nn.BCELoss()",
    "import torch.nn.functional as F\nloss = F.binary_cross_entropy(torch.rand(3), torch.ones(3))",
    "%matplotlib inline",
    "%pip install --quiet matplotlib",
    "!pip install --quiet matplotlib",
    "print(In)\nprint(_ih[-1])\nprint(Out)",
    "p = torch.clamp(torch.rand(3), 1e-7, 1 - 1e-7)\ny = torch.ones(3)\nloss = -(y * torch.log(p)).mean()",
    "x = torch.tensor([0.5], requires_grad=True)\nx.sum().backward()\nprint(x.grad)\nx.grad = None",
    "class Counter:\n    def __init__(self):\n        self.count = 0\n        self._cache = {}\n"
    "    def add(self):\n        self.count += 1\n        setattr(self, 'last', self.count)",
    "class BCELoss(nn.Module):\n    def __init__(self, weight=None, reduction='mean'):\n        super().__init__()\n"
    "        self.register_buffer('weight', weight)\n        self.reduction = reduction\n"
    "    def forward(self, input, target):\n        return torch.clamp(torch.log(input), min=-100).mean()",
    "def binary_cross_entropy(input, target):\n    log_p = torch.clamp(torch.log(input), min=-100)\n"
    "    loss = -(target * log_p)\n    loss = loss.mean()\n    return loss",
    "results = []\nresults.append(1)\nsettings = {}\nsettings['lr'] = 0.1\nsettings.update(steps=10)",
    "import inspect\nprint(inspect.signature(F.binary_cross_entropy))\nprint(inspect.getsource(nn.BCELoss.forward))",
    "%%capture\nx = torch.ones(3)\nprint(x)",
    "%%time\ny = torch.randn(100).mean()",
    "%timeit torch.randn(100).sum()",
    "%time z = torch.ones(2)",
    "model = nn.Linear(2, 1)\nmodel.weight.data.fill_(0.5)\nmodel.bias.requires_grad = False",
    "model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())\nfor m in model.modules():\n    print(m)",
    "model = nn.Linear(2, 1)\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\nopt.param_groups[0]['lr'] = 0.01",
    "torch.manual_seed(0)\ntorch.set_printoptions(precision=4)\nprint(torch.__version__)",
    "import matplotlib.pyplot as plt\nplt.rcParams['figure.figsize'] = (6, 4)",
    "from grader.explore import probability_explorer\nprobability_explorer(target=0.3)",
    "grader.check(binary_cross_entropy)",
    "import torch\nimport grader\nimport grader.imbalance\nimport os\nimport sys\n"
    "print(sys.version)\nsys.path.append('.')",
    "with torch.no_grad():\n    w = torch.zeros(3)\n    w += 1",
    "def cast(x, dtype=torch.float32):\n    return x.to(dtype)\n\nfor dtype in (torch.float32, torch.float64):\n"
    "    print(cast(torch.ones(1), dtype))",
    "try:\n    F.binary_cross_entropy(torch.tensor([2.0]), torch.tensor([1.0]))\n"
    "except RuntimeError as error:\n    print(type(error).__name__, error)",
    "input = torch.rand(3)\ntarget = torch.rand(3)",
    "from IPython.display import display, Markdown\ndisplay(Markdown('**done**'))",
    "%config InlineBackend.figure_format = 'retina'",
    "import timeit\nprint(timeit.timeit(lambda: torch.ones(3).sum(), number=10))",
    "torch.backends.cudnn.deterministic = True\ntorch.backends.cudnn.benchmark = False",
    "%who",
    "@torch.no_grad()\ndef evaluate(model, x):\n    return model(x)",
    "loss_fn = nn.BCELoss(reduction='sum')\nloss_fn.reduction = 'mean'",
    "labels = torch.zeros(3)\nlabels[0] = 1.0\npositives = labels.sum(dim=0)",
    "def show(labels):\n    for name in labels:\n        print(name)\n\nshow(grader.datasets.PROPERTIES)\n"
    "labels = torch.zeros(2)\nlabels[0] = 1",
    "import os\nos._exit",
    "features, malignant = grader.datasets.breast_cancer()\nfeatures[0, 0] = 0.0",
    "x = torch.arange(6.0).reshape(2, 3)\nx[:, 0] = -1\nx.requires_grad_(True)",
    "from dataclasses import dataclass\n\n@dataclass\nclass Point:\n    x: float\n    y: float = 0.0",
    "squares = {n: n * n for n in range(5)}\nevens = [n for n in squares if n % 2 == 0]",
    "print(torch.nn.functional.binary_cross_entropy.__doc__)\nprint(nn.BCELoss.__init__.__qualname__)",
    "import torch.nn.functional as F\nF.binary_cross_entropy_with_logits(torch.zeros(2), torch.ones(2))",
    "text = 'getattr(grader, \"x\")'\nprint(text)",
    "x = 1 # %time not a magic in a comment\ns = '''\n%run inside a string\n'''",
    "cfg = {'dtype': torch.float64, 'device': device}\ncfg['requires_grad'] = True\nx = torch.ones(2, **cfg)",
    "pairs = [(torch.float32, 'f32')]\npairs.append((torch.float16, 'f16'))\npairs[0] = None\npairs.clear()",
    "props = list(grader.datasets.PROPERTIES)\nprops.append('x')\nprops[0] = 'y'",
    "from collections import defaultdict\nd = defaultdict(list)\nd['a'].append(1)",
    "from functools import partial\nsummed = partial(F.binary_cross_entropy, reduction='sum')",
    "import copy\nmodel = nn.Linear(1, 1)\ncopy.deepcopy(model).weight.data.zero_()",
    "layer = nn.Linear(2, 1)\nnn.init.zeros_(layer.weight)\nlayer.weight = nn.Parameter(torch.ones(1, 2))",
    "import os\nos.environ['OMP_NUM_THREADS'] = '1'",
    "import warnings\nwarnings.filterwarnings('ignore')",
    "torch.testing.assert_close(torch.ones(1), torch.ones(1))\nassert isinstance(torch.ones(1), torch.Tensor)",
    "fns = {'torch': F.binary_cross_entropy}\nfor name, fn in fns.items():\n    print(name, fn.__name__)",
    "F.binary_cross_entropy?",
    "%%html\n<b>BCE</b>",
    "import random\nrandom.seed(0)\nimport numpy as np\nnp.random.seed(0)",
    "class Net(nn.Module):\n    def __init__(self):\n        super(Net, self).__init__()\n"
    "        self.fc = nn.Linear(2, 1)\n\n    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
    "        return torch.sigmoid(self.fc(x))\n\nnet = Net()\nnet.fc = nn.Linear(2, 1)",
    "values = ['0.2', '0.7']\nprobs = torch.tensor(list(map(float, values)))",
    "y = torch.ones(3)\nlosses = list(map(lambda p: F.binary_cross_entropy(p, y), [torch.rand(3)]))",
    "for x in map(lambda d: torch.ones(2, dtype=d), [torch.float32, torch.float64]):\n    x.requires_grad = True",
    "names = list(map(str, [torch.float32, torch.float16]))\nnames.append('bf16')\nnames[0] = 'f32'",
    "evens = list(filter(lambda n: n % 2 == 0, range(10)))\nbest = max(range(3), key=lambda i: -i)\n"
    "eps = max(torch.finfo(torch.float32).eps, 1e-12)",
    "layers = list(map(lambda n: nn.Linear(n, 1), [2, 3]))\nlayers[0].bias = None",
    "import traceback\ntry:\n    F.binary_cross_entropy(torch.tensor([2.0]), torch.tensor([1.0]))\n"
    "except RuntimeError:\n    traceback.print_exc()\n    text = traceback.format_exc()",
    "import logging\nlogging.basicConfig(level=logging.INFO)\nlogging.getLogger('bce').info('epoch 1')",
    # descriptors the code opened itself, and the standard streams: only a descriptor reached by
    # number can be one of the engine's pipes (tests/instructor/test_scan_descriptors.py)
    "import os\nnull = os.open(os.devnull, os.O_WRONLY)\nsaved = os.dup(2)\nos.dup2(null, 2)\n"
    "os.write(2, b'quiet')\nos.dup2(saved, 2)",
]


@pytest.mark.parametrize("source", HONEST, ids=range(len(HONEST)))
def test_honest_code_is_not_named(source):
    assert scan.suspicious(notebook(source)) == []
    assert scan.suspicious(notebook("x = 1", source)) == []


def test_there_are_enough_honest_snippets():
    assert len(HONEST) >= 25


@pytest.mark.parametrize("path", MASTERS, ids=lambda p: p.stem)
def test_the_course_is_not_named(path):
    assert len(MASTERS) == 6
    assert scan.suspicious(nbformat.read(path, as_version=4)) == []


def test_only_the_students_cells_are_read():
    nb = notebook("x = 1")
    nb.cells.append(new_code_cell("torch.allclose = None", metadata=TEST))
    nb.cells.append(new_code_cell("torch.allclose = None", metadata=LOCKED))
    nb.cells.append(new_markdown_cell("torch.allclose = None"))
    assert scan.suspicious(nb) == []
    assert not scan.written_by_the_student(nb.cells[-2]) and scan.written_by_the_student(nb.cells[2])


def test_what_the_instructors_cells_bind_is_learned():
    nb = notebook("T.allclose = None")
    nb.cells[0].source += "import torch as T\n"
    assert flagged_at(scan.suspicious(nb), 3, 1, "T.allclose, which is torch.allclose")


def test_the_findings_are_in_order_without_repeats():
    found = scan.suspicious(notebook("torch.allclose = None\ntorch.allclose = None", "import gc\ngc.collect()"))
    assert found == [
        "cell 3, line 1: assigns to torch.allclose (monkeypatching torch)",
        "cell 3, line 2: assigns to torch.allclose (monkeypatching torch)",
        "cell 4, line 1: reaches the garbage collector, and through it every object (gc)",
        "cell 4, line 2: reaches the garbage collector, and through it every object (gc)",
    ]


def test_scan_source_reads_one_cell():
    assert scan.scan_source("x = 1\n%%capture\ny = 2") == []  # "%%" below the top: IPython runs nothing
    assert scan.scan_source("%%capture\nimport torch\ntorch.x = 1") == [
        (3, "assigns to torch.x (monkeypatching torch)")]
    bindings = scan.Bindings()
    bindings.learn("G = torch.nn.functional")
    bindings.settle()
    assert scan.scan_source("G.x = 1", bindings) == [(1, "assigns to G.x, which is torch.nn.functional.x "
                                                         "(monkeypatching torch)")]
    assert scan.scan_source("G.x = 1") == []
    assert scan.scan_source("def f(:\n    torch.x = 1") == []  # cannot run either


@pytest.mark.parametrize("nested", ["-" * 1000 + "1", "a" + ".b" * 1200, "f" + "(x)" * 1200])
def test_a_cell_nested_too_deeply_to_read_is_named_and_stops_nothing(nested):
    found = scan.suspicious(notebook("y = 1", f"x = {nested}\ntorch.x = 1", "torch.y = 1"))
    assert flagged_at(found, 4, 1, "nested too deeply") and flagged_at(found, 5, 1, "torch.y"), found


#: Hostile notebooks that tamper, with a word of what must be named (every cell is the student's).
TAMPERING = {
    "patches_torch": "assigns to torch.Tensor.any",
    "replaces_assert_passes": "assigns to grader.assert_passes",
    "replaces_the_battery": "assigns to grader.run",
    "redefines_assertion_error": "builtins.AssertionError",
    "hides_torch_from_the_recorder": "FORBIDDEN_OPS",
    "calls_private_torch": "._C",
}
#: The others of the corpus that tamper.
MORE_TAMPERING = {
    "empties_the_forbidden_list": "FORBIDDEN_OPS",
    "tampers_inside_a_cell_magic": "inspect.getmodule",
    "patches_the_observer": "observe.answer",
    "rebinds_grader": "rebinds grader",
    "walks_inherited_frames": "call stack",
    "hides_errors": "showtraceback",
    "segfaults": "raw memory",
    "reads_inherited_memory": "/proc/self/mem",
    "reads_the_instructors_environment": "/proc/self/stat",
    "reads_the_grading_secret": "grader._battery",
    "retitles_the_terminal": "/proc/self/",
    "shows_a_value_flagged": "assigns to grader.assert_passes",
    "shows_a_value_in_each_test_cell": "which is grader.assert_passes",
    "types_into_the_terminal": "pipes among them (fcntl)",
}
#: Hostile notebooks that attack the sandbox or the judge with ordinary Python: the scan must
#: leave them to those (they test them).
ORDINARY = ("allocates_too_much", "exits_early", "floods_the_output", "fork_bomb", "hangs", "prints_the_history",
            "reads_the_masters", "uses_the_network", "writes_into_the_grader", "calls_functional", "calls_module",
            "calls_torch_in_a_thread", "calls_torch_in_a_pool", "deletes_a_test_cell", "edits_a_test_cell",
            "fills_the_disk", "spins_processes", "floods_the_engines_pipe",
            "reads_its_own_folder", "scripts_the_feedback", "forges_the_cell_messages", "forges_megabytes_of_outputs",
            "crashes_the_listener", "overflows_the_judge", "calls_torch_in_a_fork",
            "calls_torch_where_the_tests_do_not_look",
            # a table of torch's answers, replayed: the autograding secret stops it (grader/_battery/salt.py)
            "replays_a_local_check")


def _hostile(case: str):
    path = HOSTILE / f"{case}.ipynb"
    assert path.exists(), f"{path.name} is not in the corpus"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.metadata = {}  # every cell of a hostile notebook is the student's
    return nb


@pytest.mark.parametrize("case", sorted(TAMPERING) + sorted(MORE_TAMPERING))
def test_the_hostile_notebooks_that_tamper_are_named(case):
    word = {**TAMPERING, **MORE_TAMPERING}[case]
    found = scan.suspicious(_hostile(case))
    assert any(word in f for f in found), found


@pytest.mark.parametrize("case", ORDINARY)
def test_the_hostile_notebooks_that_attack_with_ordinary_python_are_left_to_the_sandbox_and_the_judge(case):
    assert scan.suspicious(_hostile(case)) == []


def test_every_hostile_notebook_is_in_one_list_here():
    corpus = {p.stem for p in HOSTILE.glob("*.ipynb")}
    listed = set(TAMPERING) | set(MORE_TAMPERING) | set(ORDINARY)
    assert corpus - listed == set() and listed - corpus == set()


def test_a_tampering_inside_a_cell_magic_is_named_on_its_line():
    found = scan.suspicious(_hostile("tampers_inside_a_cell_magic"))
    assert flagged_at(found, 1, 7, "inspect.getmodule") and flagged_at(found, 1, 10, "FORBIDDEN_OPS"), found


@pytest.mark.parametrize("meta", [
    {"nbgrader": {"solution": False, "grade": False, "locked": True, "schema_version": 3}},   # no grade_id
    {"nbgrader": {"solution": False, "grade": False, "grade_id": "mine", "locked": False, "schema_version": 3}},
    {"nbgrader": {"solution": False, "grade": True, "points": 0, "schema_version": 3}},
    {"nbgrader": "not a dict"},
], ids=["locked-without-id", "unlocked", "grade-without-id", "malformed"])
def test_nbgrader_metadata_a_student_writes_does_not_hide_a_cell(meta):
    """nbgrader removes the grade_id of a cell it does not know, and restores the source of
    locked cells it knows: only a locked cell with a grade_id is the instructor's."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch\ntorch.allclose = print",
                                                                    metadata=meta)])
    found = scan.suspicious(nb)
    assert found and found[0].startswith("cell 1, line 2:"), found
