"""Notebook 04 (the functional form and the module): every number its claim cells print and every
claim its prose makes about torch, recomputed here with torch; its two exercises (a prediction
about what a loss module keeps, and a loss module to repair) checked against the grader and torch."""

from __future__ import annotations

import inspect
import math
import re
import subprocess
import sys
import textwrap
import warnings
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from notebook_outputs import cell, executed_master, printed
from torch import nn

import grader
from grader import articles
from grader._battery import exercises
from grader._battery.items import n04
from grader.instructor import release

NAME = "04-functional-form"


@pytest.fixture(scope="module")
def nb():
    return executed_master(NAME)


@pytest.fixture(scope="module")
def example():
    """The article's logits and target (example 002-2), with the probabilities and loss torch computes."""
    drawn = articles.logits_of("002-2")
    logits = drawn["input"].clone().requires_grad_(True)
    loss = F.binary_cross_entropy(torch.sigmoid(logits), drawn["target"])
    loss.backward()
    return {"logits": logits, "target": drawn["target"], "p": torch.sigmoid(logits).detach(), "loss": loss}


@pytest.fixture(scope="module")
def given(nb):
    """The namespace of the exercise's locked cell: ``_bce_terms`` and ``BuggyBCELoss``."""
    namespace = {"torch": torch, "nn": nn, "F": F}
    exec(compile(_cell_by_grade_id(nb, "bce_module_given").source, "<given cell>", "exec"), namespace)
    return namespace


def _cell_by_grade_id(nb, grade_id):
    found = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    assert len(found) == 1, grade_id
    return found[0]


def line(text: str, label: str) -> str:
    """What follows ``label`` on the one line of ``text`` that starts with it."""
    found = [ln for ln in text.splitlines() if ln.startswith(label)]
    assert len(found) == 1, (label, text)
    return found[0][len(label):].strip()


def after(text: str, label: str) -> str:
    """``text`` from the end of ``label`` on: for a tensor printed over several lines."""
    return text[text.index(label) + len(label):]


def tensor_numbers(text: str) -> list[float]:
    """The numbers of the first ``tensor(...)`` in ``text``, without its dtype or grad_fn."""
    start = text.index("tensor(") + len("tensor(")
    depth, end = 1, start
    while depth:
        depth += {"(": 1, ")": -1}.get(text[end], 0)
        end += 1
    body = re.split(r",\s*(?:grad_fn|dtype|requires_grad)", text[start:end - 1])[0]
    return [float(n) for n in re.findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?", body)]


def shows(text: str, expected: torch.Tensor) -> bool:
    """Whether the first tensor in ``text`` prints ``expected`` (torch prints four significant digits)."""
    got, want = tensor_numbers(text), expected.detach().flatten().tolist()
    return len(got) == len(want) and all(
        g == w if w == 0 else math.isclose(g, w, rel_tol=2e-4, abs_tol=5e-5 if abs(w) >= 1e-3 else 0.0)
        for g, w in zip(got, want))


def error_of(fn) -> tuple[type, str]:
    try:
        fn()
    except Exception as error:  # noqa: BLE001 - the test reports whatever torch raises
        return type(error), str(error)
    raise AssertionError("torch raised nothing")


def code_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


# --- the master, as a whole ----------------------------------------------------------------------

def test_the_seed_cell_uses_the_examples_own_seed_and_prints_torchs_loss(nb, example):
    assert "articles.SEED" not in release.master_path(NAME).read_text()
    assert 'torch.manual_seed(grader.articles.seed("002-2"))' in cell(nb, "seed:002-2").source
    out = printed(cell(nb, "seed:002-2"))
    assert shows(after(out, "input:"), example["logits"])
    assert shows(after(out, "target:"), example["target"])
    assert shows(line(out, "loss:"), articles.torch_value(articles.example("002-2")))
    assert shows(after(out, "input.grad:"), example["logits"].grad)


# --- 1. the loss as torch computes it: log1p(-x) ------------------------------------------------

def test_torch_computes_the_second_log_with_log1p(nb):
    out = printed(cell(nb, "claim:log1p"))
    x, y = torch.tensor([1e-8, 1e-6]), torch.zeros(2)
    torch_loss = F.binary_cross_entropy(x, y, reduction="none")
    assert shows(line(out, "F.binary_cross_entropy, reduction='none':"), torch_loss)
    assert shows(line(out, "-log1p(-x):"), -torch.log1p(-x))
    assert shows(line(out, "-log(1 - x):"), -torch.log(1 - x))
    assert torch.equal(torch_loss, -torch.log1p(-x)) and not torch.equal(torch_loss, -torch.log(1 - x))
    # the prose: in float32, 1 - x rounds to exactly 1 for a tiny x, so its log is 0
    assert (1 - x[0]).item() == 1.0 and torch.log(1 - x[0]).item() == 0.0
    # the clamped formula of the prose is torch's, on many values and at the edges
    g = torch.Generator().manual_seed(4)
    x = torch.cat([torch.rand(1000, generator=g), torch.tensor([0.0, 1.0, 1e-30, 1 - 2**-24, 1e-8])])
    y = torch.rand(x.shape, generator=g)
    w = torch.rand(x.shape, generator=g)
    formula = -w * (y * torch.log(x).clamp(min=-100) + (1 - y) * torch.log1p(-x).clamp(min=-100))
    torch_loss = F.binary_cross_entropy(x, y, weight=w, reduction="none")
    assert torch.allclose(torch_loss, formula, rtol=1e-6, atol=0)
    # "a probability of exactly 0 or 1 costs at most 100 w_n"
    ends = F.binary_cross_entropy(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0]), reduction="none")
    assert ends.tolist() == [100.0, 100.0]


def test_every_clamped_formula_in_the_prose_uses_log1p(nb):
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert r"\log(1 - x_n)" not in text and r"\log(1-x)" not in text
    assert r"\max\big(\operatorname{log1p}(-x_n),\, -100\big)" in text
    assert r"\max(\operatorname{log1p}(-x), -100)" in text
    exercise = _cell_by_grade_id(nb, "bce_module_task").source
    assert "`log1p(-x)`" in exercise and "clamped at $-100$" in exercise


# --- the article's example and the identical tensors ----------------------------------------------

def test_the_articles_shapes_and_probabilities(nb, example):
    out = printed(cell(nb, "claim:article-shapes"))
    assert line(out, "input shape:").startswith(f"{example['logits'].shape}")
    assert f"target shape: {example['target'].shape}" in out
    low, high = (float(v) for v in line(out, "smallest and largest probability:").split())
    assert low == example["p"].min().item() and high == example["p"].max().item() and 0 < low < high < 1


def test_the_gradient_through_the_sigmoid_is_p_minus_y_over_n(nb, example):
    out = printed(cell(nb, "claim:gradient"))
    by_formula = (example["p"] - example["target"]) / example["p"].numel()
    assert shows(after(out, "(sigmoid(input) - target) / N:"), by_formula)
    assert line(out, "equal to input.grad within rounding:") == str(torch.allclose(example["logits"].grad, by_formula))
    assert line(out, "equal to input.grad within rounding:") == "True"


def test_the_module_gives_the_identical_tensor_and_gradient(nb, example):
    out = printed(cell(nb, "claim:identical"))
    logits = example["logits"].detach().clone().requires_grad_(True)
    module_loss = nn.BCELoss()(torch.sigmoid(logits), example["target"])
    module_loss.backward()
    assert shows(line(out, "module loss:"), module_loss)
    assert line(out, "same loss tensor:") == str(torch.equal(module_loss, example["loss"])) == "True"
    assert line(out, "same gradients:") == str(torch.equal(logits.grad, example["logits"].grad)) == "True"


def test_the_modules_forward_is_one_call_of_the_function(nb, example):
    out = printed(cell(nb, "claim:forward-source"))
    assert out.strip() == inspect.getsource(nn.BCELoss.forward).strip()
    assert out.count("F.binary_cross_entropy(") == 1
    w = torch.tensor([[0.5], [1.0], [2.0]])
    for reduction in ("mean", "sum", "none"):
        assert torch.equal(nn.BCELoss(weight=w, reduction=reduction)(example["p"], example["target"]),
                           F.binary_cross_entropy(example["p"], example["target"], weight=w, reduction=reduction))


# --- 3. what the module stores ---------------------------------------------------------------------

def test_weight_is_a_buffer_and_reduction_an_attribute(nb):
    out = printed(cell(nb, "claim:buffers"))
    w = torch.tensor([1.0, 3.0])
    weighted, unweighted = nn.BCELoss(weight=w), nn.BCELoss()
    assert line(out, "constructor:") == nn.BCELoss.__init__.__qualname__ == "_WeightedLoss.__init__"
    assert shows(line(out, "buffers:"), torch.stack(list(weighted.buffers())))
    assert list(weighted.state_dict()) == ["weight"] and line(out, "state_dict:").startswith("OrderedDict([('weight', tensor(")
    assert line(out, "parameters:") == str(list(weighted.parameters())) == "[]"
    assert line(out, "reduction:") == weighted.reduction == "mean"
    assert "reduction" not in weighted.state_dict() and "reduction" in vars(weighted)
    assert line(out, "without a weight:") == f"{unweighted.weight} {list(unweighted.buffers())} {unweighted.state_dict()}"
    assert unweighted.weight is None and "weight" in unweighted._buffers


def test_conversions_move_the_buffer_and_the_loss_keeps_the_inputs_dtype(nb, example):
    out = printed(cell(nb, "claim:to"))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    w = torch.tensor([1.0, 3.0])
    assert line(out, "after .to(device):") == str(nn.BCELoss(weight=w).to(device).weight.device)
    assert line(out, "after .to(torch.float64):") == str(nn.BCELoss(weight=w).to(torch.float64).weight.dtype)
    doubled = nn.BCELoss(weight=w).double()
    assert line(out, "after .double():") == str(doubled.weight.dtype) == "torch.float64"
    assert line(out, "its loss on float32 input:") == str(doubled(example["p"], example["target"]).dtype) == "torch.float32"
    # "a dtype conversion changes floating-point tensors only"
    holder = nn.Module()
    holder.register_buffer("counts", torch.tensor([1, 2]))
    assert holder.double().counts.dtype == torch.int64


def test_the_two_signatures_have_the_same_names_and_defaults(nb):
    out = printed(cell(nb, "claim:signatures"))
    module_sig, function_sig = inspect.signature(nn.BCELoss), inspect.signature(F.binary_cross_entropy)
    assert line(out, "nn.BCELoss:") == str(module_sig)
    assert line(out, "F.binary_cross_entropy:") == str(function_sig)
    defaults = {k: p.default for k, p in function_sig.parameters.items() if k not in ("input", "target")}
    assert defaults == {k: p.default for k, p in module_sig.parameters.items()}
    assert defaults == {"weight": None, "size_average": None, "reduce": None, "reduction": "mean"}
    assert line(out, "same names and defaults:") == "True"


def test_size_average_and_reduce_warn_and_become_a_reduction(nb):
    out = printed(cell(nb, "claim:legacy"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        legacy = nn.BCELoss(size_average=False)
    assert out.splitlines()[0] == f"{caught[0].category.__name__}: {caught[0].message}"
    assert line(out, "stored reduction:") == legacy.reduction == "sum"
    assert not hasattr(legacy, "size_average") and not hasattr(legacy, "reduce")


def test_reduction_is_checked_when_the_module_is_called(nb, example):
    out = printed(cell(nb, "claim:reduction-at-call"))
    typo = nn.BCELoss(reduction="MEAN")
    assert line(out, "built, with reduction =") == repr(typo.reduction)
    kind, message = error_of(lambda: typo(example["p"], example["target"]))
    assert kind is ValueError and line(out, "ValueError when called:") == message


def test_a_criterion_attribute_is_a_submodule_that_follows_the_model(nb):
    out = printed(cell(nb, "claim:submodule"))

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())
            self.criterion = nn.BCELoss(weight=torch.tensor([2.0]))

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = Classifier().to(device)
    assert line(out, "state_dict keys:") == str(list(model.state_dict()))
    assert line(out, "criterion.weight is on:") == str(model.criterion.weight.device)
    assert line(out, "after model.double(), criterion.weight is:") == str(model.double().criterion.weight.dtype)


def test_a_weight_from_each_batch_gives_each_class_half_the_total(nb):
    out = printed(cell(nb, "claim:batch-weight")).splitlines()
    g = torch.Generator().manual_seed(0)
    for index, batch_size in enumerate((6, 4)):
        p = torch.rand(batch_size, generator=g)
        y = torch.randint(0, 2, (batch_size,), generator=g).float()
        weight = torch.where(y == 1, batch_size / (2 * y.sum().clamp(min=1)),
                             batch_size / (2 * (batch_size - y.sum()).clamp(min=1)))
        first, totals, loss = out[3 * index:3 * index + 3]
        assert first.startswith(f"batch of {batch_size}: targets {y.tolist()}, weight tensor(")
        assert shows(first, weight)
        assert 0 < y.sum() < batch_size  # both classes present, so each gets half
        assert weight[y == 1].sum().item() == weight[y == 0].sum().item() == batch_size / 2
        assert totals.split() == ["total", "weight", "of", "the", "positives", f"{batch_size / 2:g},", "of", "the",
                                  "negatives", f"{batch_size / 2:g}"]
        f_loss = F.binary_cross_entropy(p, y, weight=weight)
        assert loss.strip() == f"loss {f_loss}, same as a new nn.BCELoss: {torch.equal(f_loss, nn.BCELoss(weight=weight)(p, y))}"
        assert loss.endswith("True")


# --- 2. out-of-range values: RuntimeError on the CPU, a device-side assert on CUDA ---------------

def test_out_of_range_values_raise_runtimeerror_on_the_cpu(nb, example):
    code_cell = cell(nb, "claim:out-of-range")
    out = printed(code_cell)
    logits = example["logits"].detach()
    assert line(out, "negative values in the logits:") == str((logits < 0).sum().item())
    kind, message = error_of(lambda: F.binary_cross_entropy(logits, example["target"]))
    assert kind is RuntimeError and line(out, "RuntimeError on the CPU:") == message
    for bad in (torch.tensor([1.5]), torch.tensor([-0.1]), torch.tensor([float("nan")])):
        assert error_of(lambda: F.binary_cross_entropy(bad, torch.tensor([0.5])))[0] is RuntimeError
        assert error_of(lambda: F.binary_cross_entropy(torch.tensor([0.5]), bad))[0] is RuntimeError


def test_no_cell_sends_out_of_range_values_to_a_gpu(nb):
    """The only cells that pass out-of-range values to torch's BCE run on the CPU, whatever
    ``device`` is; the prose says the CPU raises and CUDA asserts, never the other way round."""
    for code_cell in nb.cells:
        if code_cell.cell_type == "code" and "binary_cross_entropy(logits" in code_cell.source:
            assert 'input.detach().to("cpu")' in code_cell.source and 'target.to("cpu")' in code_cell.source
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "device-side assert" in text and "on the **CPU**" in text
    for claim in re.findall(r"[^.]*raises? `RuntimeError`[^.]*\.", text):
        if "outside $[0, 1]$" in claim or "[0, 1]" in claim:
            assert "CPU" in claim, claim


@pytest.mark.cuda
def test_on_cuda_out_of_range_values_trip_a_device_side_assert_that_breaks_the_context():
    """Run in a process of its own: the assert leaves that process's CUDA context unusable."""
    script = textwrap.dedent("""
        import torch, torch.nn.functional as F
        for step, run in (("FIRST", lambda: F.binary_cross_entropy(torch.tensor([1.5], device="cuda"),
                                                                   torch.tensor([0.5], device="cuda")).item()),
                          ("LATER", lambda: torch.ones(1, device="cuda").sum().item())):
            try:
                run()
                print(step, "OK")
            except Exception as error:
                print(step, type(error).__name__, str(error).splitlines()[0])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "FIRST" in done.stdout and "FIRST OK" not in done.stdout, done.stdout + done.stderr
    assert "device-side assert" in done.stdout + done.stderr, done.stdout + done.stderr
    assert "LATER" in done.stdout and "LATER OK" not in done.stdout, done.stdout + done.stderr


@pytest.mark.cuda
def test_on_cuda_the_second_log_is_log1p_too():
    x = torch.tensor([1e-8, 1e-6], device="cuda")
    assert torch.equal(F.binary_cross_entropy(x, torch.zeros_like(x), reduction="none"), -torch.log1p(-x))


# --- the fused form and the bars ------------------------------------------------------------------

def test_the_fused_form_agrees_within_rounding(nb, example):
    out = printed(cell(nb, "claim:fused"))
    logits, target = example["logits"].detach(), example["target"]
    fused = F.binary_cross_entropy_with_logits(logits, target)
    assert shows(line(out, "sigmoid, then F.binary_cross_entropy:"), F.binary_cross_entropy(torch.sigmoid(logits), target))
    assert shows(line(out, "F.binary_cross_entropy_with_logits:"), fused)
    assert line(out, "equal within rounding:") == "True"
    assert line(out, "nn.BCEWithLogitsLoss gives the function's tensor:") == str(
        torch.equal(fused, nn.BCEWithLogitsLoss()(logits, target))) == "True"


def test_every_pair_of_bars_is_equal_and_sum_is_n_times_mean(nb, example):
    out = printed(cell(nb, "claim:bars"))
    p, y = example["p"], example["target"]
    for reduction in ("mean", "sum"):
        for weight in (None, torch.tensor([1.0, 3.0]), torch.tensor([[0.5], [1.0], [2.0]])):
            assert torch.equal(F.binary_cross_entropy(p, y, weight=weight, reduction=reduction),
                               nn.BCELoss(weight=weight, reduction=reduction)(p, y))
    assert line(out, "all pairs equal:") == "True"
    ratio = F.binary_cross_entropy(p, y, reduction="sum") / F.binary_cross_entropy(p, y)
    assert shows(line(out, "'sum' / 'mean' without a weight:"), ratio)
    assert round(ratio.item(), 4) == p.numel()
    assert any(f"$N = {p.numel()}$ times" in c.source for c in nb.cells if c.cell_type == "markdown")


# --- Exercise 1: predict ---------------------------------------------------------------------------

def test_the_prediction_texts_code_is_what_torch_and_the_grader_run(nb):
    text = _cell_by_grade_id(nb, "predict_module_task").source
    first, second = code_blocks(text)
    shown = cell(nb, "claim:predict-loss").source
    assert all(ln.split("#")[0].rstrip() in shown for ln in first.splitlines() if ln.strip())
    assert second.strip() in cell(nb, "claim:predict-entries").source
    assert second.strip() == textwrap.dedent(inspect.getsource(n04._Scorer)).replace(
        "class _Scorer", "class Scorer").replace('    """The model of the exercise, as its text shows it."""\n\n', "").strip()


def test_the_predicted_loss_is_what_torch_computes(nb):
    out = printed(cell(nb, "claim:predict-loss"))
    w = torch.tensor([1.0, 1.0])
    criterion = nn.BCELoss(weight=w)
    w.mul_(3)
    value = criterion(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0]))
    assert shows(line(out, "criterion(p, y):"), value)
    assert torch.equal(value, exercises.QUANTITIES["04-shared-weight"].compute())
    assert math.isclose(value.item(), 3 * math.log(2), rel_tol=1e-6)  # log1p(-0.5) = log(0.5)
    assert line(out, "criterion.weight is w:") == str(criterion.weight is w) == "True"
    same_device = nn.BCELoss(weight=w)
    assert same_device.to("cpu").weight is w  # only a conversion that changes something makes a new tensor
    assert line(out, "after .double(), criterion.weight is w:") == str(criterion.double().weight is w) == "False"


def test_the_predicted_state_dict_is_what_torch_builds(nb):
    out = printed(cell(nb, "claim:predict-entries"))
    scorer = n04._Scorer()
    keys = list(scorer.state_dict())
    assert line(out, "entries:") == f"{len(keys)} {keys}"
    assert len(keys) == exercises.QUANTITIES["04-state-dict-entries"].compute()
    assert nn.ReLU().state_dict() == OrderedDict() and nn.Sigmoid().state_dict() == OrderedDict()
    assert not any(k.startswith(("unweighted", "class_weight")) for k in keys)
    doubled = scorer.double()
    assert line(out, "after .double(): criterion.weight").split() == [
        str(doubled.criterion.weight.dtype), "class_weight", str(doubled.class_weight.dtype)]


def test_the_masters_predictions_pass_and_the_test_cell_checks_both(nb):
    solution = _cell_by_grade_id(nb, "predict_module_solution").source
    namespace: dict = {}
    exec(solution.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), namespace)
    assert grader.check_prediction(namespace["prediction_loss"], "04-shared-weight").passed
    assert grader.check_prediction(namespace["prediction_entries"], "04-state-dict-entries").passed
    assert not grader.check_prediction(math.log(2), "04-shared-weight").passed  # "the module copied w"
    assert not grader.check_prediction(len(n04._Scorer().state_dict()) + 2, "04-state-dict-entries").passed
    tests = _cell_by_grade_id(nb, "predict_module").source
    visible, hidden = tests.split("### BEGIN HIDDEN TESTS")
    assert '"04-shared-weight"' in visible and '"04-state-dict-entries"' in hidden


# --- Exercise 2: debug -----------------------------------------------------------------------------

def test_the_given_bce_terms_is_torchs_elementwise_loss(given):
    bce_terms = given["_bce_terms"]
    g = torch.Generator().manual_seed(2)
    x = torch.cat([torch.rand(500, generator=g), torch.tensor([0.0, 1.0, 1e-30, 1e-8, 1 - 2**-24])])
    y = torch.rand(x.shape, generator=g)
    assert torch.allclose(bce_terms(x, y), F.binary_cross_entropy(x, y, reduction="none"), rtol=1e-6, atol=0)
    for bad in (torch.tensor([1.5]), torch.tensor([-0.1]), torch.tensor([float("nan")])):
        for args in ((bad, torch.tensor([0.5])), (torch.tensor([0.5]), bad)):
            kind, message = error_of(lambda: bce_terms(*args))
            assert kind is error_of(lambda: F.binary_cross_entropy(*args))[0] is RuntimeError
            assert message == error_of(lambda: F.binary_cross_entropy(*args))[1]


def test_the_buggy_modules_two_faults_are_shown_with_torch(nb, given):
    out = printed(cell(nb, "claim:buggy-module"))
    w = torch.tensor([1.0, 3.0])
    buggy, reference = given["BuggyBCELoss"](weight=w).double(), nn.BCELoss(weight=w).double()
    assert line(out, "weight after .double():").split() == [
        "BuggyBCELoss", str(buggy.weight.dtype), "nn.BCELoss", str(reference.weight.dtype)]
    assert buggy.weight.dtype == torch.float32 and reference.weight.dtype == torch.float64
    shown = line(out, "state_dict:")
    assert shown.startswith(f"BuggyBCELoss {dict(buggy.state_dict())}   nn.BCELoss {{'weight': tensor(")
    assert dict(buggy.state_dict()) == {} and list(reference.state_dict()) == ["weight"]


def test_the_check_of_the_buggy_module_lists_what_the_grader_finds(nb, given):
    out = printed(cell(nb, "claim:buggy-check"))
    report = grader.check(given["BuggyBCELoss"], "binary_cross_entropy", arguments=["weight", "reduction"])
    assert out.strip().splitlines()[-1] == report.summary()
    failed = set(report.failed_categories())
    assert {"weight", "reductions", "errors", "dtypes"} <= failed
    # the visible test of the exercise already fails it
    visible = grader.check(given["BuggyBCELoss"], "binary_cross_entropy",
                           categories=["article examples", "reductions", "weight"], arguments=["weight", "reduction"])
    assert not visible.passed and {"reductions", "weight"} <= set(visible.failed_categories())


def test_torch_raises_what_the_exercise_says():
    x, y = torch.rand(3), torch.rand(3)
    for reduction in ("MEAN", None, "sum "):
        assert error_of(lambda: F.binary_cross_entropy(x, y, reduction=reduction))[0] is ValueError
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.equal(F.binary_cross_entropy(x, y, reduction="elementwise_mean"), F.binary_cross_entropy(x, y))
    assert error_of(lambda: F.binary_cross_entropy(x, torch.rand(1)))[0] is ValueError  # would broadcast
    assert error_of(lambda: F.binary_cross_entropy(x, y, weight=torch.ones(2)))[0] is RuntimeError
    assert error_of(lambda: F.binary_cross_entropy(x, y, weight=torch.ones(2, 3)))[0] is RuntimeError
    assert F.binary_cross_entropy(x, y, weight=torch.ones(3, dtype=torch.float64)).dtype == torch.float32
    assert math.isnan(F.binary_cross_entropy(torch.rand(0), torch.rand(0)).item())


def test_the_masters_solution_with_the_given_helper_passes_the_whole_battery(nb, given):
    """The exercise as stated needs no arithmetic: the master's solution, with the lines it writes
    out for ``_bce_terms`` (so that it stands alone) replaced by a call of the given helper."""
    solution = _cell_by_grade_id(nb, "bce_module_solution").source
    with_helper, replaced = re.subn(r"        # What _bce_terms.*?min=-100\)\)\n",
                                    "        loss = _bce_terms(input, target)\n", solution, flags=re.S)
    assert replaced == 1 and "torch.log" not in with_helper
    namespace = dict(given)
    exec(with_helper.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), namespace)
    report = grader.check(namespace["BCELoss"], arguments=["weight", "reduction"])
    assert report.passed, str(report)


def test_the_debug_exercises_tests_cover_what_its_text_states(nb):
    text = " ".join(_cell_by_grade_id(nb, "bce_module_task").source.split())
    tests = _cell_by_grade_id(nb, "bce_module").source
    visible, hidden = tests.split("### BEGIN HIDDEN TESTS")
    assert 'categories=["article examples", "reductions", "weight"]' in visible
    for category in ("shapes", "layouts", "edge values", "errors", "gradients", "dtypes", "vectorized"):
        assert f'"{category}"' in hidden
    assert "the article examples, the reductions and the weight" in text
    assert ("the shapes (empty tensors included), the layouts, the edge values, the errors, the gradients, "
            "the dtypes and the vectorization check") in text
    assert "`grader.assert_passes(BCELoss" in text and "`_bce_terms(input, target)`" in text

