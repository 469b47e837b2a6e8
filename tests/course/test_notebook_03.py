"""Notebook 03, sigmoid then BCELoss: every number its tagged cells print and every number
its prose states about torch, recomputed here with torch."""

import math
import re

import nbformat
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from notebook_outputs import cell, executed_master, numbers, printed, tagged, without_badge

import grader
from grader import articles
from grader._battery.exercises import QUANTITIES, _load
from grader._battery.items import n03
from grader.explore import LossVsLogit
from grader.instructor import release, verdict

NAME = "03-sigmoid-then-bce"
F32 = torch.float32
EPS = torch.finfo(F32).eps


@pytest.fixture(scope="module")
def nb():
    return executed_master(NAME)


@pytest.fixture(scope="module")
def source():
    """The master as written, without outputs."""
    return nbformat.read(release.master_path(NAME), as_version=4)


def out(nb, tag: str) -> str:
    return printed(cell(nb, tag))


def line(text: str, label: str) -> str:
    """What follows ``label`` on the one line of ``text`` that starts with it."""
    found = [row[len(label):] for row in text.splitlines() if row.startswith(label)]
    assert len(found) == 1, (label, text)
    return found[0]


def markdown(nb, start: str) -> str:
    """The markdown cell whose source starts with ``start``."""
    found = [c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith(start)]
    assert len(found) == 1, start
    return found[0]


def every_float32(low: float, high: float) -> torch.Tensor:
    """Every float32 number in [low, high), 0 <= low < high, in increasing order."""
    lo, hi = torch.tensor([low, high], dtype=F32).view(torch.int32).tolist()
    return torch.arange(lo, hi, dtype=torch.int32).view(F32)


def first_float32(condition, low: float, high: float) -> float:
    """The first float32 in [low, high) where ``condition`` holds, checked to hold from there on."""
    x = every_float32(low, high)
    holds = condition(x)
    index = int(holds.nonzero()[0])
    assert bool(holds[index:].all()) and not bool(holds[:index].any())
    return x[index].item()


def sigmoid_then_bce_point(z: float, y: float, dtype=F32):
    """(loss, gradient) at one logit for sigmoid then BCE, and for BCE with logits."""
    results = []
    for fn in (lambda a, t: F.binary_cross_entropy(torch.sigmoid(a), t), F.binary_cross_entropy_with_logits):
        logit = torch.tensor(z, dtype=dtype, requires_grad=True)
        loss = fn(logit, torch.tensor(y, dtype=dtype))
        loss.backward()
        results += [loss.item(), logit.grad.item()]
    return results


def close(a: float, b: float, rel: float = 1e-5, abs_: float = 0.0) -> bool:
    return abs(a - b) <= abs_ + rel * abs(b)


# --- the thresholds, by scanning every float32 -----------------------------------------------------

@pytest.fixture(scope="module")
def thresholds():
    one = first_float32(lambda z: torch.sigmoid(z) == 1.0, 16.0, 17.0)
    fades = -first_float32(lambda m: torch.sigmoid(-m) * (1 - torch.sigmoid(-m)) < 1e-12, 27.0, 28.0)
    zero = -first_float32(lambda m: torch.sigmoid(-m) == 0.0, 88.0, 89.0)
    rounded_once = first_float32(lambda z: torch.sigmoid(z.double()).float() == 1.0, 17.0, 18.0)
    half = first_float32(lambda m: torch.sigmoid(-m) < 0.5, 1.5e-7, 2.2e-7)
    return {"one": one, "fades": fades, "zero": zero, "rounded_once": rounded_once, "half": half}


def test_every_claim_cell_is_there_and_the_article_example_is_seeded_by_its_key(nb, source):
    tags = {t for c in nb.cells for t in c.metadata.get("tags", []) if t.startswith("claim:")}
    assert tags == {"claim:" + t for t in (
        "logits-refused", "sigmoid-formula", "threshold", "article-tensors", "soft-floor", "sigmoid-derivative",
        "article-grad", "bounded", "sigmoid-one", "rounded-once", "z20-loss", "z20-grad", "both-sides",
        "docstring", "likelihood", "row-gradient", "convex", "predict-reveal", "chain-rule-fails")}
    seed_cell = cell(source, "seed:002-1")
    assert 'torch.manual_seed(grader.articles.seed("002-1"))' in seed_cell.source
    assert "SEED" not in seed_cell.source
    assert 'grader.articles.seed("002-1")' in markdown(source, "## The article's example")


def test_bce_refuses_logits_outside_0_1_but_not_inside(nb):
    text = out(nb, "claim:logits-refused")
    z = torch.tensor([-4.0, -1.5, 0.0, 0.8, 6.0])
    y = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0])
    with pytest.raises(RuntimeError) as error:
        F.binary_cross_entropy(z, y)
    assert line(text, "RuntimeError: ") == str(error.value)
    z_small, y_small = torch.tensor([0.2, 0.9]), torch.tensor([0.0, 1.0])
    wrong = F.binary_cross_entropy(z_small, y_small).item()
    right = F.binary_cross_entropy_with_logits(z_small, y_small).item()
    assert float(line(text, "logits read as probabilities:")) == wrong
    assert float(line(text, "the loss of these logits:")) == right
    assert not close(wrong, right, rel=0.1)


def test_the_sigmoid_by_formula_agrees_up_to_rounding_not_to_the_bit(nb):
    text = out(nb, "claim:sigmoid-formula")
    zs = torch.linspace(-10, 10, 201)
    assert line(text, "nn.Sigmoid()(z) equals torch.sigmoid(z) exactly: ") == str(torch.equal(nn.Sigmoid()(zs), torch.sigmoid(zs)))
    difference = (1 / (1 + torch.exp(-zs)) - torch.sigmoid(zs)).abs().max().item()
    assert float(text.split("largest difference:")[1].split()[0]) == difference
    assert 0 < difference <= EPS  # "not always to the last bit", "about 10^-7"
    assert "about $10^{-7}$" in markdown(nb, "## The sigmoid")
    shown = numbers(line(text, "sigmoid of the logits above:"))
    expected = torch.sigmoid(torch.tensor([-4.0, -1.5, 0.0, 0.8, 6.0])).tolist()
    assert all(abs(a - b) <= 5e-5 for a, b in zip(shown, expected))


def test_the_threshold_on_p_and_on_z_differ_only_for_tiny_negative_logits(nb, thresholds):
    text = out(nb, "claim:threshold")
    z = torch.tensor([-4.0, -1.5, 0.0, 0.8, 6.0])
    assert line(text, "same decisions: ") == str(torch.equal(torch.sigmoid(z) >= 0.5, z >= 0))
    tiny = torch.tensor(-1e-7)
    assert line(text, "z = -1e-7: sigmoid(z) = ") == (
        f"{torch.sigmoid(tiny).item()} | p >= 0.5: {(torch.sigmoid(tiny) >= 0.5).item()} | z >= 0: {(tiny >= 0).item()}")
    assert torch.sigmoid(tiny).item() == 0.5
    # "negative logits closer to 0 than about 1.8 x 10^-7"
    assert f"{thresholds['half']:.1e}" == "1.8e-07"
    assert r"$1.8 \times 10^{-7}$" in markdown(nb, "### The sigmoid does not classify")


def test_the_article_example_and_its_gradient(nb):
    logits = articles.logits_of("002-1")
    x = logits["input"].clone().requires_grad_(True)
    loss = nn.BCELoss()(torch.sigmoid(x), logits["target"])
    loss.backward()
    assert out(nb, "claim:article-tensors").split() == "same probabilities: True same target: True".split()
    floor = out(nb, "claim:soft-floor")
    assert float(line(floor, "loss of the article's prediction:")) == loss.item()
    assert float(line(floor, "smallest possible loss (p = y):")) == \
        F.binary_cross_entropy(logits["target"], logits["target"]).item()
    grad = out(nb, "claim:article-grad")
    by_hand = (torch.sigmoid(logits["input"]) - logits["target"]) / 6
    assert all(abs(a - b) <= 5e-5 for a, b in zip(numbers(grad.split("equals")[0]), by_hand.flatten().tolist()))
    assert line(grad, "equals input.grad: ") == str(torch.allclose(x.grad, by_hand))


def test_the_sigmoid_derivative_and_the_bounded_gradient(nb):
    zg = torch.linspace(-6, 6, 13, requires_grad=True)
    torch.sigmoid(zg).sum().backward()
    s = torch.sigmoid(zg.detach())
    text = out(nb, "claim:sigmoid-derivative")
    assert all(abs(a - b) <= 5e-5 for a, b in zip(numbers(text.split("equals")[0]), zg.grad.tolist()))
    assert line(text, "equals s * (1 - s):").strip() == str(torch.allclose(zg.grad, s * (1 - s)))

    zb = torch.tensor([-10.0, -3.0, 0.0, 3.0, 10.0], requires_grad=True)
    pb = torch.sigmoid(zb)
    pb.retain_grad()
    F.binary_cross_entropy(pb, torch.ones(5), reduction="sum").backward()
    text = out(nb, "claim:bounded")
    for label, values in (("p          :", pb.detach()), ("d loss / dp:", pb.grad), ("d loss / dz:", zb.grad)):
        assert all(close(a, b, rel=1e-3) for a, b in zip(numbers(line(text, label)), values.tolist()))
    assert zb.grad.abs().max() <= 1
    # "caps it at 10^12": the floor of BCELoss's backward
    p0 = torch.tensor([0.0], requires_grad=True)
    F.binary_cross_entropy(p0, torch.ones(1)).backward()
    assert close(-p0.grad.item(), 1e12, rel=1e-6)


def test_sigmoid_is_1_from_24_ln_2_because_1_plus_exp_rounds_to_1(nb, thresholds):
    text = out(nb, "claim:sigmoid-one")
    one = thresholds["one"]
    assert numbers(line(text, "eps, the spacing of float32 above 1:")) == [EPS, 2, -23, 2, EPS / 2]
    assert EPS == 2 ** -23 == torch.nextafter(torch.tensor(1.0), torch.tensor(2.0)).item() - 1
    assert numbers(line(text, "first float32 z with sigmoid(z) == 1:")) == [one, 24, 2, 24 * math.log(2)]
    below = torch.nextafter(torch.tensor(one), torch.tensor(0.0))
    for label, z in (("the float32 just below:", below), ("that first z          :", torch.tensor(one))):
        e = torch.exp(-z)
        assert line(text, label) == (
            f" z = {z.item():.7f}, exp(-z) = {e.item():.7e}, exp(-z) <= eps / 2: {e.item() <= EPS / 2}, "
            f"1 + exp(-z) == 1: {(1 + e == 1).item()}, sigmoid(z) = {torch.sigmoid(z).item()!r}")
    # the mechanism, on every float32 from 16 to 17: sigmoid is 1 exactly where 1 + exp(-z) rounds to 1,
    # which is where exp(-z) is at most half the spacing eps
    z = every_float32(16.0, 17.0)
    assert torch.equal(torch.sigmoid(z) == 1, 1 + torch.exp(-z) == 1)
    assert torch.equal(torch.sigmoid(z) == 1, torch.exp(-z) <= EPS / 2)
    assert abs(one - 24 * math.log(2)) < 1e-6
    text = markdown(nb, "## Where the sigmoid reaches 1 in float32")
    assert f"$z = {one:.2f}$" in text and f"{24 * math.log(2):.2f}" == "16.64" and r"24 \ln 2 \approx 16.64" in text
    assert f"{EPS:.2e}" == "1.19e-07" and r"2^{-23} \approx 1.19 \times 10^{-7}" in text
    assert f"{EPS / 2:.2e}" == "5.96e-08" and r"2^{-24} \approx 5.96 \times 10^{-8}" in text


def test_a_correctly_rounded_sigmoid_would_reach_1_only_at_25_ln_2(nb, thresholds):
    text = out(nb, "claim:rounded-once")
    z17 = torch.tensor(17.0)
    assert float(line(text, "torch.sigmoid(17.) in float32:")) == torch.sigmoid(z17).item() == 1.0
    once = torch.sigmoid(z17.double()).float().item()
    assert numbers(line(text, "sigmoid(17.) in float64, then float32:")) == [once, 1, 2, -24, 1 - 2 ** -24]
    assert once == 1 - 2 ** -24 == torch.nextafter(torch.tensor(1.0), torch.tensor(0.0)).item()
    assert numbers(line(text, "first float32 z where that is 1:")) == [thresholds["rounded_once"], 25, 2, 25 * math.log(2)]
    sig20 = torch.sigmoid(torch.tensor(-20.0)).item()
    assert float(line(text, "torch.sigmoid(-20.):")) == sig20
    words = markdown(nb, "The true $\\sigma(z)$ is still below 1")
    assert f"{once:.8f}" == "0.99999994" and "0.99999994" in words
    assert f"{thresholds['rounded_once']:.2f}" == "17.33" and r"25 \ln 2 \approx 17.33" in words
    assert f"{sig20:.0e}" == "2e-09" and r"\sigma(-20) \approx 2 \times 10^{-9}" in words


def test_class_0_at_z_20_a_clamped_loss_and_no_gradient(nb):
    text = out(nb, "claim:z20-loss")
    z20, y0 = torch.tensor(20.0), torch.tensor(0.0)
    assert float(line(text, "sigmoid, then BCELoss:")) == F.binary_cross_entropy(torch.sigmoid(z20), y0).item() == 100
    assert float(line(text, "binary_cross_entropy_with_logits:")) == F.binary_cross_entropy_with_logits(z20, y0).item()
    assert close(math.log1p(math.exp(20)), 20, rel=1e-8)  # "about 20"
    za = torch.tensor(20.0, requires_grad=True)
    pa = torch.sigmoid(za)
    pa.retain_grad()
    F.binary_cross_entropy(pa, y0).backward()
    text = out(nb, "claim:z20-grad")
    assert float(line(text, "BCELoss's gradient with respect to p:")) == pa.grad.item()
    assert close(pa.grad.item(), 1e12, rel=1e-6)  # "1 / 10^-12 = 10^12"
    assert float(line(text, "gradient, sigmoid then BCELoss:")) == za.grad.item() == 0
    zb = torch.tensor(20.0, requires_grad=True)
    F.binary_cross_entropy_with_logits(zb, y0).backward()
    assert float(line(text, "gradient, binary_cross_entropy_with_logits:")) == zb.grad.item() == 1


def test_both_sides_table_and_thresholds(nb, thresholds):
    text = out(nb, "claim:both-sides")
    rows = [r for r in text.splitlines() if re.match(r"^ [01] ", r)]
    assert len(rows) == 17
    for row in rows:
        y, z, loss_s, loss_l, grad_s, grad_l = numbers(row)
        expected = sigmoid_then_bce_point(z, y)
        for shown, value in zip((loss_s, grad_s, loss_l, grad_l), expected):
            assert close(shown, value, rel=1e-5, abs_=1e-30), (row, expected)
        assert z != -30.0  # the prediction of exercise 1 is not in the table
    assert float(line(text, "y = 0: sigmoid(z) == 1, loss clamped, gradient 0, from z =")) == thresholds["one"]
    assert numbers(line(text, "y = 1: p(1 - p) below 1e-12, gradient fading, from z =")) == [
        thresholds["fades"], 1e-12, math.log(1e-12)]
    largest = torch.finfo(F32).max
    assert numbers(line(text, "y = 1: sigmoid(z) == 0, loss clamped, from z =")) == [
        thresholds["zero"], 32, -math.log(largest)]
    assert abs(thresholds["fades"] - math.log(1e-12)) < 1e-5 and abs(thresholds["zero"] + math.log(largest)) < 1e-5


def test_what_the_prose_says_about_the_two_sides(nb, thresholds):
    text = markdown(nb, "### Class 1 and a very negative logit")
    assert f"{thresholds['zero']:.2f}" == "-88.72" and "z \\approx -88.72" in text
    assert f"{math.exp(88.72):.1e}" == "3.4e+38" == f"{torch.finfo(F32).max:.1e}" and r"3.4 \times 10^{38}" in text
    assert f"{torch.finfo(F32).tiny:.0e}" == "1e-38" and "10^{-38}" in text
    assert f"{thresholds['fades']:.2f}" == "-27.63" and r"\ln 10^{-12} \approx -27.63" in text
    assert f"{sigmoid_then_bce_point(-28.0, 1.0)[1]:.2f}" == "-0.69" and "$-0.69$ at $z = -28$" in text
    assert f"{sigmoid_then_bce_point(-50.0, 1.0)[1]:.0e}" == "-2e-10" and r"-2 \times 10^{-10}$ at $z = -50$" in text
    # for y = 1 the loss is exact down to -88.72 and the gradient right down to -27.63
    z = torch.linspace(-88.7, -1.0, 5000)
    ones = torch.ones_like(z)
    naive = F.binary_cross_entropy(torch.sigmoid(z), ones, reduction="none")
    assert torch.allclose(naive, F.binary_cross_entropy_with_logits(z, ones, reduction="none"), rtol=1e-5)
    for side, zs, target in ((1.0, torch.linspace(-27.6, -1.0, 2000), 1.0), (0.0, torch.linspace(0.0, 16.6, 2000), 0.0)):
        a = zs.clone().requires_grad_(True)
        F.binary_cross_entropy(torch.sigmoid(a), torch.full_like(a, target), reduction="sum").backward()
        assert torch.allclose(a.grad, torch.sigmoid(zs) - target, rtol=1e-5, atol=1e-6), side
    reading = markdown(nb, "Read the table by class.")
    loss16 = sigmoid_then_bce_point(16.0, 0.0)[0]
    assert f"{loss16:.2f}" == "15.94" and "15.94 instead of 16" in reading
    assert f"{thresholds['one']:.2f}" == "16.64" and "16.64" in reading
    assert "$-88.72$" in reading and "$-27.63$" in reading
    fragile = markdown(nb, "So the sigmoid followed by `BCELoss`")
    assert r"z \approx 16.64" in fragile and r"z \approx -27.63" in fragile


def test_the_docstring_sentence_is_torchs(nb):
    sentence = out(nb, "claim:docstring").strip()
    assert sentence.startswith("This version is more numerically stable than using a plain `Sigmoid`")
    assert sentence in " ".join(nn.BCEWithLogitsLoss.__doc__.split())


def test_the_likelihood_and_the_mean_bce(nb):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    w = torch.tensor([1.5, -2.0, 0.5], dtype=torch.float64)
    p = torch.sigmoid(x @ w)
    y = torch.bernoulli(p, generator=g)
    likelihood = torch.prod(p ** y * (1 - p) ** (1 - y))
    text = out(nb, "claim:likelihood")
    assert float(line(text, "likelihood of the 20 labels:")) == likelihood.item()
    assert float(line(text, "-log(likelihood) / 20:")) == (-torch.log(likelihood) / 20).item()
    assert float(line(text, "mean BCE:")) == F.binary_cross_entropy(p, y).item()
    assert close(-math.log(likelihood.item()) / 20, F.binary_cross_entropy(p, y).item(), rel=1e-12)
    x2 = torch.randn(2000, 3, generator=g, dtype=torch.float64)
    p2 = torch.sigmoid(x2 @ w)
    y2 = torch.bernoulli(p2, generator=g)
    assert float(line(text, "likelihood of 2000 labels:")) == torch.prod(p2 ** y2 * (1 - p2) ** (1 - y2)).item() == 0.0
    assert float(line(text, "their mean BCE:")) == F.binary_cross_entropy(p2, y2).item()


def test_the_gradient_of_one_row_and_the_convexity(nb):
    x = torch.tensor([0.5, -1.0, 2.0])
    w = torch.tensor([0.3, 0.8, -0.4], requires_grad=True)
    F.binary_cross_entropy_with_logits(x @ w, torch.tensor(1.0)).backward()
    text = out(nb, "claim:row-gradient")
    by_formula = (torch.sigmoid(x @ w.detach()) - 1) * x
    assert torch.allclose(w.grad, by_formula)
    assert all(abs(a - b) <= 5e-5 for a, b in zip(numbers(line(text, "autograd:")), w.grad.tolist()))
    assert all(abs(a - b) <= 5e-5 for a, b in zip(numbers(line(text, "(sigmoid(z) - y) * x:")), by_formula.tolist()))

    g = torch.Generator().manual_seed(0)
    xd = torch.randn(20, 3, generator=g, dtype=torch.float64)
    yd = torch.bernoulli(torch.sigmoid(xd @ torch.tensor([1.5, -2.0, 0.5], dtype=torch.float64)), generator=g)

    def mean_loss(v):
        return F.binary_cross_entropy_with_logits(xd @ v, yd)

    g_w = torch.Generator().manual_seed(1)
    w_any = torch.randn(3, generator=g_w, dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(mean_loss, w_any)
    pa = torch.sigmoid(xd @ w_any)
    text = out(nb, "claim:convex")
    shown = numbers(text.split("equals")[0].split("dtype")[0])
    assert all(abs(a - b) <= 5e-5 for a, b in zip(shown, hessian.flatten().tolist()))
    assert torch.allclose(hessian, (xd.T * (pa * (1 - pa))) @ xd / 20)
    assert line(text, "equals the mean of p(1 - p) x x^T: ") == "True"
    smallest = min(torch.linalg.eigvalsh(torch.autograd.functional.hessian(
        mean_loss, 3 * torch.randn(3, generator=g_w, dtype=torch.float64))).min().item() for _ in range(100))
    assert float(line(text, "smallest eigenvalue over 100 random w:")) == smallest >= 0


def test_the_explorer_shows_what_its_text_says():
    z = torch.linspace(-8, 8, 401, dtype=torch.float64)
    explorer = LossVsLogit(target=1.0, pos_weight=1.0)
    assert explorer.z.dtype == torch.float64 and (explorer.z.min().item(), explorer.z.max().item()) == (-8.0, 8.0)
    for target in (0.0, 0.3, 1.0):
        data = LossVsLogit.data(target, 1.0, z)
        naive = F.binary_cross_entropy(torch.sigmoid(z), torch.full_like(z, target), reduction="none")
        assert torch.allclose(data["loss_plain"], naive, rtol=1e-9, atol=1e-12)
        assert torch.allclose(data["grad_plain"], torch.sigmoid(z) - target)
        assert data["grad_plain"].abs().max() <= 1


def test_the_prediction_exercise(nb, source):
    _load()
    text = out(nb, "claim:predict-reveal")
    for dtype in (torch.float32, torch.float64):
        for z, y in ((-30.0, 1.0), (30.0, 0.0)):
            _, grad_s, _, grad_l = sigmoid_then_bce_point(z, y, dtype)
            label = f"{str(dtype):13} z = {z:+.0f}, y = {y:.0f}:"
            assert line(text, label) == f" sigmoid then BCE {grad_s:+.6g}, with logits {grad_l:+.6g}"
    f32 = QUANTITIES["03-grad-at-minus-30"].compute().item()
    f64 = QUANTITIES["03-grad-at-minus-30-float64"].compute().item()
    assert (f32, f64) == (sigmoid_then_bce_point(-30.0, 1.0)[1], sigmoid_then_bce_point(-30.0, 1.0, torch.float64)[1])
    # the master's answer, from the mechanism, passes; the exact gradient and 0 do not
    for key in ("03-grad-at-minus-30", "03-grad-at-minus-30-float64"):
        assert grader.check_prediction(-math.exp(-30) / 1e-12, key).passed
        assert not grader.check_prediction(-1.0, key).passed and not grader.check_prediction(0.0, key).passed
    task = markdown(source, "## Exercise 1 (predict)")
    assert f"{math.exp(-30):.2e}" == "9.36e-14" and r"e^{-30} \approx 9.36 \times 10^{-14}" in task
    q = QUANTITIES["03-grad-at-minus-30"]
    assert (q.atol, q.rtol) == (0.001, 0.02) and r"$0.001 + 2\,\%$" in task
    after = markdown(nb, "More precision does not help.")
    assert f"{torch.finfo(torch.float64).eps:.0e}" == "2e-16" and "about $10^{-16}$" in after
    for sign in (1, -1):  # in float64 the gradient fades on both sides beyond |z| ~ 27.6
        zs = sign * torch.linspace(27.0, 28.0, 10001, dtype=torch.float64)
        p = torch.sigmoid(zs)
        crossing = zs[(p * (1 - p) < 1e-12)].abs().min().item()
        assert f"{crossing:.1f}" == "27.6"
    assert "27.6" in after


def _chain_rule_grad(source):
    code = cell(source, "claim:chain-rule-fails").source.split("chain_rule_report = grader.check(")[0]
    namespace = {"torch": torch}
    exec(code, namespace)
    return namespace["chain_rule_grad"]


def test_the_debug_exercise(nb, source):
    chain_rule_grad = _chain_rule_grad(source)
    report = grader.check(chain_rule_grad, "binary_cross_entropy_with_logits_grad")
    shown = out(nb, "claim:chain-rule-fails")
    statuses = {c.name: c.status for c in report.categories.values()}
    for name, status in statuses.items():
        assert re.search(rf"^  {status.replace('failed', 'FAILED')}\s+{name}", shown, re.M), (name, status)
    assert sorted(report.failed_categories()) == ["dtypes", "edge values"]
    assert all(statuses[c] == "passed" for c in ("article examples", "shapes", "layouts"))  # "right for ordinary logits"
    # the written answer: at z = 20, y = 0 it gives 0 instead of 1 / N; sigma(20) is 1 - 2e-9
    assert chain_rule_grad(torch.tensor([20.0]), torch.tensor([0.0])).item() == 0
    x = torch.tensor([20.0], requires_grad=True)
    F.binary_cross_entropy_with_logits(x, torch.tensor([0.0])).backward()
    assert x.grad.item() == 1
    assert f"{1 - torch.sigmoid(torch.tensor(20.0, dtype=torch.float64)).item():.0e}" == "2e-09"
    # what the text says the tests run is what they run
    tests = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "sigmoid_grad"][0].source
    visible, hidden = tests.split("### BEGIN HIDDEN TESTS")
    assert [p["categories"] for _, p, _ in verdict.checks_in(visible)] == [["article examples", "shapes", "edge values"]]
    assert [p["categories"] for _, p, _ in verdict.checks_in(hidden)] == [["layouts", "dtypes", "vectorized"]]


def test_the_derive_exercise(source):
    solution = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "logistic_solution"][0]
    namespace = {"torch": torch}
    exec(solution.source, namespace)
    logistic_gradient = namespace["logistic_gradient"]
    for key in ("03-logistic-gradient", "03-logistic-gradient-edges"):
        assert grader.check_matches(logistic_gradient, key).passed, key
        assert not grader.check_matches(lambda x, w, y: x.T @ (torch.sigmoid(x @ w) - y), key).passed
        assert not grader.check_matches(lambda x, w, y: logistic_gradient(x, w, y).double(), key).passed

    def chain(x, w, y):  # the chain rule one factor at a time: 0 / 0 where the sigmoid saturates
        p = torch.sigmoid(x @ w)
        return x.T @ ((p - y) / (p * (1 - p)) * (p * (1 - p))) / x.shape[0]

    assert grader.check_matches(chain, "03-logistic-gradient").passed
    assert not grader.check_matches(chain, "03-logistic-gradient-edges").passed
    # the cases are the ones the text describes
    task = markdown(source, "## Exercise 3 (derive)")
    visible = [args for _, args in n03._cases()]
    assert [tuple(a["x"].shape) for a in visible] == [(8, 3), (200, 5), (30, 4)]
    assert all(a["x"].dtype == torch.float32 for a in visible) and bool((visible[2]["x"][:, -1] == 1).all())
    assert "8 rows and 3 features" in task and "200 rows and 5 features" in task and "30 rows" in task
    edges = dict(n03._edge_cases())
    large = [a for name, a in edges.items() if name.startswith("logits from")]
    logits = torch.cat([(a["x"].double() @ a["w"].double()).abs() for a in large])
    assert logits.min() >= 40 and logits.max() >= 200 and "from 40 to several hundred" in task
    assert any(a["x"].shape[0] == 1 for a in edges.values()) and any(a["x"].shape[1] == 1 for a in edges.values())
    assert any(a["x"].dtype == torch.float64 for a in edges.values())
    tests = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "logistic_check"][0].source
    assert [p["key"] for _, p, _ in verdict.checks_in(tests)] == ["03-logistic-gradient", "03-logistic-gradient-edges"]


def test_the_summary_states_the_computed_thresholds(nb, thresholds):
    text = markdown(nb, "## Summary")
    assert r"z \approx 16.64 = 24 \ln 2" in text and r"e^{-z} \le 2^{-24}" in text
    assert f"{thresholds['one']:.2f}" == "16.64" and "z \\ge 16.64" in text
    assert r"z \approx -88.72" in text and r"z \approx -27.63" in text
    assert r"\frac1N X^\top\big(\sigma(Xw) - y\big)" in text
    body = [without_badge(c.source) for c in nb.cells if c.cell_type == "markdown"]
    assert not [t for t in body if "http" in t]  # no links besides the title's badge: the articles give none
    assert tagged(nb, "explorer")
