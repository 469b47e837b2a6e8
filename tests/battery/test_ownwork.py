"""grader._battery.ownwork: torch's own BCE kernels are noticed on every thread, and
hooking them changes nothing that torch computes.

Installing the hooks changes this process for good, so what needs torch without them
(the reference results, the warning install() would print) runs in a subprocess.
"""

import inspect
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from grader._battery import ownwork

BCE = "aten::binary_cross_entropy"
BCE_OUT = "aten::binary_cross_entropy.out"
BACKWARD = "aten::binary_cross_entropy_backward"
BACKWARD_GRAD_INPUT = "aten::binary_cross_entropy_backward.grad_input"
LOGITS = "aten::binary_cross_entropy_with_logits"
LOGITS_OUT = "aten::binary_cross_entropy_with_logits.out"


def _probabilities(*shape, device="cpu"):
    return torch.rand(shape, dtype=torch.float64, device=device) * 0.98 + 0.01


def _python(tmp_path: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)


# -- what a watch sees ------------------------------------------------------------


def test_ops_are_every_aten_operator_named_binary_cross_entropy():
    names = {n for n in torch._C._dispatch_get_all_op_names()
             if n.startswith("aten::") and "binary_cross_entropy" in n}
    assert set(ownwork.OPS) == names
    assert {BCE, BCE_OUT, BACKWARD, BACKWARD_GRAD_INPUT, LOGITS, LOGITS_OUT} <= names


def test_every_op_has_the_hook_as_its_cpu_kernel():
    ownwork.install()
    assert ownwork.installed()
    for op in ownwork.OPS:
        table = torch._C._dispatch_dump_table(op)
        cpu = next(line for line in table.splitlines() if line.startswith("CPU:"))
        assert "ownwork.py" in cpu, (op, cpu)


def test_seen_on_the_main_thread():
    p, t = _probabilities(4, 3), _probabilities(4, 3)
    with ownwork.Watch() as watch:
        F.binary_cross_entropy(p, t)
    assert watch.calls == [BCE]


def test_seen_in_a_thread():
    p, t = _probabilities(4, 3), _probabilities(4, 3)
    with ownwork.Watch() as watch:
        thread = threading.Thread(target=F.binary_cross_entropy, args=(p, t))
        thread.start()
        thread.join()
    assert watch.calls == [BCE]


def test_seen_in_a_thread_pool_started_before_the_watch():
    p, t = _probabilities(4, 3), _probabilities(4, 3)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(int).result()  # its worker thread exists before the watch opens
        with ownwork.Watch() as watch:
            pool.submit(F.binary_cross_entropy_with_logits, p, t).result()
    assert watch.calls == [LOGITS]


def _ways_in():
    p, t = _probabilities(5), _probabilities(5)
    z = torch.randn(5, dtype=torch.float64)
    g = torch.rand(5, dtype=torch.float64)
    empty = torch.empty(0, dtype=torch.float64)  # out= tensors with no elements are resized silently
    return [
        ("F.binary_cross_entropy", lambda: F.binary_cross_entropy(p, t), [BCE]),
        ("nn.BCELoss", lambda: nn.BCELoss()(p, t), [BCE]),
        ("torch._C._nn", lambda: torch._C._nn.binary_cross_entropy(p, t), [BCE]),
        ("torch._C._nn out=", lambda: torch._C._nn.binary_cross_entropy(p, t, out=empty.clone()), [BCE_OUT]),
        ("torch.ops.aten", lambda: torch.ops.aten.binary_cross_entropy(p, t), [BCE]),
        ("torch.ops.aten .out", lambda: torch.ops.aten.binary_cross_entropy.out(p, t, out=empty.clone()),
         [BCE_OUT]),
        ("torch.vmap", lambda: torch.vmap(F.binary_cross_entropy)(p[None], t[None]), [BCE]),
        ("F.binary_cross_entropy_with_logits", lambda: F.binary_cross_entropy_with_logits(z, t), [LOGITS]),
        ("nn.BCEWithLogitsLoss", lambda: nn.BCEWithLogitsLoss(pos_weight=g)(z, t), [LOGITS]),
        ("torch.binary_cross_entropy_with_logits", lambda: torch.binary_cross_entropy_with_logits(z, t),
         [LOGITS]),
        # the .out overload is composite: it runs the functional one
        ("torch.ops.aten logits .out",
         lambda: torch.ops.aten.binary_cross_entropy_with_logits.out(z, t, out=empty.clone()),
         [LOGITS_OUT, LOGITS]),
        ("torch.ops.aten backward", lambda: torch.ops.aten.binary_cross_entropy_backward(g, p, t, None, 0),
         [BACKWARD]),
        ("torch.ops.aten backward .grad_input",
         lambda: torch.ops.aten.binary_cross_entropy_backward.grad_input(
             g, p, t, reduction=0, grad_input=torch.empty(0, dtype=p.dtype)),
         [BACKWARD_GRAD_INPUT]),
    ]


@pytest.mark.parametrize("way", range(len(_ways_in())), ids=[name for name, _, _ in _ways_in()])
def test_seen_whichever_way_torch_is_called(way):
    name, call, expected = _ways_in()[way]
    with ownwork.Watch() as watch:
        call()
    assert watch.calls == expected


def test_the_ways_in_reach_every_hooked_op():
    assert {op for _, _, expected in _ways_in() for op in expected} == set(ownwork.OPS)


def test_the_backward_through_torchs_bce_is_seen():
    p = _probabilities(6).requires_grad_()
    t = _probabilities(6)
    loss = F.binary_cross_entropy(p, t, reduction="sum")
    with ownwork.Watch() as watch:
        loss.backward()
    assert watch.calls == [BACKWARD]
    assert p.grad is not None


def test_the_backward_on_autograds_thread_through_a_thread_is_seen():
    p = _probabilities(6).requires_grad_()
    t = _probabilities(6)

    def train_step():
        F.binary_cross_entropy(p, t).backward()

    with ownwork.Watch() as watch:
        thread = threading.Thread(target=train_step)
        thread.start()
        thread.join()
    assert watch.calls == [BCE, BACKWARD]


def test_a_call_that_raises_is_still_seen():
    with ownwork.Watch() as watch:
        with pytest.raises(RuntimeError, match="between 0 and 1"):
            F.binary_cross_entropy(torch.tensor([1.5]), torch.tensor([1.0]))
    assert watch.calls == [BCE]


def _own_bce(input, target, weight=None, reduction="mean"):
    loss = -(target * torch.log(input).clamp(min=-100) + (1 - target) * torch.log1p(-input).clamp(min=-100))
    if weight is not None:
        loss = loss * weight
    return {"mean": loss.mean, "sum": loss.sum, "none": lambda: loss}[reduction]()


def _own_logits(input, target, weight=None, pos_weight=None, reduction="mean"):
    log_weight = 1 if pos_weight is None else (pos_weight - 1) * target + 1
    loss = (1 - target) * input - log_weight * F.logsigmoid(input)
    if weight is not None:
        loss = loss * weight
    return {"mean": loss.mean, "sum": loss.sum, "none": lambda: loss}[reduction]()


def _softplus_logits(input, target, weight=None, pos_weight=None, reduction="mean"):
    loss = target * F.softplus(-input) + (1 - target) * F.softplus(input)
    return loss.mean() if reduction == "mean" else loss.sum()


@pytest.mark.parametrize("own, theirs, logits", [
    (_own_bce, F.binary_cross_entropy, False),
    (_own_logits, F.binary_cross_entropy_with_logits, True),
    (_softplus_logits, F.binary_cross_entropy_with_logits, True),
])
def test_a_students_own_formula_is_not_seen(own, theirs, logits):
    t = _probabilities(8)
    x = (torch.randn(8, dtype=torch.float64) if logits else _probabilities(8)).requires_grad_()
    expected = theirs(x, t, reduction="sum")
    with ownwork.Watch() as watch:
        value = own(x, t, reduction="sum")
        value.backward()
    assert watch.calls == []
    torch.testing.assert_close(value, expected)  # the formula ran, and it is BCE
    assert x.grad is not None


def test_calls_outside_a_watch_do_not_reach_a_later_watch():
    p, t = _probabilities(3), _probabilities(3)
    F.binary_cross_entropy(p, t)
    with ownwork.Watch() as first:
        F.binary_cross_entropy_with_logits(p, t)
    for _ in range(1000):
        F.binary_cross_entropy(p, t)
    assert not ownwork._log  # with no watch open, nothing is kept (the memory stays bounded)
    with ownwork.Watch() as later:
        pass
    assert first.calls == [LOGITS]  # what ran after it closed is not added either
    assert later.calls == []


def test_calls_can_be_read_while_the_watch_is_open():
    p, t = _probabilities(3), _probabilities(3)
    with ownwork.Watch() as watch:
        assert watch.calls == []
        F.binary_cross_entropy(p, t)
        assert watch.calls == [BCE]
        F.binary_cross_entropy_with_logits(p, t)
    assert watch.calls == [BCE, LOGITS]


def test_nested_and_concurrent_watches_each_see_their_own_window():
    p, t = _probabilities(3), _probabilities(3)
    opened, release = threading.Event(), threading.Event()
    other: dict = {}

    def watch_on_another_thread():
        with ownwork.Watch() as watch:
            opened.set()
            release.wait(30)
        other["calls"] = watch.calls

    with ownwork.Watch() as outer:
        F.binary_cross_entropy(p, t)
        thread = threading.Thread(target=watch_on_another_thread)
        thread.start()
        assert opened.wait(30)
        F.binary_cross_entropy_with_logits(p, t)
        release.set()
        thread.join()
        F.binary_cross_entropy(p, t)
        with ownwork.Watch() as inner:
            torch.ops.aten.binary_cross_entropy_backward(torch.ones(3, dtype=p.dtype), p, t)
        F.binary_cross_entropy_with_logits(p, t)
    assert other["calls"] == [LOGITS]
    assert inner.calls == [BACKWARD]
    assert outer.calls == [BCE, LOGITS, BCE, BACKWARD, LOGITS]


def test_install_twice_hooks_once():
    ownwork.install()
    ownwork.install()
    with ownwork.Watch() as watch:
        F.binary_cross_entropy(_probabilities(3), _probabilities(3))
    assert watch.calls == [BCE]


# Loads grader/_battery/ownwork.py alone (named in argv[1]), without the grader.
_LOAD_OWNWORK = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ownwork", sys.argv[1])
ownwork = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ownwork)
"""


def test_install_prints_no_warning(tmp_path):
    # A fresh process: the dispatcher warns about the first override only once per process.
    code = "import warnings\nwarnings.simplefilter('error')\n" + _LOAD_OWNWORK + """
import torch
import torch.nn.functional as F
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ownwork.install()
    ownwork.install()
    with ownwork.Watch() as watch:
        F.binary_cross_entropy(torch.rand(3), torch.rand(3))
print(ownwork.installed(), watch.calls, [str(w.message) for w in caught])
"""
    done = _python(tmp_path, code, ownwork.__file__)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"True [{BCE!r}] []"
    assert done.stderr == ""


def test_install_does_nothing_on_a_torch_without_get_kernel(tmp_path):
    code = "import torch\ndel torch.library.get_kernel  # as before torch 2.9\n" + _LOAD_OWNWORK + """
import torch.nn.functional as F
ownwork.install()
with ownwork.Watch() as watch:
    F.binary_cross_entropy(torch.rand(3), torch.rand(3))
print(ownwork.installed(), watch.calls, "ownwork" in torch._C._dispatch_dump("aten::binary_cross_entropy"))
"""
    done = _python(tmp_path, code, ownwork.__file__)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False [] False"


# -- the hooks change nothing torch computes --------------------------------------
# _cases, _compute and _reference run in a fresh process, without the hooks (their
# source is sent to it), and the test compares with what this process computes with
# them, on the very same saved inputs.


def _cases(device):
    dtypes = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
    reductions = ("none", "mean", "sum")
    shapes = {"matrix": (4, 5), "0-d": (), "empty": (0, 5), "transposed": (5, 4)}
    gen = torch.Generator().manual_seed(0)

    def rand(shape, dtype, low=0.0, high=1.0, transposed=False):
        x = (torch.rand(shape, generator=gen, dtype=torch.float64) * (high - low) + low).to(dtype).to(device)
        return x.t() if transposed else x

    cases = []

    def case(name, fn, args, grad=False, **kwargs):
        cases.append({"name": name, "fn": fn, "args": args, "kwargs": kwargs, "grad": grad})

    for dtype in dtypes:
        for shape_name, shape in shapes.items():
            tr = shape_name == "transposed"  # every tensor of the case is a non-contiguous view
            x, t = rand(shape, dtype, transposed=tr), rand(shape, dtype, transposed=tr)
            if shape_name == "matrix":
                x[0, 0], x[0, 1], t[0, 0], t[0, 1] = 0.0, 1.0, 1.0, 0.0  # log(0) is clamped to -100
            z = rand(shape, dtype, -6, 6, transposed=tr)
            row = x.shape[-1:]  # a weight of this shape is broadcast over the rows
            weights = {"no weight": None, "weight": rand(shape, dtype, 0, 2, transposed=tr),
                       "row weight": rand(row, dtype, 0, 2)}
            for reduction in reductions:
                for w_name, w in weights.items():
                    base = f"{dtype} {shape_name} {reduction} {w_name}"
                    case("bce " + base, "bce", [x, t], grad=True, weight=w, reduction=reduction)
                    for pw_name, pw in (("", None), (" pos_weight", rand(row, dtype, 0, 3))):
                        case("logits " + base + pw_name, "logits", [z, t], grad=True,
                             weight=w, pos_weight=pw, reduction=reduction)
                if shape_name != "matrix":
                    continue
                code = {"none": 0, "mean": 1, "sum": 2}[reduction]
                size = x.shape if reduction == "none" else ()
                g = rand(size, dtype)

                def nans(shape):
                    return torch.full(shape, float("nan"), dtype=dtype, device=device)

                case(f"bce.out {dtype} {reduction}", "bce.out", [x, t, None, code], out=nans(size))
                # torch's CPU kernel raises here for mean and sum (out is not input-shaped
                # and there is a weight): the hooks must keep that too
                case(f"bce.out {dtype} {reduction} weight", "bce.out", [x, t, weights["weight"], code],
                     out=nans(size))
                case(f"bce._C._nn {dtype} {reduction}", "bce._C._nn", [x, t, weights["weight"], code],
                     out=nans(x.shape))
                case(f"bce._C._nn {dtype} {reduction} 0-d out", "bce._C._nn", [x, t, None, code],
                     out=nans(()))  # resized, with a warning
                case(f"logits.out {dtype} {reduction}", "logits.out", [z, t, weights["row weight"], None, code],
                     out=nans(size))
                case(f"backward {dtype} {reduction}", "backward", [g, x, t, weights["row weight"], code])
                case(f"backward.grad_input {dtype} {reduction}", "backward.grad_input", [g, x, t, None, code],
                     grad_input=nans(x.shape))
    p, t = rand((3,), torch.float32), rand((3,), torch.float32)
    other = rand((4,), torch.float32)
    if device == "cpu":  # device-side asserts on CUDA: they would poison the process's CUDA context
        case("error: input above 1", "bce", [p + 1, t])
        case("error: input below 0", "bce", [p - 1, t])
        case("error: nan input", "bce", [p * float("nan"), t])
    case("error: target size differs", "bce", [p, other])
    case("error: target size differs (aten)", "bce.aten", [p, other])
    case("error: weight does not broadcast (aten)", "bce.aten", [p, t, rand((2,), torch.float32)])
    case("error: integer input", "bce.aten", [p.long(), t.long()])
    case("error: target of another dtype", "bce.aten", [p, t.double()])
    case("error: out of another dtype", "bce.out", [p, t, None, 1],
         out=torch.empty((), dtype=torch.float64, device=device))
    case("reduction code out of range", "bce.aten", [p, t, None, 7])
    case("error: logits target size differs", "logits", [p, other])
    case("error: logits target size differs (aten)", "logits.aten", [p, other])
    case("error: pos_weight does not broadcast", "logits", [p, t], pos_weight=rand((2,), torch.float32))
    case("error: backward grad of another size", "backward", [rand((2,), torch.float32), p, t, None, 0])
    return cases


def _compute(case):
    import warnings

    fn = {
        "bce": F.binary_cross_entropy,
        "logits": F.binary_cross_entropy_with_logits,
        "bce.aten": torch.ops.aten.binary_cross_entropy.default,
        "logits.aten": torch.ops.aten.binary_cross_entropy_with_logits.default,
        "bce.out": torch.ops.aten.binary_cross_entropy.out,
        "bce._C._nn": torch._C._nn.binary_cross_entropy,
        "logits.out": torch.ops.aten.binary_cross_entropy_with_logits.out,
        "backward": torch.ops.aten.binary_cross_entropy_backward.default,
        "backward.grad_input": torch.ops.aten.binary_cross_entropy_backward.grad_input,
    }[case["fn"]]
    args = list(case["args"])
    kwargs = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in case["kwargs"].items()}
    if case["grad"]:
        args[:2] = [a.detach().clone().requires_grad_() for a in args[:2]]
    result = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = fn(*args, **kwargs)
            result["value"] = value.detach()
            if case["grad"]:
                gen = torch.Generator().manual_seed(len(case["name"]))
                upstream = torch.rand(value.shape, generator=gen, dtype=torch.float64).to(value)
                result["grads"] = [g.detach() for g in torch.autograd.grad(value, args[:2], upstream)]
        except Exception as e:
            result["error"] = [type(e).__module__ + "." + type(e).__qualname__, str(e)]
    result["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    return result


def _reference(device, inputs, results):
    torch.set_num_threads(1)  # as the test does
    cases = _cases(device)
    torch.save(cases, inputs)  # before computing: the out= tensors are written to
    _warm_up(cases)
    print("-- compared run --", file=sys.stderr, flush=True)
    torch.save([_compute(case) for case in cases], results)


def _warm_up(cases):
    # The first torch.logit of a process (BCE's gradient for the target) is, in about
    # one process in fifty here, off by up to 1e-13 on part of the tensor, without any
    # hook; later calls agree bit for bit. So both sides compare their second run.
    for case in cases:
        _compute(case)


def _cpp_warnings(stderr):
    # "[W1130 05:28:58.196918427 Resize.cpp:30] Warning: ...", without the time
    return [re.sub(r"^\[W\d+ [\d:.]+ ", "[W ", line) for line in stderr.splitlines() if line.startswith("[W")]


def _same(a, b):
    if not isinstance(a, torch.Tensor):
        return a == b
    if (a.dtype, a.shape, a.stride(), a.device) != (b.dtype, b.shape, b.stride(), b.device):
        return False
    bits = [x.detach().cpu().reshape(-1).contiguous().view(torch.uint8) for x in (a, b)]
    return torch.equal(*bits)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_results_gradients_errors_and_warnings_are_torchs_own_bit_for_bit(device, tmp_path, capfd):
    inputs, results = tmp_path / "inputs.pt", tmp_path / "results.pt"
    code = "\n".join(["import sys", "import torch", "import torch.nn.functional as F",
                      *(inspect.getsource(f) for f in (_cases, _compute, _reference, _warm_up)),
                      "_reference(sys.argv[1], sys.argv[2], sys.argv[3])"])
    done = _python(tmp_path, code, device, str(inputs), str(results))
    assert done.returncode == 0, done.stderr
    cases = torch.load(inputs, weights_only=True)
    expected = torch.load(results, weights_only=True)
    assert [c["name"] for c in cases] == [c["name"] for c in _cases(device)]

    # One thread, on both sides: the cases are tiny, and OpenMP's waits cost seconds
    # on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _warm_up(cases)
        capfd.readouterr()
        with ownwork.Watch() as watch:
            got = [_compute(case) for case in cases]
    finally:
        torch.set_num_threads(threads)
    # what torch's C++ code printed itself (some of its warnings bypass Python's)
    printed = capfd.readouterr().err
    assert set(watch.calls) == set(ownwork.OPS)  # the hooks were on every path

    computed = [r for r in expected if "error" not in r]
    assert len(computed) > 0.8 * len(cases), "too few cases compute at all to compare anything"
    assert sum("error" in r for r in expected) >= 10
    assert any(c["name"].startswith("error: nan") for c in cases) == (device == "cpu")
    assert any(c["args"][0].dim() == 0 for c in cases) and any(c["args"][0].numel() == 0 for c in cases)
    assert any(not c["args"][0].is_contiguous() for c in cases)
    reference_printed = done.stderr.split("-- compared run --\n")[1]
    if device == "cpu":  # where the cases are known to warn: the warnings are compared too
        assert any(r["warnings"] for r in expected)
        assert "Warning:" in reference_printed
    assert _cpp_warnings(printed) == _cpp_warnings(reference_printed)
    for case, want, have in zip(cases, expected, got):
        assert want.keys() == have.keys(), (case["name"], want, have)
        assert have["warnings"] == want["warnings"], case["name"]
        if "error" in want:
            assert have["error"] == want["error"], case["name"]
            continue
        assert _same(have["value"], want["value"]), case["name"]
        have_grads, want_grads = have.get("grads", []), want.get("grads", [])
        assert len(have_grads) == len(want_grads) == (2 if case["grad"] else 0), case["name"]
        for g_have, g_want in zip(have_grads, want_grads):
            assert _same(g_have, g_want), case["name"]


# -- CUDA ---------------------------------------------------------------------------


@pytest.mark.cuda
def test_seen_on_cuda_on_any_thread():
    p = _probabilities(16, device="cuda").requires_grad_()
    t = _probabilities(16, device="cuda")
    z = torch.randn(16, dtype=torch.float64, device="cuda")
    with ownwork.Watch() as main:
        F.binary_cross_entropy(p, t).backward()
    with ownwork.Watch() as threaded:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(lambda: nn.BCEWithLogitsLoss()(z, t)).result()
            pool.submit(lambda: torch.ops.aten.binary_cross_entropy(p.detach(), t)).result()
    with ownwork.Watch() as own:
        _own_bce(p, t).backward()
    assert main.calls == [BCE, BACKWARD]
    assert threaded.calls == [LOGITS, BCE]
    assert own.calls == []
