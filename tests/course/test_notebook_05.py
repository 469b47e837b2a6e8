"""Notebook 05, BCEWithLogitsLoss and pos_weight: every number its tagged cells print and every
claim its prose makes about torch, recomputed here with torch."""

from __future__ import annotations

import inspect
import math
import mmap
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import grader
from grader import articles
from grader.datasets import PROPERTIES
from grader.instructor import verdict
from notebook_outputs import cell, executed_master, markdown_after, numbers, printed, without_badge

NAME = "05-bce-with-logits"
f64 = torch.float64


@pytest.fixture(scope="module")
def nb():
    return executed_master(NAME)


def out(nb, tag: str) -> str:
    return printed(cell(nb, f"claim:{tag}"))


def prose(nb, phrase: str) -> str:
    """The one markdown cell that contains ``phrase``."""
    found = [c.source for c in nb.cells if c.cell_type == "markdown" and phrase in c.source]
    assert len(found) == 1, f"{len(found)} markdown cells contain {phrase!r}"
    return found[0]


def after(text: str, label: str) -> str:
    """What follows ``label`` on its line; a printed tensor is followed to its closing parenthesis."""
    rest = text[text.index(label) + len(label):]
    if rest.lstrip().startswith("tensor("):
        depth = 0
        for end, char in enumerate(rest):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if char == ")" and depth == 0:
                return re.split(r",\s*(?:dtype|grad_fn|requires_grad)=", rest[:end])[0].replace("tensor(", "")
    return rest.split("\n")[0]


def same(printed_values, expected, rtol=1e-3, atol=1e-4):
    """Printed numbers (rounded by print) against torch's: inf and nan where torch has them."""
    expected = torch.as_tensor(expected, dtype=f64).flatten().tolist()
    assert len(printed_values) == len(expected), (printed_values, expected)
    for p, e in zip(printed_values, expected):
        if math.isnan(e) or math.isinf(e):
            assert (math.isnan(p) and math.isnan(e)) or p == e, (printed_values, expected)
        else:
            assert abs(p - e) <= atol + rtol * abs(e), (printed_values, expected)


def check(text: str, pairs, **tolerance):
    """Each ``label`` in ``text`` is followed by torch's ``expected`` values."""
    for label, expected in pairs:
        same(numbers(after(text, label)), expected, **tolerance)


def table(text: str, first, columns, **tolerance):
    """A printed table, header line left out: each row ends with its first column and the others."""
    rows = [numbers(line)[-1 - len(columns):] for line in text.strip().splitlines()[1:] if line.strip()]
    assert len(rows) == len(first), rows
    for i, row in enumerate(rows):
        same(row, [first[i]] + [c[i] for c in columns], **tolerance)


def bce(z, y, **kw):
    return F.binary_cross_entropy_with_logits(z, y, reduction="none", **kw)


def naive(z, y):
    return -(y * torch.log(torch.sigmoid(z)) + (1 - y) * torch.log(1 - torch.sigmoid(z)))


def grad_of(fn, z, *args):
    leaf = z.detach().clone().requires_grad_(True)
    fn(leaf, *args).sum().backward()
    return leaf.grad


def error_of(fn, *args, **kw) -> str:
    with pytest.raises(RuntimeError) as caught:
        fn(*args, **kw)
    return str(caught.value)


def test_the_routes_the_formula_and_its_stable_forms(nb):
    Z, Y = torch.tensor([-3.0, -0.5, 0.0, 2.0, 4.0]), torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    expected = F.binary_cross_entropy_with_logits(Z, Y)
    assert torch.allclose(F.binary_cross_entropy(torch.sigmoid(Z), Y), expected)
    check(out(nb, "same-loss"), [("BCELoss on sigmoid(z):", [expected]), ("BCEWithLogitsLoss on z:", [expected])])
    text = out(nb, "swapped")
    assert f"raises RuntimeError: {error_of(F.binary_cross_entropy, Z, Y)}" in text
    error_of(F.binary_cross_entropy, torch.tensor([0.5, 1.5]), torch.tensor([0.0, 1.0]))   # one outside is enough
    wrong = F.binary_cross_entropy_with_logits(torch.sigmoid(Z), Y)
    check(text, [("(wrong, silently):", [wrong])])
    assert not torch.isclose(wrong, expected)
    y = torch.tensor([0.0, 1.0, 0.3, 0.9, 0.5])
    textbook = -(y * torch.log(torch.sigmoid(Z)) + (1 - y) * torch.log(1 - torch.sigmoid(Z)))
    text = out(nb, "rewritten")
    check(text, [("textbook :", textbook), ("rewritten:", bce(Z, y)), ("torch    :", bce(Z, y))])
    assert "rewritten equals torch exactly: True" in text
    g = torch.Generator().manual_seed(0)
    z, t = 200 * torch.rand(20_000, generator=g, dtype=f64) - 100, torch.rand(20_000, generator=g, dtype=f64)
    for z, t in ((z.to(d), t.to(d)) for d in (torch.float32, f64, torch.float16, torch.bfloat16)):
        assert torch.equal((1 - t) * z - F.logsigmoid(z), bce(z, t)), z.dtype
    z = torch.tensor([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4])
    stable = torch.minimum(z, torch.zeros(())) - torch.log1p(torch.exp(-z.abs()))
    check(out(nb, "logsigmoid"), [("-log(1 + exp(-z))          :", -torch.log(1 + torch.exp(-z))),
                                  ("log(sigmoid(z))            :", torch.log(torch.sigmoid(z))),
                                  ("min(z, 0) - log1p(e^(-|z|)):", stable), ("F.logsigmoid(z)            :", F.logsigmoid(z))])
    for dtype in (torch.float16, torch.bfloat16, torch.float32, f64):   # e^(10^4) is inf, sigmoid(-10^4) is 0
        assert torch.exp(torch.tensor(1e4, dtype=dtype)).isinf() and torch.sigmoid(torch.tensor(-1e4, dtype=dtype)) == 0
    grid = torch.linspace(-200, 200, 400_001)    # "F.logsigmoid returns the same values", up to rounding
    mine = torch.minimum(grid, torch.zeros(())) - torch.log1p(torch.exp(-grid.abs()))
    assert torch.allclose(F.logsigmoid(grid), mine, rtol=2.5e-7, atol=1e-30)
    z = torch.tensor([-1e4, -20.0, -5.0, 0.0, 5.0, 20.0, 88.0, 89.0, 1e4])
    table(out(nb, "log-sum-exp"), z, [torch.log(1 + torch.exp(z)), torch.logsumexp(torch.stack([torch.zeros_like(z), z]), 0),
                                      torch.clamp(z, min=0) + torch.log1p(torch.exp(-z.abs())), F.softplus(z),
                                      F.softplus(z.double())], rtol=1e-7, atol=1e-12)
    assert "(from about $z = 88.7$ in float32)" in prose(nb, "### The trick has a name: log-sum-exp")
    assert round(math.log(torch.finfo(torch.float32).max), 1) == 88.7
    assert torch.exp(torch.tensor(88.7)).isfinite() and torch.exp(torch.tensor(88.8)).isinf()
    grid = torch.linspace(-100, 100, 200_001)    # the max form and F.softplus follow float64 at every logit
    for form in (torch.clamp(grid, min=0) + torch.log1p(torch.exp(-grid.abs())), F.softplus(grid)):
        assert torch.allclose(form.double(), F.softplus(grid.double()), rtol=3e-7, atol=1e-40)
    assert "at $z = -20$, where softplus is $2.1 \\times 10^{-9}$" in markdown_after(nb, cell(nb, "claim:log-sum-exp"))
    assert round(F.softplus(torch.tensor(-20.0, dtype=f64)).item() * 1e9, 1) == 2.1
    assert torch.logsumexp(torch.tensor([0.0, -20.0]), 0) == 0 and 1 + torch.exp(torch.tensor(-20.0)) == 1
    z = torch.tensor([-20.0, -5.0, 0.0, 5.0, 20.0, 50.0])
    table(out(nb, "both-sides"), z, [1 - torch.sigmoid(z), torch.sigmoid(-z), torch.log(1 - torch.sigmoid(z)),
                                     F.logsigmoid(-z)], rtol=1e-7, atol=1e-30)
    truth = torch.sigmoid(torch.tensor(-5.0, dtype=f64))     # z = 5: off in the sixth significant digit
    assert 1e-6 <= abs((1 - torch.sigmoid(torch.tensor(5.0))).double() - truth) / truth < 1e-5
    assert 1 - torch.sigmoid(torch.tensor(20.0)) == 0 and torch.sigmoid(torch.tensor(-20.0)) > 0


def _textbook(max0, absolute):
    return lambda z, y: max0(z) - y * z + torch.log1p(torch.exp(-absolute(z)))


def _shifted(shift):     # softplus(z) - y z with softplus(z) = m + log(e^-m + e^(z - m))
    return lambda z, y: shift(z) + torch.log(torch.exp(-shift(z)) + torch.exp(z - shift(z))) - y * z


def test_autograd_slopes_at_the_kink(nb):
    Y_KINK, MAX0 = torch.tensor([0.0, 1.0, 0.3]), lambda z: torch.maximum(z, torch.zeros_like(z))
    kinked = {"torch.relu(z)": torch.relu, "F.relu(z)": F.relu, "torch.clamp(z, min=0)": lambda z: torch.clamp(z, min=0),
              "torch.maximum(z, torch.zeros_like(z))": MAX0, "torch.abs(z)": torch.abs}
    slopes = {name: grad_of(op, torch.zeros(())).item() for name, op in kinked.items()}
    text = out(nb, "kink-ops")
    check(text, [(f"slope at 0 of {name:38}:", [slope]) for name, slope in slopes.items()])
    assert list(slopes.values()) == [0.0, 0.0, 1.0, 0.5, 0.0]
    torch_grad = grad_of(bce, torch.zeros(3), Y_KINK)
    check(text, [("gradient:", torch_grad)])
    same(numbers(after(text.split("gradient:")[0], "targets")), Y_KINK)
    where_abs = lambda z: torch.where(z >= 0, z, -z)   # noqa: E731
    forms = [_textbook(torch.relu, torch.abs), _textbook(lambda z: torch.clamp(z, min=0), torch.abs),
             _textbook(MAX0, torch.abs), _textbook(MAX0, where_abs), _shifted(torch.relu), bce]
    values_at_0 = [form(torch.zeros(3), Y_KINK)[0] for form in forms]
    grads = [grad_of(form, torch.zeros(3), Y_KINK) for form in forms]
    table(out(nb, "kink-forms"), values_at_0, [[g[i] for g in grads] for i in range(3)])
    assert all(math.isclose(v.item(), math.log(2), rel_tol=1e-6) for v in values_at_0)
    right = 0.5 - Y_KINK      # relu: -y; clamp: 1 - y; maximum and abs: right; maximum and where: -y; shifted: right
    for grad, expected in zip(grads, [-Y_KINK, 1 - Y_KINK, right, -Y_KINK, right, right]):
        assert torch.allclose(grad, expected)
    smooth = [_shifted(lambda z: torch.clamp(z, min=0)), _shifted(MAX0), _shifted(F.relu),
              lambda z, y: F.softplus(z) - y * z, lambda z, y: (1 - y) * z - F.logsigmoid(z)]
    assert all(torch.allclose(grad_of(form, torch.zeros(3), Y_KINK), right) for form in smooth)
    assert "\\log 2 \\approx 0.6931" in markdown_after(nb, cell(nb, "claim:kink-forms"))


def test_the_naive_formula_and_bceloss_clamp(nb):
    def first_inf(dtype, target, grid):
        zd = grid.to(dtype)
        return zd[torch.isinf(naive(zd, torch.full_like(zd, target)))][0].item()
    zs = torch.tensor([0.0, 5.0, 8.0, 9.0, 10.0, 16.0, 17.0, 20.0, 100.0, 1e4], dtype=f64)
    z32, z16 = zs.float(), zs.half()
    naive32, fused32 = naive(z32, torch.zeros_like(z32)), bce(z32, torch.zeros_like(z32))
    naive16, fused16 = naive(z16, torch.zeros_like(z16)), bce(z16, torch.zeros_like(z16))
    exact = bce(zs, torch.zeros_like(zs))
    table(out(nb, "naive-table"), zs, [naive32, fused32, naive16, fused16, exact], rtol=5e-6, atol=1e-6)
    assert torch.equal(naive32.isinf(), torch.sigmoid(z32) == 1) and torch.equal(naive16.isinf(), torch.sigmoid(z16) == 1)
    assert zs[naive16.isinf()].min() < zs[naive32.isinf()].min()
    assert abs(naive32[5] - exact[5]) / exact[5] > 1e-3 and abs(naive16[2] - exact[2]) / exact[2] > 1e-2
    assert torch.allclose(fused32.double(), exact, rtol=2e-7, atol=0)
    assert torch.allclose(fused16.double(), exact, rtol=2e-3, atol=0) and exact[-1] == 1e4
    up, down = torch.arange(0, 40, 2.0 ** -12, dtype=f64), -torch.arange(0, 120, 2.0 ** -12, dtype=f64)
    found = {dtype: (first_inf(dtype, 0.0, up), first_inf(dtype, 1.0, down))
             for dtype in (torch.float32, torch.float16, torch.bfloat16)}
    lines = out(nb, "first-inf").strip().splitlines()
    assert len(lines) == len(found)
    for line, (dtype, pair) in zip(lines, found.items()):
        assert line.startswith(str(dtype))
        same([float(v) for v in re.findall(r"y = [01]: inf from z = +(\S+)", line)], pair)
    (f32, f32_one), (f16, _), (bf16, _) = found.values()
    assert 16 < f32 < 17 and 8 < f16 < 9 and bf16 < f16 and f32_one < -80
    assert "a little\n  below $z = 17$ in float32, above 8 in float16, earlier still in bfloat16" in prose(nb, "## Summary")
    z = torch.tensor([10.0, 17.0, 20.0, 100.0, 1e4])
    y = torch.zeros_like(z)
    probability_route = lambda t, u: F.binary_cross_entropy(torch.sigmoid(t), u, reduction="none")   # noqa: E731
    clamped = probability_route(z, y)
    check(out(nb, "bceloss-clamp"), [("naive formula       :", naive(z, y)), ("BCELoss(sigmoid(z)) :", clamped),
                                     ("BCEWithLogitsLoss(z):", bce(z, y))])
    assert torch.all(clamped[1:] == 100) and bce(z, y)[-1] == 1e4
    assert naive(torch.tensor([0.0, 20.0]), torch.zeros(2)).mean().isinf()   # one inf makes the mean inf
    grads = [grad_of(naive, z, y), grad_of(probability_route, z, y), grad_of(bce, z, y)]
    check(out(nb, "gradients-large"), [("gradient, naive formula        :", grads[0]),
                                       ("gradient, BCELoss(sigmoid(z))  :", grads[1]),
                                       ("gradient, BCEWithLogitsLoss(z) :", grads[2]), ("sigmoid(z) - y", torch.sigmoid(z) - y)])
    assert grads[0][1:].isnan().all() and (grads[1][1:] == 0).all()


def test_half_precision_forward_and_backward(nb):
    z = torch.tensor([-1e4, -100.0, -20.0, -10.0, 0.0, 10.0, 20.0, 100.0, 1e4], dtype=f64)
    results = [(bce(z.to(d), torch.zeros_like(z.to(d))), grad_of(bce, z.to(d), torch.zeros_like(z.to(d))))
               for d in (torch.float16, torch.bfloat16, f64)]
    text = out(nb, "half-precision")
    table(text.split("1e4 stored")[0], z, [v for pair in results for v in pair], rtol=5e-4, atol=1e-50)
    stored = torch.tensor(1e4).to(torch.bfloat16).item()
    check(text, [("1e4 stored as bfloat16:", [stored])])
    (l16, g16), (lb16, gb16), _ = results
    assert all(t.isfinite().all() for pair in results[:2] for t in pair) and g16[-1] == gb16[-1] == 1
    assert stored == lb16[-1] == 9984 and torch.finfo(torch.bfloat16).eps == 2 ** -7      # 8 significant bits
    assert l16[3] == 0 and round(F.softplus(torch.tensor(-10.0, dtype=f64)).item() * 1e5, 1) == 4.5
    assert round(torch.finfo(torch.float16).smallest_normal * 2 ** -10 * 1e8) == 6         # the smallest subnormal
    assert g16[2] == 0 and gb16[2] > 0 and round(torch.sigmoid(z[2]).item() * 1e9, 1) == 2.1
    assert torch.finfo(torch.bfloat16).tiny == torch.finfo(torch.float32).tiny
    said = markdown_after(nb, cell(nb, "claim:half-precision"))
    for phrase in ("$4.5 \\times 10^{-5}$", "$6 \\times 10^{-8}$", "$\\sigma(z) \\approx 2.1 \\times 10^{-9}$",
                   "as 9984", "loss there, 9984", "65504"):
        assert phrase in said, phrase
    big = torch.full((10,), 1e4, dtype=torch.float16)
    total = F.binary_cross_entropy_with_logits(big, torch.zeros_like(big), reduction="sum")
    mean = F.binary_cross_entropy_with_logits(big, torch.zeros_like(big), reduction="mean")
    check(out(nb, "half-sum"), [("largest float16:", [torch.finfo(torch.float16).max]), ("sum :", [total]), ("mean:", [mean])])
    assert total.isinf() and mean == 1e4 and torch.finfo(torch.float16).max == 65504
    text = prose(nb, "The static figure above")      # the figure's prose
    z = torch.linspace(-30, 30, 1201, dtype=f64)
    assert math.isclose((z[1] - z[0]).item(), 0.05)
    exact, left = bce(z, torch.zeros_like(z)), z < 0
    err = {d: (bce(z.to(d), torch.zeros_like(z.to(d))).double() - exact)[left].abs().max().item()
           for d in (torch.float32, torch.float16)}
    assert err[torch.float32] < 1e-6 and err[torch.float16] < 0.002
    assert "below $10^{-6}$ in float32 and below $0.002$ in float16" in text
    g32 = grad_of(bce, z.float(), torch.zeros(1201)).double()
    assert torch.allclose(g32, torch.sigmoid(z.float().double()), rtol=2.5e-7, atol=0)
    g16 = grad_of(bce, z.half(), torch.zeros(1201, dtype=torch.float16))
    assert round(z.half()[g16 == 0].max().item(), 1) == -17.3 == round(math.log(2.0 ** -25), 1)
    assert torch.finfo(torch.float16).smallest_normal * 2 ** -10 == 2.0 ** -24     # the smallest positive float16
    assert "0 below about $z = -17.3$" in text


def test_autocast_on_the_cpu_and_the_cuda_refusal(nb):
    g = torch.Generator().manual_seed(5)
    features, weights = torch.randn(4, 3, generator=g), torch.randn(3, 1, generator=g)
    labels = torch.tensor([0.0, 1.0, 1.0, 0.0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = (features @ weights).squeeze(1)
        probabilities = torch.sigmoid(logits)
        plain, fused = F.binary_cross_entropy(probabilities, labels), F.binary_cross_entropy_with_logits(logits, labels)
    text = out(nb, "autocast-cpu")
    assert after(text, "logits, features @ weights        :").strip() == str(logits.dtype) == "torch.bfloat16"
    assert after(text, "sigmoid(logits)                   :").strip() == str(probabilities.dtype)
    for label, loss in (("F.binary_cross_entropy            :", plain), ("F.binary_cross_entropy_with_logits:", fused)):
        assert after(text, label).split()[0] == str(loss.dtype) == "torch.float32"
        same(numbers(after(text, label))[-1:], [loss], rtol=1e-7)
    assert plain.item() == F.binary_cross_entropy(probabilities.float(), labels).item()
    assert fused.item() == F.binary_cross_entropy_with_logits(logits.float(), labels).item()
    assert after(text, "cast to float32:").split() == ["True", "True"]
    assert F.binary_cross_entropy(probabilities, labels.bfloat16()).dtype == torch.bfloat16   # without autocast
    assert round(abs(plain - fused).item(), 4) == 7e-4
    assert "differ by about $7 \\times 10^{-4}$" in markdown_after(nb, cell(nb, "claim:autocast-cpu"))
    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"    # the message is compiled into torch
    with open(library, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start = data.find(b"torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast.")
        assert start >= 0
        message = data[start:start + 600].split(b"\0")[0].decode()
    assert "binary_cross_entropy_with_logits" in message and "BCEWithLogitsLoss" in message
    assert "safe to autocast" in message.split("BCEWithLogits are")[1]


def test_example_3_and_bce_against_cross_entropy(nb):
    seed_cell = cell(nb, "seed:002-3")
    assert 'torch.manual_seed(grader.articles.seed("002-3"))' in seed_cell.source
    args = articles.example("002-3").build()
    text = printed(seed_cell)
    check(text, [("input: ", args["input"]), ("target:", args["target"])])
    assert args["target"].tolist() == [0.0, 1.0, 0.0]
    assert "the target is $[0, 1, 0]$, two of\nthe three starting ones replaced by 0" in prose(nb, "2 random values and a 1")
    x = args["input"].clone().requires_grad_(True)
    loss = nn.BCEWithLogitsLoss()(x, args["target"])
    assert type(loss.grad_fn).__name__ == "BinaryCrossEntropyWithLogitsBackward0"     # the derive exercise says so
    assert f"grad_fn=<{type(loss.grad_fn).__name__}>" in text and "LogSigmoid" not in str(loss.grad_fn.next_functions)
    loss.backward()
    check(out(nb, "example-3-formulas"), [("log sigmoid(z):", [loss.detach()]), ("(sigmoid(z) - y) / 3:", x.grad)])
    assert torch.allclose((torch.sigmoid(args["input"]) - args["target"]) / 3, x.grad)
    draws = torch.ones(100_000, 3).random_(2, generator=torch.Generator().manual_seed(1))
    fractions, ones = draws.mean(dim=0), (draws == 1).all(dim=1).float().mean()
    check(out(nb, "random-draws"), [("values drawn:", draws.unique()), ("fraction of 1s at each position:", fractions),
                                    ("equal to [1, 1, 1]:", [ones]), ("the first five draws:\n", draws[:5])])
    assert torch.allclose(fractions, torch.full((3,), 0.5), atol=0.01) and abs(ones - 1 / 8) < 0.01
    z = 3 * torch.randn(6, generator=torch.Generator().manual_seed(6))
    two = torch.stack([torch.zeros_like(z), z], dim=1)
    hard, soft = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0]), torch.tensor([0.1, 0.5, 0.9, 0.3, 0.7, 0.0])
    results = [bce(z, hard), F.cross_entropy(two, hard.long(), reduction="none"),
               bce(z, soft), F.cross_entropy(two, torch.stack([1 - soft, soft], dim=1), reduction="none")]
    text = out(nb, "two-class-ce")
    hard_part, soft_part = text.split("soft targets y")
    check(hard_part, [("z                                         :", z),
                      ("BCEWithLogitsLoss(z, y)                   :", results[0]),
                      ("CrossEntropyLoss([0, z], class y)         :", results[1])])
    check(soft_part, [("BCEWithLogitsLoss(z, y)                   :", results[2]),
                      ("CrossEntropyLoss([0, z], probs [1 - y, y]):", results[3])])
    largest = max((results[0] - results[1]).abs().max().item(), (results[2] - results[3]).abs().max().item())
    check(text, [("largest difference:", [largest])])
    assert 1e-7 <= largest < 1e-6                  # "a few units of 10^-7"
    assert torch.allclose(torch.softmax(two, dim=1)[:, 1], torch.sigmoid(z))
    z64, soft64 = z.double(), soft.double()        # in float64, the same function
    assert torch.allclose(bce(z64, soft64), F.cross_entropy(two.double(), torch.stack([1 - soft64, soft64], dim=1),
                                                            reduction="none"), rtol=1e-12, atol=1e-14)
    scores = torch.tensor([[2.0, 1.0, -1.0], [0.5, 0.5, 3.0]])
    text = out(nb, "multi-label")
    check(text, [("sigmoid, one probability per label:\n", torch.sigmoid(scores)),
                 ("softmax over the classes:\n", torch.softmax(scores, dim=1))])
    sums = text.split("their sums per example:")
    same(numbers(sums[1].split(")")[0]), torch.sigmoid(scores).sum(dim=1))
    same(numbers(sums[2].split(")")[0]), torch.softmax(scores, dim=1).sum(dim=1))
    assert not torch.allclose(torch.sigmoid(scores).sum(dim=1), torch.ones(2))
    said = markdown_after(nb, cell(nb, "claim:multi-label"))
    assert "Notebook 06 trains multi-label models" in said and "(even, at least 5,\nprime, zero, eight)" in said
    assert PROPERTIES == ("even", "at least 5", "prime", "zero", "eight")


def test_pos_weight_weight_imbalance_and_example_4(nb):
    def _batch():    # the draws of the notebook's pos_weight cells
        g = torch.Generator().manual_seed(2)
        return g, torch.randn(4, 3, generator=g), torch.randint(0, 2, (4, 3), generator=g).float()

    z, y, pw = torch.tensor([1.0, 1.0, -2.0, -2.0, 0.5]), torch.tensor([1.0, 0.0, 1.0, 0.0, 0.5]), torch.tensor(3.0)
    plain, weighted = bce(z, y), bce(z, y, pos_weight=pw)
    formula = (1 - y) * z - (1 + (pw - 1) * y) * F.logsigmoid(z)
    check(out(nb, "pos-weight-formula"), [("without pos_weight:", plain), ("pos_weight = 3    :", weighted),
                                          ("the formula       :", formula), ("ratio             :", weighted / plain)])
    ratio = weighted / plain
    assert torch.equal(formula, weighted) and torch.allclose(ratio[y == 1], pw.expand(2))
    assert torch.allclose(ratio[y == 0], torch.ones(2)) and 1 < ratio[4] < 3
    assert torch.allclose(-(pw * y * F.logsigmoid(z) + (1 - y) * F.logsigmoid(-z)), weighted)   # the undone form
    for fn in (F.binary_cross_entropy, nn.BCELoss):       # only the logits form has pos_weight; both have weight
        assert "pos_weight" not in inspect.signature(fn).parameters and "weight" in inspect.signature(fn).parameters
    assert all("pos_weight" in inspect.signature(fn).parameters
               for fn in (F.binary_cross_entropy_with_logits, nn.BCEWithLogitsLoss))
    g, logits, labels = _batch()
    per_class, per_sample = torch.tensor([1.0, 2.0, 5.0]), torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    by_class = bce(logits, labels, pos_weight=per_class) / bce(logits, labels)
    by_sample = bce(logits, labels, pos_weight=per_sample) / bce(logits, labels)
    text = out(nb, "pos-weight-shapes")
    check(text, [("labels:\n", labels), ("loss with / loss without:\n", by_class)])
    check(text.split("[N, 1] =")[1], [("loss with / loss without:\n", by_sample)])
    assert torch.allclose(by_class, torch.where(labels == 1, per_class.expand(4, 3), torch.ones(4, 3)))
    assert torch.allclose(by_sample, torch.where(labels == 1, per_sample.expand(4, 3), torch.ones(4, 3)))
    message = error_of(F.binary_cross_entropy_with_logits, logits, labels, pos_weight=torch.ones(4))
    assert f"pos_weight of shape [N] = [4]: {message}" in text
    square = torch.randn(3, 3, generator=g)                   # N = C: a [N] pos_weight weights the classes
    ratio = bce(square, torch.ones(3, 3), pos_weight=per_class) / bce(square, torch.ones(3, 3))
    assert torch.allclose(ratio, per_class.expand(3, 3))
    g, _, _ = _batch()                                        # the cell before drew from the same generator
    images, masks = torch.randn(2, 3, 4, 4, generator=g), torch.randint(0, 2, (2, 3, 4, 4), generator=g).float()
    weights = torch.tensor([1.0, 2.0, 5.0])
    ratio = bce(images, masks, pos_weight=weights.view(3, 1, 1)) / bce(images, masks)
    text = out(nb, "pos-weight-images")
    lines = [line for line in text.splitlines() if line.startswith("channel")]
    assert len(lines) == 3
    for c, line in enumerate(lines):
        pos, neg = ratio[:, c][masks[:, c] == 1], ratio[:, c][masks[:, c] == 0]
        same(numbers(line)[1:], [pos.min(), pos.max(), neg.min(), neg.max()])
        assert torch.allclose(pos, weights[c].expand_as(pos)) and torch.allclose(neg, torch.ones_like(neg))
    assert f"[N, C, H, W]: {error_of(F.binary_cross_entropy_with_logits, images, masks, pos_weight=weights)}" in text
    square = torch.randn(2, 3, 3, 3, generator=g)
    check(text, [("raises nothing:", [bce(square, torch.ones_like(square), pos_weight=weights).mean()])])
    z, y, w = torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0]), torch.tensor([3.0, 0.0])
    mean = F.binary_cross_entropy_with_logits(z, y, weight=w)
    text = out(nb, "weight")
    check(text, [("plain         :", bce(z, y)), ("weight = 2    :", bce(z, y, weight=torch.tensor(2.0))),
                 ("pos_weight = 2:", bce(z, y, pos_weight=torch.tensor(2.0)))])
    same(numbers(after(text, "mean with weight [3, 0]:"))[:1], [mean])
    assert torch.allclose(mean, (w * bce(z, y)).mean()) and not torch.allclose(mean, (w * bce(z, y)).sum() / w.sum())
    _, logits, labels = _batch()
    message = error_of(F.binary_cross_entropy_with_logits, logits, labels, weight=torch.ones(4))
    assert f"weight of shape [4] for input [4, 3]: {message}" in text
    per_sample = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    assert torch.allclose(bce(logits, labels, weight=per_sample), per_sample * bce(logits, labels))
    labels = (torch.rand(1000, 3, generator=torch.Generator().manual_seed(3)) < torch.tensor([0.5, 0.1, 0.02])).float()
    positives = labels.sum(dim=0)
    negatives = labels.shape[0] - positives
    check(out(nb, "imbalance"), [("positives per class:", positives), ("negatives per class:", negatives),
                                 ("negatives / positives:", negatives / positives),
                                 ("positive terms:", (labels * negatives / positives).sum(dim=0))])
    assert torch.allclose((labels * negatives / positives).sum(dim=0), negatives)
    assert (torch.tensor([5.0]) / torch.tensor([0.0])).isinf().all()      # no positive: an infinite weight
    z, odd = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([-0.5, 1.5, 2.0])
    text = out(nb, "no-range-check")
    check(text, [("targets outside [0, 1]:", bce(z, odd))])
    assert (bce(z, odd) < 0).any()
    assert f"BCELoss, the same targets: {error_of(F.binary_cross_entropy, torch.sigmoid(z), odd)}" in text
    error_of(nn.BCELoss(), torch.sigmoid(z), odd)
    args = articles.example("002-4").build()
    output, target, pos_weight = args["input"], args["target"], args["pos_weight"]
    loss = nn.BCEWithLogitsLoss(pos_weight=pos_weight)(output, target)
    text = out(nb, "example-4-softplus")
    check(text, [("-log sigmoid(1.5):", [-F.logsigmoid(torch.tensor(1.5))]),
                 ("softplus(-1.5):", [F.softplus(torch.tensor(-1.5))]),
                 ("\nsigmoid(1.5):", [torch.sigmoid(torch.tensor(1.5))])])
    assert torch.allclose(loss, F.softplus(torch.tensor(-1.5))) and "softplus(-1.5): True" in text
    assert "$\\sigma(1.5) \\approx 0.82$" in markdown_after(nb, cell(nb, "seed:002-4"))
    assert round(torch.sigmoid(torch.tensor(1.5)).item(), 2) == 0.82
    plain = nn.BCEWithLogitsLoss()(output, target)
    twice = nn.BCEWithLogitsLoss(pos_weight=torch.full([64], 2.0))(output, target)
    check(out(nb, "example-4-pos-weight"),
          [("no pos_weight:", [plain]), ("pos_weight = 1:", [loss]), ("pos_weight = 2:", [twice])])
    assert torch.allclose(twice, 2 * plain) and torch.allclose(loss, plain)
    text = out(nb, "example-4-shapes")
    message = error_of(nn.BCEWithLogitsLoss(pos_weight=torch.ones(10)), output, target)
    assert f"pos_weight of shape [10] for a [10, 64] batch: {message}" in text
    rows_weight = torch.arange(1.0, 11.0).view(10, 1)
    per_row = nn.BCEWithLogitsLoss(pos_weight=rows_weight, reduction="none")(output, target)
    assert bool((per_row == per_row[:, :1]).all()) and "all 64 columns of a row equal: True" in text
    check(text, [("the unweighted loss:", per_row[:, 0] / loss)])
    assert torch.allclose(per_row[:, 0] / loss, rows_weight.flatten())
    assert nn.BCEWithLogitsLoss(pos_weight=torch.ones(10, 64))(output, target).isfinite()   # one per element


def _grade_cell(nb, grade_id: str) -> str:
    return next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _solution(nb, grade_id: str) -> dict:
    namespace = {"torch": torch, "F": F, "nn": nn}
    exec(_grade_cell(nb, grade_id).replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), namespace)
    return namespace


def _checks(nb, grade_id: str) -> dict:
    visible, _, rest = _grade_cell(nb, grade_id).partition("### BEGIN HIDDEN TESTS")
    hidden = rest.partition("### END HIDDEN TESTS")[0]
    return {part: [(name, params.get("key", params.get("categories"))) for name, params, _ in verdict.checks_in(source)]
            for part, source in (("visible", visible), ("hidden", hidden))}


def test_the_exercises_and_what_their_texts_say(nb):
    fn = _solution(nb, "pos_weight_gradient_solution")["pos_weight_gradient"]
    assert grader.check_matches(fn, "05-pos-weight-gradient").passed
    assert grader.check_matches(fn, "05-pos-weight-gradient-hard").passed
    assert not grader.check_matches(lambda z, y, pos_weight: torch.sigmoid(z) - y, "05-pos-weight-gradient").passed

    def unstable(z, y, pos_weight):   # sigmoid as e^z / (1 + e^z): passes the visible test only
        return (1 + (pos_weight - 1) * y) * (torch.exp(z) / (1 + torch.exp(z))) - pos_weight * y

    assert grader.check_matches(unstable, "05-pos-weight-gradient").passed
    assert not grader.check_matches(unstable, "05-pos-weight-gradient-hard").passed
    assert _checks(nb, "pos_weight_gradient_test") == {"visible": [("assert_matches", "05-pos-weight-gradient")],
                                                       "hidden": [("assert_matches", "05-pos-weight-gradient-hard")]}
    z = torch.tensor([1000.0], requires_grad=True)
    loss = nn.BCEWithLogitsLoss()(z, torch.tensor([0.0]))
    loss.backward()
    probability_route = F.binary_cross_entropy(torch.sigmoid(z.detach()), torch.tensor([0.0]))
    check(out(nb, "predict-1000"), [("y = 0    :", [loss.item()]), ("respect to z          :", z.grad),
                                    ("the same example :", [probability_route])])
    assert F.logsigmoid(torch.tensor(1000.0)) == 0 and torch.sigmoid(torch.tensor(1000.0)) == 1
    assert not grader.check_prediction(100.0, "05-loss-at-1000").passed
    loss, gradient = _solution(nb, "predict_solution")["my_predictions"]()     # the master's answers
    assert grader.check_prediction(loss, "05-loss-at-1000").passed
    assert grader.check_prediction(gradient, "05-gradient-at-1000").passed
    assert _checks(nb, "predict_test") == {"visible": [("assert_prediction", "05-loss-at-1000")],
                                           "hidden": [("assert_prediction", "05-gradient-at-1000")]}
    visible_text, hidden_text = _grade_cell(nb, "logits_task").split("What is checked:")[1].split("the hidden tests run")
    found = {"visible": set(), "hidden": set()}
    for grade_id in ("logits_stable", "logits_pos_weight"):
        for part, calls in _checks(nb, grade_id).items():
            found[part] |= {category for _, categories in calls for category in categories}
    assert set(re.findall(r"\*([a-z_ ]+)\*", visible_text)) == found["visible"]
    assert set(re.findall(r"\*([a-z_ ]+)\*", hidden_text)) == found["hidden"]
    for c in nb.cells[2:]:  # after the title (its badge is release's) and the setup cell
        assert "http" not in c.source, c.source[:200]
    assert "http" not in without_badge(nb.cells[0].source)
    assert "grader.articles.SEED" not in "".join(c.source for c in nb.cells)
