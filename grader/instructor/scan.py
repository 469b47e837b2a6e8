"""The tampering scan: a static look at the code a student wrote in a notebook.

What it reads
    The code cells the student wrote: solution cells, and cells without the
    course's nbgrader metadata (cells the student added). A cell that starts
    with a cell magic is read the way IPython runs it: the body of ``%%capture``,
    ``%%time``, ``%%timeit``, ``%%prun`` and ``%%debug`` is Python and is read as
    such (with the line numbers of the cell), line magics and shell escapes
    (``%time stmt``, ``!cmd``, ``x = !cmd``, ``obj?``) are turned into the calls
    IPython makes of them (with IPython's own input transformer), the statement of
    ``%time``/``%timeit``/``%prun``/``%debug`` is read as Python, and so are the
    ``{expr}`` and ``$name`` that IPython evaluates in the arguments of other
    magics. The instructor's cells are read too, but only to learn what their
    names stand for (``torch``, ``grader``, ``sys`` ...): nothing in them is named.

What it names (each as ``cell N, line L: what``, for the instructor)
    * Changes to torch, to the grader, to Python's built-ins, to ``sys`` or to
      IPython: any assignment, augmented assignment or ``del`` whose target hangs
      from a name bound to one of them (``torch.Tensor.any = ...``,
      ``F.binary_cross_entropy = ...`` after ``import torch.nn.functional as F``,
      ``m.FORBIDDEN_OPS = ()`` after ``m = inspect.getmodule(grader.check)``,
      ``get_ipython().showtraceback = ...``); in-place changes of the grader's or
      torch's objects (``grader.X.append(...)``); ``setattr``/``delattr``
      (except on ``self``/``cls``), ``object.__setattr__``, ``vars``,
      ``globals``, ``locals``, ``__dict__``, ``type(grader)``,
      ``operator.setitem``, ``getattr`` or ``attrgetter`` with a computed name,
      ``unittest.mock``; rebinding at the top level a name the course's cells use
      (``torch = ...``, ``import numpy as torch``, ``del grader``) or the
      built-ins an assertion relies on (``AssertionError = ...``). What a name
      stands for is followed through imports (``import x as y``,
      ``from x import y as z``), assignments, tuple unpacking, containers,
      for-loops, comprehensions, ``with ... as``, the walrus, default
      arguments, the arguments and return values of the student's own
      functions, ``getattr``, ``vars``, ``type``, ``inspect.getmodule``,
      ``importlib.import_module``, ``__import__`` and ``sys.modules[...]``: a
      small taint analysis over all the student's cells, in cell order and then
      again until nothing changes (names are not scoped: a name bound anywhere to
      torch stands for torch everywhere).
    * The grader's internals: anything of ``grader`` beyond what a notebook is
      given (``check``, ``assert_passes``, ``CATEGORIES``, ``Report``,
      ``available_devices``, ``explore``, ``datasets``, ``imbalance``,
      ``seeds``), and where its files are (``grader.__file__``,
      ``inspect.getfile(grader...)``).
    * Private attributes (``torch._C``, ``x._version``; not on ``self``/``cls``,
      and ``os._exit`` is allowed) and the dunders that reach into objects
      (``__dict__``, ``__globals__``, ``__code__``, ``__closure__``,
      ``__defaults__``, ``__wrapped__``, ``__self__``, ``__subclasses__``,
      ``__class__``, ``__setattr__`` ...), also through a constant ``getattr``.
    * Frames, tracebacks and tracers: ``inspect.stack``/``currentframe``/
      ``getouterframes``/``trace``/``getmodule``/``getclosurevars``/``unwrap``,
      ``inspect.getmembers`` of torch or the grader, ``sys._getframe``,
      ``.f_back``/``.f_globals``/``.f_locals``/``.tb_frame``/``.gi_frame``...,
      ``sys.settrace``/``setprofile``/``monitoring``/``addaudithook``,
      ``threading.settrace``, ``sys.modules``, the import machinery
      (``sys.meta_path``...), the interpreter's hooks (``sys.excepthook``...),
      ``gc``, ``ctypes``, ``signal`` (the grader's time limit is an alarm),
      definitions of ``__torch_function__``/``__torch_dispatch__``,
      ``torch.library``, ``torch.overrides``, ``torch.utils.cpp_extension``.
    * Code run from strings, files or other processes: ``eval``, ``exec``,
      ``compile``, ``__import__``, ``importlib``, ``runpy``, ``code``,
      ``doctest``, ``pickle`` and its kin, ``types.FunctionType``/``CodeType``,
      ``torch.load(..., weights_only=False)``, writing a ``.py`` file; the
      strings given to ``timeit``, ``cProfile``/``profile`` and ``pdb`` are read
      as Python when they are constants and named when they are not;
      ``subprocess``, ``os.system`` and kin, shell escapes (``!python x.py``,
      except a few harmless commands: ``!pip install``, ``!ls``,
      ``!nvidia-smi``... without shell operators or expansions), script and
      file-writing cell magics (``%%bash``, ``%%sh``, ``%%script``,
      ``%%python``, ``%%writefile``, ``%%javascript``), ``%run``, ``%load``,
      ``%load_ext``, ``%save``, ``%store``, ``%macro``, ``%rerun``, ``%edit``,
      ``%config`` with anything but a literal, any magic the scan does not know,
      and IPython's own entry points (``get_ipython().run_cell``, ``.ex``,
      ``.events``, ``.ast_transformers``, ``.user_ns``...; ``ipykernel``).
    * The session's input history: the ``%history`` magic and
      ``get_ipython().history_manager``.

What it leaves alone, on purpose
    Ordinary code: torch's functions and modules used (not assigned), tensors
    and the student's own objects changed in any way (``x.grad = None``,
    ``model.weight.data.fill_(...)``, ``self.x = ...``, ``opt.param_groups[0]
    ["lr"] = ...``), ``nn.Module`` subclasses, ``import inspect`` with
    ``inspect.signature``/``getsource``, ``sys.path.append``, ``sys.version``,
    ``plt.rcParams[...] = ...``, ``torch.backends.cudnn.deterministic``/
    ``benchmark``, ``%matplotlib``, ``%pip``, ``%time``/``%timeit`` (their
    statement is read), ``%%capture``, ``%who``, ``%config X.y = <literal>``,
    display magics (``%%html``, ``%%markdown``, ``%%latex``, ``%%svg``), and
    reading ``In``, ``Out``, ``_ih``, ``_oh``, ``_i3``: the hidden tests never
    enter the student's process, so the history holds nothing to find (only
    the magic and ``history_manager``, which reach into the session itself,
    are named). Stores into modules other than torch, the grader, ``builtins``,
    ``sys`` and IPython are left alone (``plt.rcParams``, ``np.x``).

What it cannot see
    It reads code; it does not run it. Whatever builds its code or its names at
    run time, through a route not named above, goes unseen: a module or
    attribute name assembled from strings and used through something not
    flagged, base64 or any other encoding decoded into code and handed to an
    unflagged runner, a ``.py`` file written under a computed name and then
    imported, objects reached through the student's own containers or objects
    in ways the taint analysis does not follow (attributes of objects, items
    of containers after a copy, values round-tripped through files), C
    extensions or packages installed with ``%pip`` and imported, a magic
    registered under a known magic's name, and code in a cell that does not
    parse (which cannot run either, when the kernel's Python is the scan's).
    A star import of torch or the grader is not followed. The scan is one
    layer, behind the sandbox, which keeps a notebook from the grader's files,
    the network and the machine, and behind the judge, which decides every
    check outside the student's process: it names suspects for a human, it
    does not make the grading safe.

This module must not import nbgrader (nor the grader's battery): it reads a
notebook as nbformat's dicts (``nb.cells``, each with ``cell_type``,
``source`` and ``metadata``), and imports IPython only to transform cells.
"""

from __future__ import annotations

import ast
import difflib
import re
import string
from dataclasses import dataclass, field
from typing import Callable, Iterable

__all__ = ["Bindings", "scan_source", "suspicious", "written_by_the_student"]

# --------------------------------------------------------------------------- what counts

#: What of the grader a notebook is given; anything else of it is its internals.
STUDENT_FACING = {
    "check", "assert_passes", "CATEGORIES", "Report", "available_devices",
    "explore", "datasets", "imbalance", "seeds",
    "__version__", "__doc__", "__name__", "__all__",
}

#: The names a notebook may take for granted: the course's setup cell binds them.
COURSE_NAMES = {"torch": "torch", "grader": "grader"}

#: Roots whose objects must not be changed, and why, in a teacher's words.
_PROTECTED = {
    "torch": "monkeypatching torch",
    "grader": "changing the grader",
    "builtins": "changing Python's built-ins",
    "sys": "changing the interpreter",
    "IPython": "changing IPython's machinery",
    "@type": "changing a class",
    "@module": "changing a module",
    "@import": "changing a module",
}
#: Roots whose objects must not be changed in place through a method either.
_NO_INPLACE = {"torch", "grader", "builtins", "IPython", "@type", "@module", "@import"}
_MUTATING = {"append", "extend", "insert", "remove", "pop", "popitem", "clear", "update", "setdefault",
             "discard", "__setitem__", "__delitem__", "__setattr__", "__delattr__", "__iadd__"}
#: Stores into torch that only configure it.
_ALLOWED_STORES = {"torch.backends.cudnn.deterministic", "torch.backends.cudnn.benchmark"}

#: Built-in names that are flagged wherever they are used.
_SUSPECT_BUILTINS = {
    "eval": "runs code from a string (eval)",
    "exec": "runs code from a string (exec)",
    "compile": "compiles code from a string (compile)",
    "__import__": "imports a module by name (__import__)",
    "globals": "reaches the notebook's variables as a dictionary (globals)",
    "locals": "reaches variables as a dictionary (locals)",
    "vars": "reaches an object's attributes as a dictionary (vars)",
    "__builtins__": "reaches Python's built-ins (__builtins__)",
}
#: Built-ins whose rebinding at the top level could fool a test cell.
_GUARDED_BUILTINS = {"AssertionError", "BaseException", "Exception", "isinstance", "issubclass", "getattr",
                     "hasattr", "bool", "__builtins__", "__import__", "__build_class__"}
_BUILTIN_NAMES = {"getattr", "setattr", "delattr", "hasattr", "vars", "globals", "locals", "type", "object",
                  "eval", "exec", "compile", "__import__", "open", "iter", "next", "reversed", "enumerate", "zip",
                  "list", "tuple", "set", "frozenset", "sorted", "dict", "filter", "__builtins__", "super"}
_METHOD_PASSTHROUGH = {"get", "values", "items", "keys", "copy", "pop", "setdefault", "__getitem__"}
_PASSTHROUGH = {"iter", "next", "reversed", "enumerate", "zip", "list", "tuple", "set", "frozenset", "sorted",
                "dict", "filter"}

#: Private attributes and the dunders that reach into objects.
_SUSPECT_ATTRIBUTES = re.compile(
    r"^(_[A-Za-z]\w*|__(dict|globals|code|closure|builtins|subclasses|bases|base|mro|class|getattribute|"
    r"setattr|delattr|traceback|frame|defaults|kwdefaults|wrapped|self|reduce|reduce_ex|loader|spec)__|"
    r"settrace|setprofile|excepthook|set_custom_exc)$")
_FRAME_ATTRIBUTES = {"f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next",
                     "gi_frame", "cr_frame", "ag_frame", "gi_code", "cr_code"}
_SELF = {"self", "cls"}
_HARMLESS = {"_exit"}
_FILE_ATTRIBUTES = {"__file__", "__path__", "__spec__", "__loader__", "__cached__"}

#: Qualified names (and everything under them) that are flagged, with the reason.
_DANGEROUS = {
    "inspect.stack": "walks the call stack (inspect.stack)",
    "inspect.currentframe": "walks the call stack (inspect.currentframe)",
    "inspect.getouterframes": "walks the call stack (inspect.getouterframes)",
    "inspect.getinnerframes": "walks the call stack (inspect.getinnerframes)",
    "inspect.trace": "walks the call stack (inspect.trace)",
    "inspect.getframeinfo": "walks the call stack (inspect.getframeinfo)",
    "inspect.getmodule": "finds an object's module (inspect.getmodule)",
    "inspect.getclosurevars": "reads a function's hidden variables (inspect.getclosurevars)",
    "inspect.unwrap": "unwraps a function (inspect.unwrap)",
    "inspect.getattr_static": "reads attributes past their guards (inspect.getattr_static)",
    "sys._getframe": "walks the call stack (sys._getframe)",
    "sys.settrace": "installs a tracer (sys.settrace)",
    "sys.setprofile": "installs a tracer (sys.setprofile)",
    "sys.monitoring": "installs a tracer (sys.monitoring)",
    "sys.call_tracing": "installs a tracer (sys.call_tracing)",
    "sys.addaudithook": "installs an audit hook (sys.addaudithook)",
    "sys.remote_exec": "runs code in another process (sys.remote_exec)",
    "sys.modules": "reaches sys.modules (every loaded module, the grader's included)",
    "sys.meta_path": "changes how modules are imported (sys.meta_path)",
    "sys.path_hooks": "changes how modules are imported (sys.path_hooks)",
    "sys.path_importer_cache": "changes how modules are imported (sys.path_importer_cache)",
    "sys.excepthook": "replaces a hook of the interpreter (sys.excepthook)",
    "sys.displayhook": "replaces a hook of the interpreter (sys.displayhook)",
    "sys.breakpointhook": "replaces a hook of the interpreter (sys.breakpointhook)",
    "sys.unraisablehook": "replaces a hook of the interpreter (sys.unraisablehook)",
    "sys.last_traceback": "reads the last traceback (sys.last_traceback)",
    "threading.settrace": "installs a tracer (threading.settrace)",
    "threading.setprofile": "installs a tracer (threading.setprofile)",
    "threading.settrace_all_threads": "installs a tracer (threading.settrace_all_threads)",
    "threading.setprofile_all_threads": "installs a tracer (threading.setprofile_all_threads)",
    "gc": "reaches the garbage collector, and through it every object (gc)",
    "ctypes": "reaches raw memory (ctypes)",
    "_ctypes": "reaches raw memory (_ctypes)",
    "cffi": "reaches raw memory (cffi)",
    "importlib": "imports modules by name (importlib)",
    "builtins": "reaches Python's built-ins (builtins)",
    "pickle": "unpickles data, which can run any code (pickle)",
    "_pickle": "unpickles data, which can run any code (_pickle)",
    "cPickle": "unpickles data, which can run any code (cPickle)",
    "marshal": "loads raw code (marshal)",
    "dill": "unpickles data, which can run any code (dill)",
    "cloudpickle": "unpickles data, which can run any code (cloudpickle)",
    "shelve": "unpickles data, which can run any code (shelve)",
    "code": "runs code from a string (code)",
    "codeop": "compiles code from a string (codeop)",
    "runpy": "runs another file (runpy)",
    "doctest": "runs code from docstrings (doctest)",
    "trace": "installs a tracer (trace)",
    "bdb": "installs a tracer (bdb)",
    "signal": "handles signals, which the grader's time limit relies on (signal)",
    "subprocess": "runs a shell command (subprocess)",
    "pty": "runs a shell command (pty)",
    "os.system": "runs a shell command (os.system)",
    "os.popen": "runs a shell command (os.popen)",
    "os.kill": "sends a signal to a process (os.kill)",
    "os.killpg": "sends a signal to a process (os.killpg)",
    "unittest.mock": "patches objects by name (unittest.mock)",
    "mock": "patches objects by name (mock)",
    "ipykernel": "reaches into the Jupyter kernel (ipykernel)",
    "jupyter_client": "reaches into the Jupyter kernel (jupyter_client)",
    "zmq": "reaches into the Jupyter kernel (zmq)",
    "types.FunctionType": "builds a function from raw code (types.FunctionType)",
    "types.LambdaType": "builds a function from raw code (types.LambdaType)",
    "types.CodeType": "builds raw code (types.CodeType)",
    "operator.setitem": "changes an object through operator.setitem",
    "operator.delitem": "changes an object through operator.delitem",
    "operator.__setitem__": "changes an object through operator.__setitem__",
    "operator.__delitem__": "changes an object through operator.__delitem__",
    "torch.library": "reaches into torch's dispatch machinery (torch.library)",
    "torch.overrides": "reaches into torch's dispatch machinery (torch.overrides)",
    "torch.utils.cpp_extension": "compiles C++ into the process (torch.utils.cpp_extension)",
    "torch.ops.load_library": "loads a compiled library into torch (torch.ops.load_library)",
    "@builtin.object.__setattr__": "sets an attribute by force (object.__setattr__)",
    "@builtin.object.__delattr__": "deletes an attribute by force (object.__delattr__)",
    "@builtin.type.__setattr__": "sets an attribute of a class by force (type.__setattr__)",
    "@builtin.type.__delattr__": "deletes an attribute of a class by force (type.__delattr__)",
}
_DANGEROUS_LONGEST_FIRST = sorted(_DANGEROUS, key=len, reverse=True)
_DANGEROUS_PREFIXES = {
    "os.exec": "runs another program (os.exec...)",
    "os.spawn": "runs another program (os.spawn...)",
    "os.posix_spawn": "runs another program (os.posix_spawn...)",
}
_SAFE_IPYTHON = {"IPython.display", "IPython.core.display", "IPython.get_ipython", "IPython.core.getipython",
                 "IPython.core.getipython.get_ipython", "IPython.__version__"}
#: inspect functions that are harmless unless given the grader or torch.
_INSPECT_ON_TAINT = {
    "inspect.getmembers": "lists the members of {} (inspect.getmembers)",
    "inspect.getmembers_static": "lists the members of {} (inspect.getmembers_static)",
}
_INSPECT_FILES = {"inspect.getfile", "inspect.getsourcefile", "inspect.getabsfile"}
#: Callables that run a string of Python, and which of their arguments are code.
_CODE_RUNNERS = {
    "timeit.timeit": (0, "stmt", 1, "setup"),
    "timeit.repeat": (0, "stmt", 1, "setup"),
    "timeit.Timer": (0, "stmt", 1, "setup"),
    "cProfile.run": (0, "statement"),
    "cProfile.runctx": (0, "statement"),
    "profile.run": (0, "statement"),
    "profile.runctx": (0, "statement"),
    "pdb.run": (0, "statement"),
    "pdb.runeval": (0, "expression"),
    "pdb.runctx": (0, "statement"),
}

# magics
_PY_BODY_CELL_MAGICS = {"capture", "time", "timeit", "prun", "debug"}
_DISPLAY_CELL_MAGICS = {"html", "HTML", "markdown", "latex", "svg"}
_SCRIPT_CELL_MAGICS = {"bash", "sh", "script", "python", "python2", "python3", "pypy", "perl", "ruby", "system",
                       "!", "sx", "cmd", "powershell"}
_PY_LINE_MAGICS = {"time", "timeit", "prun", "debug"}
#: Options of those magics that take a value.
_MAGIC_OPTIONS_WITH_VALUE = {"timeit": "nrp", "prun": "DTls", "debug": "b", "time": ""}
_HARMLESS_LINE_MAGICS = {
    "matplotlib", "who", "whos", "who_ls", "pwd", "ls", "ll", "lf", "lk", "ldir", "lx", "cd", "lsmagic", "magic",
    "quickref", "precision", "xmode", "pinfo", "pinfo2", "psearch", "pdef", "pdoc", "psource", "pfile", "page",
    "env", "set_env", "colors", "automagic", "autosave", "tb", "pdb", "clear", "reset", "reset_selective", "xdel",
    "dhist", "dirs", "cat", "less", "more", "man", "config", "doctest_mode", "autoindent", "alias_magic_list",
}
_INSTALL_LINE_MAGICS = {"pip", "conda", "mamba", "micromamba", "uv"}
_FLAGGED_LINE_MAGICS = {
    "run": "runs another file (%run)",
    "load": "loads code from a file (%load)",
    "loadpy": "loads code from a file (%loadpy)",
    "load_ext": "loads an IPython extension (%load_ext)",
    "reload_ext": "loads an IPython extension (%reload_ext)",
    "unload_ext": "unloads an IPython extension (%unload_ext)",
    "history": "reads the session's input history (%history)",
    "hist": "reads the session's input history (%hist)",
    "recall": "reads the session's input history (%recall)",
    "rerun": "reruns earlier input (%rerun)",
    "macro": "builds a macro from earlier input (%macro)",
    "edit": "runs code from an editor (%edit)",
    "save": "writes code to a file (%save)",
    "logstart": "writes the session's input to a file (%logstart)",
    "notebook": "writes the session's input to a file (%notebook)",
    "store": "restores pickled variables (%store)",
    "sx": "runs a shell command (%sx)",
    "system": "runs a shell command (%system)",
    "sc": "runs a shell command (%sc)",
    "alias": "defines a shell command (%alias)",
    "unalias": "changes a shell command (%unalias)",
    "alias_magic": "renames a magic (%alias_magic)",
    "autoreload": "reloads modules (%autoreload)",
    "aimport": "reloads modules (%aimport)",
    "pylab": "overwrites the notebook's names (%pylab)",
    "cp": "runs a shell command (%cp)",
    "mv": "runs a shell command (%mv)",
    "rm": "runs a shell command (%rm)",
    "rmdir": "runs a shell command (%rmdir)",
    "mkdir": "runs a shell command (%mkdir)",
    "ln": "runs a shell command (%ln)",
    "killbgscripts": "ends background scripts (%killbgscripts)",
}
#: Shell commands run with ``!`` that cannot reach the grader (without operators or expansions).
_HARMLESS_COMMANDS = re.compile(
    r"^\s*((pip3?|python3? -m pip)\s+(install|list|show|freeze|--version)\b|(conda|mamba)\s+(install|list)\b|"
    r"(nvidia-smi|ls|pwd|nproc|free|df|du|uname|date|whoami|lscpu|nvcc|cat|head|tail|wc|echo)(\s|$))")
_SHELL_OPERATORS = re.compile(r"[;&|`$<>(){}\n\\]")
#: IPython shell methods the input transformer produces; read where their arguments are constants.
_SHELL_ENTRY_POINTS = {"run_line_magic", "magic", "run_cell_magic", "system", "getoutput", "system_raw",
                       "system_piped", "run_cell", "ex", "ev"}

# --------------------------------------------------------------------------- reading a cell


def written_by_the_student(cell) -> bool:
    """Solution cells, and cells the student added (no nbgrader metadata of the course)."""
    meta = cell.get("metadata", {}).get("nbgrader")
    return cell.get("cell_type") == "code" and (meta is None or bool(meta.get("solution")))


@dataclass
class _Piece:
    """Python read from a cell: its tree, and the cell's line of each of its lines."""
    tree: ast.Module
    line: Callable[[int], int]
    #: ``get_ipython().X`` calls already read here (their ``X`` is not named again).
    read: set[int] = field(default_factory=set)


@dataclass
class _Reading:
    pieces: list[_Piece]
    found: list[tuple[int, str]]


_TRANSFORMER = None


def _transform(source: str) -> str:
    global _TRANSFORMER
    try:
        if _TRANSFORMER is None:
            from IPython.core.inputtransformer2 import TransformerManager

            _TRANSFORMER = TransformerManager()
        return _TRANSFORMER.transform_cell(source)
    except ImportError:
        return _plain_transform(source)
    except Exception:  # noqa: BLE001 - IPython could not read it: read it as Python
        return source


_ESCAPE = re.compile(r"^(\s*)(?:([\w., ()*]+?)\s*=\s*)?(!!|!|%%|%)(.*)$")


def _plain_transform(source: str) -> str:
    """A small stand-in for IPython's input transformer (used only without IPython)."""
    lines = source.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and lines[0].lstrip().startswith("%%"):
        name, _, line = lines[0].lstrip()[2:].partition(" ")
        body = "\n".join(lines[1:]) + "\n"
        return f"get_ipython().run_cell_magic({name!r}, {line!r}, {body!r})\n"
    out = []
    for text in lines:
        match = _ESCAPE.match(text)
        if not match:
            out.append(text)
            continue
        indent, target, escape, rest = match.groups()
        if escape in ("!", "!!"):
            call = f"get_ipython().{'getoutput' if target or escape == '!!' else 'system'}({rest!r})"
        else:
            name, _, args = rest.partition(" ")
            call = f"get_ipython().run_line_magic({name!r}, {args!r})"
        out.append(f"{indent}{target} = {call}" if target else indent + call)
    return "\n".join(out) + "\n"


def _line_map(source: str, code: str) -> Callable[[int], int]:
    """The line of ``source`` that each line of its transformed ``code`` came from."""
    old = [line.strip() for line in source.splitlines()]
    new = [line.strip() for line in code.splitlines()]
    mapping: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            for k in range(j2 - j1):
                mapping[j1 + k + 1] = i1 + k + 1
        elif tag in ("replace", "insert"):
            start = i1
            while start < i2 - 1 and not old[start]:
                start += 1
            for k in range(j2 - j1):
                mapping[j1 + k + 1] = min(start + 1, max(len(old), 1))
    last = max(len(old), 1)
    return lambda line: mapping.get(line, min(line, last))


def _read(source: str, line: Callable[[int], int] = lambda n: n) -> _Reading:
    """The Python in one cell (or in a magic's body), and what its magics already tell."""
    reading = _Reading([], [])
    if not source.strip():
        return reading
    code = _transform(source)
    try:
        tree = ast.parse(code)
        local = _line_map(source, code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        try:
            tree = ast.parse(source)
            local = lambda n: n  # noqa: E731
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return reading  # the kernel cannot run it either
    where = lambda n: line(local(n))  # noqa: E731
    piece = _Piece(tree, where)
    reading.pieces.append(piece)
    lines = source.splitlines()
    first = next((n for n, text in enumerate(lines, 1) if text.strip()), 1)
    starts_with_cell_magic = lines[first - 1].lstrip().startswith("%%")
    for node in ast.walk(tree):
        entry = _shell_entry(node)
        if entry is None:
            continue
        piece.read.add(id(node.func))
        at = where(node.lineno)
        if entry == "run_cell_magic" and starts_with_cell_magic and node.lineno == 1:
            body_line = lambda n, at=at: at + n  # noqa: E731 - the body starts below the magic's line
        else:
            body_line = lambda n, at=at: at  # noqa: E731
        _read_entry(entry, node, at, body_line, lines[min(local(node.lineno), len(lines)) - 1], reading)
    return reading


def _shell_entry(node: ast.AST) -> str | None:
    """``X`` for a call ``get_ipython().X(...)``, one of the entry points IPython's transformer writes."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in _SHELL_ENTRY_POINTS):
        return None
    receiver = node.func.value
    if (isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name)
            and receiver.func.id == "get_ipython" and not receiver.args and not receiver.keywords):
        return node.func.attr
    return None


def _constant_args(node: ast.Call) -> list[str] | None:
    values = []
    for arg in node.args:
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            return None
        values.append(arg.value)
    return values


def _read_entry(entry: str, node: ast.Call, at: int, body_line, text: str, reading: _Reading) -> None:
    args = _constant_args(node)
    explicit = "get_ipython" in text
    if args is None or (entry not in ("run_cell_magic",) and not args):
        reading.found.append((at, f"runs code built at run time through IPython (get_ipython().{entry})"))
        return
    if entry in ("system", "getoutput", "system_raw", "system_piped"):
        _read_shell(args[0], at, explicit, reading)
    elif entry in ("run_line_magic", "magic"):
        if entry == "magic":
            name, _, line = args[0].lstrip().lstrip("%").partition(" ")
        else:
            name, line = args[0], (args[1] if len(args) > 1 else "")
        _read_line_magic(name, line, at, reading)
    elif entry == "run_cell_magic":
        name, line, body = (args + ["", "", ""])[:3]
        _read_cell_magic(name, line, body, at, body_line, reading)
    else:  # run_cell, ex, ev: code run by IPython itself
        reading.found.append((at, f"runs code through IPython (get_ipython().{entry})"))
        if entry == "ev":
            _read_python(args[0], lambda n: at, reading, mode="eval")
        else:
            _add(reading, _read(args[0], lambda n: at))


def _add(reading: _Reading, other: _Reading) -> None:
    reading.pieces.extend(other.pieces)
    reading.found.extend(other.found)


def _read_python(code: str, line, reading: _Reading, mode: str = "exec") -> None:
    """A string IPython runs as plain Python (no magics in it)."""
    try:
        tree = ast.parse(code.strip() if mode == "eval" else code, mode=mode)
    except (SyntaxError, ValueError):
        return  # it cannot run either
    if mode == "eval":
        tree = ast.Module(body=[ast.Expr(tree.body, lineno=1, col_offset=0)], type_ignores=[])
        ast.fix_missing_locations(tree)
    reading.pieces.append(_Piece(tree, line))


def _expansions(text: str, at: int, reading: _Reading) -> bool:
    """Read the ``{expr}`` and ``$name`` IPython evaluates in a magic's or a command's arguments;
    True when there are any."""
    found = False
    try:
        fields = [f"{name}:{spec}" if spec else name
                  for _, name, spec, _ in string.Formatter().parse(text) if name is not None]
    except ValueError:
        fields = []  # IPython leaves a string it cannot format as it is
    fields += re.findall(r"(?<!\$)\$([A-Za-z_][\w.]*)", text)
    for expression in fields:
        found = True
        _read_python(expression, lambda n: at, reading, mode="eval")
    return found


def _read_shell(command: str, at: int, explicit: bool, reading: _Reading) -> None:
    shown = f"get_ipython().system({_short(command)!r})" if explicit else f"!{_short(command)}"
    expanded = _expansions(command, at, reading)
    unquoted = re.sub(r"'[^']*'|\"[^\"$`\\]*\"", "''", command)
    if expanded or not _HARMLESS_COMMANDS.match(command) or _SHELL_OPERATORS.search(unquoted):
        reading.found.append((at, f"runs a shell command ({shown})"))


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _statement_of(name: str, line: str) -> str:
    """The Python statement of ``%time``/``%timeit``/``%prun``/``%debug``, without their options."""
    with_value = _MAGIC_OPTIONS_WITH_VALUE.get(name, "")
    words = line.strip()
    while words.startswith("-"):
        option, _, rest = words.partition(" ")
        if option.startswith("--"):  # %debug --breakpoint FILE:LINE
            words = rest.strip().partition(" ")[2].strip() if option == "--breakpoint" else rest.strip()
            continue
        letters = option[1:]
        takes_value = any(letter in with_value for letter in letters[:1])
        words = rest.strip()
        if takes_value and len(letters) == 1:  # "-n 10", not "-n10"
            words = words.partition(" ")[2].strip()
    return words


def _read_line_magic(name: str, line: str, at: int, reading: _Reading) -> None:
    if name.startswith("%"):
        return  # "%%x" not at the top of a cell: IPython finds no such line magic and runs nothing
    if name in _PY_LINE_MAGICS:
        _add(reading, _read(_statement_of(name, line), lambda n: at))
    elif name in _INSTALL_LINE_MAGICS:
        if _expansions(line, at, reading) or _SHELL_OPERATORS.search(
                re.sub(r"'[^']*'|\"[^\"$`\\]*\"", "''", line)):
            reading.found.append((at, f"runs a shell command built at run time (%{name} {_short(line)})"))
    elif name in _HARMLESS_LINE_MAGICS:
        _expansions(line, at, reading)
        if name == "config" and not _literal_config(line):
            reading.found.append((at, f"runs code through %config ({_short(line)})"))
    elif name in _FLAGGED_LINE_MAGICS:
        reading.found.append((at, _FLAGGED_LINE_MAGICS[name] if not line.strip()
                              else _FLAGGED_LINE_MAGICS[name][:-1] + f" {_short(line, 40)})"))
    else:
        reading.found.append((at, f"uses the magic %{name}, which the scan cannot read"))


def _literal_config(line: str) -> bool:
    """``%config``, ``%config Class`` or ``%config Class.trait = <literal>``: nothing runs."""
    text = line.strip()
    if re.fullmatch(r"(\w+(\.\w+)*)?", text):
        return True
    match = re.fullmatch(r"\w+\.\w+\s*=\s*(.+)", text, re.S)
    if not match:
        return False
    try:
        ast.literal_eval(match.group(1).strip())
        return True
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def _read_cell_magic(name: str, line: str, body: str, at: int, body_line, reading: _Reading) -> None:
    if name in _PY_BODY_CELL_MAGICS:
        if name != "capture":
            _add(reading, _read(_statement_of(name, line), lambda n: at))
        else:
            _expansions(line, at, reading)
        _add(reading, _read(body, body_line))
    elif name in _DISPLAY_CELL_MAGICS:
        _expansions(line, at, reading)
    elif name in _SCRIPT_CELL_MAGICS:
        reading.found.append((at, f"runs a shell script (%%{name}{' ' + _short(line, 40) if line.strip() else ''})"))
    elif name in ("writefile", "file"):
        reading.found.append((at, f"writes a file the notebook could import (%%{name} {_short(line, 40)})"))
    elif name in ("javascript", "js"):
        reading.found.append((at, f"runs JavaScript in the browser (%%{name})"))
    else:
        reading.found.append((at, f"uses the cell magic %%{name}, which the scan cannot read"))


# --------------------------------------------------------------------------- what names stand for


def _root(qual: str) -> str:
    return re.split(r"[.\[]", qual, maxsplit=1)[0]


def _plain(qual: str) -> str:
    return qual.replace("[]", "")


def _weight(qual: str | None) -> int:
    return 0 if qual is None else 2 if _root(qual) in _PROTECTED else 1


def _text(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - only for a message
        return "?"


def _const_str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


Scope = tuple  # the path of functions (and classes, as "class:Name") a node sits in; () is the top level


def _lambda_scope(node: ast.Lambda) -> str:
    return f"lambda@{node.lineno}:{node.col_offset}"


def _walk(tree: ast.AST, scope: Scope = ()):
    """Every node of ``tree`` with the scope it is evaluated in (without recursion: a
    deeply nested expression must not stop the scan)."""
    stack = [(tree, scope)]
    while stack:
        node, scope = stack.pop()
        yield node, scope
        children: list[tuple[ast.AST, Scope]] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inner = scope + ((_lambda_scope(node) if isinstance(node, ast.Lambda) else node.name),)
            outer = list(node.args.defaults) + [d for d in node.args.kw_defaults if d is not None]
            if not isinstance(node, ast.Lambda):
                outer += node.decorator_list
            children += [(n, scope) for n in outer]
            arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs + [
                a for a in (node.args.vararg, node.args.kwarg) if a is not None]
            children += [(a, inner) for a in arguments]
            body = [node.body] if isinstance(node, ast.Lambda) else node.body
            children += [(n, inner) for n in body]
        elif isinstance(node, ast.ClassDef):
            inner = scope + (f"class:{node.name}",)
            children += [(n, scope) for n in node.bases + [k.value for k in node.keywords] + node.decorator_list]
            children += [(n, inner) for n in node.body]
        else:
            children += [(n, scope) for n in ast.iter_child_nodes(node)]
        stack.extend(reversed(children))


def _locals_of(node: ast.AST) -> set[str]:
    """The names a function, lambda or class body binds for itself (not those it declares global)."""
    names: set[str] = set()
    declared: set[str] = set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        names.update(a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs)
        names.update(a.arg for a in (node.args.vararg, node.args.kwarg) if a is not None)
    body = [node.body] if isinstance(node, ast.Lambda) else node.body
    stack = list(body)
    while stack:
        inner = stack.pop()
        if isinstance(inner, (ast.Global, ast.Nonlocal)):
            declared.update(inner.names)
        elif isinstance(inner, ast.Name) and isinstance(inner.ctx, (ast.Store, ast.Del)):
            names.add(inner.id)
        elif isinstance(inner, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name.split(".")[0]) for a in inner.names if a.name != "*")
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(inner.name)
            stack.extend(getattr(inner, "decorator_list", []))
            if not isinstance(inner, ast.ClassDef):
                stack.extend(list(inner.args.defaults) + [d for d in inner.args.kw_defaults if d is not None])
            else:
                stack.extend(inner.bases)
            continue  # its body is its own scope
        if isinstance(inner, ast.Lambda):
            stack.extend(inner.args.defaults)
            continue
        stack.extend(ast.iter_child_nodes(inner))
    return names - declared


class Bindings:
    """What the names of a notebook stand for: ``F`` for ``torch.nn.functional``,
    ``m`` for the grader (``m = inspect.getmodule(grader.check)``), ...

    Learned from every code cell (the instructor's too, through :meth:`learn`),
    then :meth:`settle` reads the cells again until nothing changes. A value is a
    qualified name (``"torch.nn.functional"``, ``"grader.check"``; ``[]`` marks an
    item or an element of it, a leading ``@`` something reached indirectly:
    ``@type`` the class of an object, ``@module`` a module found by
    ``inspect.getmodule``, ``@import`` one imported by a computed name). Names are
    kept by scope: a function's parameters and local variables are its own (a
    function's scope is known by its name, so two functions of one name share it).
    """

    def __init__(self) -> None:
        #: (scope, name) -> what the name stands for.
        self.names: dict[tuple[Scope, str], str] = {((), name): qual for name, qual in COURSE_NAMES.items()}
        #: scope -> the names bound in it.
        self.locals: dict[Scope, set[str]] = {}
        #: Targets like ``self.m`` or ``A.m`` bound to something known (by their text, in any scope).
        self.targets: dict[str, str] = {}
        #: The student's functions: the scope of their body, their parameters; what they return.
        self.functions: dict[str, tuple[Scope, list[str]]] = {}
        self.returns: dict[str, str] = {}
        #: Names the instructor's cells bind (to what), which a student must not rebind.
        self.course: dict[str, str] = dict(COURSE_NAMES)
        self._pieces: list[_Piece] = []
        self._changed = False

    # ---------------------------------------------------------------- learning

    def learn(self, source: str, by_the_course: bool = False) -> None:
        """Read one cell's bindings (``by_the_course``: an instructor's cell, whose
        top-level names become names a student must not rebind)."""
        self.learn_pieces(_read(source).pieces, by_the_course)

    def learn_pieces(self, pieces: list[_Piece], by_the_course: bool = False) -> None:
        self._pieces.extend(pieces)
        for piece in pieces:
            for node, scope in _walk(piece.tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                    inner = scope + ((_lambda_scope(node) if isinstance(node, ast.Lambda)
                                      else f"class:{node.name}" if isinstance(node, ast.ClassDef) else node.name),)
                    self.locals.setdefault(inner, set()).update(_locals_of(node))
            self._bind_tree(piece.tree)
            if by_the_course:
                for node in piece.tree.body:
                    for name, value in _bound_at_top(node):
                        qual = self.qual(value) if isinstance(value, ast.AST) else value
                        if qual is not None:
                            self.course[name] = qual

    def settle(self, rounds: int = 20) -> "Bindings":
        """Read every cell learned again until what the names stand for no longer changes."""
        for _ in range(rounds):
            self._changed = False
            for piece in self._pieces:
                self._bind_tree(piece.tree)
            if not self._changed:
                break
        return self

    def key(self, name: str, scope: Scope) -> tuple[Scope, str]:
        """Where ``name``, used in ``scope``, lives: the innermost enclosing scope that binds it
        (a class body only for its own statements), else the top level."""
        for depth in range(len(scope), 0, -1):
            if depth < len(scope) and scope[depth - 1].startswith("class:"):
                continue
            if name in self.locals.get(scope[:depth], ()):
                return scope[:depth], name
        return (), name

    def _bind(self, name: str, qual: str | None, scope: Scope = (), table: dict | None = None) -> None:
        if qual is None:
            return
        if table is None:
            table, key = self.names, self.key(name, scope)
        else:
            key = name
        old = table.get(key)
        if old is None or _weight(qual) > _weight(old):
            table[key] = qual
            self._changed = True

    def _bind_target(self, target: ast.AST, value: ast.AST | None, scope: Scope, qual: str | None = None) -> None:
        if value is not None and isinstance(target, (ast.Tuple, ast.List)) and isinstance(
                value, (ast.Tuple, ast.List)) and len(target.elts) == len(value.elts):
            for t, v in zip(target.elts, value.elts):
                self._bind_target(t, v, scope)
            return
        if qual is None and value is not None:
            qual = self.qual(value, scope)
        if qual is None:
            return
        if isinstance(target, ast.Name):
            self._bind(target.id, qual, scope)
        elif isinstance(target, ast.Starred):
            self._bind_target(target.value, None, scope, qual)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._bind_target(element, None, scope, qual + "[]")
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            self._bind(_text(target), qual, table=self.targets)

    def _bind_function(self, node, scope: Scope, name: str | None) -> None:
        inner = scope + ((_lambda_scope(node) if isinstance(node, ast.Lambda) else node.name),)
        args = node.args
        positional = args.posonlyargs + args.args
        for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults):
            self._bind(arg.arg, self.qual(default, scope), inner)
        for arg, default in zip(args.kwonlyargs, args.kw_defaults):
            if default is not None:
                self._bind(arg.arg, self.qual(default, scope), inner)
        if name is not None:
            signature = (inner, [a.arg for a in positional] + [a.arg for a in args.kwonlyargs])
            if self.functions.get(name) != signature:
                self.functions[name] = signature
                self._changed = True
            if isinstance(node, ast.Lambda):
                self._bind(name, self.qual(node.body, inner), table=self.returns)
            else:
                for inner_node, inner_scope in _walk(node):
                    if isinstance(inner_node, (ast.Return, ast.Yield, ast.YieldFrom)) and inner_node.value is not None:
                        self._bind(name, self.qual(inner_node.value, inner_scope), table=self.returns)

    def _bind_tree(self, tree: ast.AST) -> None:
        for node, scope in _walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self._bind(alias.asname, alias.name, scope)
                    else:
                        top = alias.name.split(".")[0]
                        self._bind(top, top, scope)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                for alias in node.names:
                    if alias.name != "*":
                        self._bind(alias.asname or alias.name, f"{node.module}.{alias.name}", scope)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    self._bind_target(target, node.value, scope)
                if isinstance(node.value, ast.Lambda):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            self._bind_function(node.value, scope, target.id)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
                self._bind_target(node.target, node.value, scope)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                self._bind_target(node.target, None, scope, self.qual(node.iter, scope))
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        self._bind_target(item.optional_vars, item.context_expr, scope)
            elif isinstance(node, ast.NamedExpr):
                self._bind_target(node.target, node.value, scope)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._bind_function(node, scope, node.name)
            elif isinstance(node, ast.Lambda):
                self._bind_function(node, scope, None)
            elif isinstance(node, ast.ClassDef):
                for statement in node.body:
                    for name, value in _bound_at_top(statement):
                        if isinstance(value, ast.AST):
                            self._bind(f"{node.name}.{name}", self.qual(value, scope + (f"class:{node.name}",)),
                                       table=self.targets)
            elif isinstance(node, ast.Call):
                self._bind_call(node, scope)

    def _bind_call(self, node: ast.Call, scope: Scope) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.functions:  # the student's own function
            inner, params = self.functions[func.id]
            for param, arg in zip(params, node.args):
                self._bind(param, self.qual(arg, scope), inner)
            for keyword in node.keywords:
                if keyword.arg in params:
                    self._bind(keyword.arg, self.qual(keyword.value, scope), inner)
        elif (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
              and func.attr in ("append", "extend", "insert", "add", "update", "setdefault", "appendleft")):
            for arg in list(node.args) + [k.value for k in node.keywords]:  # a container of torch
                self._bind(func.value.id, self.qual(arg, scope), scope)

    # ---------------------------------------------------------------- resolving

    def qual(self, node: ast.AST | None, scope: Scope = ()) -> str | None:
        """What ``node`` (evaluated in ``scope``) stands for, as a qualified name, or None
        when it is nothing known."""
        if node is None:
            return None
        if isinstance(node, ast.Name):
            known = self.names.get(self.key(node.id, scope))
            if known is not None:
                return known
            if node.id == "get_ipython":
                return "IPython.get_ipython"
            return f"@builtin.{node.id}" if node.id in _BUILTIN_NAMES else None
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            known = self.targets.get(_text(node))
            if known is not None:
                return known
        if isinstance(node, ast.Attribute):
            base = self.qual(node.value, scope)
            if base is None:
                return None
            return f"{base}.{node.attr}"
        if isinstance(node, ast.Subscript):
            base = self.qual(node.value, scope)
            key = _const_str(node.slice)
            if base is None:
                return None
            if _plain(base) == "sys.modules":
                return key if key else "@import"
            if base.endswith(".__dict__") and key:
                return f"{base[:-len('.__dict__')]}.{key}"
            return base + "[]"
        if isinstance(node, ast.Call):
            return self._qual_call(node, scope)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return self._strongest(self.qual(e, scope) for e in node.elts)
        if isinstance(node, ast.Dict):
            return self._strongest(self.qual(v, scope) for v in list(node.values) + [k for k in node.keys if k])
        if isinstance(node, (ast.Starred, ast.NamedExpr, ast.Await)):
            return self.qual(node.value, scope)
        if isinstance(node, ast.IfExp):
            return self._strongest([self.qual(node.body, scope), self.qual(node.orelse, scope)])
        if isinstance(node, ast.BoolOp):
            return self._strongest(self.qual(v, scope) for v in node.values)
        return None

    @staticmethod
    def _strongest(quals: Iterable[str | None]) -> str | None:
        best = None
        for qual in quals:
            if _weight(qual) > _weight(best):
                best = qual
        return best

    def _qual_call(self, node: ast.Call, scope: Scope) -> str | None:
        func = node.func
        # operator.attrgetter("a.b")(x), operator.itemgetter(k)(x)
        if isinstance(func, ast.Call):
            maker = self.qual(func.func, scope)
            if maker in ("operator.attrgetter", "operator.itemgetter") and node.args:
                base = self.qual(node.args[0], scope)
                if base is None:
                    return None
                name = _const_str(func.args[0]) if func.args else None
                return f"{base}.{name}" if maker.endswith("attrgetter") and name else base + ".?"
            return None
        args = node.args
        if isinstance(func, ast.Attribute) and func.attr in _METHOD_PASSTHROUGH:
            base = self.qual(func.value, scope)
            if base is not None:  # an item of something known
                if _plain(base) == "sys.modules":
                    key = _const_str(args[0]) if args and func.attr in ("get", "pop", "__getitem__") else None
                    return key or "@import"
                return base + "[]"
        callee = self.qual(func, scope)
        first = self.qual(args[0], scope) if args else None
        if callee is None:
            if isinstance(func, ast.Name) and func.id in self.returns:
                return self.returns[func.id]
            return None
        plain = _plain(callee)
        if plain in ("IPython.get_ipython", "IPython.core.getipython.get_ipython"):
            return "IPython.shell"
        if plain == "@builtin.type" and len(args) == 1:
            return f"{first}.__class__" if first else "@type"
        if plain == "@builtin.vars" and args:
            return f"{first}.__dict__" if first else None
        if plain in ("@builtin.getattr", "@builtin.object.__getattribute__", "@builtin.type.__getattribute__"):
            if first is None:
                return None
            name = _const_str(args[1]) if len(args) > 1 else None
            return f"{first}.{name}" if name else first + ".?"
        if plain == "inspect.getmodule":
            return (_root(first) + ".?") if first and not first.startswith("@") else "@module"
        if plain in ("importlib.import_module", "importlib.__import__", "@builtin.__import__"):
            name = _const_str(args[0]) if args else None
            if not name:
                return "@import"
            fromlist = args[3] if len(args) > 3 else next(
                (k.value for k in node.keywords if k.arg == "fromlist"), None)
            wants_leaf = plain == "importlib.import_module" or (
                fromlist is not None and not (isinstance(fromlist, (ast.Tuple, ast.List)) and not fromlist.elts)
                and not (isinstance(fromlist, ast.Constant) and not fromlist.value))
            return name if wants_leaf else name.split(".")[0]
        if plain in ("importlib.reload", "copy.copy", "contextlib.nullcontext"):
            return first
        if plain.startswith("@builtin.") and plain[len("@builtin."):] in _PASSTHROUGH:
            return self._strongest(self.qual(a, scope) for a in args)
        if plain == "functools.reduce" and len(args) > 2:
            third = self.qual(args[2], scope)
            return third + ".?" if third else None
        return None


def _bound_at_top(node: ast.AST) -> list[tuple[str, ast.AST | str | None]]:
    """The names one top-level statement binds, each with what it binds it to (a node, a
    qualified name for imports, or None when it is something new: a function, a class...)."""
    out: list[tuple[str, ast.AST | str | None]] = []

    def targets(target: ast.AST, value: ast.AST | None) -> None:
        if isinstance(target, ast.Name):
            out.append((target.id, value))
        elif isinstance(target, ast.Starred):
            targets(target.value, None)
        elif isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                for t, v in zip(target.elts, value.elts):
                    targets(t, v)
            else:
                for t in target.elts:
                    targets(t, None)

    if isinstance(node, ast.Import):
        for alias in node.names:
            out.append((alias.asname, alias.name) if alias.asname else
                       (alias.name.split(".")[0], alias.name.split(".")[0]))
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        out.extend((a.asname or a.name, f"{node.module}.{a.name}") for a in node.names if a.name != "*")
    elif isinstance(node, ast.Assign):
        for target in node.targets:
            targets(target, node.value)
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        if isinstance(node, ast.AugAssign) or node.value is not None:
            targets(node.target, None if isinstance(node, ast.AugAssign) else node.value)
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        out.append((node.name, None))
    elif isinstance(node, (ast.For, ast.AsyncFor)):
        targets(node.target, None)
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        for item in node.items:
            if item.optional_vars is not None:
                targets(item.optional_vars, None)
    elif isinstance(node, ast.Delete):
        for target in node.targets:
            targets(target, None)
    return out


# --------------------------------------------------------------------------- naming what is suspect


def _danger(qual: str) -> str | None:
    """Why reaching ``qual`` is suspect, or None."""
    plain = _plain(qual)
    for name in _DANGEROUS_LONGEST_FIRST:
        if plain == name or plain.startswith(name + "."):
            return _DANGEROUS[name]
    if plain.startswith("@"):
        return None
    for prefix, why in _DANGEROUS_PREFIXES.items():
        if plain.startswith(prefix):
            return why
    parts = plain.split(".")
    if parts[0] == "grader" and len(parts) > 1:
        if parts[-1] in _FILE_ATTRIBUTES:
            return f"locates the grader's files on disk ({plain})"
        if parts[1] not in STUDENT_FACING and parts[1] != "?":
            return f"reaches grader.{parts[1]}, the grader's internals"
    if parts[0] == "IPython":
        if plain == "IPython.shell":
            return None
        if parts[1:2] == ["shell"]:
            if parts[2] == "history_manager":
                return "reads the session's input history (get_ipython().history_manager)"
            return f"reaches into IPython (get_ipython().{parts[2]})"
        if parts[1:2] == ["core"] and not any(plain == s or plain.startswith(s + ".") for s in _SAFE_IPYTHON):
            return f"reaches into IPython ({'.'.join(parts[:3])})"
    return None


class _Scan(ast.NodeVisitor):
    """Names what one piece of a student's cell does that is suspect."""

    def __init__(self, bindings: Bindings, piece: _Piece, found: list[tuple[int, str]], scope: Scope = ()) -> None:
        self.b = bindings
        self.piece = piece
        self.found = found
        self.scope: Scope = scope
        self.declared_global: list[set[str]] = []

    def say(self, node: ast.AST, what: str) -> None:
        self.found.append((self.piece.line(getattr(node, "lineno", 1)), what))

    def qual(self, node: ast.AST | None) -> str | None:
        return self.b.qual(node, self.scope)

    # ------------------------------------------------------------------ scopes

    def _inside(self, name: str, body: list[ast.AST], declared: set[str]) -> None:
        self.scope = self.scope + (name,)
        self.declared_global.append(declared)
        try:
            for statement in body:
                self.visit(statement)
        finally:
            self.declared_global.pop()
            self.scope = self.scope[:-1]

    @staticmethod
    def _globals_of(node: ast.AST) -> set[str]:
        return {n for s in ast.walk(node) if isinstance(s, ast.Global) for n in s.names}

    def _at_top(self, name: str) -> bool:
        return not self.scope or (bool(self.declared_global) and name in self.declared_global[-1])

    def visit_FunctionDef(self, node) -> None:
        if node.name in ("__torch_function__", "__torch_dispatch__"):
            self.say(node, f"intercepts torch's operators ({node.name})")
        self._rebinding(node, node.name, None)
        for expression in node.decorator_list + node.args.defaults + [
                d for d in node.args.kw_defaults if d is not None]:
            self.visit(expression)
        self._inside(node.name, node.body, self._globals_of(node))

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node) -> None:
        for expression in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(expression)
        self._inside(_lambda_scope(node), [node.body], set())

    def visit_ClassDef(self, node) -> None:
        self._rebinding(node, node.name, None)
        for expression in node.bases + [k.value for k in node.keywords] + node.decorator_list:
            self.visit(expression)
        self._inside(f"class:{node.name}", node.body, set())

    # ------------------------------------------------------------------ bindings of names

    def _rebinding(self, node: ast.AST, name: str, value, deleting: bool = False) -> None:
        if not self._at_top(name):
            return
        if name in self.b.course:
            qual = value if isinstance(value, str) or value is None else self.qual(value)
            if deleting or qual is None or _plain(qual) != _plain(self.b.course[name]):
                self.say(node, f"{'deletes' if deleting else 'rebinds'} {name}, which the course's cells use")
        elif name in _GUARDED_BUILTINS:
            self.say(node, f"redefines {name}")

    def _statement_bindings(self, node: ast.AST) -> None:
        for name, value in _bound_at_top(node):
            self._rebinding(node, name, value, deleting=isinstance(node, ast.Delete))

    def visit_Import(self, node) -> None:
        self._statement_bindings(node)
        for alias in node.names:
            why = _danger(alias.name)
            if why:
                self.say(node, why)
            elif any(part.startswith("_") and not part.startswith("__") for part in alias.name.split(".")):
                self.say(node, f"imports {alias.name}, a private module")

    def visit_ImportFrom(self, node) -> None:
        self._statement_bindings(node)
        module = node.module or ""
        for alias in node.names:
            full = f"{module}.{alias.name}" if alias.name != "*" else module
            why = _danger(full)
            if why:
                self.say(node, why)
            elif any(part.startswith("_") and not part.startswith("__") for part in full.split(".")):
                self.say(node, f"imports {full}, a private name")

    def _binding_statement(self, node) -> None:
        self._statement_bindings(node)
        self.generic_visit(node)

    visit_Assign = visit_AnnAssign = visit_AugAssign = visit_Delete = _binding_statement
    visit_For = visit_AsyncFor = visit_With = visit_AsyncWith = _binding_statement

    def visit_NamedExpr(self, node) -> None:
        if isinstance(node.target, ast.Name):
            self._rebinding(node, node.target.id, node.value)
        self.generic_visit(node)

    # ------------------------------------------------------------------ names and attributes

    def visit_Name(self, node) -> None:
        qual = self.qual(node)
        if qual and qual.startswith("@builtin."):
            why = _SUSPECT_BUILTINS.get(qual[len("@builtin."):])
            if why:
                self.say(node, why)
        elif qual and isinstance(node.ctx, ast.Load) and node.id != qual.split(".")[-1]:
            why = _danger(qual)  # an alias of something suspect (from inspect import stack as s)
            if why:
                self.say(node, why)
        if node.id in ("__torch_function__", "__torch_dispatch__") and isinstance(node.ctx, ast.Store):
            self.say(node, f"intercepts torch's operators ({node.id})")

    def visit_Attribute(self, node) -> None:
        attr = node.attr
        on_self = isinstance(node.value, ast.Name) and node.value.id in _SELF
        if attr in _FRAME_ATTRIBUTES:
            self.say(node, f"walks the call stack (.{attr})")
        elif _SUSPECT_ATTRIBUTES.match(attr) and attr not in _HARMLESS and not on_self:
            kind = "the inside of an object" if attr.startswith("__") else "a private part of an object"
            self.say(node, f"reaches .{attr}, {kind}")
        if id(node) not in self.piece.read:
            qual = self.qual(node)
            if qual is not None:
                why = _danger(qual)
                if why:
                    self.say(node, why)
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._store(node, isinstance(node.ctx, ast.Del))
        self.generic_visit(node)

    def visit_Subscript(self, node) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._store(node, isinstance(node.ctx, ast.Del))
        self.generic_visit(node)

    def _store(self, node: ast.Attribute | ast.Subscript, deleting: bool) -> None:
        base = self.qual(node.value)
        if base is None or _root(base) not in _PROTECTED:
            return
        full = f"{_plain(base)}.{node.attr}" if isinstance(node, ast.Attribute) else f"{_plain(base)}[...]"
        if full in _ALLOWED_STORES:
            return
        spelled = _text(node)
        if base == "IPython.shell":
            full = f"get_ipython().{node.attr}" if isinstance(node, ast.Attribute) else "get_ipython()[...]"
        shown = spelled if spelled == full or full.startswith("@") or "get_ipython()" in spelled \
            else f"{spelled}, which is {full}"
        self.say(node, f"{'deletes' if deleting else 'assigns to'} {shown} ({_PROTECTED[_root(base)]})")

    # ------------------------------------------------------------------ calls

    def visit_Call(self, node) -> None:
        callee = self.qual(node.func)
        plain = _plain(callee) if callee else ""
        args = node.args
        first = self.qual(args[0]) if args else None
        first_is_self = bool(args) and isinstance(args[0], ast.Name) and args[0].id in _SELF
        if plain in ("@builtin.setattr", "@builtin.delattr") and not first_is_self:
            name = plain.split(".")[-1]
            what = f"{'sets' if name == 'setattr' else 'deletes'} an attribute by name ({name}"
            if first and _root(first) in _PROTECTED:
                what += f" on {_plain(first)}: {_PROTECTED[_root(first)]}"
            self.say(node, what + ")")
        elif plain in ("@builtin.getattr", "@builtin.hasattr") and len(args) > 1:
            name = _const_str(args[1])
            if name is None and plain == "@builtin.getattr":
                self.say(node, "reads an attribute whose name is computed (getattr)")
            elif name and (_SUSPECT_ATTRIBUTES.match(name) or name in _FRAME_ATTRIBUTES) \
                    and name not in _HARMLESS and not first_is_self:
                self.say(node, f"reaches .{name} through {plain.split('.')[-1]}")
            elif name and first:
                why = _danger(f"{first}.{name}")
                if why:
                    self.say(node, why)
        elif plain == "@builtin.type" and len(args) == 1 and first and _root(first) in _PROTECTED:
            self.say(node, f"takes the type of {_plain(first)} (type)")
        elif plain in _INSPECT_ON_TAINT and first and _root(first) in ("torch", "grader", "builtins", "sys"):
            self.say(node, _INSPECT_ON_TAINT[plain].format(_plain(first)))
        elif plain in _INSPECT_FILES and first and _root(first) == "grader":
            self.say(node, f"locates the grader's files on disk ({plain})")
        elif plain in ("operator.attrgetter", "operator.methodcaller") and args:
            name = _const_str(args[0])
            if name is None:
                self.say(node, f"reads an attribute whose name is computed ({plain})")
            elif any(_SUSPECT_ATTRIBUTES.match(p) or p in _FRAME_ATTRIBUTES for p in name.split(".")):
                self.say(node, f"reaches .{name} through {plain}")
        elif plain == "torch.load" and any(k.arg == "weights_only" and isinstance(k.value, ast.Constant)
                                           and k.value.value is False for k in node.keywords):
            self.say(node, "unpickles a file, which can run any code (torch.load with weights_only=False)")
        elif plain in _CODE_RUNNERS:
            self._code_runner(node, plain)
        elif plain == "@builtin.open" or (isinstance(node.func, ast.Attribute)
                                           and node.func.attr in ("write_text", "write_bytes", "open")):
            self._writes_code(node, plain)
        if isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATING:
            base = self.qual(node.func.value)
            if base is not None and _root(base) in _NO_INPLACE:
                self.say(node, f"changes {_plain(base)} in place (.{node.func.attr}: {_PROTECTED[_root(base)]})")
        for arg in args:
            if isinstance(arg, ast.Name) and _plain(self.qual(arg) or "") in (
                    "@builtin.getattr", "@builtin.setattr", "@builtin.delattr"):
                self.say(arg, f"passes {arg.id} to another function")
        self.generic_visit(node)

    def _code_runner(self, node: ast.Call, plain: str) -> None:
        spec = _CODE_RUNNERS[plain]
        for keyword, position in zip(spec[1::2], spec[0::2]):
            value = node.args[position] if position < len(node.args) else next(
                (k.value for k in node.keywords if k.arg == keyword), None)
            if value is None or isinstance(value, (ast.Lambda, ast.Name, ast.Attribute)):
                continue  # a callable, or a variable holding one
            code = _const_str(value)
            if code is None:
                self.say(node, f"runs code built at run time ({plain})")
                continue
            at = self.piece.line(node.lineno)
            reading = _Reading([], [])
            _read_python(code, lambda n: at, reading)
            for piece in reading.pieces:
                _Scan(self.b, piece, self.found, self.scope).visit(piece.tree)

    def _writes_code(self, node: ast.Call, plain: str) -> None:
        if plain == "@builtin.open":
            path = _const_str(node.args[0]) if node.args else None
            mode = _const_str(node.args[1]) if len(node.args) > 1 else next(
                (_const_str(k.value) for k in node.keywords if k.arg == "mode"), "r")
        else:
            receiver = node.func.value  # type: ignore[union-attr]
            path = next((_const_str(n) for n in ast.walk(receiver) if _const_str(n)), None)
            mode = "w" if node.func.attr.startswith("write") else (  # type: ignore[union-attr]
                _const_str(node.args[0]) if node.args else "r")
        if path and mode and any(c in mode for c in "wax+") and re.search(r"\.(py|pth|pyc|so|ipynb)$", path):
            self.say(node, f"writes a file the notebook could import ({path})")
        if path and re.match(r"/proc/|/dev/mem", path):
            self.say(node, f"reads the process's memory or state ({path})")


# --------------------------------------------------------------------------- the scan


def scan_source(source: str, bindings: Bindings | None = None) -> list[tuple[int, str]]:
    """What one cell does that is suspect: ``(line, what)``, the line as the student sees
    it in the cell (magic bodies included), in order and without repeats.

    ``bindings`` tells what the notebook's names stand for (:func:`suspicious` learns
    them from every cell of the notebook); without it, from this cell alone.
    """
    if bindings is None:
        bindings = Bindings()
        bindings.learn(source)
        bindings.settle()
    reading = _read(source)
    found = list(reading.found)
    for piece in reading.pieces:
        try:
            _Scan(bindings, piece, found).visit(piece.tree)
        except RecursionError:
            found.append((piece.line(1), "is nested too deeply for the scan to read"))
    return sorted(dict.fromkeys(found), key=lambda item: item[0])


def suspicious(nb) -> list[str]:
    """Where the student's cells use constructs that can tamper with the grader or
    torch: ``cell N, line L: what`` (N counts every cell of the notebook from 1)."""
    bindings = Bindings()
    cells = [(index, cell) for index, cell in enumerate(nb.cells) if cell.get("cell_type") == "code"]
    for _, cell in cells:
        bindings.learn(_source(cell), by_the_course=not written_by_the_student(cell))
    bindings.settle()
    found = []
    for index, cell in cells:
        if written_by_the_student(cell):
            found += [f"cell {index + 1}, line {line}: {what}" for line, what in scan_source(_source(cell), bindings)]
    return list(dict.fromkeys(found))


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source
