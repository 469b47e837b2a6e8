"""The report's figures, drawn from its numbers (``results.report_data``).

Each notebook has its colour, the same in every figure, from the Okabe-Ito palette, which
readers with any common colour-vision deficiency tell apart; and nothing is told by colour
alone: every bar is labelled with its notebook (a heading row) and its numbers. Text is at
least 10 pt, and the layout is constrained so that no text is cut at the figure's edge,
with data or without.
"""

from __future__ import annotations

import contextlib
import math

#: Okabe & Ito's colour-blind-safe palette (its yellow darkened, to read on white).
PALETTE = ("#0072B2", "#B87D00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9")
#: The smallest font size of any text in a figure, in points.
MIN_FONT = 10
_GREY = "#555555"
_WIDTH = 10.0  # inches
_ROW = 0.3  # inches per bar


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _number(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _wrap(text: str, width: int) -> str:
    """``text`` in lines of at most ``width`` characters (a title over a narrow panel)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=True)) or text


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@contextlib.contextmanager
def _style():
    import matplotlib

    with matplotlib.rc_context({
        "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": MIN_FONT,
        "ytick.labelsize": MIN_FONT, "legend.fontsize": MIN_FONT, "figure.titlesize": 13,
        "axes.spines.top": False, "axes.spines.right": False,
    }):
        yield


def _figure(height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(_WIDTH, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def figures(data: dict) -> dict:
    """{file name: matplotlib Figure}, drawn (their layout done)."""
    with _style():
        drawn = {"scores.png": scores(data), "tests.png": tests(data), "categories.png": categories(data)}
        for figure in drawn.values():
            figure.canvas.draw()
    return drawn


def _message(figure, title: str, text: str):
    ax = figure.add_subplot()
    ax.set_axis_off()
    figure.suptitle(title, x=0.01, ha="left")
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=12, color=_GREY)
    return figure


def scores(data: dict):
    """Small multiples: a histogram of each notebook's scores, in course order, counting only
    those who handed that notebook in (a blank notebook was: at its score, 0)."""
    from matplotlib.ticker import MaxNLocator

    names = data["assignments"]
    if not names:
        return _message(_figure(2.5), "Scores per notebook", "no notebooks released yet")
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure = _figure(1.0 + 2.7 * rows)
    axes = figure.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.set_visible(False)
            continue
        name = names[i]
        notebook = data["notebooks"][name]
        maximum = float(notebook["maximum"]) or 1.0
        values = [float(v) for v in notebook["scores"].values()]
        if values:
            whole = all(float(v).is_integer() for v in values) and maximum.is_integer() and maximum <= 40
            bins = [b - 0.5 for b in range(int(maximum) + 2)] if whole else [maximum * k / 20 for k in range(21)]
            counts, _, _ = ax.hist(values, bins=bins, color=colour(i), edgecolor="white", linewidth=0.8)
            peak = max(counts)
            detail = f"{notebook['handed_in']} handed in, mean {_number(notebook['mean'])}"
        else:
            peak = 1
            ax.text(0.5, 0.5, "no submissions yet", transform=ax.transAxes, ha="center", va="center",
                    fontsize=11, color=_GREY)
            detail = "none handed in"
        ax.set_xlim(-0.5, maximum + 0.5)
        ax.set_ylim(0, peak * 1.15)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        ax.set_title(f"{_wrap(name, 30)}\n{detail}", fontsize=11)
        ax.set_xlabel(f"score (of {_number(maximum)})")
        if i % columns == 0:
            ax.set_ylabel("students")
    who = "on the roster" if data["roster"] else "in the gradebook"
    figure.suptitle(f"Scores per notebook, of those who handed it in ({_plural(data['students'], 'student')} {who})"
                    if data["submissions"] else "Scores per notebook: no submissions yet")
    return figure


def _rows_figure(rows: list[dict], title: str, xlabel: str, xmax: float, legend: list[tuple[str, str]]):
    """Horizontal bars, top to bottom: a heading row ``{"heading": text}`` per notebook, then
    its bars ``{"label", "value", "colour", "text"}``."""
    from matplotlib.patches import Patch

    figure = _figure(1.6 + _ROW * len(rows) + 0.25 * math.ceil(len(legend) / 3))
    ax = figure.add_subplot()
    positions = range(len(rows))
    for y, row in zip(positions, rows):
        if "heading" in row:
            continue
        ax.barh(y, row["value"], color=row["colour"], height=0.7)
        ax.text(row["value"] + xmax * 0.01, y, row["text"], va="center", ha="left", fontsize=MIN_FONT)
    ax.set_yticks(list(positions), [row.get("heading") or row["label"] for row in rows])
    for tick, row in zip(ax.get_yticklabels(), rows):
        if "heading" in row:
            tick.set_fontweight("bold")
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, xmax * 1.3)
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel(xlabel)
    figure.suptitle(title, x=0.01, ha="left")
    if legend:
        handles = [Patch(color=c, label=label) for label, c in legend]
        # as many columns as fit in the figure's width (long notebook names: fewer)
        renderer = figure.canvas.get_renderer()
        for columns in range(min(3, len(legend)), 0, -1):
            box = ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.02), ncol=columns,
                            frameon=False, borderaxespad=0)
            if box.get_window_extent(renderer).width <= 0.55 * figure.bbox.width:
                break
        extra = math.ceil(len(legend) / columns) - math.ceil(len(legend) / min(3, len(legend)))
        figure.set_figheight(figure.get_figheight() + 0.25 * extra)
    return figure


def tests(data: dict):
    """The pass rate of each test cell, in notebook order: the cells in the order of the
    released notebook, under a heading per notebook, coloured by notebook."""
    title = "Pass rate of each test cell, in notebook order"
    if not data["submissions"]:
        return _message(_figure(2.5), title, "no submissions yet")
    rows, legend = [], []
    for i, name in enumerate(data["assignments"]):
        cells = [t for t in data["tests"].values() if t["assignment"] == name]
        handed_in = data["notebooks"][name]["handed_in"]
        if not handed_in:
            rows.append({"heading": f"{name}: no submissions yet"})
            continue
        legend.append((name, colour(i)))
        rows.append({"heading": f"{name} ({_plural(handed_in, 'submission')})"})
        for t in cells:
            rows.append({"label": t["cell"], "value": 100 * (t["rate"] or 0), "colour": colour(i),
                         "text": f"{t['passed']} of {t['submissions']} passed"})
    return _rows_figure(rows, title, "submissions with full points (%)", 100, legend)


def categories(data: dict):
    """The checker's failing categories, per notebook and exercise (the function checked):
    how many submissions fail each."""
    title = "Failing categories of the checker, per notebook and exercise"
    if not data["submissions"]:
        return _message(_figure(2.5), title, "no submissions yet")
    rows, legend, largest = [], [], 1
    for i, name in enumerate(data["assignments"]):
        exercises = data["categories"].get(name, {})
        if not exercises:
            continue
        handed_in = data["notebooks"][name]["handed_in"]
        legend.append((name, colour(i)))
        rows.append({"heading": f"{name} ({_plural(handed_in, 'submission')})"})
        for function, entry in exercises.items():
            for category, count in entry["failing"].items():
                largest = max(largest, count)
                rows.append({"label": f"{function}: {category}", "value": count, "colour": colour(i),
                             "text": f"{count} of {handed_in}"})
    if not rows:
        return _message(_figure(2.5), title, "no submission fails a category of the checker")
    figure = _rows_figure(rows, title, "submissions failing it", largest, legend)
    from matplotlib.ticker import MaxNLocator

    figure.axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    return figure
