"""Class imbalance with ``BCEWithLogitsLoss``: metrics, an explorer, and the checks of notebook 06.

Metrics (on logits, one column per label)::

    counts = confusion(logits, labels, threshold=0.5)   # tp, fp, fn, tn per column
    rates(counts)                                        # precision, recall, specificity, balanced accuracy
    precision_recall_curve(logits, labels)               # every threshold at once (1-D)

A sample counts as predicted positive when ``sigmoid(logit) >= threshold``
(computed in float64), so at the default threshold 0.5 exactly the logits
``>= 0``. A precision or recall whose denominator is 0 is ``nan``.

The explorer (``imbalance_explorer()``, or the pure ``imbalance_figure()``)
shows, on the held-out rows of :mod:`grader.datasets`, how precision, recall and
the loss change as ``pos_weight`` and the decision threshold move. Its models
are trained once per task and model kind, for every ``pos_weight`` of
:data:`GRID` at the same time: the grid's models share one input and one
``BCEWithLogitsLoss``, whose ``pos_weight`` is the grid itself, one weight per
model along the last dimension.

The checks of the notebook's two exercises follow :mod:`grader.evidence`:
``assert_pos_weight(pos_weight_from_labels)`` calls the student's function on
label tensors it builds and records what came back; ``assert_trained(
train_digits_model, recall=..., balanced_accuracy=...)`` calls the student's
training function on the digits' training rows and records the weight and bias
of the logistic regression it returns. Their judges are pure functions of the
parameters and that record: they rebuild the label tensors, the expected
``pos_weight`` and the held-out predictions themselves, from the data they load.
``check_pos_weight`` and ``check_trained`` show the same verdicts as a report,
for a student's check cell. Importing this module registers the judges.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from . import datasets, evidence
from .explore import Explorer, _figure, _nice
from .loading import checks_suppressed

# --- metrics ------------------------------------------------------------------------------------


def predicted(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Boolean predictions: ``sigmoid(logits) >= threshold``, computed in float64."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], not {threshold!r}")
    return torch.sigmoid(logits.detach().double()) >= threshold


def confusion(logits: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5) -> dict[str, torch.Tensor]:
    """The confusion counts of each column (or of the whole 1-D tensor): int64 ``tp``, ``fp``,
    ``fn``, ``tn``, counted over the first dimension. ``labels`` are 0 or 1."""
    if logits.shape != labels.shape:
        raise ValueError(f"logits of shape {tuple(logits.shape)} and labels of shape {tuple(labels.shape)} "
                         "should have the same shape")
    guess = predicted(logits, threshold)
    truth = labels.detach().to(guess.device) > 0.5
    return {
        "tp": (guess & truth).sum(dim=0), "fp": (guess & ~truth).sum(dim=0),
        "fn": (~guess & truth).sum(dim=0), "tn": (~guess & ~truth).sum(dim=0),
    }


def _ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.double(), b.double()
    return torch.where(b > 0, a / b.clamp(min=1), torch.full_like(a, math.nan))


def rates(counts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Precision ``tp / (tp + fp)``, recall ``tp / (tp + fn)``, specificity ``tn / (tn + fp)`` and
    balanced accuracy (the mean of recall and specificity), float64; ``nan`` where undefined."""
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    recall, specificity = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    return {"precision": _ratio(tp, tp + fp), "recall": recall, "specificity": specificity,
            "balanced_accuracy": (recall + specificity) / 2}


def precision_recall_curve(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Precision and recall at every threshold that changes a prediction, from the strictest to
    the loosest (1-D inputs): ``threshold[k] = sigmoid`` of the k-th largest distinct logit, and
    the precision and recall of predicting positive every sample at or above it."""
    if logits.dim() != 1 or logits.shape != labels.shape:
        raise ValueError("precision_recall_curve takes 1-D logits and labels of the same length")
    scores, order = torch.sort(logits.detach().double().cpu(), descending=True)
    truth = (labels.detach().cpu()[order] > 0.5).double()
    tp = torch.cumsum(truth, 0)
    seen = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    last = torch.ones(len(scores), dtype=torch.bool)  # the last sample of each run of equal logits
    last[:-1] = scores[1:] != scores[:-1]
    positives = truth.sum()
    return {"threshold": torch.sigmoid(scores[last]), "precision": (tp / seen)[last],
            "recall": (tp / positives if positives > 0 else torch.full_like(tp, math.nan))[last]}


def _balance(labels: torch.Tensor) -> torch.Tensor:
    """Negatives over positives down each column (over dim 0), 1 where a column has no positive."""
    positives = labels.sum(dim=0)
    negatives = labels.shape[0] - positives
    return torch.where(positives > 0, negatives / positives.clamp(min=1), torch.ones_like(positives))


# --- training a grid of models at once -------------------------------------------------------------

#: The ``pos_weight`` values the explorer trains a model for.
GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
#: The explorer's tasks: a label of one of the two data sets, as a binary problem.
TASKS = ("breast cancer: malignant", *[f"digits: {p}" for p in datasets.PROPERTIES])
#: The explorer's models: full-batch Adam, a fixed number of steps, learning rate, seed.
MODELS = {"logistic regression": {"lr": 0.05}, "MLP": {"lr": 0.01, "hidden": 32}}
STEPS = 300
SEED = 0


def _task_data(task: str) -> datasets.Split:
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(map(repr, TASKS))}, not {task!r}")
    if task.startswith("breast cancer"):
        return datasets.breast_cancer_split()
    split = datasets.digits_split()
    column = datasets.PROPERTIES.index(task.split(": ", 1)[1])
    return datasets.Split(split.x_train, split.y_train[:, column], split.x_test, split.y_test[:, column],
                          split.mean, split.scale, split.features, (split.labels[column],))


def _uniform(generator: torch.Generator, shape: tuple, fan_in: int) -> torch.Tensor:
    """nn.Linear's default initialisation: uniform in +-1/sqrt(fan_in)."""
    bound = 1 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


class GridModels(torch.nn.Module):
    """``len(pos_weights)`` independent models of one kind, evaluated together: ``forward(x)``
    returns logits of shape ``[N, G]``, column ``g`` being model ``g``'s logit."""

    def __init__(self, kind: str, features: int, models: int, seed: int = SEED):
        super().__init__()
        if kind not in MODELS:
            raise ValueError(f"model must be one of {', '.join(map(repr, MODELS))}, not {kind!r}")
        self.kind = kind
        g = torch.Generator().manual_seed(seed)
        P = torch.nn.Parameter
        if kind == "logistic regression":
            self.weight = P(_uniform(g, (models, features), features))
            self.bias = P(_uniform(g, (models,), features))
        else:
            hidden = MODELS[kind]["hidden"]
            self.w1 = P(_uniform(g, (models, hidden, features), features))
            self.b1 = P(_uniform(g, (models, hidden), features))
            self.w2 = P(_uniform(g, (models, hidden), hidden))
            self.b2 = P(_uniform(g, (models,), hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "logistic regression":
            return x @ self.weight.T + self.bias
        hidden = torch.relu(torch.einsum("nd,ghd->ngh", x, self.w1) + self.b1)
        return torch.einsum("ngh,gh->ng", hidden, self.w2) + self.b2


def train_grid(x: torch.Tensor, y: torch.Tensor, pos_weights, kind: str = "logistic regression",
               steps: int = STEPS, seed: int = SEED) -> GridModels:
    """Train one model per value of ``pos_weights`` on the binary labels ``y`` ([N]), all at
    once: ``BCEWithLogitsLoss(pos_weight=pos_weights)`` on logits ``[N, G]`` against ``y``
    repeated in every column. Each model's loss is its own mean over the samples."""
    pos_weight = torch.as_tensor(pos_weights, dtype=x.dtype)
    model = GridModels(kind, x.shape[1], len(pos_weight), seed)
    target = y[:, None].expand(-1, len(pos_weight))
    optimizer = torch.optim.Adam(model.parameters(), lr=MODELS[kind]["lr"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # models this small train fastest on one thread, and much faster when cores are busy
    try:
        for _ in range(steps):
            optimizer.zero_grad()
            loss = F.binary_cross_entropy_with_logits(model(x), target, pos_weight=pos_weight, reduction="none")
            loss.mean(dim=0).sum().backward()  # the sum of each model's mean loss: the models stay independent
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model


@dataclass(frozen=True)
class Trained:
    """A task's grid of models, as the explorer needs them: held-out logits ``[N, G]``, labels
    ``[N]``, the unweighted held-out loss of each model, and the training set's negatives over positives."""

    logits: torch.Tensor
    labels: torch.Tensor
    loss: torch.Tensor
    balance: float


@functools.lru_cache(maxsize=None)
def trained(task: str, kind: str) -> Trained:
    """The grid of models for a task and a model kind, trained on first use and kept."""
    data = _task_data(task)
    if kind not in MODELS:
        raise ValueError(f"model must be one of {', '.join(map(repr, MODELS))}, not {kind!r}")
    model = train_grid(data.x_train, data.y_train, GRID, kind)  # seeded by its own generator
    with torch.no_grad():
        logits = model(data.x_test)
        target = data.y_test[:, None].expand_as(logits)
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=0)
    return Trained(logits, data.y_test, loss, _balance(data.y_train).item())


# --- the explorer -----------------------------------------------------------------------------------

class ImbalanceExplorer(Explorer):
    """On a task's held-out rows: the precision-recall curve of the model trained with the chosen
    ``pos_weight`` (dashed: ``pos_weight = 1``) with the point of the chosen threshold, the
    confusion matrix at that threshold, and precision, recall and the held-out loss of every
    model of the grid against its ``pos_weight``."""

    def __init__(self, task: str = "digits: eight", model: str = "logistic regression",
                 pos_weight: float = 1.0, threshold: float = 0.5):
        self.params = {"task": task, "model": model, "pos_weight": pos_weight, "threshold": threshold}
        self.figure, (curve, matrix, sweep) = _figure(13.5, 4.2, 3)
        self.figure.subplots_adjust(left=0.05, right=0.94, bottom=0.14, top=0.8, wspace=0.38)
        self.headline = self.figure.text(0.5, 0.97, "", ha="center", va="top", fontsize=11)
        self.pr_plain, = curve.plot([], [], lw=1.2, ls="--", color="C7", label="pos_weight = 1")
        self.pr, = curve.plot([], [], lw=2, color="C0", drawstyle="steps-post", label="this pos_weight")
        self.point, = curve.plot([], [], "o", color="C3", ms=8, label="this threshold")
        curve.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
                  title="precision-recall, held out")
        curve.legend(loc="lower left", fontsize=8)
        self.image = matrix.imshow(torch.zeros(2, 2).numpy(), cmap="Blues", vmin=0, vmax=1)
        self.cells = [[matrix.text(j, i, "", ha="center", va="center", fontsize=11) for j in range(2)]
                      for i in range(2)]
        matrix.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["negative", "positive"],
                   yticklabels=["negative", "positive"], xlabel="predicted", ylabel="actual",
                   title="confusion matrix, held out\n(colour: share of the actual row)")
        self.recall_line, = sweep.plot([], [], "o-", color="C1", label="recall")
        self.precision_line, = sweep.plot([], [], "s-", color="C0", label="precision")
        self.here = sweep.axvline(1, color="C3", lw=1.5)
        self.balance_line = sweep.axvline(1, color="k", lw=1, ls=":")
        sweep.set(xscale="log", xlim=(GRID[0] / 1.3, GRID[-1] * 1.3), ylim=(0, 1.02), xlabel="pos_weight",
                  ylabel="precision, recall")
        from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

        sweep.xaxis.set_major_locator(FixedLocator(GRID))
        sweep.xaxis.set_major_formatter(FixedFormatter([f"{g:g}" for g in GRID]))
        sweep.xaxis.set_minor_locator(NullLocator())
        self.loss_axis = sweep.twinx()
        self.loss_line, = self.loss_axis.plot([], [], "^--", color="C2", label="held-out loss")
        self.loss_axis.set_ylabel("held-out loss (no pos_weight)")
        handles = [self.recall_line, self.precision_line, self.loss_line]
        sweep.legend(handles, [h.get_label() for h in handles], loc="lower left", fontsize=8)
        self.curve, self.matrix, self.sweep = curve, matrix, sweep
        self.dynamic = [self.pr_plain, self.pr, self.point, self.image, *[t for row in self.cells for t in row],
                        self.recall_line, self.precision_line, self.loss_line, self.here, self.balance_line,
                        self.headline, sweep.title]
        self._draw(**self.params)

    @staticmethod
    def data(task: str, model: str, pos_weight: float, threshold: float) -> dict[str, Any]:
        """Everything the explorer plots, computed from the trained grid with :func:`confusion`,
        :func:`rates` and :func:`precision_recall_curve`."""
        if pos_weight not in GRID:
            raise ValueError(f"pos_weight must be one of the trained values {', '.join(f'{g:g}' for g in GRID)}, "
                             f"not {pos_weight!r}")
        grid = trained(task, model)
        column = GRID.index(pos_weight)
        counts = confusion(grid.logits, grid.labels[:, None].expand_as(grid.logits), threshold)
        every = rates(counts)
        return {
            "curve": precision_recall_curve(grid.logits[:, column], grid.labels),
            "curve_plain": precision_recall_curve(grid.logits[:, GRID.index(1.0)], grid.labels),
            "recall": every["recall"][column].item(), "precision": every["precision"][column].item(),
            "confusion": torch.stack([torch.stack([counts["tn"][column], counts["fp"][column]]),
                                      torch.stack([counts["fn"][column], counts["tp"][column]])]),
            "grid_recall": every["recall"], "grid_precision": every["precision"],
            "grid_loss": grid.loss, "loss": grid.loss[column].item(), "balance": grid.balance,
        }

    def _draw(self, task: str, model: str, pos_weight: float, threshold: float) -> None:
        d = self.data(task, model, pos_weight, threshold)
        for line, curve in ((self.pr, d["curve"]), (self.pr_plain, d["curve_plain"])):
            line.set_data(curve["recall"].numpy(), curve["precision"].numpy())
        self.point.set_data([d["recall"]], [d["precision"]])
        matrix = d["confusion"]
        shares = matrix.double() / matrix.sum(dim=1, keepdim=True).clamp(min=1)
        self.image.set_data(shares.numpy())
        for i in range(2):
            for j in range(2):
                name = (("TN", "FP"), ("FN", "TP"))[i][j]
                self.cells[i][j].set_text(f"{name}\n{matrix[i, j].item()}")
                self.cells[i][j].set_color("white" if shares[i, j] > 0.5 else "black")
        self.recall_line.set_data(GRID, d["grid_recall"].numpy())
        self.precision_line.set_data(GRID, d["grid_precision"].numpy())
        self.loss_line.set_data(GRID, d["grid_loss"].numpy())
        self.loss_axis.set_ylim(0, _nice(d["grid_loss"].max().item()))
        self.here.set_xdata([pos_weight] * 2)
        self.balance_line.set_xdata([d["balance"]] * 2)
        precision = "undefined" if math.isnan(d["precision"]) else f"{d['precision']:.3f}"
        self.sweep.set_title(f"every pos_weight at this threshold\n(dotted: negatives / positives = "
                             f"{d['balance']:.2f})", fontsize=10)
        self.headline.set_text(f"{task}, {model}, pos_weight {pos_weight:g}, threshold {threshold:.2f}: "
                               f"recall {d['recall']:.3f}, precision {precision}, held-out loss {d['loss']:.3f}")


def imbalance_figure(task: str = "digits: eight", model: str = "logistic regression",
                     pos_weight: float = 1.0, threshold: float = 0.5):
    """The explorer's figure for these settings (a matplotlib ``Figure``)."""
    return ImbalanceExplorer(task, model, pos_weight, threshold).figure


def imbalance_explorer(task: str = "digits: eight", model: str = "logistic regression",
                       pos_weight: float = 1.0, threshold: float = 0.5):
    """The explorer as a widget: menus for the task and the model, a slider over the trained
    ``pos_weight`` values and one for the decision threshold."""
    import ipywidgets as widgets

    from .explore import _dropdown, _slider, interactive

    pos_weight_slider = widgets.SelectionSlider(
        options=[(f"{g:g}", g) for g in GRID], value=pos_weight, description="pos_weight",
        continuous_update=True, style={"description_width": "initial"})
    return interactive(ImbalanceExplorer(task, model, pos_weight, threshold), {
        "task": _dropdown(TASKS, task, "task"),
        "model": _dropdown(MODELS, model, "model"),
        "pos_weight": pos_weight_slider,
        "threshold": _slider(threshold, 0.01, 0.99, 0.01, "threshold"),
    })


# --- the checks -------------------------------------------------------------------------------------

_CASE_GROUPS = ("data", "edge")


def _random_labels(seed: int, rows: int, rates_: list[float]) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(rows, len(rates_), generator=g) < torch.tensor(rates_)).float()


def pos_weight_cases(group: str) -> list[tuple[str, torch.Tensor]]:
    """The label tensors ``assert_pos_weight`` gives the student's function, by group:
    ``"data"``, the training labels of the two data sets; ``"edge"``, seeded random label
    matrices, a label with no positive, a label with no negative, an empty batch, float64."""
    if group == "data":
        digits, cancer = datasets.digits_split().y_train, datasets.breast_cancer_split().y_train
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


#: What the engine adds to a check's parameters when it judges: the name the test cell passed.
_ENGINE_KEYS = {"subject"}


def _groups(params: dict) -> list[str]:
    unknown = set(params) - {"cases"} - _ENGINE_KEYS
    if unknown:
        raise ValueError(f"assert_pos_weight takes no argument {', '.join(sorted(unknown))}")
    cases = params.get("cases")
    if cases is None:
        return list(_CASE_GROUPS)
    if cases not in _CASE_GROUPS:
        raise ValueError(f"cases must be one of {', '.join(map(repr, _CASE_GROUPS))}, not {cases!r}")
    return [cases]


def _observe_pos_weight(fn, params: dict) -> dict:
    """Call the student's function on every case and write down what it returned."""
    from ._guard import call_guarded

    results = {}
    for group in _groups(params):
        for name, labels in pos_weight_cases(group):
            given = labels.clone()
            call = call_guarded(fn, (given,), time_limit=10.0, record_ops=False)
            if call.timed_out:
                results[name] = {"error": "took longer than 10 s"}
            elif call.error is not None:
                message = str(call.error).strip()
                results[name] = {"error": f"raised {type(call.error).__name__}" + (f": {message}" if message else "")}
            elif not isinstance(call.value, torch.Tensor):
                results[name] = {"error": f"returned {_a(type(call.value).__name__)}, not a tensor"}
            else:
                results[name] = {"value": evidence.encode_tensor(call.value),
                                 "changed_its_argument": not torch.equal(given, labels)}
    return {"results": results}


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _show(t: torch.Tensor) -> str:
    """A short text for a result: its values (4 significant digits) when there are few."""
    if t.numel() > 8:
        return f"a tensor of shape {list(t.shape)}"
    if t.dim() == 0:
        return f"{t.item():.4g} (a 0-d tensor)"
    return "[" + ", ".join(f"{v:.4g}" for v in t.flatten().tolist()) + f"] (shape {list(t.shape)})"


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.isclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True).all())


def _diagnose(labels: torch.Tensor, got: torch.Tensor, want: torch.Tensor) -> str:
    """A student-friendly account of how ``got`` differs from the expected ``want``."""
    rows = labels.shape[0]
    shape = list(want.shape)
    if list(got.shape) != shape:
        text = f"your pos_weight has shape {list(got.shape)}; it should have shape {shape}, one value per label"
        if labels.dim() == 2 and list(got.shape) == [rows] and rows != labels.shape[1]:
            text += " (you have one value per row: count down each column, over dim=0)"
        elif labels.dim() == 1 and shape == []:
            text += " (a 1-D tensor of labels is one label: its pos_weight is a single number, a 0-d tensor)"
        return text
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


def _judge_pos_weight(params: dict, observation: dict) -> list[str]:
    try:
        groups = _groups(params)
    except ValueError as error:
        return [str(error)]
    results = observation.get("results")
    if not isinstance(results, dict):
        raise evidence.EvidenceError("the observation holds no results")
    problems = []
    for group in groups:
        for name, labels in pos_weight_cases(group):
            result = results.get(name)
            if not isinstance(result, dict):
                problems.append(f"{name}: no result was recorded")
                continue
            if "error" in result:
                problems.append(f"{name}: your function {result['error']}")
                continue
            got = evidence.decode_tensor(result.get("value"))
            want = _balance(labels)
            if not (_close(got.double(), want.double()) and got.dtype == labels.dtype):
                problems.append(f"{name}: {_diagnose(labels, got, want)}. Expected {_show(want)}, "
                                f"got {_show(got)}.")
            elif result.get("changed_its_argument") is True:
                problems.append(f"{name}: your function changed the labels it was given, in place; leave them as "
                                "they are")
    return problems


evidence.judge("assert_pos_weight")(_judge_pos_weight)


@dataclass
class CheckReport:
    """A check's verdict, as the student sees it: one line per case, then the first failure."""

    title: str
    lines: list[tuple[bool, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unit: str = "cases"
    run: bool = True

    @property
    def passed(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        failed = sum(not ok for ok, _ in self.lines)
        if not self.run:
            return f"{self.title}: not run while `python -m grader check` loads this file"
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


def _not_run(title: str) -> CheckReport:
    """What a check cell shows while ``python -m grader check`` loads the notebook: nothing run."""
    return CheckReport(title, run=False)


def check_pos_weight(fn) -> CheckReport:
    """Run ``fn`` (your ``pos_weight_from_labels``) on every case and show what passes."""
    if checks_suppressed():
        return _not_run("pos_weight from labels")
    params: dict = {}
    observation = _observe_pos_weight(fn, params)
    problems = evidence.decide("assert_pos_weight", params, observation)
    report = CheckReport(f"pos_weight from labels ({getattr(fn, '__name__', 'your function')})", problems=problems)
    for group in _CASE_GROUPS:
        for name, _ in pos_weight_cases(group):
            report.lines.append((not any(p.startswith(name + ":") for p in problems), name))
    return report


def assert_pos_weight(fn, **params) -> None:
    """For a test cell: raise ``AssertionError`` unless ``fn(labels)`` returns negatives over
    positives for each label (column) of every case, 1 for a label with no positive.
    ``cases="data"`` or ``"edge"`` limits the check to one group of :func:`pos_weight_cases`."""
    if checks_suppressed():
        return
    observation = _observe_pos_weight(fn, params)
    problems = evidence.verify("assert_pos_weight", params, observation)
    if problems:
        raise AssertionError("\n" + "\n".join(f"- {p}" for p in problems))


# --- the training exercise ------------------------------------------------------------------------

#: Defaults of ``assert_trained``: the least recall and balanced accuracy of every label.
TRAINED_DEFAULTS = {"recall": 0.75, "balanced_accuracy": 0.8}
#: Seconds the student's training function may take.
TRAINING_TIME_LIMIT = 120.0


def _device() -> torch.device:
    """The device a notebook's setup cell chooses: CUDA when there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _linear_of(model) -> torch.nn.Linear | None:
    """The model's single nn.Linear, if it is one (or a module made of exactly one)."""
    if isinstance(model, torch.nn.Linear):
        return model
    if isinstance(model, torch.nn.Module):
        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        if len(linears) == 1 and len(list(model.parameters())) == len(list(linears[0].parameters())):
            return linears[0]
    return None


def _observe_trained(fn) -> dict:
    """Call the student's ``fn(x_train, y_train)`` on the digits' training rows and write down the
    weight and bias of the logistic regression it returns."""
    from ._guard import call_guarded

    data = datasets.digits_split().to(_device())
    call = call_guarded(fn, (data.x_train, data.y_train), time_limit=TRAINING_TIME_LIMIT, record_ops=False)
    if call.timed_out:
        return {"error": f"took longer than {TRAINING_TIME_LIMIT:g} s"}
    if call.error is not None:
        message = str(call.error).strip()
        return {"error": f"raised {type(call.error).__name__}" + (f": {message}" if message else "")}
    linear = _linear_of(call.value)
    if linear is None:
        return {"error": f"returned {_a(type(call.value).__name__)}, not a logistic regression (an nn.Linear)"}
    if linear.bias is None:
        return {"error": "returned an nn.Linear without a bias (bias=False); a logistic regression needs one"}
    return {"weight": evidence.encode_tensor(linear.weight), "bias": evidence.encode_tensor(linear.bias)}


def _trained_params(params: dict) -> dict:
    unknown = set(params) - set(TRAINED_DEFAULTS) - _ENGINE_KEYS
    if unknown:
        raise ValueError(f"assert_trained takes no argument {', '.join(sorted(unknown))}; its arguments are "
                         f"{', '.join(TRAINED_DEFAULTS)}")
    settings = {**TRAINED_DEFAULTS, **{k: v for k, v in params.items() if k not in _ENGINE_KEYS}}
    for key, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ValueError(f"{key} must be a number in (0, 1], not {value!r}")
    return settings


def held_out_scores(weight: torch.Tensor, bias: torch.Tensor) -> dict[str, torch.Tensor]:
    """What a logistic regression with this ``weight`` ([5, 64]) and ``bias`` ([5]) achieves on the
    held-out digits at threshold 0.5: the confusion counts and :func:`rates` of each label,
    computed in float64 from features this function loads itself."""
    data = datasets.digits_split()
    logits = data.x_test.double() @ weight.double().T + bias.double()
    counts = confusion(logits, data.y_test)
    return {**counts, **rates(counts)}


def _judge_trained(params: dict, observation: dict) -> list[str]:
    try:
        settings = _trained_params(params)
    except ValueError as error:
        return [str(error)]
    if not isinstance(observation, dict):
        raise evidence.EvidenceError("the observation is not a record")
    if "error" in observation:
        return [f"your training function {observation['error']}"]
    weight = evidence.decode_tensor(observation.get("weight"))
    bias = evidence.decode_tensor(observation.get("bias"))
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


evidence.judge("assert_trained")(_judge_trained)


def check_trained(fn, **params) -> CheckReport:
    """Train with ``fn`` (your ``train_digits_model``) and show each label's held-out recall and
    balanced accuracy against what :func:`assert_trained` asks (same arguments)."""
    settings = _trained_params(params)
    if checks_suppressed():
        return _not_run("the trained model")
    observation = _observe_trained(fn)
    problems = evidence.decide("assert_trained", params, observation)
    report = CheckReport(f"the model of {getattr(fn, '__name__', 'your function')} on the held-out digits "
                         f"(asked: recall >= {settings['recall']:g}, balanced accuracy >= "
                         f"{settings['balanced_accuracy']:g} for every label)", problems=problems, unit="labels")
    if "error" in observation:
        return report
    if not problems or all(p.startswith("label ") for p in problems):
        scores = held_out_scores(evidence.decode_tensor(observation["weight"]),
                                 evidence.decode_tensor(observation["bias"]))
        for j, name in enumerate(datasets.PROPERTIES):
            report.lines.append((not any(p.startswith(f"label {name!r}:") for p in problems),
                                 f"{name}: recall {scores['recall'][j].item():.3f}, balanced accuracy "
                                 f"{scores['balanced_accuracy'][j].item():.3f}"))
    return report


def assert_trained(fn, **params) -> None:
    """For a test cell: call ``fn(x_train, y_train)`` with the digits' training rows (on CUDA when
    there is one, as the notebook's ``device``), and raise ``AssertionError`` unless it returns a
    logistic regression, an ``nn.Linear(64, 5)``, that reaches on the held-out digits, for every
    label at threshold 0.5, at least ``recall`` (default 0.75) and at least ``balanced_accuracy``
    (default 0.8)."""
    _trained_params(params)
    if checks_suppressed():
        return
    observation = _observe_trained(fn)
    problems = evidence.verify("assert_trained", params, observation)
    if problems:
        raise AssertionError("\n" + "\n".join(f"- {p}" for p in problems))
