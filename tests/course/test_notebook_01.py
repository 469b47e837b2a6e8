"""Notebook 01 (BCELoss on a 1-D tensor): every number its cells print and every claim its prose
makes about torch, recomputed with torch here; its exercises, their checks and their texts."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, kl_divergence

import grader
from grader._battery import exercises
from grader.explore import LossVsProbability
from grader.instructor import release, verdict
from notebook_outputs import cell, executed_master, markdown_after, numbers, printed

NAME = "01-bce-vector"
ARTICLE_P = torch.tensor([0.4498, 0.9845, 0.4576, 0.3494, 0.2434])
ARTICLE_Y = torch.tensor([0.2345, 0.5565, 0.3468, 0.1444, 0.3546])


@pytest.fixture(scope="module")
def nb():
    return executed_master(NAME)


def values(text: str) -> list[float]:
    """The numbers of printed tensors, without those in grad_fn, dtype and device annotations."""
    text = re.sub(r"grad_fn=<\w+>|dtype=torch\.\w+|requires_grad=True|device='\w+'", "", text)
    return numbers(text)


def line(output: str, label: str) -> list[float]:
    """The numbers printed after ``label`` on the line that starts with it."""
    found = [row[len(label):] for row in output.splitlines() if row.startswith(label)]
    assert len(found) == 1, (label, output)
    return values(found[0])


def close(printed_values, expected, decimals: int = 4) -> bool:
    """Printed with ``decimals`` decimals by torch: equal to ``expected`` to that precision."""
    expected = torch.as_tensor(expected, dtype=torch.float64).flatten().tolist()
    return len(printed_values) == len(expected) and all(
        (math.isnan(p) and math.isnan(e)) or p == e or abs(p - e) <= 0.51 * 10 ** -decimals + 1e-4 * abs(e)
        for p, e in zip(printed_values, expected))


def markdown(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def by_grade_id(nb, grade_id: str):
    found = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    assert len(found) == 1, grade_id
    return found[0]


# --- the loss, the mean, the likelihood ---------------------------------------------------

def test_sigmoid_then_bce_gives_the_loss_of_bce_with_logits(nb):
    out = printed(cell(nb, "claim:same-loss"))
    logits, labels = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 1.0])
    by_probabilities = nn.BCELoss()(torch.sigmoid(logits), labels)
    by_logits = nn.BCEWithLogitsLoss()(logits, labels)
    assert torch.allclose(by_probabilities, by_logits)
    assert close(line(out, "nn.BCELoss on torch.sigmoid(logits):"), by_probabilities)
    assert close(line(out, "nn.BCEWithLogitsLoss on the logits:"), by_logits)


def test_the_surprise_is_minus_the_log_of_the_labels_probability(nb):
    out = printed(cell(nb, "claim:surprise"))
    p = torch.tensor([0.9, 0.6, 0.1])
    assert close(line(out, "surprise if the label is 1, -log(p):"),
                 F.binary_cross_entropy(p, torch.ones(3), reduction="none"))
    assert close(line(out, "surprise if the label is 0, -log(1 - p):"),
                 F.binary_cross_entropy(p, torch.zeros(3), reduction="none"))


def test_per_element_losses_and_their_mean_are_torchs(nb):
    assert close(line(printed(cell(nb, "claim:per-element")), "per-element losses:"),
                 F.binary_cross_entropy(ARTICLE_P, ARTICLE_Y, reduction="none"))
    out = printed(cell(nb, "claim:mean"))
    assert line(out, "N:") == [ARTICLE_P.numel()]
    assert close(line(out, "mean of the per-element losses:"), F.binary_cross_entropy(ARTICLE_P, ARTICLE_Y))
    out = printed(cell(nb, "claim:module"))
    assert close(line(out, "nn.BCELoss:"), nn.BCELoss()(ARTICLE_P, ARTICLE_Y))
    assert close(line(out, "F.binary_cross_entropy:"), F.binary_cross_entropy(ARTICLE_P, ARTICLE_Y))
    assert "both equal the hand computation: True" in out


def test_the_mean_loss_is_the_negative_log_likelihood_over_n(nb):
    out = printed(cell(nb, "claim:nll"))
    p, y = torch.tensor([0.9, 0.6, 0.1, 0.8]), torch.tensor([1.0, 0.0, 0.0, 1.0])
    likelihood = Bernoulli(probs=p).log_prob(y).exp()
    assert close(line(out, "P(y_i | p_i):"), likelihood)
    loss = F.binary_cross_entropy(p, y)
    for label in ("-log(product) / N:", "-mean of Bernoulli(p).log_prob(y):", "F.binary_cross_entropy(p, y):"):
        assert close(line(out, label), loss), label
    # minimising the mean BCE maximises the likelihood: the two orders agree on random predictions
    g = torch.Generator().manual_seed(1)
    candidates = torch.rand(50, 4, generator=g, dtype=torch.float64)
    losses = torch.stack([F.binary_cross_entropy(c, y.double()) for c in candidates])
    likelihoods = Bernoulli(probs=candidates).log_prob(y.double()).sum(dim=1).exp()
    assert torch.equal(losses.argsort(), likelihoods.argsort(descending=True))


def test_the_article_example_prints_torchs_loss_and_gradient(nb):
    seed = cell(nb, "seed:001-1")
    out = printed(seed)
    x = ARTICLE_P.clone().requires_grad_(True)
    loss = nn.BCELoss()(x, ARTICLE_Y)
    loss.backward()
    assert close(line(out, "loss:"), loss.detach())
    assert close(line(out, "input.grad:"), x.grad)
    assert "grad_fn=<BinaryCrossEntropyBackward0>" in out and loss.grad_fn.name() == "BinaryCrossEntropyBackward0"
    assert "same number as above" in markdown_after(nb, seed)
    assert line(out, "loss:") == line(printed(cell(nb, "claim:mean")), "mean of the per-element losses:")


# --- the prediction exercise, entropy and KL ------------------------------------------------

def test_the_predicted_quantities_are_the_entropy_and_the_target(nb):
    exercises._load()
    best_loss = exercises.QUANTITIES["01-soft-target-best-loss"]
    best_p = exercises.QUANTITIES["01-soft-target-best-p"]
    entropy = Bernoulli(probs=torch.tensor(0.3, dtype=torch.float64)).entropy()
    assert torch.isclose(best_loss.compute(), entropy, rtol=0, atol=1e-12)
    assert torch.isclose(best_p.compute(), torch.tensor(0.3, dtype=torch.float64), rtol=0, atol=1e-9)
    text = by_grade_id(nb, "bce_vector_predict_exercise").source
    assert f"within {best_loss.rtol * 100:g} %" in text and f"within {best_loss.atol:g}" in text
    assert (best_p.rtol, best_p.atol) == (best_loss.rtol, best_loss.atol)


def test_the_prediction_checks_pass_the_solution_and_fail_common_mistakes(nb):
    solution = by_grade_id(nb, "bce_vector_predict_solution").source
    namespace = {}
    exec(solution, namespace)
    assert grader.check_prediction(namespace["best_loss"], "01-soft-target-best-loss").passed
    assert grader.check_prediction(namespace["best_p"], "01-soft-target-best-p").passed
    assert not grader.check_prediction(0.0, "01-soft-target-best-loss").passed          # "0 at p = y"
    in_bits = Bernoulli(probs=torch.tensor(0.3, dtype=torch.float64)).entropy() / math.log(2)
    assert not grader.check_prediction(in_bits.item(), "01-soft-target-best-loss").passed  # log2, not log
    assert not grader.check_prediction(0.5, "01-soft-target-best-p").passed
    # the student copy keeps what precedes the solution: both names exist, as None, so that the
    # test fails with the check's message (an AssertionError), not with a NameError
    before = {}
    exec(solution.split("### BEGIN SOLUTION")[0], before)
    assert before["best_p"] is None and before["best_loss"] is None
    assert "should be a number" in str(grader.check_prediction(None, "01-soft-target-best-loss"))
    test = by_grade_id(nb, "bce_vector_predict")
    assert not [o for o in test.outputs if o.output_type == "error"]
    calls = verdict.checks_in(test.source)
    assert [(c[0], c[1]["key"], c[2]) for c in calls] == [
        ("assert_prediction", "01-soft-target-best-loss", "best_loss"),
        ("assert_prediction", "01-soft-target-best-p", "best_p")]
    visible = test.source.split("### BEGIN HIDDEN TESTS")[0]
    assert "best_loss" in visible and "best_p" not in visible


def test_the_prediction_comes_before_its_answer(nb):
    exercise = nb.cells.index(by_grade_id(nb, "bce_vector_predict_exercise"))
    answer = nb.cells.index(cell(nb, "claim:minimum"))
    assert exercise < answer
    before = "\n".join(c.source for c in nb.cells[:exercise])
    assert "0.61" not in before and "p = y" not in before and "H(y)" not in before


def test_bce_is_entropy_plus_kl(nb):
    out = printed(cell(nb, "claim:entropy-kl"))
    bce = F.binary_cross_entropy(ARTICLE_P, ARTICLE_Y, reduction="none")
    entropy = -(torch.special.xlogy(ARTICLE_Y, ARTICLE_Y) + torch.special.xlogy(1 - ARTICLE_Y, 1 - ARTICLE_Y))
    kl = kl_divergence(Bernoulli(probs=ARTICLE_Y), Bernoulli(probs=ARTICLE_P))
    assert torch.allclose(entropy, Bernoulli(probs=ARTICLE_Y).entropy(), atol=1e-6)
    assert torch.allclose(entropy + kl, bce, atol=1e-6)
    assert close(line(out, "per-element BCE:"), bce)
    assert close(line(out, "H(y):"), entropy)
    assert close(line(out, "KL(y || p):"), kl)
    assert close(line(out, "H(y) + KL(y || p):"), bce)
    # "the KL part is by far the largest for the second element"
    assert kl.argmax() == 1 and kl[1] > 5 * kl[[0, 2, 3, 4]].max()


def test_kl_is_never_negative_and_zero_only_at_p_equal_y():
    y = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    p = torch.linspace(0.001, 0.999, 999, dtype=torch.float64)
    grid_y, grid_p = torch.meshgrid(y, p, indexing="ij")
    kl = kl_divergence(Bernoulli(probs=grid_y), Bernoulli(probs=grid_p))
    assert (kl >= -1e-12).all()
    assert kl_divergence(Bernoulli(probs=y), Bernoulli(probs=y)).abs().max() < 1e-12
    assert torch.allclose(p[kl.argmin(dim=1)], y, atol=1e-3)


def test_the_minimum_over_p_is_the_entropy_at_p_equal_y(nb):
    out = printed(cell(nb, "claim:minimum"))
    p = torch.linspace(0, 1, 100001, dtype=torch.float64)
    losses = F.binary_cross_entropy(p, torch.full_like(p, 0.3), reduction="none")
    entropy = Bernoulli(probs=torch.tensor(0.3, dtype=torch.float64)).entropy()
    assert close(line(out, "smallest loss for y = 0.3:"), losses.min(), 6)
    assert close(line(out, "at p ="), p[losses.argmin()], 4) and line(out, "at p =") == [0.3]
    assert close(line(out, "H(0.3):"), entropy, 6) and entropy > 0
    for hard in (0.0, 1.0):  # the prose: for hard targets the minimum is 0, at p = y
        losses = F.binary_cross_entropy(p, torch.full_like(p, hard), reduction="none")
        assert losses.min() == 0 and p[losses.argmin()] == hard


# --- the range check, on the CPU; and on CUDA ------------------------------------------------

def test_out_of_range_arguments_raise_runtime_error_on_the_cpu(nb):
    checked = cell(nb, "claim:range-check")
    assert 'torch.device("cpu")' in checked.source and "device=cpu" in checked.source
    out = printed(checked)
    cases = {"logits as the input": ([2.0, -1.0, 0.5], [1.0, 0.0, 1.0]),
             "a target above 1": ([0.2, 0.7, 0.5], [0.0, 1.5, 0.5]),
             "nan in the input": ([0.2, float("nan"), 0.5], [0.0, 1.0, 0.5]),
             "nan in the target": ([0.2, 0.7, 0.5], [0.0, float("nan"), 0.5])}
    for name, (i, t) in cases.items():
        with pytest.raises(RuntimeError) as raised:
            nn.BCELoss()(torch.tensor(i, device="cpu"), torch.tensor(t, device="cpu"))
        assert f"{name:20} RuntimeError: {raised.value}" in out


def test_no_cell_runs_on_the_gpu_but_the_setup(nb):
    for c in nb.cells[2:]:
        if c.cell_type == "code":
            code = c.source
            assert "cuda" not in code.lower() and "device)" not in code and "to(device" not in code, code


@pytest.mark.cuda
def test_on_cuda_an_out_of_range_input_is_a_device_side_assert_that_breaks_the_context():
    """What the prose says of CUDA, in a process of its own (its CUDA context is lost)."""
    script = (
        "import torch, torch.nn.functional as F\n"
        "first = later = ''\n"
        "try:\n"
        "    F.binary_cross_entropy(torch.tensor([2.0], device='cuda'), torch.tensor([1.0], device='cuda'))\n"
        "    torch.cuda.synchronize()\n"
        "except RuntimeError as e:\n"
        "    first = str(e)\n"
        "try:\n"
        "    torch.ones(1, device='cuda') + 1\n"
        "    torch.cuda.synchronize()\n"
        "except RuntimeError as e:\n"
        "    later = str(e)\n"
        "print(repr((first, later)))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    first, later = eval(done.stdout.strip().splitlines()[-1])
    assert "device-side assert" in first
    assert later, "a CUDA call after the assert should fail too"


def test_logits_inside_the_range_pass_the_check_with_a_wrong_loss(nb):
    out = printed(cell(nb, "claim:small-logits"))
    logits, labels = torch.tensor([0.3, 0.8]), torch.tensor([1.0, 0.0])
    wrong, right = nn.BCELoss()(logits, labels), nn.BCEWithLogitsLoss()(logits, labels)
    assert close(line(out, "nn.BCELoss on the logits (wrong):"), wrong)
    assert close(line(out, "nn.BCEWithLogitsLoss (right):"), right)
    assert not torch.isclose(wrong, right)


def test_shapes_that_differ_raise_value_error_even_when_they_broadcast(nb):
    out = printed(cell(nb, "claim:shape-error"))
    assert torch.broadcast_shapes((3, 1), (3,)) == (3, 3)
    with pytest.raises(ValueError) as raised:
        nn.BCELoss()(torch.full((3, 1), 0.5), torch.ones(3))
    assert out.strip() == f"ValueError: {raised.value}"


# --- the clamp at -100 and log1p ----------------------------------------------------------------

def test_each_log_is_clamped_at_minus_100(nb):
    out = printed(cell(nb, "claim:edges"))
    p, y = torch.tensor([0.0, 0.0, 1.0, 1.0]), torch.tensor([1.0, 0.0, 0.0, 1.0])
    torch_says = F.binary_cross_entropy(p, y, reduction="none")
    assert torch_says.tolist() == [100.0, 0.0, 100.0, 0.0]  # certain and wrong: 100; certain and right: 0
    literal = line(out, "the formula taken literally:")
    assert literal[0] == literal[2] == math.inf and math.isnan(literal[1]) and math.isnan(literal[3])
    assert line(out, "log terms clamped at -100:") == torch_says.tolist()
    assert line(out, "torch, reduction='none':") == torch_says.tolist()
    assert "-0." in out and "`-0.` is a zero" in cell(nb, "claim:edges").source + markdown(nb)


def test_torch_computes_the_second_log_with_log1p(nb):
    out = printed(cell(nb, "claim:log1p"))
    p, y = torch.tensor([1e-8]), torch.tensor([0.0])
    assert (1 - p).item() == 1.0
    assert line(out, "1 - p in float32:") == [1.0]
    with_log = -torch.clamp(torch.log(1 - p), min=-100)
    assert with_log.item() == 0 and math.copysign(1, with_log.item()) == -1
    assert "tensor([-0.])" in out
    torch_says = F.binary_cross_entropy(p, y, reduction="none")
    assert torch_says == -torch.clamp(torch.log1p(-p), min=-100)
    assert torch.isclose(torch_says, torch.tensor([1e-8]), rtol=1e-6, atol=0)
    assert line(out, "-clamp(log1p(-p), min=-100):") == line(out, "torch, y = 0, reduction='none':")
    assert abs(line(out, "torch, y = 0, reduction='none':")[0] - torch_says.item()) < 1e-12


def test_torch_matches_log1p_on_a_grid_and_log_differs_by_little(nb):
    out = printed(cell(nb, "claim:log1p-grid"))
    p = torch.cat([torch.logspace(-30, 0, 3001)[:-1], torch.linspace(0, 1, 100001)[:-1]])
    torch_says = F.binary_cross_entropy(p, torch.zeros_like(p), reduction="none")
    by_log1p = -torch.clamp(torch.log1p(-p), min=-100)
    by_log = -torch.clamp(torch.log(1 - p), min=-100)
    # torch's kernel and torch.log1p agree to a float32 step or two everywhere; log(1 - p) loses
    # every digit of p where p is tiny, log1p none
    assert torch.allclose(torch_says, by_log1p, rtol=2.5e-7, atol=0)
    tiny_p = p < 1e-8
    assert (by_log[tiny_p] == 0).all() and torch.allclose(torch_says[tiny_p], p[tiny_p], rtol=2.5e-7, atol=0)
    difference = (torch.log1p(-p) - torch.log(1 - p)).abs()
    worst = difference.argmax()
    loss = -torch.log1p(-p[worst])
    step = torch.nextafter(loss, torch.tensor(math.inf)) - loss
    assert line(out, "largest difference:") == [difference[worst].item(), p[worst].item()]
    assert line(out, "the loss there:") == [loss.item()]
    assert line(out, "one float32 step at the loss:") == [step.item()]
    assert difference.max() < 1e-6 and difference[worst] <= step          # "less than 1e-6: one step"
    tiny = (p > 0) & (p < 1e-6)
    ratio = (difference[tiny] / p[tiny]).max()
    assert ratio <= 1 and line(out, "largest difference / p for 0 < p < 1e-6:") == [ratio.item()]


def test_clamping_the_probabilities_gives_other_values(nb):
    out = printed(cell(nb, "claim:eps-clamp"))
    p = torch.tensor([1e-30, 1e-20, 1e-10])
    torch_says = F.binary_cross_entropy(p, torch.ones(3), reduction="none")
    assert close(line(out, "torch, reduction='none':"), torch_says)
    assert close(line(out, "log terms clamped at -100:"), torch_says)
    assert torch_says[0] < 100  # -log 1e-30 is below the cap
    assert close(line(out, "probabilities clamped at eps:"), -torch.log(torch.tensor(1e-7)).expand(3))


# --- the explorer and the figure -------------------------------------------------------------

@pytest.mark.parametrize("target", [0.0, 0.3, 0.75, 1.0])
def test_the_explorer_draws_torchs_loss_its_terms_and_the_clamp(target):
    p = torch.linspace(0, 1, 401, dtype=torch.float64)
    d = LossVsProbability.data(target, p)
    y = torch.full_like(p, target)
    assert torch.equal(d["loss"], F.binary_cross_entropy(p, y, reduction="none"))
    assert torch.allclose(d["positive"] + d["negative"], d["loss"], atol=1e-9)
    losses = F.binary_cross_entropy(torch.linspace(0, 1, 100001, dtype=torch.float64),
                                     torch.full((100001,), target, dtype=torch.float64), reduction="none")
    assert torch.isclose(d["minimum"][0], losses.min(), atol=1e-9)  # the dot is the minimum, at p = y
    tiny = torch.logspace(-60, 0, 401, dtype=torch.float64)
    assert torch.isclose(LossVsProbability.data(target, tiny)["positive"].max(), torch.tensor(100.0 * target,
                                                                                             dtype=torch.float64))


def test_the_loss_curves_figure_is_drawn(nb):
    figure = cell(nb, "claim:loss-curves")
    assert any("image/png" in o.get("data", {}) for o in figure.outputs)


# --- the gradient ---------------------------------------------------------------------------

def test_central_differences_agree_with_autograd(nb):
    out = printed(cell(nb, "claim:finite-difference"))
    x = ARTICLE_P.clone().requires_grad_(True)
    F.binary_cross_entropy(x, ARTICLE_Y).backward()
    p64, y64 = ARTICLE_P.double().requires_grad_(True), ARTICLE_Y.double()
    F.binary_cross_entropy(p64, y64).backward()
    assert close(line(out, "central differences:"), p64.grad)
    assert close(line(out, "autograd, input.grad:"), x.grad)
    assert close(line(out, "p - y:"), ARTICLE_P - ARTICLE_Y)
    # the prose: the sign of p - y, and by far the largest for the second element
    assert torch.equal(torch.sign(x.grad), torch.sign(ARTICLE_P - ARTICLE_Y))
    magnitude = x.grad.abs()
    assert magnitude.argmax() == 1 and magnitude[1] > 10 * magnitude[[0, 2, 3, 4]].max()


def test_the_floor_keeps_the_gradient_finite_except_in_float16(nb):
    out = printed(cell(nb, "claim:gradient-floor"))
    p, y = [0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]
    for dtype in (torch.float64, torch.float32, torch.bfloat16, torch.float16):
        q = torch.tensor(p, dtype=dtype, requires_grad=True)
        F.binary_cross_entropy(q, torch.tensor(y, dtype=dtype)).backward()
        shown = line(out, str(dtype))
        floor = torch.tensor(1e-12, dtype=dtype).item()
        assert math.isclose(shown[1], floor, rel_tol=1e-4, abs_tol=0), dtype
        grads = shown[2:]
        expected = q.grad.double().tolist()
        assert len(grads) == 4 and all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(grads, expected))
        if dtype == torch.float16:
            assert floor == 0 and grads[:2] == [-math.inf, math.inf] and all(map(math.isnan, grads[2:]))
        else:  # large, of the order of 1e12 / N, but finite
            assert floor > 0 and all(math.isfinite(g) for g in grads)
            assert 0.5 < abs(grads[0]) / (1e12 / len(p)) < 2 and grads[0] < 0 < grads[1]


# --- the exercises --------------------------------------------------------------------------

def _solution(nb, grade_id: str) -> dict:
    code = by_grade_id(nb, grade_id).source.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", "")
    namespace = {"torch": torch}
    exec(code, namespace)
    return namespace


def test_every_test_cell_of_the_master_passes(nb):
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]
    assert len(graded) == 4
    for c in graded:
        assert not [o for o in c.outputs if o.output_type == "error"], c.source


def test_the_loss_with_log_instead_of_log1p_passes_too(nb):
    """Exercise 2 says `torch.log(1 - input)` differs from log1p by less than the check's tolerance."""
    solution = by_grade_id(nb, "bce_vector_solution").source
    assert "torch.log1p(-input)" in solution
    variant = {"torch": torch}
    exec(solution.replace("torch.log1p(-input)", "torch.log(1 - input)"), variant)
    report = grader.check(variant["binary_cross_entropy"], arguments=[],
                          categories=["article examples", "shapes", "edge values", "dtypes", "gradients"])
    assert report.passed, str(report)


def test_the_empty_mean_is_nan_as_the_exercise_says():
    assert F.binary_cross_entropy(torch.empty(0), torch.empty(0)).isnan()


def test_exercise_texts_state_what_their_tests_check(nb):
    ex2 = by_grade_id(nb, "bce_vector_exercise").source
    checked = set()
    for grade_id in ("bce_vector_examples", "bce_vector_edges"):
        for _, params, _ in verdict.checks_in(by_grade_id(nb, grade_id).source):
            checked |= set(params["categories"])
    assert checked == {"article examples", "shapes", "edge values", "layouts", "errors", "dtypes", "gradients",
                       "vectorized"}
    for words in ("articles' examples", "every shape", "edge values", "layouts", "errors", "dtypes", "gradients",
                  "whole tensors", "transposed, sliced or expanded"):
        assert words in ex2, words
    ex3 = by_grade_id(nb, "bce_vector_grad_exercise").source
    checked = set()
    for _, params, _ in verdict.checks_in(by_grade_id(nb, "bce_vector_grad").source):
        checked |= set(params["categories"])
    assert checked == {"article examples", "shapes", "layouts", "edge values", "dtypes", "vectorized"}
    for words in ("articles' examples", "any shape", "layout", "edge values", "float16", "whole tensors"):
        assert words in ex3, words


def test_the_derive_exercise_gives_no_formula_for_the_gradient(nb):
    """The gradient is derived in Exercise 3: no cell a student sees writes its formula."""
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("solution"):
            continue
        text = c.source.replace(" ", "")
        for formula in (r"\frac{p-y}", r"\frac{p_i-y_i}", r"-\frac{y}{p}", "(input-target)/", "(p_in-target",
                        "(q_in-t)"):
            assert formula not in text, (formula, c.source[:200])


def test_the_gradient_solution_floors_in_the_inputs_dtype(nb):
    grad = _solution(nb, "bce_vector_grad_solution")["binary_cross_entropy_grad"]
    q = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float16)
    t = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float16)
    x = q.clone().requires_grad_(True)
    F.binary_cross_entropy(x, t).backward()
    mine = grad(q, t)
    assert mine.dtype == torch.float16
    assert torch.equal(mine.isnan(), x.grad.isnan()) and torch.equal(mine[:2], x.grad[:2])


def test_the_prose_makes_no_unproven_claims_kept_from_before(nb):
    text = markdown(nb)
    assert "most common mistake" not in text and "numerically safer way" not in text
    assert "shows no output" not in text
    assert "http" not in text.split("## Further reading")[1]   # no guessed addresses
    assert "device-side assert" in text and "on the CPU" in text


def test_the_master_is_clean():
    master = nbformat.read(release.master_path(NAME), as_version=4)
    for c in master.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None
    tags = [t for c in master.cells for t in c.metadata.get("tags", []) if t.startswith("claim:")]
    assert len(tags) == len(set(tags))
