"""The explorers: every plotted value is torch's, updates change the data in
place, the widgets work under ipywidgets 8 (JupyterLab) and 7.7 (Colab) and send
the browser torch's numbers, and every figure is legible to every reader."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F

from grader import articles, explore

ROOT = Path(__file__).resolve().parent.parent
IPYWIDGETS7 = ROOT / ".venv" / "ipywidgets7"


def pixels(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(PIL.Image.open(io.BytesIO(png)).convert("RGBA"))


def xy(line):
    return torch.as_tensor(np.asarray(line.get_xdata(), dtype=float)), \
        torch.as_tensor(np.asarray(line.get_ydata(), dtype=float))


@pytest.mark.parametrize("target", [0.0, 0.3, 1.0])
def test_probability_curves_are_torch_loss_and_its_terms(target):
    e = explore.LossVsProbability(target)
    p, loss = xy(e.total)
    assert p[0] == 0 and p[-1] == 1  # the edges, where the clamp decides, are on the grid
    y = torch.full_like(p, target)
    torch.testing.assert_close(loss, F.binary_cross_entropy(p, y, reduction="none"))
    _, positive = xy(e.positive)
    _, negative = xy(e.negative)
    torch.testing.assert_close(positive + negative, loss)
    torch.testing.assert_close(positive, -target * torch.log(p).clamp(min=-100))
    (pm,), (lm,) = e.minimum.get_data()
    assert pm == target
    assert lm == pytest.approx(F.binary_cross_entropy(torch.tensor([target]), torch.tensor([target])).item())
    tiny_p, tiny = xy(e.tiny_line)
    assert tiny.max().item() == pytest.approx(100 * target)  # the clamp: -log p never above 100


@pytest.mark.parametrize("target, pos_weight", [(1.0, 3.0), (0.0, 0.5), (0.4, 7.0)])
def test_logit_curves_are_torch_loss_and_autograd_gradient(target, pos_weight):
    e = explore.LossVsLogit(target, pos_weight)
    z, loss = xy(e.loss)
    y = torch.full_like(z, target)
    pw = torch.tensor(pos_weight, dtype=z.dtype)
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(z, y, pos_weight=pw, reduction="none"))
    x = z.clone().requires_grad_(True)
    F.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="sum").backward()
    torch.testing.assert_close(xy(e.grad)[1], x.grad)
    # without pos_weight the gradient is sigmoid(z) - y
    torch.testing.assert_close(xy(e.grad_plain)[1], torch.sigmoid(z) - y)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_naive_against_fused_in_each_dtype(dtype):
    e = explore.NaiveVsFused(dtype, 0.0)
    z, fused = xy(e.fused)
    exact = xy(e.exact)[1]
    torch.testing.assert_close(exact, F.binary_cross_entropy_with_logits(z, torch.zeros_like(z), reduction="none"))
    zd = z.to(explore.DTYPES[dtype])
    expected = F.binary_cross_entropy_with_logits(zd, torch.zeros_like(zd), reduction="none").double()
    shown = ~torch.isnan(fused)
    torch.testing.assert_close(fused[shown], expected[shown])
    # the red line sits where torch's naive formula first stops being finite
    naive = -torch.log(1 - torch.sigmoid(zd)).double()
    first = z[~naive.isfinite()][z[~naive.isfinite()].abs().argmin()].item()
    assert e.inf_line.get_visible() and e.inf_line.get_xdata()[0] == first
    assert 0 < first < 40


def test_naive_with_a_positive_target_fails_on_the_other_side():
    data = explore.NaiveVsFused.data("float32", 1.0, torch.linspace(-120, 120, 2401, dtype=torch.float64))
    assert data["first_infinite"] is not None


@pytest.mark.parametrize("example", list(explore.EXAMPLES))
@pytest.mark.parametrize("reduction", explore.REDUCTIONS)
@pytest.mark.parametrize("weight", list(explore.WEIGHTS))
def test_heatmap_is_torch_per_element_loss_and_reduction(example, reduction, weight):
    e = explore.BatchHeatmap(example, reduction, weight)
    args = articles.example(example).build()
    w = explore.WEIGHTS[weight]
    expected = F.binary_cross_entropy(args["input"], args["target"], weight=w, reduction="none")
    torch.testing.assert_close(torch.as_tensor(np.asarray(e.image.get_array())), expected)
    reduced = F.binary_cross_entropy(args["input"], args["target"], weight=w, reduction=reduction)
    title = e.axes.get_title()
    assert (f"{reduced.item():.4f}" in title) if reduction != "none" else ("matrix itself" in title)


@pytest.mark.parametrize("name, changes", [
    ("probability", [{"target": 0.8}, {"target": 0.05}]),
    ("logit", [{"pos_weight": 7.5}, {"target": 0.2}]),
    ("naive", [{"dtype": "float16"}, {"target": 1.0}, {"dtype": "bfloat16"}]),
    ("batch", [{"reduction": "sum"}, {"weight": "one per row [[0.5], [1], [2]]"}, {"example": "000"}]),
])
def test_update_changes_the_data_in_place_and_matches_a_fresh_figure(name, changes):
    _, _, cls = explore.EXPLORERS[name]
    e = cls()
    figure, axes, first = e.figure, list(e.figure.axes), pixels(e.png())
    for change in changes:
        e.update(**change)
        drawn = pixels(e.png())
        assert e.figure is figure and list(e.figure.axes) == axes  # nothing rebuilt
        fresh = cls(**e.params)
        np.testing.assert_array_equal(drawn, pixels(fresh.png()))  # the blitted image is the whole truth
    assert not np.array_equal(first, drawn)


def test_pure_functions_return_figures():
    from matplotlib.figure import Figure

    for _, make_figure, _ in explore.EXPLORERS.values():
        assert isinstance(make_figure(), Figure)


def test_bad_parameters_say_what_is_allowed():
    e = explore.NaiveVsFused()
    with pytest.raises(ValueError, match="float32, float16, bfloat16"):
        e.update(dtype="float64x")
    with pytest.raises(TypeError, match="its parameters are dtype, target"):
        e.update(colour="red")
    with pytest.raises(ValueError, match="reduction must be one of"):
        explore.BatchHeatmap(reduction="avg")


# --- the widgets -----------------------------------------------------------------------------------

def run_widget_check(*names, extra_path=None) -> dict:
    """tests/widget_check.py in a fresh interpreter: the widgets as a browser drives them."""
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = str(extra_path) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "widget_check.py"), *names], capture_output=True,
                          text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_widgets(result: dict) -> None:
    for name in explore.EXPLORERS:
        widget = result[name]
        # a live front end shows the widget; a static view, its PNG at the figure's natural size
        assert widget["mime"] == ["application/vnd.jupyter.widget-view+json", "image/png", "text/plain"], widget
        assert widget["png"] and widget["png_size"] == {"width": widget["spec"]["width"],
                                                        "height": widget["spec"]["height"]}
        assert "VBox" not in widget["text"] and "explorer" in widget["text"]
        assert widget["spec"]["scale"] == 2
        # one frame per combination of the controls' values, all computed when a browser asks
        assert widget["frames"] == widget["expected_frames"] > 1, (name, widget["frames"])
        for control, move in widget["moves"].items():
            assert move["index_changed"] and move["params_follow"], (name, control, move)
            assert not move["new_payload"], "a fast control must not need the kernel"
    assert {c: m["kind"] for c, m in result["probability"]["moves"].items()} == {"target": "slider"}
    assert {c: m["kind"] for c, m in result["logit"]["moves"].items()} == {"target": "slider", "pos_weight": "slider"}
    assert {c: m["kind"] for c, m in result["naive"]["moves"].items()} == {"dtype": "menu", "target": "slider"}
    assert [m["kind"] for m in result["batch"]["moves"].values()] == ["menu"] * 3


def test_widgets_under_ipywidgets_8():
    result = run_widget_check(*explore.EXPLORERS)
    assert result["version"].startswith("8.")
    check_widgets(result)


def test_widgets_under_ipywidgets_7_7_as_in_colab():
    assert (IPYWIDGETS7 / "ipywidgets").is_dir(), (
        f"ipywidgets 7.7 is not installed in {IPYWIDGETS7}: run `make test`, which installs it "
        "from tests/ipywidgets7.txt")
    result = run_widget_check(*explore.EXPLORERS, extra_path=IPYWIDGETS7)
    assert result["version"].startswith("7.7."), result["version"]
    check_widgets(result)


def frame_of(widget, **params):
    """The frame the browser draws for ``params``, and the payload it belongs to."""
    widget._message(widget, {"event": "view"}, [])
    number = 0
    for control in widget._controls:
        if not control.kernel:
            number = number * len(control.options) + control.index(params[control.name])
    return widget.payload["frames"][number], widget.payload


def points(payload, item) -> np.ndarray:
    offset, length = payload["offsets"][item["p"]]
    pool = np.frombuffer(payload["pool"], dtype="<f4")
    return pool[offset:offset + length].reshape(-1, 2).astype(np.float64)


def to_data(widget, artist, css: np.ndarray) -> np.ndarray:
    """CSS pixels of a frame back to the artist's data coordinates."""
    from grader._widget.widget import SCALE

    display = css.copy()
    display[:, 1] = widget.spec["height"] - display[:, 1]
    return artist.get_transform().inverted().transform(display * SCALE)


@pytest.mark.parametrize("target", [0.0, 0.37, 0.8, 1.0])
def test_the_browser_draws_torch_numbers(target):
    """The frame of the probability explorer at ``target``: its loss curve, mapped back from
    pixels, is torch's BCE, and its title's numbers are torch's too."""
    widget = explore.probability_explorer()
    frame, payload = frame_of(widget, target=target)
    explorer = widget._frames.explorer("light")
    artists = explorer.dynamic
    line = frame["a"][artists.index(explorer.total)]
    data = to_data(widget, explorer.total, points(payload, line))
    p = explorer.p  # the grid of p: pixels back to p lose the digits that matter at p = 1
    assert np.allclose(data[:, 0], p.numpy(), atol=1e-5)
    expected = F.binary_cross_entropy(p, torch.full_like(p, target), reduction="none")
    shown = (expected <= 6) & (expected >= 0)  # inside the axes
    span = 6.0  # the axis's range: a float32 CSS pixel is far finer than 1e-4 of it
    assert torch.allclose(torch.as_tensor(data[:, 1])[shown], expected[shown], atol=1e-4 * span, rtol=0)
    title = frame["a"][artists.index(explorer.left.title)]["t"]
    ends = F.binary_cross_entropy(torch.tensor([0.0, 1.0]), torch.full((2,), target), reduction="none")
    assert title == f"y = {target:.2f}: the loss is {ends[0].item():.3g} at p = 0, {ends[1].item():.3g} at p = 1"


def test_a_frame_of_the_heatmap_has_torch_colours_and_numbers():
    widget = explore.batch_explorer()
    frame, _ = frame_of(widget, example="000", reduction="sum", weight="one per row [[0.5], [1], [2]]")
    explorer = widget._frames.explorer("light")
    args = articles.example("000").build()
    expected = F.binary_cross_entropy(args["input"], args["target"], weight=explore.WEIGHTS[
        "one per row [[0.5], [1], [2]]"], reduction="none")
    labels = [frame["a"][explorer.dynamic.index(explorer.labels[i][j])]["t"] for i in range(3) for j in range(3)]
    assert labels == [f"{v:.3f}" for v in expected.flatten().tolist()]
    cells = frame["a"][explorer.dynamic.index(explorer.image)]["cells"]
    from matplotlib.colors import to_hex

    explorer.update(example="000", reduction="sum", weight="one per row [[0.5], [1], [2]]")
    colours = [to_hex(c) for c in explorer.image.to_rgba(expected.numpy()).reshape(-1, 4)]
    assert [cell[4] for cell in cells] == colours


def test_moving_controls_from_python_moves_the_view():
    widget = explore.logit_explorer(target=1.0, pos_weight=3.0)
    widget.update(pos_weight=7.5)
    assert widget.params == {"target": 1.0, "pos_weight": 7.5}
    assert widget.explorer.params == widget.params
    with pytest.raises(ValueError, match=r"pos_weight must be one of the explorer's values \(0.1, 0.25"):
        widget.update(pos_weight=7.4)
    with pytest.raises(TypeError, match="its controls are target, pos_weight"):
        widget.update(colour="red")
    with pytest.raises(ValueError, match="target must be one of"):
        explore.probability_explorer(target=0.305)


# --- legible and fair figures ------------------------------------------------------------------------

def figures():
    """Every explorer's figure, as the widget draws it, at a few settings."""
    from grader import imbalance
    from grader._widget.widget import CSS_DPI, SCALE

    settings = [(explore.LossVsProbability, {"target": t}) for t in (0.0, 0.3, 1.0)]
    settings += [(explore.LossVsLogit, {"target": t, "pos_weight": w}) for t, w in ((1.0, 10.0), (0.0, 0.1), (0.5, 3.0))]
    settings += [(explore.NaiveVsFused, {"dtype": d, "target": t}) for d, t in (("float16", 0.0), ("bfloat16", 1.0))]
    settings += [(explore.BatchHeatmap, {"example": e, "reduction": "none", "weight": w})
                 for e in explore.EXAMPLES for w in explore.WEIGHTS]
    settings += [(imbalance.ImbalanceExplorer, {"task": "breast cancer: malignant", "pos_weight": 32.0,
                                                "threshold": 0.02})]
    for cls, params in settings:
        explorer = cls(**params)
        explorer.figure.set_dpi(CSS_DPI * SCALE)
        explorer.figure.canvas.draw()
        yield f"{cls.__name__}({params})", explorer


def test_no_text_is_clipped_overlapping_or_under_10_points():
    from matplotlib.text import Text

    for name, explorer in figures():
        figure = explorer.figure
        renderer = figure.canvas.get_renderer()
        box = figure.bbox
        texts = [t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip()]
        for text in texts:
            extent = text.get_window_extent(renderer)
            assert text.get_fontsize() >= 10, (name, text.get_text(), text.get_fontsize())
            assert (extent.x0 >= box.x0 - 0.5 and extent.x1 <= box.x1 + 0.5 and extent.y0 >= box.y0 - 0.5
                    and extent.y1 <= box.y1 + 0.5), (name, text.get_text(), extent, box)
        for axes in figure.axes:
            for axis in (axes.xaxis, axes.yaxis):
                labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()
                          and axes.bbox.expanded(1.05, 1.05).overlaps(t.get_window_extent(renderer))]
                extents = sorted((t.get_window_extent(renderer) for t in labels), key=lambda e: (e.x0, e.y0))
                for a, b in zip(extents, extents[1:]):
                    assert not a.overlaps(b), (name, "tick labels overlap", a, b)


def test_line_style_or_marker_carries_each_meaning_as_well_as_colour():
    """Two lines of one panel never differ by colour alone: under any colour-vision
    deficiency their dash, marker or width still tells them apart."""
    from matplotlib.lines import Line2D

    for name, explorer in figures():
        for axes in explorer.figure.axes:
            lines = [l for l in axes.get_lines() if l.get_visible()]
            looks = {}
            for line in lines:
                look = (line.get_linestyle(), line.get_marker(), round(line.get_linewidth()))
                assert look not in looks, (name, "these lines differ by colour alone:",
                                           line.get_label(), looks.get(look))
                looks[look] = line.get_label()


def contrast(a, b) -> float:
    from matplotlib.colors import to_rgb

    def luminance(colour):
        channel = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)]
        return 0.2126 * channel[0] + 0.7152 * channel[1] + 0.0722 * channel[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("name", list(explore.EXPLORERS) + ["imbalance"])
def test_both_themes_are_legible(name):
    """What moves is drawn in colours that stand out (3:1, WCAG's figure contrast) on
    JupyterLab's light and dark backgrounds, except broad backdrop lines; the dark images'
    text is light."""
    from grader import imbalance
    from matplotlib.text import Text

    make = imbalance.imbalance_explorer if name == "imbalance" else explore.EXPLORERS[name][0]
    widget = make()
    for artist in widget.spec["artists"]:
        if artist["kind"] == "line" and artist["lw"] < 4:
            assert contrast(artist["colour"][0], "#ffffff") >= 3, (name, artist)
            assert contrast(artist["colour"][1], "#111111") >= 3, (name, artist)
        if artist["kind"] == "text" and not artist["on_image"]:
            assert contrast(artist["colour"][1], "#111111") >= 4.5, (name, artist)
    dark = widget._frames.explorer("dark").figure
    for text in dark.findobj(Text):
        if text.get_visible() and text.get_text().strip() and not (text.axes and text.axes.images):
            assert contrast(text.get_color(), "#111111") >= 4.5, (name, text.get_text(), text.get_color())


def test_static_views_show_the_figure_not_the_widgets_name(tmp_path):
    """An executed notebook exported to HTML shows each explorer's figure at its natural size:
    saved as JupyterLab saves it (no widget state), and as nbgrader's feedback renders the
    autograded notebook (whose executor saved the state: the feedback's preprocessor drops it)."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    from grader.instructor.plugins import StaticExplorers

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from grader.explore import batch_explorer, probability_explorer\n"
        "display(probability_explorer(target=0.3))\nbatch_explorer()")])
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert len(outputs) == 2 and all("image/png" in o.data for o in outputs), outputs
    assert "widgets" in nb.metadata  # the executor saved the widgets' state
    with_state, _ = HTMLExporter().from_notebook_node(nb)
    assert with_state.count('src="data:image/png;base64,') == 0  # a live widget: nothing offline
    nb, _ = StaticExplorers().preprocess(nb, {})
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert html.count('src="data:image/png;base64,') == 2, "the figures are not in the page"
    assert "VBox" not in html
    width = explore.probability_explorer().spec["width"]
    assert f'width="{width}"' in html, f"not shown at its natural width {width}"
