"""Class imbalance with ``BCEWithLogitsLoss``: metrics, an explorer, and the checks of notebook 06.

Metrics (on logits, one column per label)::

    counts = confusion(logits, labels, threshold=0.5)   # tp, fp, fn, tn per column
    rates(counts)                                        # precision, recall, specificity, balanced accuracy
    precision_recall_curve(logits, labels)               # every threshold at once (1-D)

A sample counts as predicted positive when ``sigmoid(logit) >= threshold``
(computed in float64), so at the default threshold 0.5 exactly the logits
``>= 0``. A precision or recall whose denominator is 0 is ``nan``.

The explorer (``imbalance_explorer()``, or the pure ``imbalance_figure()``)
shows, on the validation rows of :mod:`grader.datasets` (``validation=True``), how
precision, recall and the loss change as ``pos_weight`` and the decision threshold
move: the validation split is where such choices are made, and the test split is
kept for the one final report (:func:`trained` keeps its logits too). Its models are
trained on the training rows, once per task and model kind, for every ``pos_weight``
of :data:`GRID` at the same time: the grid's models share one input and one
``BCEWithLogitsLoss``, whose ``pos_weight`` is the grid itself, one weight per
model along the last dimension.

The checks of the capstone's exercises (their judges are in
:mod:`grader._battery.capstone`): ``assert_pos_weight(pos_weight_from_labels)`` gives
the student's function label tensors and compares what comes back with negatives over
positives; ``assert_thresholds(recall_thresholds)`` gives the student's function logits,
labels and a target recall, and checks that each label's threshold reaches the recall
with no more alarms than needed; ``assert_trained(train_digits_model, recall=...,
balanced_accuracy=...)`` has the student's function train on the digits' training rows
and scores the logistic regression it returns on held-out digits. ``check_pos_weight``,
``check_thresholds`` and ``check_trained`` show the same verdicts as a report, for a
student's check cell.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from . import datasets
from .explore import BLUE, GREEN, GREY, LEGEND, ORANGE, VERMILLION, Explorer, _figure, _ink, _nice, steps
from ._battery.loading import checks_suppressed

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
#: The task the explorer shows first.
FIRST_TASK = "digits: eight"
STEPS = 300
SEED = 0


def _task_data(task: str) -> datasets.Split:
    """The task's training, validation and test rows (``validation=True``), one label."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(map(repr, TASKS))}, not {task!r}")
    if task.startswith("breast cancer"):
        return datasets.breast_cancer_split(validation=True)
    split = datasets.digits_split(validation=True)
    column = datasets.PROPERTIES.index(task.split(": ", 1)[1])
    return datasets.Split(split.x_train, split.y_train[:, column], split.x_test, split.y_test[:, column],
                          split.mean, split.scale, split.features, (split.labels[column],),
                          split.x_val, split.y_val[:, column])


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
    """A task's grid of models, as the explorer needs them: validation logits ``[N, G]``, labels
    ``[N]``, the unweighted validation loss of each model, and the training set's negatives over
    positives; and, for a final report, the test split's logits ``[M, G]`` and labels ``[M]``."""

    logits: torch.Tensor
    labels: torch.Tensor
    loss: torch.Tensor
    balance: float
    test_logits: torch.Tensor
    test_labels: torch.Tensor


@functools.lru_cache(maxsize=None)
def trained(task: str, kind: str) -> Trained:
    """The grid of models for a task and a model kind, trained on the training rows on first use
    and kept."""
    data = _task_data(task)
    if kind not in MODELS:
        raise ValueError(f"model must be one of {', '.join(map(repr, MODELS))}, not {kind!r}")
    model = train_grid(data.x_train, data.y_train, GRID, kind)  # seeded by its own generator
    with torch.no_grad():
        logits, test_logits = model(data.x_val), model(data.x_test)
        target = data.y_val[:, None].expand_as(logits)
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=0)
    return Trained(logits, data.y_val, loss, _balance(data.y_train).item(), test_logits, data.y_test)


def prepare() -> None:
    """Train, ahead, the grids the notebook and its explorer use first (the explorer's first
    task, every model kind): the autograder calls this in the process every notebook of the
    capstone is forked from, so that each finds them trained, as a student's kernel does
    after the first use. The models are the same either way (seeded, on one thread)."""
    for kind in MODELS:
        trained(FIRST_TASK, kind)


@functools.lru_cache(maxsize=None)
def _curves(task: str, kind: str) -> tuple:
    """The precision-recall curve of each model of the grid on the validation rows, kept:
    they do not depend on the threshold."""
    grid = trained(task, kind)
    return tuple(precision_recall_curve(grid.logits[:, g], grid.labels) for g in range(len(GRID)))


# --- the explorer -----------------------------------------------------------------------------------

class ImbalanceExplorer(Explorer):
    """On a task's validation rows: the precision-recall curve of the model trained with the chosen
    ``pos_weight`` (dashed: ``pos_weight = 1``) with the point of the chosen threshold, the
    confusion matrix at that threshold, and precision, recall and the validation loss of every
    model of the grid against its ``pos_weight``."""

    def __init__(self, task: str = FIRST_TASK, model: str = "logistic regression",
                 pos_weight: float = 1.0, threshold: float = 0.5):
        self.params = {"task": task, "model": model, "pos_weight": pos_weight, "threshold": threshold}
        self.figure, (curve, matrix, sweep) = _figure(9.8, 4.8, 3)
        self.figure.subplots_adjust(left=0.075, right=0.915, bottom=0.31, top=0.8, wspace=0.55)
        self.headline = self.figure.text(0.5, 0.975, "", ha="center", va="top", fontsize=11)
        self.pr_plain, = curve.plot([], [], lw=1.6, ls="--", color=GREY, label="pos_weight = 1")
        self.pr, = curve.plot([], [], lw=2.2, color=BLUE, drawstyle="steps-post", label="this pos_weight")
        self.point, = curve.plot([], [], "D", color=VERMILLION, ms=8, label="this threshold")
        curve.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
                  title="precision-recall, validation")
        # legends below the axes: never over the curves
        curve.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=1, **LEGEND)
        self.image = matrix.imshow(torch.zeros(2, 2).numpy(), cmap="Blues", vmin=0, vmax=1)
        self.cells = [[matrix.text(j, i, "", ha="center", va="center", fontsize=11) for j in range(2)]
                      for i in range(2)]
        matrix.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["negative", "positive"],
                   yticklabels=["negative", "positive"], xlabel="predicted", ylabel="actual",
                   title="confusion matrix, validation\n(colour: share of the actual row)")
        self.recall_line, = sweep.plot([], [], "o-", color=ORANGE, lw=1.8, label="recall")
        self.precision_line, = sweep.plot([], [], "s-", color=BLUE, lw=1.8, label="precision")
        self.here = sweep.axvline(1, color=VERMILLION, lw=1.6, ls="-.")
        self.balance_line = sweep.axvline(1, color=_ink(), lw=1.2, ls=":")
        sweep.set(xscale="log", xlim=(GRID[0] / 1.3, GRID[-1] * 1.3), ylim=(0, 1.02), xlabel="pos_weight",
                  ylabel="precision, recall")
        from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

        sweep.xaxis.set_major_locator(FixedLocator(GRID))
        fractions = {0.25: "\u00bc", 0.5: "\u00bd"}  # short labels: the ticks are close together
        sweep.xaxis.set_major_formatter(FixedFormatter([fractions.get(g, f"{g:g}") for g in GRID]))
        sweep.xaxis.set_minor_locator(NullLocator())
        self.loss_axis = sweep.twinx()
        self.loss_line, = self.loss_axis.plot([], [], "^--", color=GREEN, lw=1.6, label="validation loss")
        self.loss_axis.set_ylabel("validation loss, no pos_weight")
        handles = [self.recall_line, self.precision_line, self.loss_line]
        sweep.legend(handles, [h.get_label() for h in handles], loc="upper center", bbox_to_anchor=(0.5, -0.2),
                     **LEGEND)
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
        curves = _curves(task, model)
        return {
            "curve": curves[column],
            "curve_plain": curves[GRID.index(1.0)],
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
                               f"recall {d['recall']:.3f}, precision {precision}, validation loss {d['loss']:.3f}")


def imbalance_figure(task: str = FIRST_TASK, model: str = "logistic regression",
                     pos_weight: float = 1.0, threshold: float = 0.5):
    """The explorer's figure for these settings (a matplotlib ``Figure``)."""
    return ImbalanceExplorer(task, model, pos_weight, threshold).figure


def imbalance_explorer(task: str = FIRST_TASK, model: str = "logistic regression",
                       pos_weight: float = 1.0, threshold: float = 0.5):
    """The explorer as a widget: menus for the task and the model, a slider over the trained
    ``pos_weight`` values and one for the decision threshold. The models of the other tasks
    are trained in the background once it is shown, so a new choice is then immediate."""
    from ._widget.controls import menu, slider
    from .explore import interactive

    training = "training the models for this choice (a few seconds)..."
    return interactive(lambda **params: ImbalanceExplorer(**params), [
        menu("task", "task", TASKS, kernel=True, busy=training),
        menu("model", "model", MODELS, kernel=True, busy=training),
        slider("pos_weight", "pos_weight", GRID, "{:g}"),
        slider("threshold", "threshold", steps(0.02, 0.98, 0.02)),
    ], {"task": task, "model": model, "pos_weight": pos_weight, "threshold": threshold},
        "Class imbalance: pos_weight and the threshold", prefetch=True)


# --- the checks ------------------------------------------------------------------------------------
# Each check has a judge in grader._battery.capstone; here, the functions a notebook calls.

def _not_run(title: str, note: str) -> CheckReport:
    return CheckReport(title, run=False, note=note)


_LOADING = "not run while `python -m grader check` loads this file"
_GRADING = "checked by the autograder, outside this notebook"


def check_pos_weight(fn) -> CheckReport:
    """Run ``fn`` (your ``pos_weight_from_labels``) on every case and show what passes."""
    title = f"pos_weight from labels ({getattr(fn, '__name__', 'your function')})"
    if checks_suppressed() or judged_elsewhere():
        return _not_run(title, _LOADING if checks_suppressed() else _GRADING)
    problems = decide("assert_pos_weight", {}, None, local(fn))
    report = CheckReport(title, problems=problems)
    for group in ("data", "edge"):
        for name, _ in pos_weight_cases(group):
            report.lines.append((not any(p.startswith(name + ":") for p in problems), name))
    return report


def assert_pos_weight(fn, **params) -> None:
    """For a test cell: raise ``AssertionError`` unless ``fn(labels)`` returns negatives over
    positives for each label (column) of every case, 1 for a label with no positive.
    ``cases="data"`` or ``"edge"`` limits the check to one group of :func:`pos_weight_cases`."""
    pos_weight_groups(params)
    if checks_suppressed() or judged_elsewhere():
        return
    problems = decide("assert_pos_weight", params, None, local(fn))
    if problems:
        raise AssertionError("\n" + "\n".join(f"- {p}" for p in problems))


def check_thresholds(fn) -> CheckReport:
    """Run ``fn`` (your ``recall_thresholds``) on every case and show what passes."""
    title = f"thresholds for a target recall ({getattr(fn, '__name__', 'your function')})"
    if checks_suppressed() or judged_elsewhere():
        return _not_run(title, _LOADING if checks_suppressed() else _GRADING)
    problems = decide("assert_thresholds", {}, None, local(fn))
    report = CheckReport(title, problems=problems)
    for group in ("data", "edge"):
        for name, _ in threshold_cases(group):
            report.lines.append((not any(p.startswith(name + ":") for p in problems), name))
    return report


def assert_thresholds(fn, **params) -> None:
    """For a test cell: raise ``AssertionError`` unless ``fn(logits, labels, recall)`` returns, for
    each label (column), the largest logit threshold at which predicting ``logits >= threshold``
    finds at least ``recall`` of that label's positives. ``cases="data"`` or ``"edge"`` limits the
    check to one group of :func:`threshold_cases`."""
    threshold_groups(params)
    if checks_suppressed() or judged_elsewhere():
        return
    problems = decide("assert_thresholds", params, None, local(fn))
    if problems:
        raise AssertionError("\n" + "\n".join(f"- {p}" for p in problems))


def check_trained(fn, **params) -> CheckReport:
    """Train with ``fn`` (your ``train_digits_model``) and show each label's held-out recall and
    balanced accuracy against what :func:`assert_trained` asks (same arguments)."""
    settings = trained_settings(params)
    title = (f"the model of {getattr(fn, '__name__', 'your function')} on the held-out digits "
             f"(asked: recall >= {settings['recall']:g}, balanced accuracy >= "
             f"{settings['balanced_accuracy']:g} for every label)")
    if checks_suppressed() or judged_elsewhere():
        return _not_run(title, _LOADING if checks_suppressed() else _GRADING)
    model, wrong = trained_model(local(fn))
    if wrong:
        return CheckReport(title, problems=[wrong], unit="labels")
    problems = judge_trained_model(settings, model)
    report = CheckReport(title, problems=problems, unit="labels")
    if not problems or all(p.startswith("label ") for p in problems):
        scores = held_out_scores(model["weight"], model["bias"])
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
    trained_settings(params)
    if checks_suppressed() or judged_elsewhere():
        return
    problems = decide("assert_trained", params, None, local(fn))
    if problems:
        raise AssertionError("\n" + "\n".join(f"- {p}" for p in problems))


# The checks' halves live in the battery; imported here, after the metrics they use.
from ._battery.capstone import (  # noqa: E402
    TRAINED_DEFAULTS, TRAINING_TIME_LIMIT, CheckReport, held_out_scores, judge_trained_model,
    pos_weight_cases, pos_weight_groups, threshold_cases, threshold_groups, trained_model, trained_settings,
)
from ._battery.checks import decide, judged_elsewhere, local  # noqa: E402
