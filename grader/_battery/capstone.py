"""The capstone's checks (notebook 06): ``pos_weight`` from labels, thresholds that reach a
target recall, and a trained model.

Each is a judge in the sense of :mod:`grader._battery.checks`: it chooses the inputs (the
labels; logits, labels and a recall; the training rows), asks the student's code for its
outputs on them, and decides from those outputs with values it computes itself (negatives
over positives; the recall and the alarms at the student's thresholds, on logits it made
itself; the model's recall on held-out digits it loads itself).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import datasets
from . import salt
from .checks import Ask, register
from .wire import text

_CASE_GROUPS = ("data", "edge")
#: Seconds the student's pos_weight function may take on one case.
POS_WEIGHT_TIME_LIMIT = 10.0
#: Defaults of ``assert_trained``: the least recall and balanced accuracy of every label.
TRAINED_DEFAULTS = {"recall": 0.75, "balanced_accuracy": 0.8}
#: Seconds the student's training function may take.
TRAINING_TIME_LIMIT = 120.0
#: Seconds the student's threshold function may take on one case.
THRESHOLD_TIME_LIMIT = 10.0


def _random_labels(seed: int, rows: int, rates_: list[float]) -> torch.Tensor:
    g = salt.generator(seed)  # with the autograder's secret, when there is one
    return (torch.rand(rows, len(rates_), generator=g) < torch.tensor(rates_)).float()


def pos_weight_cases(group: str) -> list[tuple[str, torch.Tensor]]:
    """The label tensors ``assert_pos_weight`` gives the student's function, by group:
    ``"data"``, the training labels of the two data sets (of their three-way splits, as notebook 06
    uses them); ``"edge"``, seeded random label matrices, a label with no positive, a label with no
    negative, an empty batch, float64."""
    if group == "data":
        digits = datasets.digits_split(validation=True).y_train
        cancer = datasets.breast_cancer_split(validation=True).y_train
        return [(f"the digits' training labels, shape {list(digits.shape)}", digits),
                (f"the breast cancer training labels, shape {list(cancer.shape)} (one label)", cancer)]
    if group == "edge":
        no_positive = _random_labels(61, 40, [0.3, 0.0, 0.6])
        no_negative = _random_labels(62, 25, [0.2, 1.0])
        return [
            ("a random label matrix of shape [37, 7]", _random_labels(57, 37, [0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9])),
            ("a single column, shape [90, 1]", _random_labels(58, 90, [0.15])),
            ("a label with no positive (column 1)", no_positive),
            ("a label with no negative (column 1)", no_negative),
            ("an empty batch, shape [0, 4]", torch.zeros(0, 4)),
            ("float64 labels, shape [64, 3]", _random_labels(59, 64, [0.25, 0.5, 0.125]).double()),
        ]
    raise ValueError(f"cases must be one of {', '.join(map(repr, _CASE_GROUPS))}, not {group!r}")


def _groups(params: dict, check: str) -> list[str]:
    """The case groups a check's ``cases`` parameter names (all when absent)."""
    unknown = set(params) - {"cases"}
    if unknown:
        raise ValueError(f"{check} takes no argument {', '.join(sorted(unknown))}")
    cases = params.get("cases")
    if cases is None:
        return list(_CASE_GROUPS)
    if cases not in _CASE_GROUPS:
        raise ValueError(f"cases must be one of {', '.join(map(repr, _CASE_GROUPS))}, not {cases!r}")
    return [cases]


def pos_weight_groups(params: dict) -> list[str]:
    return _groups(params, "assert_pos_weight")


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _show(t: torch.Tensor) -> str:
    """A short text for a result: its values (4 significant digits) when there are few."""
    if t.numel() > 8:
        return f"a tensor of shape {list(t.shape)}"
    if t.dim() == 0:
        return f"{t.item():.4g} (a 0-d tensor)"
    return "[" + ", ".join(f"{v:.4g}" for v in t.flatten().tolist()) + f"] (shape {list(t.shape)})"


def _balance(labels: torch.Tensor) -> torch.Tensor:
    from ..imbalance import _balance as balance  # the metrics live there; imported late (they import this)

    return balance(labels)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.isclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True).all())


def _diagnose(labels: torch.Tensor, got: torch.Tensor, want: torch.Tensor) -> str:
    """A student-friendly account of how ``got`` differs from the expected ``want``."""
    rows = labels.shape[0]
    shape = list(want.shape)
    if list(got.shape) != shape:
        said = f"your pos_weight has shape {list(got.shape)}; it should have shape {shape}, one value per label"
        if labels.dim() == 2 and list(got.shape) == [rows] and rows != labels.shape[1]:
            said += " (you have one value per row: count down each column, over dim=0)"
        elif labels.dim() == 1 and shape == []:
            said += " (a 1-D tensor of labels is one label: its pos_weight is a single number, a 0-d tensor)"
        return said
    if not got.dtype.is_floating_point:
        return f"your pos_weight has dtype {got.dtype}; it should be a floating-point tensor"
    if got.dtype != labels.dtype:
        return f"your pos_weight has dtype {got.dtype}; it should have the labels' dtype, {labels.dtype}"
    g = got.double()
    positives = labels.double().sum(dim=0)
    negatives = rows - positives
    has = positives > 0
    if bool((~has).any()) and bool(torch.isinf(g[~has]).any() | torch.isnan(g[~has]).any()):
        return ("a label with no positive gets negatives / 0: inf (or nan when there are no rows at all). "
                "torch's loss then returns nan for every negative of that label (inf x 0); give such a label "
                "pos_weight 1")
    if bool((~has).any()) and _close(g[has], want.double()[has]):
        return f"a label with no positive should get pos_weight 1 (nothing to weight up), not {g[~has].tolist()}"
    for guess, what in (
        (_balance(labels.double()).reciprocal(), "positives over negatives: the ratio is upside down"),
        (positives, "the number of positives, a count, not negatives over positives"),
        (negatives, "the number of negatives, a count, not negatives over positives"),
        (positives / max(rows, 1), "the share of positives, not negatives over positives"),
        (negatives / max(rows, 1), "the share of negatives, not negatives over positives"),
    ):
        if _close(g[has], guess[has]):
            return f"your values are {what}"
    return "your values differ from negatives / positives"


def _what_went_wrong(answer: Any, limit: float) -> str | None:
    """What the student's call did instead of returning a value, or None."""
    if not isinstance(answer, dict) or "refused" in answer:
        return "gave the grader nothing it can read"
    if answer.get("timed_out") is True:
        return f"took longer than {limit:g} s"
    error = answer.get("error")
    if error is not None:
        message = text(error.get("message") if isinstance(error, dict) else "", 500).strip()
        kind = text((error.get("types") or ["an exception"])[0] if isinstance(error, dict) else "an exception", 100)
        return f"raised {kind}" + (f": {message}" if message else "")
    return None


# prepared ahead (checks.prepare): every case's labels, read or drawn, and the metrics' module imported
@register("assert_pos_weight", prepare=lambda: [_balance(labels) for group in _CASE_GROUPS
                                               for _, labels in pos_weight_cases(group)])
def judge_pos_weight(params: dict, subject: str | None, ask: Ask) -> list[str]:
    """For every case, ask for the student's ``pos_weight`` of its labels, and compare it
    with negatives over positives, computed here."""
    groups = pos_weight_groups(params)
    problems = []
    for group in groups:
        for name, labels in pos_weight_cases(group):
            answer = ask({"op": "call", "args": {"labels": labels}, "positional": ["labels"], "record_ops": False,
                          "time_limit": POS_WEIGHT_TIME_LIMIT})
            wrong = _what_went_wrong(answer, POS_WEIGHT_TIME_LIMIT)
            if wrong is None and "not a tensor" in answer:
                wrong = f"returned {text(answer['not a tensor'], 200)}, not a tensor"
            if wrong is None and not isinstance(answer.get("value"), torch.Tensor):
                wrong = "gave the grader nothing it can read"
            if wrong is not None:
                problems.append(f"{name}: your function {wrong}")
                continue
            got, want = answer["value"], _balance(labels)
            if not (_close(got.double(), want.double()) and got.dtype == labels.dtype):
                problems.append(f"{name}: {_diagnose(labels, got, want)}. Expected {_show(want)}, "
                                f"got {_show(got)}.")
            elif "labels" in (answer.get("changed") or []):
                problems.append(f"{name}: your function changed the labels it was given, in place; leave them as "
                                "they are")
    return problems


# --- thresholds that reach a target recall ---------------------------------------------------------


def _validation_logits(task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation logits and labels of a logistic regression trained here, without pos_weight, on the
    training rows of ``task`` ("digits" or "breast cancer", ``validation=True``): full-batch Adam, from
    weights drawn with a seed (and the autograder's secret, when there is one)."""
    return _trained_logits(task, salt.tag())


@functools.lru_cache(maxsize=None)
def _trained_logits(task: str, tag: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = (datasets.digits_split if task == "digits" else datasets.breast_cancer_split)(validation=True)
    y_train, y_val = data.y_train.reshape(len(data.y_train), -1), data.y_val.reshape(len(data.y_val), -1)
    generator = salt.generator(0)
    bound = 1 / math.sqrt(data.x_train.shape[1])
    weight = ((torch.rand(data.x_train.shape[1], y_train.shape[1], generator=generator) * 2 - 1) * bound)
    bias = (torch.rand(y_train.shape[1], generator=generator) * 2 - 1) * bound
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.Adam([weight, bias], lr=0.05)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains fastest on one thread
    try:
        for _ in range(300):
            optimizer.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(data.x_train @ weight + bias, y_train).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        return data.x_val @ weight + bias, y_val


def _scored(seed: int, rows: int, rates_: list[float], recall: float, dtype=torch.float32, step: float = 0.0,
            backwards: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded labels with the given positive rates (at least one positive per column) and logits
    that rank positives higher on average; ``step`` rounds the logits (ties), ``backwards`` names a
    column whose positives get the lowest logits. Drawn with the autograder's secret, when there is one:
    whatever the draw, no label has a number of positives at which float rounding decides how many
    ``recall`` asks for (:func:`_rounding_decides`)."""
    g = salt.generator(seed)
    labels = (torch.rand(rows, len(rates_), generator=g) < torch.tensor(rates_)).to(dtype)
    labels[0] = 1  # every label has a positive
    for c in range(labels.shape[1]):
        while _rounding_decides(int(labels[:, c].sum()), recall) and bool((labels[:, c] == 0).any()):
            labels[int((labels[:, c] == 0).nonzero()[0]), c] = 1  # one positive more
    logits = (torch.randn(rows, len(rates_), generator=g, dtype=torch.float64) * 1.5 + 2 * labels - 1)
    if backwards is not None:
        logits[:, backwards] = torch.where(labels[:, backwards] > 0, -5 - logits[:, backwards].abs(),
                                           logits[:, backwards].abs())
    if step:
        logits = torch.round(logits / step) * step
    return logits.to(dtype), labels


def threshold_cases(group: str) -> list[tuple[str, dict]]:
    """What ``assert_thresholds`` gives the student's function, by group, as ``(name, {"logits",
    "labels", "recall"})``: ``"data"``, validation logits of logistic regressions trained on the
    course's data; ``"edge"``, seeded made-up logits with ties, recall 1, a recall one positive
    reaches, a single positive, a label ranked backwards, float64."""
    if group == "data":
        digits, digit_labels = _validation_logits("digits")
        cancer, cancer_labels = _validation_logits("breast cancer")
        shape = list(digits.shape)
        return [
            (f"the digits' validation logits, shape {shape}, recall 0.9",
             {"logits": digits, "labels": digit_labels, "recall": 0.9}),
            (f"the digits' validation logits, shape {shape}, recall 0.75",
             {"logits": digits, "labels": digit_labels, "recall": 0.75}),
            (f"the breast cancer validation logits, shape {list(cancer.shape)}, recall 0.95",
             {"logits": cancer, "labels": cancer_labels, "recall": 0.95}),
        ]
    if group == "edge":
        cases = [
            ("tied logits (steps of 0.5), shape [80, 3], recall 0.8", 71, 80, [0.2, 0.4, 0.1], 0.8, {"step": 0.5}),
            ("recall 1.0: every positive, shape [50, 2]", 72, 50, [0.3, 0.1], 1.0, {}),
            ("recall 0.01: one positive is enough, shape [40, 2]", 73, 40, [0.3, 0.2], 0.01, {}),
            ("a label with a single positive (column 1), shape [25, 2], recall 0.9", 74, 25, [0.4, 0.0], 0.9, {}),
            ("a label ranked backwards (column 0), shape [30, 2], recall 0.5", 75, 30, [0.3, 0.3], 0.5,
             {"backwards": 0}),
            ("float64 logits and labels, shape [64, 3], recall 0.6", 76, 64, [0.1, 0.25, 0.5], 0.6,
             {"dtype": torch.float64}),
        ]
        cases = [(name, _scored(seed, rows, rates_, recall, **options), recall)
                 for name, seed, rows, rates_, recall, options in cases]
        return [(name, {"logits": logits, "labels": labels, "recall": recall})
                for name, (logits, labels), recall in cases]
    raise ValueError(f"cases must be one of {', '.join(map(repr, _CASE_GROUPS))}, not {group!r}")


def threshold_groups(params: dict) -> list[str]:
    return _groups(params, "assert_thresholds")


def needed(positives: int, recall: float) -> int:
    """The fewest positives to find for ``found / positives >= recall`` (computed in float64)."""
    return next(k for k in range(positives + 1) if k / positives >= recall)


def _rounding_decides(positives: int, recall: float) -> bool:
    """Whether how many of ``positives`` a ``recall`` asks for depends on how it is computed: in exact
    fractions (``ceil(recall * positives)``, 0.9 being a little more than 9/10), in float64 or in
    float32 (10 positives at recall 0.9 ask for 10, 9 and 9)."""
    from fractions import Fraction

    ways = {math.ceil(Fraction(recall) * positives), needed(positives, recall),
            next(k for k in range(positives + 1) if torch.tensor(k / positives, dtype=torch.float32) >= recall)}
    return len(ways) > 1


def recall_threshold(logits: torch.Tensor, labels: torch.Tensor, recall: float) -> torch.Tensor:
    """Per column, the largest threshold t with ``(logits >= t)`` finding at least ``recall`` of the
    positives: the k-th largest logit among the positives, k = :func:`needed`."""
    return torch.stack([logits[labels[:, c] > 0.5, c].sort(descending=True).values[needed(
        int((labels[:, c] > 0.5).sum()), recall) - 1] for c in range(logits.shape[1])])


def _judge_thresholds(logits: torch.Tensor, labels: torch.Tensor, recall: float, got: torch.Tensor) -> str | None:
    """What is wrong with the student's thresholds ``got``, or None."""
    want = recall_threshold(logits, labels, recall)
    if list(got.shape) != list(want.shape):
        said = f"your thresholds have shape {list(got.shape)}; they should have shape {list(want.shape)}, one per label"
        if list(got.shape) == [logits.shape[0]]:
            said += " (one per row: work down each column)"
        return said
    if not got.is_floating_point() or got.dtype != logits.dtype:
        return f"your thresholds have dtype {got.dtype}; they should have the logits' dtype, {logits.dtype}"
    z, truth, t = logits.double(), labels > 0.5, got.double()
    for c in range(z.shape[1]):
        said = z[:, c] >= t[c]
        positives, found = int(truth[:, c].sum()), int((said & truth[:, c]).sum())
        best = int((z[:, c] >= want[c].double()).sum())
        if math.isnan(t[c].item()):
            return f"label {c}: your threshold is nan; every comparison with nan is False, so it finds nothing"
        if found < needed(positives, recall):
            hint = ""
            if 0 < t[c].item() < 1 and math.isclose(t[c].item(), torch.sigmoid(want[c].double()).item(), rel_tol=1e-4):
                hint = " (it looks like a probability, sigmoid of the threshold: return the logit itself)"
            return (f"label {c}: your threshold {t[c].item():.6g} finds {found} of its {positives} positives, recall "
                    f"{found / positives:.3f}, below the {recall:g} asked: it is too strict{hint}. The largest "
                    f"threshold that reaches it is {want[c].item():.6g}")
        if int(said.sum()) > best:
            return (f"label {c}: your threshold {t[c].item():.6g} reaches the recall, but says positive for "
                    f"{int(said.sum()) - best} more rows than needed: the largest threshold that reaches recall "
                    f"{recall:g} is {want[c].item():.6g}, the logit of the positive ranked {needed(positives, recall)} "
                    f"of {positives} (highest logit first)")
    return None


# prepared ahead: the models trained on the course's data, and the made-up cases drawn
@register("assert_thresholds", prepare=lambda: [threshold_cases(group) for group in _CASE_GROUPS])
def judge_thresholds(params: dict, subject: str | None, ask: Ask) -> list[str]:
    """For every case, ask for the student's thresholds and check, with the case's own logits and
    labels, the recall they reach and the rows they call positive."""
    problems = []
    for group in threshold_groups(params):
        for name, args in threshold_cases(group):
            sent = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
            answer = ask({"op": "call", "args": sent, "positional": ["logits", "labels", "recall"],
                          "record_ops": False, "time_limit": THRESHOLD_TIME_LIMIT})
            wrong = _what_went_wrong(answer, THRESHOLD_TIME_LIMIT)
            if wrong is None and "not a tensor" in answer:
                wrong = f"returned {text(answer['not a tensor'], 200)}, not a tensor"
            if wrong is None and not isinstance(answer.get("value"), torch.Tensor):
                wrong = "gave the grader nothing it can read"
            if wrong is not None:
                problems.append(f"{name}: your function {wrong}")
                continue
            found = _judge_thresholds(args["logits"], args["labels"], args["recall"], answer["value"])
            if found is not None:
                problems.append(f"{name}: {found}")
            elif set(answer.get("changed") or []) & {"logits", "labels"}:
                problems.append(f"{name}: your function changed its arguments in place; leave them as they are")
    return problems


def trained_settings(params: dict) -> dict:
    unknown = set(params) - set(TRAINED_DEFAULTS)
    if unknown:
        raise ValueError(f"assert_trained takes no argument {', '.join(sorted(unknown))}; its arguments are "
                         f"{', '.join(TRAINED_DEFAULTS)}")
    settings = {**TRAINED_DEFAULTS, **params}
    for key, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ValueError(f"{key} must be a number in (0, 1], not {value!r}")
    return settings


def held_out_scores(weight: torch.Tensor, bias: torch.Tensor) -> dict[str, torch.Tensor]:
    """What a logistic regression with this ``weight`` ([5, 64]) and ``bias`` ([5]) achieves on the
    held-out digits at threshold 0.5: the confusion counts and :func:`rates` of each label,
    computed in float64 from features this function loads itself."""
    from ..imbalance import confusion, rates

    data = datasets.digits_split()
    logits = data.x_test.double() @ weight.double().T + bias.double()
    counts = confusion(logits, data.y_test)
    return {**counts, **rates(counts)}


def _device() -> str:
    """The device a notebook's setup cell chooses: CUDA when there is one."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def trained_model(ask: Ask) -> tuple[dict[str, torch.Tensor] | None, str | None]:
    """Ask the student's ``fn(x_train, y_train)`` to train on the digits' training rows; the
    weight and bias of the logistic regression it returns, or what went wrong."""
    data = datasets.digits_split()
    answer = ask({"op": "call", "args": {"x": data.x_train, "y": data.y_train}, "positional": ["x", "y"],
                  "device": _device(), "record_ops": False, "time_limit": TRAINING_TIME_LIMIT, "extract": "linear"})
    wrong = _what_went_wrong(answer, TRAINING_TIME_LIMIT)
    if wrong is not None:
        return None, f"your training function {wrong}"
    value = answer.get("value")
    if not isinstance(value, dict):
        return None, "your training function gave the grader nothing it can read"
    if "not linear" in value:
        return None, (f"your training function returned {text(value['not linear'], 200)}, not a logistic "
                      "regression (an nn.Linear)")
    weight, bias = value.get("weight"), value.get("bias")
    if not isinstance(weight, torch.Tensor):
        return None, "your training function gave the grader nothing it can read"
    if bias is None:
        return None, ("your training function returned an nn.Linear without a bias (bias=False); a logistic "
                      "regression needs one")
    if not isinstance(bias, torch.Tensor):
        return None, "your training function gave the grader nothing it can read"
    return {"weight": weight, "bias": bias}, None


def judge_trained_model(settings: dict, model: dict[str, torch.Tensor]) -> list[str]:
    weight, bias = model["weight"], model["bias"]
    if not (weight.is_floating_point() and bias.is_floating_point()):
        return [f"the model's weight is {str(weight.dtype).replace('torch.', '')} and its bias "
                f"{str(bias.dtype).replace('torch.', '')}; a trained nn.Linear holds floating-point numbers"]
    features, labels = len(datasets.DIGIT_PIXELS), len(datasets.PROPERTIES)
    if list(weight.shape) != [labels, features] or list(bias.shape) != [labels]:
        return [f"the model's weight has shape {list(weight.shape)} and its bias {list(bias.shape)}; an "
                f"nn.Linear({features}, {labels}) has [{labels}, {features}] and [{labels}]"]
    if not (weight.double().isfinite().all() and bias.double().isfinite().all()):
        return ["the model's weight or bias holds nan or inf: the training diverged (a label with "
                "pos_weight inf?)"]
    scores = held_out_scores(weight, bias)
    problems = []
    for j, name in enumerate(datasets.PROPERTIES):
        tp, fn, fp = (int(scores[k][j]) for k in ("tp", "fn", "fp"))
        recall, accuracy = scores["recall"][j].item(), scores["balanced_accuracy"][j].item()
        if not recall >= settings["recall"]:
            problems.append(f"label {name!r}: recall {recall:.3f} on the held-out digits ({tp} of {tp + fn} "
                            f"found), below the {settings['recall']:g} asked. Train with pos_weight = negatives "
                            "/ positives of the training labels, one weight per label.")
        if not accuracy >= settings["balanced_accuracy"]:
            problems.append(f"label {name!r}: balanced accuracy {accuracy:.3f} (recall {recall:.3f}, {fp} false "
                            f"positives), below the {settings['balanced_accuracy']:g} asked: a model that says "
                            "'positive' (almost) always finds every positive but tells nothing apart. Is it "
                            "trained, and is pos_weight negatives / positives, not larger?")
    return problems


# prepared ahead: the held-out digits read, and the metrics' module imported
@register("assert_trained", prepare=lambda: held_out_scores(
    torch.zeros(len(datasets.PROPERTIES), len(datasets.DIGIT_PIXELS)), torch.zeros(len(datasets.PROPERTIES))))
def judge_trained(params: dict, subject: str | None, ask: Ask) -> list[str]:
    settings = trained_settings(params)
    model, wrong = trained_model(ask)
    return [wrong] if wrong else judge_trained_model(settings, model)


@dataclass
class CheckReport:
    """A check's verdict, as the student sees it: one line per case, then the first failure."""

    title: str
    lines: list[tuple[bool, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unit: str = "cases"
    run: bool = True
    note: str = ""

    @property
    def passed(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        failed = sum(not ok for ok, _ in self.lines)
        if not self.run:
            return f"{self.title}: {self.note or 'not run here'}"
        if not self.lines:
            head = f"{self.title}: {'passes' if self.passed else 'FAILS'}"
        elif self.passed:
            head = f"{self.title}: all {len(self.lines)} {self.unit} pass"
        else:
            head = f"{self.title}: {failed} of {len(self.lines)} {self.unit} fail"
        body = [f"  {'passed' if ok else 'FAILED':8} {name}" for ok, name in self.lines]
        if self.problems:
            body += ["", "First failure, " + self.problems[0]]
            # the other failures, unless they only repeat the first one's story
            first = self.problems[0].split(": ", 1)[-1].split(". Expected")[0]
            others = [p for p in self.problems[1:] if p.split(": ", 1)[-1].split(". Expected")[0] != first]
            if others:
                body += ["", "Other failures:"] + [f"  - {p}" for p in others]
        return "\n".join([head, *body])

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython shows the text itself
        printer.text(str(self))

