"""Interactive explorers: see the loss curves move.

Each explorer is a class that owns one matplotlib ``Figure``; ``update(**params)``
changes the plotted data in place (no new figure, no new axes) and ``png()``
renders it. The functions ``loss_vs_probability``, ``loss_vs_logit``,
``naive_vs_fused`` and ``batch_heatmap`` take parameters and return a
``Figure``, for tests, for printing and for static pages. The widget functions
(``probability_explorer`` ...) turn an explorer into a widget that redraws in
the browser (``grader._widget``): the kernel computes every frame with the
explorer's own ``update`` once, and moving a control only draws another frame.
Line style and marker carry each curve's meaning as well as its colour (the
Okabe-Ito palette, which colour-blind readers can tell apart).

Every plotted value is computed with torch: ``F.binary_cross_entropy``,
``F.binary_cross_entropy_with_logits`` and autograd, never a formula typed here
(except the naive formula of the third explorer, whose failure is the point).
"""

from __future__ import annotations

import functools
import io
import math
from typing import Any, Callable

import PIL.Image
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import articles

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
REDUCTIONS = ("mean", "sum", "none")
WEIGHTS = {
    "none": None,
    "one per column [0.5, 1, 2]": torch.tensor([0.5, 1.0, 2.0]),
    "one per row [[0.5], [1], [2]]": torch.tensor([[0.5], [1.0], [2.0]]),
}
EXAMPLES = {"001-2": "article 001, example 2", "000": "article 000"}

_DPI = 96  # CSS pixels per inch: a figure is shown at its size in inches

# The Okabe-Ito palette, distinguishable with every common colour-vision deficiency; its
# orange darkened (from #E69F00) to stand out 3:1 on white as well as on a dark theme.
BLUE, ORANGE, GREEN, VERMILLION = "#0072B2", "#B87D00", "#009E73", "#D55E00"
GREY = "#8c8c8c"
LEGEND = {"fontsize": 10, "handlelength": 3}


class Explorer:
    """A figure whose data follow a few parameters.

    Rendering blits: what does not change with the parameters (axes, ticks,
    labels, legends) is drawn once and kept as a background; each ``png()``
    draws only the artists in ``dynamic`` on top of it. The background is drawn
    again only when an axis's limits (or a colour scale) change, and the
    explorers round their limits to keep that rare.
    """

    figure: Figure
    params: dict[str, Any]
    dynamic: list
    _background = None
    _background_key = None

    def update(self, **params: Any) -> None:
        unknown = set(params) - set(self.params)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no parameter {', '.join(sorted(unknown))}; "
                            f"its parameters are {', '.join(self.params)}")
        self.params.update(params)
        self._draw(**self.params)

    def _draw(self, **params: Any) -> None:
        raise NotImplementedError

    def _layout_key(self) -> tuple:
        key = [tuple(ax.get_xlim()) + tuple(ax.get_ylim()) for ax in self.figure.axes]
        key += [im.get_clim() for ax in self.figure.axes for im in ax.images]
        return tuple(key)

    def png(self) -> bytes:
        """The figure as PNG bytes."""
        canvas = self.figure.canvas
        # legends go on top of the curves, so they are drawn with them
        on_top = self.dynamic + [ax.get_legend() for ax in self.figure.axes if ax.get_legend()]
        for artist in on_top:
            artist.set_animated(True)  # left out of full draws: they go on top of the background
        key = self._layout_key()
        if key != self._background_key:
            canvas.draw()
            self._background, self._background_key = canvas.copy_from_bbox(self.figure.bbox), key
        else:
            canvas.restore_region(self._background)
        for artist in on_top:
            self.figure.draw_artist(artist)
        width, height = canvas.get_width_height()
        image = PIL.Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buffer = io.BytesIO()
        image.save(buffer, format="png", compress_level=1)
        return buffer.getvalue()


def _nice(value: float) -> float:
    """The smallest of 1, 1.5, 2, 3, 5, 7.5 times a power of ten that is at least ``value``:
    axis limits that move in steps keep the cached background valid longer."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 1.5, 2, 3, 5, 7.5, 10) if m * power >= value)


def _log_axis(axis, exponents) -> None:
    """A log-scaled axis with fixed ticks labelled in plain text: the default
    labels are typeset as math, which costs more than everything else a redraw does."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

    axis.set_major_locator(FixedLocator([10.0 ** e for e in exponents]))
    axis.set_major_formatter(FixedFormatter([f"1e{e}" if e else "1" for e in exponents]))
    axis.set_minor_locator(NullLocator())


def _ink() -> str:
    """The colour of text and axes in the current matplotlib settings (a light or dark theme)."""
    import matplotlib

    return matplotlib.rcParams["axes.edgecolor"]


def _figure(width: float, height: float, columns: int) -> tuple[Figure, list]:
    figure = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(1, columns, i + 1) for i in range(columns)]
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.86, wspace=0.28)
    return figure, axes


# --- 1. the loss of one prediction against p ------------------------------------

class LossVsProbability(Explorer):
    """The BCE of one prediction ``p`` for a target ``y``: both terms of the
    formula, the minimum at ``p = y``, and (right) what the clamp of each log at
    -100 does near 0."""

    def __init__(self, target: float = 0.3, points: int = 401):
        self.params = {"target": target}
        # exactly 0 and 1 included: there torch's clamp decides the value
        self.p = torch.linspace(0, 1, points, dtype=torch.float64)
        self.tiny = torch.logspace(-60, 0, points, dtype=torch.float64)
        self.figure, (left, right) = _figure(9.5, 3.6, 2)
        self.total, = left.plot([], [], lw=2.4, color=BLUE, label="loss")
        self.positive, = left.plot([], [], lw=1.6, ls="--", color=VERMILLION, label="-y log p")
        self.negative, = left.plot([], [], lw=1.8, ls=":", color=GREEN, label="-(1-y) log(1-p)")
        self.minimum, = left.plot([], [], "s", ms=7, color=ORANGE, label="minimum, at p = y")
        left.set(xlim=(0, 1), ylim=(0, 6), xlabel="predicted probability p", ylabel="loss")
        left.legend(loc="upper center", **LEGEND)
        self.tiny_line, = right.plot([], [], lw=1.6, ls="--", color=VERMILLION)
        self.cap = right.axhline(100, color=GREY, lw=1.2, ls=":")
        right.set(xscale="log", xlim=(1e-60, 1), ylim=(0, 105), xlabel="p (log scale)", ylabel="-y log p, clamped",
                  title="the clamp: log p never below -100")
        _log_axis(right.xaxis, (-60, -45, -30, -15, 0))
        self.left = left
        self.right = right
        self.dynamic = [self.total, self.positive, self.negative, self.minimum, self.tiny_line, self.cap,
                        left.title]
        self._draw(**self.params)

    @staticmethod
    def data(target: float, p: torch.Tensor) -> dict[str, torch.Tensor]:
        """The curves, from torch: the loss and its two terms at every ``p``."""
        y = torch.full_like(p, target)
        return {
            "loss": F.binary_cross_entropy(p, y, reduction="none"),
            # F.binary_cross_entropy(p, 1) is -log p clamped, F.binary_cross_entropy(p, 0) is -log(1-p) clamped
            "positive": target * F.binary_cross_entropy(p, torch.ones_like(p), reduction="none"),
            "negative": (1 - target) * F.binary_cross_entropy(p, torch.zeros_like(p), reduction="none"),
            "minimum": F.binary_cross_entropy(y[:1], y[:1], reduction="none"),
        }

    def _draw(self, target: float) -> None:
        d = self.data(target, self.p)
        x = self.p.numpy()
        self.total.set_data(x, d["loss"].numpy())
        self.positive.set_data(x, d["positive"].numpy())
        self.negative.set_data(x, d["negative"].numpy())
        self.minimum.set_data([target], d["minimum"].numpy())
        self.left.set_title(f"y = {target:.2f}: the loss is {d['loss'][0].item():.3g} at p = 0, "
                            f"{d['loss'][-1].item():.3g} at p = 1", fontsize=10)
        tiny = self.data(target, self.tiny)["positive"]
        self.tiny_line.set_data(self.tiny.numpy(), tiny.numpy())
        self.cap.set_ydata([100 * target] * 2)


def loss_vs_probability(target: float = 0.3) -> Figure:
    return LossVsProbability(target).figure


# --- 2. loss and gradient against the logit --------------------------------------

class LossVsLogit(Explorer):
    """BCE-with-logits of one logit ``z`` for a target ``y``, and its gradient,
    ``sigmoid(z) - y`` without ``pos_weight``; a ``pos_weight`` above 1 weights
    the errors on positive targets up (dashed: ``pos_weight = 1``)."""

    def __init__(self, target: float = 1.0, pos_weight: float = 3.0, points: int = 401, limit: float = 8.0):
        self.params = {"target": target, "pos_weight": pos_weight}
        self.z = torch.linspace(-limit, limit, points, dtype=torch.float64)
        self.figure, (left, right) = _figure(9.5, 3.6, 2)
        self.loss, = left.plot([], [], lw=2.4, color=BLUE, label="with pos_weight")
        self.loss_plain, = left.plot([], [], lw=1.6, ls="--", color=GREY, label="pos_weight = 1")
        self.grad, = right.plot([], [], lw=2.4, color=VERMILLION, label="with pos_weight")
        self.grad_plain, = right.plot([], [], lw=1.6, ls="--", color=GREY, label="sigmoid(z) - y")
        left.set(xlim=(-limit, limit), xlabel="logit z", ylabel="loss")
        right.set(xlim=(-limit, limit), xlabel="logit z", ylabel="d loss / dz")
        right.axhline(0, color=_ink(), lw=0.6)
        left.legend(loc="upper center", **LEGEND)
        right.legend(loc="upper left", **LEGEND)
        self.left, self.right = left, right
        self.dynamic = [self.loss, self.loss_plain, self.grad, self.grad_plain, left.title]
        self._draw(**self.params)

    @staticmethod
    def data(target: float, pos_weight: float, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss and its gradient (by autograd) at every ``z``, with and without pos_weight."""
        out = {}
        for key, weight in (("", pos_weight), ("_plain", 1.0)):
            x = z.detach().clone().requires_grad_(True)
            loss = F.binary_cross_entropy_with_logits(
                x, torch.full_like(z, target), pos_weight=torch.tensor(weight, dtype=z.dtype), reduction="none")
            (grad,) = torch.autograd.grad(loss.sum(), x)
            out["loss" + key], out["grad" + key] = loss.detach(), grad
        return out

    def _draw(self, target: float, pos_weight: float) -> None:
        d = self.data(target, pos_weight, self.z)
        x = self.z.numpy()
        self.loss.set_data(x, d["loss"].numpy())
        self.loss_plain.set_data(x, d["loss_plain"].numpy())
        self.grad.set_data(x, d["grad"].numpy())
        self.grad_plain.set_data(x, d["grad_plain"].numpy())
        # The limits follow pos_weight in three steps (up to 1, 3 and 10), not every move of a
        # slider: the curves' scale stays put while the student compares them.
        bound = 1.0 if pos_weight <= 1 else 3.0 if pos_weight <= 3 else max(10.0, pos_weight)
        edge = self.z[:1]
        worst = F.binary_cross_entropy_with_logits(edge, torch.ones_like(edge), pos_weight=torch.tensor(bound))
        self.left.set_ylim(0, _nice(worst.item()))
        self.right.set_ylim(-1.05 * bound, 1.05)
        self.left.set_title(f"y = {target:.2f}, pos_weight = {pos_weight:.2f}", fontsize=10)


def loss_vs_logit(target: float = 1.0, pos_weight: float = 3.0) -> Figure:
    return LossVsLogit(target, pos_weight).figure


# --- 3. where the naive formula breaks ----------------------------------------------

class NaiveVsFused(Explorer):
    """BCE computed the naive way, ``-(y log sigmoid(z) + (1 - y) log(1 - sigmoid(z)))``,
    against torch's fused ``binary_cross_entropy_with_logits``, both in ``dtype``,
    with float64 as the reference: where the naive one becomes infinite, and from
    where it is more than 1 % off."""

    def __init__(self, dtype: str = "float32", target: float = 0.0, points: int = 801, limit: float = 40.0):
        self.params = {"dtype": dtype, "target": target}
        self.z = torch.linspace(-limit, limit, points, dtype=torch.float64)
        self.figure, (axes,) = _figure(9.5, 3.8, 1)
        self.exact, = axes.plot([], [], lw=6, color="#c8c8c8", label="exact (float64)")
        self.fused, = axes.plot([], [], lw=1.6, color=_ink(), ls="--", label="binary_cross_entropy_with_logits")
        self.naive, = axes.plot([], [], lw=2, color=BLUE, label="naive: log(sigmoid(z))")
        self.inf_line = axes.axvline(0, color=VERMILLION, ls=":", lw=2, label="first inf or nan")
        self.off_line = axes.axvline(0, color=ORANGE, ls="-.", lw=1.6, label="first over 1 % off")
        axes.set(xlim=(-limit, limit), yscale="log", ylim=(1e-18, 1e3), xlabel="logit z", ylabel="loss")
        _log_axis(axes.yaxis, (-15, -10, -5, 0, 3))
        axes.legend(loc="lower left", **LEGEND)
        self.axes = axes
        self.dynamic = [self.exact, self.fused, self.naive, self.inf_line, self.off_line, axes.title]
        self._draw(**self.params)

    @staticmethod
    def data(dtype: str, target: float, z: torch.Tensor) -> dict[str, Any]:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
        zd = z.to(DTYPES[dtype])
        y = torch.full_like(zd, target)
        p = torch.sigmoid(zd)
        naive = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
        fused = F.binary_cross_entropy_with_logits(zd, y, reduction="none")
        exact = F.binary_cross_entropy_with_logits(z, torch.full_like(z, target), reduction="none")
        naive64 = naive.double()
        broken = ~naive64.isfinite()
        off = broken | ((naive64 - exact).abs() > 0.01 * exact.abs() + 1e-30)
        def closest_to_zero(mask):  # the logit nearest 0 where the naive loss fails, with its sign
            return z[mask][z[mask].abs().argmin()].item() if mask.any() else None

        return {"naive": naive64, "fused": fused.double(), "exact": exact,
                "first_infinite": closest_to_zero(broken), "first_off": closest_to_zero(off)}

    def _draw(self, dtype: str, target: float) -> None:
        d = self.data(dtype, target, self.z)
        x = self.z.numpy()
        def shown(values):  # inf, nan and 0 have no place on a log scale: leave gaps
            return torch.where(values.isfinite() & (values > 0), values, torch.nan).numpy()

        self.naive.set_data(x, shown(d["naive"]))
        self.fused.set_data(x, shown(d["fused"]))
        self.exact.set_data(x, d["exact"].numpy())
        for line, where in ((self.inf_line, d["first_infinite"]), (self.off_line, d["first_off"])):
            line.set_visible(where is not None)
            if where is not None:
                line.set_xdata([where] * 2)
        inf_text = (f"inf or nan first at z = {d['first_infinite']:.3g}" if d["first_infinite"] is not None
                    else "always finite")
        off_text = (f"over 1 % off first at z = {d['first_off']:.3g}" if d["first_off"] is not None
                    else "never 1 % off")
        self.axes.set_title(f"{dtype}, y = {target:.2f}: the naive loss is {inf_text} (dotted line),\n"
                            f"{off_text} (dash-dot line)", fontsize=10)


def naive_vs_fused(dtype: str = "float32", target: float = 0.0) -> Figure:
    return NaiveVsFused(dtype, target).figure


# --- 4. a batch at a glance -----------------------------------------------------------

class BatchHeatmap(Explorer):
    """The per-element loss of one of the articles' 3x3 batches as a heatmap,
    weighted, and the value the chosen reduction returns."""

    def __init__(self, example: str = "001-2", reduction: str = "mean", weight: str = "none"):
        self.params = {"example": example, "reduction": reduction, "weight": weight}
        self.figure, (axes,) = _figure(5.6, 4.6, 1)
        self.figure.subplots_adjust(left=0.12, right=0.86, bottom=0.11, top=0.84)
        self.image = axes.imshow(torch.zeros(3, 3).numpy(), cmap="viridis", vmin=0, vmax=1)
        self.labels = [[axes.text(j, i, "", ha="center", va="center", fontsize=11) for j in range(3)]
                       for i in range(3)]
        axes.set(xticks=range(3), yticks=range(3), xlabel="column", ylabel="row")
        self.figure.colorbar(self.image, ax=axes, fraction=0.046, pad=0.04, label="weighted loss")
        self.axes = axes
        self.dynamic = [self.image, *[t for row in self.labels for t in row], axes.title]
        self._draw(**self.params)

    @staticmethod
    def data(example: str, reduction: str, weight: str) -> dict[str, Any]:
        if example not in EXAMPLES:
            raise ValueError(f"example must be one of {', '.join(EXAMPLES)}, not {example!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, not {reduction!r}")
        if weight not in WEIGHTS:
            raise ValueError(f"weight must be one of {', '.join(map(repr, WEIGHTS))}, not {weight!r}")
        args = articles.example(example).build()
        w = WEIGHTS[weight]
        return {
            "per_element": F.binary_cross_entropy(args["input"], args["target"], weight=w, reduction="none"),
            "reduced": F.binary_cross_entropy(args["input"], args["target"], weight=w, reduction=reduction),
        }

    def _draw(self, example: str, reduction: str, weight: str) -> None:
        d = self.data(example, reduction, weight)
        values = d["per_element"]
        top = _nice(_largest(example))  # one colour scale per example, whatever the weight: comparable
        self.image.set_data(values.numpy())
        self.image.set_clim(0, top)
        for i in range(3):
            for j in range(3):
                v = values[i, j].item()
                self.labels[i][j].set_text(f"{v:.3f}")
                self.labels[i][j].set_color("black" if v > 0.6 * top else "white")
        result = ("the 3x3 matrix itself" if reduction == "none"
                  else f"{d['reduced'].item():.4f}")
        self.axes.set_title(f"{EXAMPLES[example]}, weight: {weight}\n"
                            f"reduction={reduction!r} returns {result}", fontsize=10)


@functools.lru_cache(maxsize=None)
def _largest(example: str) -> float:
    """The largest weighted per-element loss of ``example`` under any of the weights."""
    return max(BatchHeatmap.data(example, "none", weight)["per_element"].max().item() for weight in WEIGHTS)


def batch_heatmap(example: str = "001-2", reduction: str = "mean", weight: str = "none") -> Figure:
    return BatchHeatmap(example, reduction, weight).figure


# --- the widgets ------------------------------------------------------------------------

def steps(low: float, high: float, step: float) -> list[float]:
    """``low``, ``low + step``, ... ``high``, rounded: the values a slider offers."""
    count = round((high - low) / step)
    return [round(low + i * step, 10) for i in range(count + 1)]


#: The values each explorer's controls offer (every frame for them is computed up front).
TARGETS = steps(0.0, 1.0, 0.01)
COARSE_TARGETS = steps(0.0, 1.0, 0.05)
POS_WEIGHTS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0)


def interactive(make: Callable[..., Explorer], controls: list, params: dict, title: str, prefetch: bool = False):
    """The explorer ``make(**params)`` as a widget with ``controls`` (``grader._widget.Control``):
    its frames are computed when a browser first shows it, and drawn there. In a cell the
    autograder runs and nobody grades, nothing is drawn (``grader._widget.UndrawnExplorer``)."""
    from ._battery.checks import figures_drawn
    from ._widget import ExplorerWidget, UndrawnExplorer

    if not figures_drawn():
        return UndrawnExplorer(make, controls, params, title)
    return ExplorerWidget(make, controls, params, title, prefetch=prefetch)


def probability_explorer(target: float = 0.3):
    """Explorer 1: the loss of one prediction against p, with a slider for the target y."""
    from ._widget.controls import slider

    return interactive(lambda target: LossVsProbability(target, points=201), [slider("target", "target y", TARGETS)],
                       {"target": target}, "The loss of one prediction against p")


def logit_explorer(target: float = 1.0, pos_weight: float = 3.0):
    """Explorer 2: BCE-with-logits and its gradient against the logit, with sliders
    for the target and pos_weight."""
    from ._widget.controls import slider

    return interactive(lambda target, pos_weight: LossVsLogit(target, pos_weight, points=201),
                       [slider("target", "target y", COARSE_TARGETS),
                        slider("pos_weight", "pos_weight", POS_WEIGHTS, "{:g}")],
                       {"target": target, "pos_weight": pos_weight}, "BCE with logits and its gradient against z")


def naive_explorer(dtype: str = "float32", target: float = 0.0):
    """Explorer 3: where the naive log(sigmoid(z)) formula breaks, for a chosen dtype."""
    from ._widget.controls import menu, slider

    return interactive(lambda dtype, target: NaiveVsFused(dtype, target),
                       [menu("dtype", "dtype", DTYPES), slider("target", "target y", COARSE_TARGETS)],
                       {"dtype": dtype, "target": target}, "The naive formula against the fused one")


def batch_explorer(example: str = "001-2", reduction: str = "mean", weight: str = "none"):
    """Explorer 4: a 3x3 batch's per-element loss, with controls for reduction and weight."""
    from ._widget.controls import menu

    return interactive(lambda example, reduction, weight: BatchHeatmap(example, reduction, weight),
                       [menu("example", "example", EXAMPLES), menu("reduction", "reduction", REDUCTIONS),
                        menu("weight", "weight", WEIGHTS)],
                       {"example": example, "reduction": reduction, "weight": weight},
                       "A 3x3 batch's loss, element by element")


#: Every explorer: (widget function, pure figure function, explorer class).
EXPLORERS: dict[str, tuple[Callable, Callable, type]] = {
    "probability": (probability_explorer, loss_vs_probability, LossVsProbability),
    "logit": (logit_explorer, loss_vs_logit, LossVsLogit),
    "naive": (naive_explorer, naive_vs_fused, NaiveVsFused),
    "batch": (batch_explorer, batch_heatmap, BatchHeatmap),
}

