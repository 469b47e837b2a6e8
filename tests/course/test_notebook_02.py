"""Notebook 02 (BCELoss on a 2-D tensor): every number its claim cells print and every claim
its prose makes about torch, recomputed here with torch; its two exercises (a prediction, and
a buggy implementation to fix) checked against what the grader and torch say."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
from nbclient import NotebookClient
from notebook_outputs import cell, executed_master, markdown_after, printed, without_badge
from torch import nn

import grader
from grader import articles
from grader._battery import exercises
from grader._battery.items import n02
from grader.instructor import release, verdict

NAME = "02-bce-matrix"
SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"


@pytest.fixture(scope="module")
def nb():
    return executed_master(NAME)


@pytest.fixture(scope="module")
def xy():
    """The 3x3 input and target of article 001, example 2 (the notebook's x and y)."""
    args = articles.example("001-2").build()
    return args["input"].detach(), args["target"]


def line(text: str, label: str) -> str:
    found = [ln for ln in text.splitlines() if ln.startswith(label)]
    assert len(found) == 1, (label, text)
    return found[0][len(label):]


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
    """Whether ``text``'s first tensor prints ``expected`` to torch's four significant decimals."""
    got, want = tensor_numbers(text), expected.detach().flatten().tolist()
    return len(got) == len(want) and all(
        g == w if w == 0 else abs(g - w) <= 5e-5 + 1e-4 * abs(w) if abs(w) >= 1e-3 else math.isclose(g, w, rel_tol=1e-4)
        for g, w in zip(got, want))


def error_of(fn) -> str:
    try:
        fn()
    except Exception as error:  # noqa: BLE001 - the test reports whatever torch raises
        return f"{type(error).__name__}: {error}"
    raise AssertionError("torch raised nothing")


def markdown(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


def section(nb, heading: str) -> str:
    found = [s for s in markdown(nb) if s.startswith(heading)]
    assert len(found) == 1, heading
    return found[0]


# --- the per-element loss -------------------------------------------------------------

def test_the_formula_is_written_as_torch_computes_it(nb):
    formula = section(nb, "## One loss per element")
    assert r"\max(\operatorname{log1p}(-x_{ij}),\ -100)" in formula and r"\max(\log x_{ij},\ -100)" in formula
    for text in markdown(nb):
        assert not re.search(r"\\max\(\\log\s*\(1\s*-", text), "a clamp of log(1 - x) where torch uses log1p(-x)"
    assert r"\operatorname{log1p}(-x)" in section(nb, "## Summary")


def test_log1p_keeps_what_log_of_one_minus_x_loses(nb):
    tiny, zero = torch.tensor([1e-8]), torch.tensor([0.0])
    out = printed(cell(nb, "claim:log1p"))
    torch_loss = F.binary_cross_entropy(tiny, zero, reduction="none")
    assert shows(line(out, "torch:"), torch_loss)
    assert shows(line(out, "-max(log1p(-x), -100):"), -torch.clamp(torch.log1p(-tiny), min=-100))
    naive = -torch.clamp(torch.log(1 - tiny), min=-100)
    assert shows(line(out, "-max(log(1 - x), -100):"), naive) and "-0." in line(out, "-max(log(1 - x), -100):")
    # the prose: 1 - 1e-8 rounds to 1 in float32; the loss is about 1e-8 and log1p keeps it
    assert (1 - tiny).item() == 1.0 and naive.item() == 0.0
    assert math.isclose(torch_loss.item(), -math.log1p(-1e-8), rel_tol=1e-6)
    assert "10^{-8}" in markdown_after(nb, cell(nb, "claim:loss-matrix"))


def test_the_loss_matrix_is_the_formula(nb, xy):
    x, y = xy
    out = printed(cell(nb, "claim:loss-matrix"))
    losses = F.binary_cross_entropy(x, y, reduction="none")
    assert shows(out, losses)
    assert f"shape: {losses.shape}" in out
    formula = -(y * torch.clamp(torch.log(x), min=-100) + (1 - y) * torch.clamp(torch.log1p(-x), min=-100))
    assert torch.allclose(losses, formula) and "same as the formula: True" in out


def test_range_and_shape_errors(nb, xy):
    x, y = xy
    out = printed(cell(nb, "claim:range-and-shape"))
    for label, bad_input, bad_target in [("input above 1", x * 2, y), ("target above 1", x, y * 5),
                                         ("target of shape (3,)", x, y[0])]:
        assert f"{label}: {error_of(lambda: F.binary_cross_entropy(bad_input, bad_target))}" in out
    shape_error = error_of(lambda: F.binary_cross_entropy(x, y[0]))
    assert shape_error.startswith("ValueError") and "deprecated" in shape_error  # what the prose says


def test_the_module_form_is_the_same_computation(nb, xy):
    x, y = xy
    module_losses = nn.BCELoss(reduction="none")(x, y)
    same = torch.equal(module_losses, F.binary_cross_entropy(x, y, reduction="none"))
    assert printed(cell(nb, "claim:module-form")).strip() == f"{module_losses.shape} {same}" and same


def test_logits_and_probabilities(nb, xy):
    _, y = xy
    torch.manual_seed(0)
    z = torch.randn(3, 3)
    z_small = torch.rand(3, 3)
    out = printed(cell(nb, "claim:logits"))
    with_logits, after_sigmoid = nn.BCEWithLogitsLoss()(z, y), nn.BCELoss()(torch.sigmoid(z), y)
    assert shows(line(out, "BCEWithLogitsLoss(z):"), with_logits)
    assert shows(line(out, "BCELoss(sigmoid(z)):"), after_sigmoid)
    assert torch.allclose(with_logits, after_sigmoid)  # "both give the same loss"
    assert line(out, "BCELoss(z):").strip() == error_of(lambda: nn.BCELoss()(z, y))
    right, wrong = nn.BCEWithLogitsLoss()(z_small, y), nn.BCELoss()(z_small, y)
    assert shows(line(out, "BCEWithLogitsLoss(z_small):"), right)
    assert shows(line(out, "BCELoss(z_small):"), wrong) and not torch.allclose(right, wrong)
    assert bool(((z_small >= 0) & (z_small <= 1)).all())


def test_a_saturated_sigmoid_costs_the_clamp(nb):
    z, t = torch.tensor([20.0]), torch.tensor([0.0])
    out = printed(cell(nb, "claim:saturation"))
    assert torch.sigmoid(z).item() == 1.0 and line(out, "torch.sigmoid(20.) == 1:").strip() == "True"
    with_logits, after_sigmoid = nn.BCEWithLogitsLoss()(z, t), nn.BCELoss()(torch.sigmoid(z), t)
    assert shows(line(out, "BCEWithLogitsLoss(20, 0):"), with_logits)
    assert shows(line(out, "BCELoss(torch.sigmoid(20), 0):"), after_sigmoid)
    # the prose: log(1 + e^20) is about 20, and BCELoss returns the clamp's 100
    assert math.isclose(with_logits.item(), math.log1p(math.exp(20)), rel_tol=1e-6)
    assert round(with_logits.item()) == 20 and after_sigmoid.item() == 100.0


def test_mean_sum_and_their_shapes(nb, xy):
    x, y = xy
    losses = F.binary_cross_entropy(x, y, reduction="none")
    mean, total = nn.BCELoss()(x, y), nn.BCELoss(reduction="sum")(x, y)
    out = printed(cell(nb, "claim:mean"))
    assert shows(line(out, "BCELoss():"), mean) and "shape: ()" in out
    assert shows(line(out, "losses.sum() / N:"), losses.sum() / losses.numel()) and "(N = 9)" in out
    assert shows(line(out, "losses.mean():"), losses.mean())
    by_rows = losses.sum() / losses.shape[0]
    assert shows(line(out, "losses.sum() / rows:"), by_rows)
    assert shows(line(out, "per-row means:"), losses.mean(dim=1))
    assert torch.allclose(by_rows / mean, torch.tensor(3.0))  # "three times too large here"
    out = printed(cell(nb, "claim:sum"))
    for label in ("BCELoss(reduction='sum'):", "losses.sum():", "N * mean:"):
        assert shows(line(out, label), total)
    assert torch.allclose(total, losses.numel() * mean)
    out = printed(cell(nb, "claim:reduction-shapes"))
    for reduction in ("none", "mean", "sum"):
        shape = tuple(F.binary_cross_entropy(x, y, reduction=reduction).shape)
        assert f"{reduction!r:7} -> shape {shape}" in out
    leaf = x.clone().requires_grad_(True)
    message = error_of(lambda: F.binary_cross_entropy(leaf, y, reduction="none").backward())
    assert f"backward() on the 'none' matrix: {message}" in out and message.startswith("RuntimeError")


def test_the_gradient_of_sum_is_n_times_the_gradient_of_mean(nb):
    args = articles.example("000").build()
    x, y = args["input"].detach(), args["target"]
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    nn.BCELoss()(a, y).backward()
    nn.BCELoss(reduction="sum")(b, y).backward()
    out = printed(cell(nb, "claim:gradient-scale"))
    matches = torch.allclose(a.grad, (x - y) / (x * (1 - x)) / x.numel())
    assert f"grad_mean matches (x - y) / (x (1 - x)) / N: {matches}" in out and matches
    ratio = b.grad / a.grad
    assert shows(out.split("grad_sum / grad_mean:")[1], ratio)
    assert torch.allclose(ratio, torch.full_like(ratio, x.numel())) and x.numel() == 9


def test_sgd_on_sum_is_sgd_on_mean_with_n_times_the_learning_rate(nb, xy):
    x, y = xy
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    step_a, step_b = torch.optim.SGD([a], lr=0.001), torch.optim.SGD([b], lr=0.001 * x.numel())
    F.binary_cross_entropy(a, y, reduction="sum").backward()
    F.binary_cross_entropy(b, y).backward()
    step_a.step()
    step_b.step()
    same = torch.allclose(a, b)
    assert printed(cell(nb, "claim:sgd")).strip().endswith(f"take the same step: {same}") and same


def test_weights_broadcast_like_a_product(nb, xy):
    x, y = xy
    losses = F.binary_cross_entropy(x, y, reduction="none")
    w_col, w_row = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([[0.5], [1.0], [2.0]])
    out = printed(cell(nb, "claim:weight-columns"))
    weighted = F.binary_cross_entropy(x, y, weight=w_col, reduction="none")
    assert shows(out, weighted) and shows(out.split("weighted / losses:")[1], weighted / losses)
    assert f"equals w_col * losses: {torch.allclose(weighted, w_col * losses)}" in out
    out = printed(cell(nb, "claim:weight-rows"))
    rows = F.binary_cross_entropy(x, y, weight=w_row, reduction="none")
    assert shows(out.split("weighted_rows / losses:")[1], rows / losses)
    assert f"equals w_row * losses: {torch.allclose(rows, w_row * losses)}" in out


def test_the_docstring_quoted_and_a_weight_of_size_nbatch(nb):
    doc = " ".join(nn.BCELoss.__doc__.split())
    start = doc.index("weight (Tensor")
    sentence = doc[start:doc.index("nbatch", start) + len("nbatch`.")]
    out = printed(cell(nb, "claim:docstring-nbatch"))
    assert line(out, "nn.BCELoss's docstring:").strip() == sentence
    assert "has to be a Tensor of size `nbatch`" in sentence
    assert '"has to be a Tensor of size `nbatch`"' in markdown_after(nb, cell(nb, "claim:weight-columns"))
    message = error_of(lambda: F.binary_cross_entropy(torch.full((4, 3), 0.5), torch.ones(4, 3),
                                                      weight=torch.ones(4)))
    assert f"a weight of shape (4,) for a batch of shape (4, 3): {message}" in out
    assert message.startswith("RuntimeError")


def test_mean_with_a_weight_divides_by_n(nb, xy):
    x, y = xy
    losses = F.binary_cross_entropy(x, y, reduction="none")
    w_full = torch.tensor([0.5, 1.0, 2.0]).expand_as(losses)
    mean = F.binary_cross_entropy(x, y, weight=torch.tensor([0.5, 1.0, 2.0]))
    average = (w_full * losses).sum() / w_full.sum()
    out = printed(cell(nb, "claim:weighted-mean"))
    assert shows(line(out, "torch, weighted 'mean':"), mean)
    assert shows(line(out, "(w * losses).sum() / N:"), (w_full * losses).sum() / losses.numel())
    assert shows(line(out, "weighted average (/ sum of w):"), average) and not torch.allclose(mean, average)
    summed = F.binary_cross_entropy(x, y, weight=torch.tensor([0.5, 1.0, 2.0]), reduction="sum")
    assert shows(line(out, "'sum' / w_full.sum():"), summed / w_full.sum())
    assert torch.allclose(summed / w_full.sum(), average)


def test_weights_that_do_not_give_the_input_shape(nb, xy):
    x, y = xy
    out = printed(cell(nb, "claim:bad-weight"))
    for weight in (torch.ones(2), torch.ones(1, 3, 3)):
        message = error_of(lambda: F.binary_cross_entropy(x, y, weight=weight))
        assert f"weight of shape {tuple(weight.shape)}: {message}" in out and message.startswith("RuntimeError")


# --- the deprecated arguments and the reduction strings ---------------------------------

def _warned(build):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = build()
    return value, [f"{w.category.__name__}: {w.message}" for w in caught]


def test_size_average_and_reduce(nb, xy):
    x, y = xy
    out = printed(cell(nb, "claim:legacy"))
    for size_average, reduce in [(None, None), (True, None), (False, None), (None, False),
                                 (True, False), (False, False), (False, True)]:
        criterion, said = _warned(lambda: nn.BCELoss(size_average=size_average, reduce=reduce))
        shown = "; ".join(said) or "(no warning)"
        assert (f"size_average={size_average!s:5} reduce={reduce!s:5} -> .reduction={criterion.reduction!r:7} "
                f"{shown}") in out
        # the rule the prose states
        rule = "none" if reduce is False else "sum" if size_average is False else "mean"
        assert criterion.reduction == rule
        assert (said == []) == (size_average is None and reduce is None)
        assert all(s.startswith("UserWarning") for s in said)
    out = printed(cell(nb, "claim:legacy-override"))
    criterion, said_module = _warned(lambda: nn.BCELoss(size_average=True, reduction="none"))
    functional, said_functional = _warned(lambda: F.binary_cross_entropy(x, y, reduce=False))
    assert f"nn.BCELoss(size_average=True, reduction='none').reduction: {criterion.reduction!r}" in out
    assert f"F.binary_cross_entropy(x, y, reduce=False).shape: {tuple(functional.shape)}" in out
    assert criterion.reduction == "mean" and functional.shape == x.shape
    for said in said_module + said_functional:
        assert said in out


def test_elementwise_mean_is_mean_with_a_warning(nb, xy):
    x, y = xy
    value, said = _warned(lambda: F.binary_cross_entropy(x, y, reduction="elementwise_mean"))
    mean = F.binary_cross_entropy(x, y, reduction="mean")
    out = printed(cell(nb, "claim:elementwise-mean"))
    assert len(said) == 1 and said[0].startswith("UserWarning") and said[0] in out
    assert torch.equal(value, mean)
    assert shows(line(out, "reduction='elementwise_mean':"), value) and shows(line(out, "reduction='mean':"), mean)


def test_every_other_reduction_raises_value_error(nb, xy):
    x, y = xy
    out = printed(cell(nb, "claim:reduction-strings"))
    for bad in ("MEAN", "sum ", "", None):
        message = error_of(lambda: F.binary_cross_entropy(x, y, reduction=bad))
        assert message.startswith("ValueError") and f"reduction={bad!r:7}: {message}" in out
    for text in markdown(nb):
        assert "any other string raises" not in text.lower()


# --- exercise 1: the prediction ---------------------------------------------------------

def test_the_prediction_exercise_uses_the_registered_batch(nb):
    data = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "bce_matrix_predict_data")
    namespace = {"torch": torch}
    exec(data.source, namespace)
    for name, tensor in zip(("p_small", "y_small", "w_small"), n02.weighted_batch()):
        assert torch.equal(namespace[name], tensor), name
        assert data.source.split(f"{name} = ")[1].splitlines()[0] in section(nb, "## Exercise 1")
    losses = F.binary_cross_entropy(*n02.weighted_batch()[:2], reduction="none")
    assert torch.allclose(losses, torch.full_like(losses, math.log(2)))  # the hint: all the same at p = 0.5


def test_the_prediction_checks_and_what_the_text_says_of_them(nb):
    text = section(nb, "## Exercise 1")
    tests = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "bce_matrix_predict")
    visible, hidden = tests.source.split("### BEGIN HIDDEN TESTS")
    assert 'grader.assert_prediction(weighted_sum, "02-weighted-sum")' in visible
    assert 'grader.assert_prediction(weighted_mean, "02-weighted-mean")' in hidden
    assert "The visible test checks `weighted_sum`; a\nhidden test checks `weighted_mean`" in text
    for key in ("02-weighted-sum", "02-weighted-mean"):
        q = exercises.QUANTITIES[key]
        assert (q.rtol, q.atol) == (0.02, 1e-3) and "2 %" in text and "0.001 (absolute)" in text


def test_the_solution_passes_and_the_usual_mistakes_fail(nb):
    p, y, w = n02.weighted_batch()
    total = F.binary_cross_entropy(p, y, weight=w, reduction="sum")
    mean = F.binary_cross_entropy(p, y, weight=w)
    solution = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                    == "bce_matrix_predict_solution")
    namespace = {"math": math}
    exec(solution.source, namespace)
    predicted_sum, predicted_mean = namespace["my_predictions"]()
    assert grader.check_prediction(predicted_sum, "02-weighted-sum").passed
    assert grader.check_prediction(predicted_mean, "02-weighted-mean").passed
    full = w.expand_as(p)
    for wrong in (total / full.sum(), total / w.sum(), total / p.shape[0], F.binary_cross_entropy(p, y)):
        assert not grader.check_prediction(wrong, "02-weighted-mean").passed
    assert not grader.check_prediction(F.binary_cross_entropy(p, y, reduction="sum") * w.sum(),
                                       "02-weighted-sum").passed
    out = printed(cell(nb, "claim:prediction-reveal"))
    assert shows(line(out, "weighted_sum:"), total) and shows(line(out, "weighted_mean:"), mean)
    assert torch.allclose(mean, total / p.numel())


# --- exercise 2: the buggy implementation --------------------------------------------------

def _buggy(nb):
    source = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "bce_matrix_buggy").source
    namespace = {"torch": torch}
    exec(source, namespace)
    return namespace["buggy_binary_cross_entropy"]


@pytest.fixture(scope="module")
def buggy_report(nb):
    return grader.check(_buggy(nb), "binary_cross_entropy", arguments=["weight", "reduction"])


def test_the_buggy_report_shown_is_the_graders(nb, buggy_report):
    out = printed(cell(nb, "claim:buggy-report"))
    assert not buggy_report.passed
    assert out.strip().splitlines()[-1] == buggy_report.summary()
    for result in buggy_report.categories.values():
        assert re.search(rf"\b{result.status.upper() if result.status == 'failed' else result.status}\s+"
                         rf"{re.escape(result.name)}\b", out), result.name


def test_the_exercise_names_exactly_the_failures(nb, buggy_report):
    text = section(nb, "## Exercise 2")
    bullets = text.split("report lists the cases\nwhere it differs from torch:")[1].split("\n\nWrite")[0]
    named_categories = re.findall(r"^- \*([a-z ]+)\*:", bullets, flags=re.M)
    assert set(named_categories) == set(buggy_report.failed_categories())
    failing = {(f.category, f.case) for f in buggy_report.failures}
    quoted = {" ".join(q.split()) for q in re.findall(r'"([^"]+)"', bullets, flags=re.S)}
    assert quoted <= {case for _, case in failing}, quoted - {case for _, case in failing}
    for category, case in failing:  # each failure is quoted, or one of the weighted cases the text sums up
        assert case in quoted or ("weight" in case and category in ("weight", "dtypes")), (category, case)
    # the error types the text names are torch's
    for case, kind in [("an input that is nan", "RuntimeError"), ("reduction=None", "ValueError"),
                       ("reduction='MEAN'", "ValueError"),
                       ("a weight of shape (1, 3, 4) for an input of shape (3, 4) (it broadcasts into a larger "
                        "shape)", "RuntimeError")]:
        failure = next(f for f in buggy_report.failures if f.case == case)
        assert f"torch raises {kind}" in failure.message
    # what the text says the buggy function gets right
    for category in ("article examples", "shapes", "layouts", "edge values", "reductions"):
        assert buggy_report.categories[category].status == "passed", category


def test_the_exercise_states_what_its_tests_check(nb):
    text = section(nb, "## Exercise 2")
    visible, hidden = [], []
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") in ("bce_matrix_reductions", "bce_matrix_weight"):
            shown, _, secret = c.source.partition("### BEGIN HIDDEN TESTS")
            for part, found in ((shown, visible), (secret.split("### END HIDDEN TESTS")[0], hidden)):
                for name, params, subject in verdict.checks_in(part):
                    assert (name, subject, params["arguments"]) == ("assert_passes", "binary_cross_entropy",
                                                                    ["weight", "reduction"])
                    found += params["categories"]
    assert sorted(visible) == ["article examples", "reductions", "weight"]
    assert sorted(hidden) == sorted(["shapes", "layouts", "edge values", "errors", "gradients", "dtypes",
                                     "vectorized"])
    said = text.split("What is checked:")[1]
    assert "visible tests run the article examples, the reductions and the `weight` cases" in said
    for name in ("the shapes", "the layouts", "the edge values", "the errors", "the\ngradients", "the dtypes",
                 "the vectorized check"):
        assert name in said.split("the hidden tests run")[1], name


def test_the_masters_solution_passes_everything(nb):
    check = next(c for c in nb.cells if c.cell_type == "code" and c.source.strip() == "grader.check(binary_cross_entropy)")
    assert printed(check).strip().endswith("binary_cross_entropy: all checks passed")


# --- sources and the student copy ----------------------------------------------------------

def test_no_address_or_site_the_articles_do_not_give_is_cited(nb):
    for text in map(without_badge, markdown(nb)):  # the badge under the title is release's
        assert "http" not in text and "Liberian" not in text


def test_titles_and_quotes_are_the_articles_own_words(nb):
    """Run where the source articles lie beside the checkout (the course's authors' tree)."""
    if not SEEDS.is_dir():
        pytest.skip("the source articles are not beside this checkout")
    articles_text = " ".join(" ".join(p.read_text().split()) for p in SEEDS.glob("0*.txt"))
    prose = " ".join(" ".join(markdown(nb)).split())
    for title in ("How to Measure the Binary Cross Entropy Between the Target and the Input Probabilities in "
                  "PyTorch?", "How to Find Binary Cross Entropy in PyTorch?", "GeeksforGeeks"):
        assert title in prose and title in articles_text
    for quote in ("the target should be between 0 to 1", "the difference between the estimated probabilities "
                  "of a model and actual labels", "total number of rows",
                  "to get the average loss of elements from the batch",
                  "to get the sum or average of the losses for mini batches according to the size_average"):
        assert f'"{quote}"' in prose and quote.lower() in articles_text.lower(), quote


def test_the_student_copy_runs_and_fails_only_where_it_should(tmp_path):
    release.generate(tmp_path / "release")
    student = nbformat.read(tmp_path / "release" / f"{NAME}.ipynb", as_version=4)
    text = nbformat.writes(student)
    for secret in ("9 * math.log(2)", "02-weighted-mean", "weight.to(loss.dtype)", "BEGIN SOLUTION"):
        assert secret not in text
    assert "def buggy_binary_cross_entropy" in text
    NotebookClient(student, timeout=180, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    for c in student.cells:
        if c.cell_type != "code":
            continue
        meta = c.metadata.get("nbgrader", {})
        errors = [o for o in c.outputs if o.output_type == "error"]
        if meta.get("grade"):  # what tests/test_colab.py asks of a test cell in a plain kernel
            assert [e.ename for e in errors] == ["AssertionError"], f"test cell {meta['grade_id']}: {errors}"
        else:  # a student's "run all" goes through every other cell, the unsolved exercises included
            assert not errors, (c.source[:80], errors and errors[0].evalue)
        assert not [o for o in c.outputs if o.output_type == "stream" and o.name == "stderr"], c.source[:80]
