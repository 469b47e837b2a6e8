"""The explorers: every plotted value is torch's, updates change the data in
place, and the widgets work under ipywidgets 8 (JupyterLab) and 7.7 (Colab)."""

import io
import subprocess
import sys
import textwrap
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


WIDGET_CHECK = textwrap.dedent('''
    import json, sys
    import ipywidgets
    from grader import explore

    result = {"version": ipywidgets.__version__}
    for name, (make_widget, _, cls) in explore.EXPLORERS.items():
        box = make_widget()
        *controls, image = box.children
        assert type(box).__name__ == "VBox" and type(image).__name__ == "Image", box.children
        changed = []
        for control in controls:
            before = image.value
            if hasattr(control, "options"):  # a dropdown: choose another option
                control.value = next(v for v in control.options if v != control.value)
            else:  # a slider: move it to an end
                control.value = control.max if control.value != control.max else control.min
            changed.append(image.value != before)
        result[name] = {"controls": [type(c).__name__ for c in controls], "changed": changed,
                        "params": box.explorer.params}
    print(json.dumps(result, default=str))
''')


def run_widget_check(extra_path=None):
    import json
    import os

    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = str(extra_path) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", WIDGET_CHECK], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_widgets(result):
    for name in explore.EXPLORERS:
        assert result[name]["changed"] and all(result[name]["changed"]), (name, result[name])
    assert result["probability"]["controls"] == ["FloatSlider"]
    assert result["logit"]["controls"] == ["FloatSlider", "FloatSlider"]
    assert result["naive"]["controls"] == ["Dropdown", "FloatSlider"]
    assert result["batch"]["controls"] == ["Dropdown", "Dropdown", "Dropdown"]


def test_widgets_under_ipywidgets_8():
    result = run_widget_check()
    assert result["version"].startswith("8.")
    check_widgets(result)


def test_widgets_under_ipywidgets_7_7_as_in_colab():
    assert (IPYWIDGETS7 / "ipywidgets").is_dir(), (
        f"ipywidgets 7.7 is not installed in {IPYWIDGETS7}: run `make test`, which installs it "
        "from tests/ipywidgets7.txt")
    result = run_widget_check(IPYWIDGETS7)
    assert result["version"].startswith("7.7."), result["version"]
    check_widgets(result)
