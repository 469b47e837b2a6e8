"""The report's figure: the student's function and torch's over a sweep (:class:`Sweep`).

One panel per target value. torch's curve is a solid blue line with round markers, the
student's a dashed vermillion line with square markers (Okabe and Ito's palette, which people
with the common colour-vision deficiencies tell apart); the points where they differ beyond the
tolerance are shaded and hatched, and the student's curve has a marker at each of them. A point
where the student's function gave no number is a cross on the x-axis; a value of theirs too far
from torch's to show (infinity included) is a triangle on the top or bottom edge. The legend
sits above the panels, never over the curves. The background is white, so the figure reads the
same in light and dark themes.

It is drawn with matplotlib's object interface, a ``Figure`` with an Agg canvas of its own:
pyplot and its global state (the current figure, the backend, rcParams) are never touched.

It is embedded as a PNG, drawn at twice the pixels it is shown at, rather than as inline SVG:
one ``<img>`` whose size does not depend on the number of points, which JupyterLab's sanitizer
of untrusted outputs keeps (``svg`` is not among the tags it allows, so a notebook opened again
later would lose an inline SVG figure), and which cannot clash with another figure in the same
page (matplotlib's SVG names its clip paths and markers with ids that two figures may share).
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .report import Sweep
from .sweep import differs

#: The size the figure is shown at, in CSS pixels; the PNG has SCALE times as many pixels.
WIDTH, HEIGHT = 560, 320
SCALE = 2
#: Points per inch of the figure: a 10 pt font is 10 / 72 * DPI CSS pixels high (about 14).
DPI = 100
FONT_SIZE = 10

# Okabe and Ito's colour-blind safe palette.
TORCH = "#0072B2"  # blue
YOURS = "#D55E00"  # vermillion
DIFFER = "#E69F00"  # orange
MISSING = "#000000"
_SHADE = to_rgba(DIFFER, 0.22)
_HATCH = to_rgba(DIFFER, 0.9)

#: Markers on a curve: about this many, and as many again at the points that differ.
_MARKERS = 12


def _thin(where: np.ndarray, most: int = 2 * _MARKERS) -> np.ndarray:
    """At most about ``most`` of the True indices of ``where``, evenly spread, with the first
    and the last: markers on every one of 100 neighbouring points would merge into a smear."""
    index = np.flatnonzero(where)
    if index.size <= most:
        return index
    step = math.ceil(index.size / most)
    return np.union1d(index[::step], index[-1:])


def limits(torch_values: np.ndarray, yours: np.ndarray, bad: np.ndarray) -> tuple[float, float]:
    """The y-range of one panel: torch's values where the curves differ, with the middle 80 % of
    torch's values for context (so that the 100 of torch's clamp at p = 0 does not flatten a
    difference elsewhere), widened to the student's values there when they lie within one
    such range of it; 0 is included when it is near. ``yours`` holds nan for no number."""
    finite_torch = torch_values[np.isfinite(torch_values)]
    if finite_torch.size == 0:
        return -1.0, 1.0
    shown = torch_values[bad & np.isfinite(torch_values)] if bad.any() else finite_torch
    context = np.percentile(finite_torch, [10, 90])
    lo = float(min(shown.min(), context[0])) if shown.size else float(context[0])
    hi = float(max(shown.max(), context[1])) if shown.size else float(context[1])
    if finite_torch.max() - finite_torch.min() <= 2 * (hi - lo):  # the whole curve, if it costs little
        lo, hi = float(finite_torch.min()), float(finite_torch.max())
    span = max(hi - lo, 1e-3 * max(abs(lo), abs(hi)), 1e-9)
    theirs = yours[bad & np.isfinite(yours)]
    near = theirs[(theirs >= lo - span) & (theirs <= hi + span)]
    if near.size:
        lo, hi = min(lo, float(near.min())), max(hi, float(near.max()))
    if 0 < lo <= 0.5 * hi:
        lo = 0.0
    elif lo < 0 and hi < 0 and hi >= 0.5 * lo:
        hi = 0.0
    pad = 0.06 * max(hi - lo, span)
    return lo - pad, hi + pad


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """The first and last index of each run of True."""
    runs, start = [], None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        if not flag and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(flags) - 1))
    return runs


def _panel(ax, x: np.ndarray, series: dict, bad: np.ndarray) -> dict[str, bool]:
    """Draw one series; say which of the optional legend entries it used."""
    t = np.array(series["torch"], dtype=float)
    y = np.array([math.nan if v is None else v for v in series["yours"]], dtype=float)
    missing = np.array([v is None for v in series["yours"]])
    lo, hi = limits(t, y, bad)
    every = max(1, len(x) // _MARKERS)
    sparse = np.arange(len(x)) % every == 0
    ax.plot(x, t, color=TORCH, lw=2.6, ls="-", marker="o", ms=4.5,
            markevery=[int(i) for i in np.flatnonzero(sparse)], zorder=2, label="torch")
    shown = np.where(np.isfinite(y), y, np.nan)
    inside = np.isfinite(y) & (y >= lo) & (y <= hi)
    mark = np.union1d(np.flatnonzero(sparse & inside), _thin(bad & inside))
    ax.plot(x, shown, color=YOURS, lw=1.6, ls=(0, (4, 2)), marker="s", ms=5, mfc="none", mew=1.4,
            markevery=[int(i) for i in mark], zorder=3, label="yours")
    step = float(np.min(np.diff(x))) if len(x) > 1 else 1.0
    half = max(step / 2, 0.012 * float(x[-1] - x[0] or 1.0))
    spans: list[list[float]] = []
    for first, last in _runs(bad):  # widened runs that overlap are merged: one shade, one hatch
        start, end = float(x[first]) - half, float(x[last]) + half
        if spans and start <= spans[-1][1]:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    for start, end in spans:
        ax.axvspan(start, end, facecolor=_SHADE, edgecolor=_HATCH, hatch="///", linewidth=0, zorder=0)
    edge = ax.get_xaxis_transform()  # x in data, y in axes coordinates
    if missing.any():
        shown_missing = _thin(missing)
        ax.plot(x[shown_missing], np.zeros(shown_missing.size), transform=edge, ls="none", marker="x", ms=8,
                mew=2, color=MISSING, clip_on=False, zorder=5)
    above = bad & ~missing & (y > hi)
    below = bad & ~missing & (y < lo)
    for where, at, marker in ((above, 1.0, "^"), (below, 0.0, "v")):
        if where.any():
            index = _thin(where)
            ax.plot(x[index], np.full(index.size, at), transform=edge, ls="none", marker=marker, ms=8,
                    color=YOURS, clip_on=False, zorder=5)
    pad = 0.02 * float(x[-1] - x[0] or 1.0)
    ax.set_xlim(float(x[0]) - pad, float(x[-1]) + pad)
    ax.set_ylim(lo, hi)
    ax.set_title(series["label"], fontsize=FONT_SIZE + 1, pad=9)
    ax.tick_params(labelsize=FONT_SIZE)
    ax.grid(True, color="#d0d0d0", lw=0.6, zorder=1)
    return {"differs": bool(bad.any()), "missing": bool(missing.any()), "off": bool(above.any() or below.any())}


def draw(sweep: Sweep) -> Figure:
    """The figure of ``sweep``: one panel per series, the legend above them."""
    figure = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI, facecolor="white", layout="constrained")
    FigureCanvasAgg(figure)
    x = np.array(sweep.x, dtype=float)
    flags = differs(sweep)
    axes = figure.subplots(1, len(sweep.series), squeeze=False)[0]
    used = {"differs": False, "missing": False, "off": False}
    for ax, series, bad in zip(axes, sweep.series, flags):
        ax.set_facecolor("white")
        for key, value in _panel(ax, x, series, np.array(bad, dtype=bool)).items():
            used[key] |= value
        ax.set_xlabel(sweep.x_label, fontsize=FONT_SIZE)
    axes[0].set_ylabel(sweep.y_label, fontsize=FONT_SIZE)
    handles = [Line2D([], [], color=TORCH, lw=2.6, marker="o", ms=4.5, label="torch"),
               Line2D([], [], color=YOURS, lw=1.6, ls=(0, (4, 2)), marker="s", ms=5, mfc="none", mew=1.4,
                      label="yours")]
    if used["differs"]:
        handles.append(Patch(facecolor=_SHADE, edgecolor=_HATCH, hatch="///", linewidth=0,
                             label="beyond the tolerance"))
    if used["missing"]:
        handles.append(Line2D([], [], ls="none", marker="x", ms=8, mew=2, color=MISSING,
                              label="yours: no number"))
    if used["off"]:
        handles.append(Line2D([], [], ls="none", marker="^", ms=8, color=YOURS, label="yours: off the chart"))
    figure.legend(handles=handles, loc="outside upper center", ncol=2 if len(handles) in (2, 4) else 3, frameon=False,
                  fontsize=FONT_SIZE, handlelength=2.6)
    return figure


def png(sweep: Sweep) -> bytes:
    """The figure as PNG bytes, SCALE times WIDTH by HEIGHT pixels."""
    buffer = io.BytesIO()
    draw(sweep).savefig(buffer, format="png", dpi=DPI * SCALE, facecolor="white")
    return buffer.getvalue()


def data_url(sweep: Sweep) -> str:
    """The figure as a ``data:`` URL, for an ``<img>``."""
    return "data:image/png;base64," + base64.b64encode(png(sweep)).decode("ascii")
