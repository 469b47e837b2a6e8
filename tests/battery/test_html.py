"""The report as a student reads it in a notebook: HTML with a figure.

The HTML is parsed (html.parser) and checked for its structure, its escaping and its figure;
the sweep behind the figure is checked against torch, computed here."""

import base64
import io
import math
import subprocess
import sys
from html.parser import HTMLParser

import PIL.Image
import pytest
import torch
import torch.nn.functional as F

import grader
import implementations as impl
from grader._battery import checks, figure, observe, sweep
from grader._battery.cases import BCE, BCE_WITH_LOGITS, TOLERANCES
from grader._battery.html import ROOT, render
from grader._battery.report import Failure, Report, Sweep

VOID = {"img", "br", "hr", "meta", "link", "input", "col", "area", "base", "wbr", "source", "track"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children = []  # Nodes and strings

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.walk()

    def find_all(self, tag, cls=None):
        return [n for n in self.walk() if n.tag == tag and (cls is None or cls in n.attrs.get("class", "").split())]

    def ancestors(self):
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


class Page(HTMLParser):
    """A tree of the HTML, every start tag in document order, and whether it nests properly."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", [], None)
        self.current = self.root
        self.order: list[Node] = []
        self.mismatched: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.current)
        self.current.children.append(node)
        self.order.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        node = Node(tag, attrs, self.current)
        self.current.children.append(node)
        self.order.append(node)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if self.current.tag != tag:
            self.mismatched.append(tag)
            return
        self.current = self.current.parent

    def handle_data(self, data):
        self.current.children.append(data)

    def index(self, node) -> int:
        return next(i for i, n in enumerate(self.order) if n is node)


def parsed(report_or_html) -> Page:
    text = report_or_html if isinstance(report_or_html, str) else report_or_html._repr_html_()
    page = Page(text)
    assert page.mismatched == [] and page.current is page.root, "the HTML does not nest properly"
    (outer,) = [c for c in page.root.children if isinstance(c, Node)]
    assert outer.attrs.get("class") == ROOT
    return page


def visible_text(page: Page) -> str:
    """The text a reader sees: everything but the style block."""
    return "".join(c if isinstance(c, str) else ("" if c.tag == "style" else visible_text_of(c))
                   for c in page.root.children)


def visible_text_of(node: Node) -> str:
    return "".join(c if isinstance(c, str) else ("" if c.tag == "style" else visible_text_of(c))
                   for c in node.children)


def figure_png(page: Page) -> PIL.Image.Image:
    (img,) = page.root.find_all("img")
    src = img.attrs["src"]
    assert src.startswith("data:image/png;base64,")
    return PIL.Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))


def counting(fn):
    """An ``ask`` that calls ``fn`` here and keeps every request."""
    asked = []
    honest = checks.local(fn)

    def ask(request):
        asked.append(request)
        return honest(request)

    ask.asked = asked
    return ask


def gathered(fn, function=BCE, ask=None):
    return sweep.gather(ask or checks.local(fn), function, observe.describe(fn), "cpu", 5.0)


def torch_loss(function, x, target):
    p = torch.tensor(x, dtype=torch.float32)
    return getattr(F, function)(p, torch.full_like(p, target), reduction="none").double().tolist()


def assert_close(got, expected, rtol=1e-5, atol=1e-6):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g is not None and abs(g - e) <= atol + rtol * abs(e), (g, e)


# --- whole reports ------------------------------------------------------------------------------

def test_a_correct_function_has_every_category_passed_and_no_figure():
    report = grader.check(impl.bce_direct, BCE)
    assert report.passed and report.sweep is None
    page = parsed(report)
    assert page.root.find_all("img") == [] and page.root.find_all("section") == []
    (headline,) = page.root.find_all("div", "bce-headline")
    assert "\u2713 passed" in headline.text() and "bce_direct: all checks passed" in headline.text()
    (table,) = page.root.find_all("details", "bce-categories")
    assert "open" in table.attrs  # nothing failed: the table is the report
    rows = table.find_all("tr")[1:]
    assert [r.find_all("td")[1].text() for r in rows] == list(report.categories)
    assert all(r.find_all("td")[0].text() == "\u2713 passed" for r in rows)
    assert "FAILED" not in visible_text(page)


def test_the_styles_are_scoped_self_contained_and_never_break_a_word():
    text = grader.check(impl.bce_epsilon, BCE)._repr_html_()
    for outside in ("url(", "@import", "http:", "https:", "<script", "<link"):
        assert outside not in text
    page = parsed(text)
    (style,) = page.root.find_all("style")
    rules = [rule.split("{") for rule in style.text().split("}") if rule.strip()]
    assert len(rules) > 10
    for selectors, body in rules:
        for selector in selectors.split(","):
            assert selector.strip().startswith(f"div.{ROOT}.{ROOT}"), selector
        # the text colour is inherited; the only white is the figure's card
        assert "color:#" not in body.replace("border-color:#", "")
        assert "#fff" not in body or selectors.endswith(".bce-figure img"), selectors
    (root_rule,) = [body for selectors, body in rules if selectors == f"div.{ROOT}.{ROOT}"]
    assert "color:var(--jp-content-font-color1,inherit)" in root_rule
    assert "word-break:normal" in root_rule and "overflow-wrap:normal" in root_rule
    pres = page.root.find_all("pre")
    assert pres and all("white-space:pre;" in p.attrs["style"] and "overflow-x:auto" in p.attrs["style"]
                        for p in pres)


def test_a_wrong_function_shows_its_first_failure_then_the_figure_then_the_rest():
    report = grader.check(impl.bce_epsilon, BCE)
    first = report.first_failure()
    assert len(report.failed_categories()) >= 2 and report.sweep is not None
    page = parsed(report)
    (headline,) = page.root.find_all("div", "bce-headline")
    assert "\u2717 FAILED" in headline.text() and report.summary() in headline.text()
    (section,) = page.root.find_all("section", "bce-first")
    said = section.text()
    for piece in (first.category, first.case, first.message, first.hint, first.expected, first.actual,
                  *first.inputs.values(), repr(first.difference["expected"]), repr(first.difference["actual"])):
        assert piece in said
    assert "tolerance: |yours - torch| <= 1e-06 + 1e-05 * |torch|" in said
    (img,) = page.root.find_all("img")
    (also,) = page.root.find_all("details", "bce-also")
    (table,) = page.root.find_all("details", "bce-categories")
    assert "open" not in table.attrs and "open" not in also.attrs
    order = [page.index(n) for n in (headline, section, img, also, table)]
    assert order == sorted(order)
    others = [c for c in report.failed_categories() if c != first.category]
    assert "Also failing" in also.find_all("summary")[0].text()
    for name in others:
        assert any(li.find_all("strong")[0].text() == name for li in also.find_all("li"))
    # the figure: a PNG at twice its CSS size, which it keeps (never stretched)
    assert (img.attrs["width"], img.attrs["height"]) == (str(figure.WIDTH), str(figure.HEIGHT))
    assert "max-width:100%" in img.attrs["style"] and "height:auto" in img.attrs["style"]
    assert figure_png(page).size == (figure.WIDTH * figure.SCALE, figure.HEIGHT * figure.SCALE)
    assert "2 of 402 points" in img.attrs["alt"]


def test_the_sweep_of_a_wrong_bce_is_torch_and_the_students_values():
    s = gathered(impl.bce_epsilon)
    assert s.x[0] == 0.0 and s.x[-1] == 1.0 and (s.rtol, s.atol) == TOLERANCES[torch.float32]
    for series, target in zip(s.series, (0.0, 1.0)):
        assert series["label"] == f"y = {target:g}"
        assert series["torch"] == torch_loss(BCE, s.x, target)
        p = torch.tensor(s.x, dtype=torch.float32)
        assert series["yours"] == impl.bce_epsilon(p, torch.full_like(p, target), reduction="none").double().tolist()
    # they differ where torch's clamp decides: p = 1 for y = 0 and p = 0 for y = 1
    flags = sweep.differs(s)
    assert [i for i, f in enumerate(flags[0]) if f] == [len(s.x) - 1]
    assert [i for i, f in enumerate(flags[1]) if f] == [0]


def test_a_blank_function_is_one_line():
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        raise NotImplementedError()

    report = grader.check(binary_cross_entropy)
    assert report.blank
    page = parsed(report)
    (outer,) = [c for c in page.root.children if isinstance(c, Node)]
    shown = [c for c in outer.children if not (isinstance(c, Node) and c.tag == "style")]
    assert len(shown) == 1 and shown[0].tag == "p"
    # the text report's line, its `code` set as code
    assert visible_text(page) == "\u270e not written yet " + str(report).replace("`", "")
    assert [c.text() for c in page.root.find_all("code")] == ["raise NotImplementedError()"]
    assert "\n" not in str(report)
    assert page.root.find_all("table") == [] and page.root.find_all("img") == []


def test_a_report_with_no_categories_is_its_summary_and_notes():
    report = Report(function="binary_cross_entropy", reference="r", torch_version="t", categories=[])
    report.note("Not run here: the autograder checks your function when it grades this notebook.")
    page = parsed(render(report))
    text = visible_text(page)
    assert "binary_cross_entropy: not checked here" in text and report.notes[0] in text
    assert page.root.find_all("table") == []


# --- hostile text -------------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
IMAGE = '<img src=x onerror="alert(2)">'


def assert_inert(page: Page):
    """No live tag or handler came from text: the only image is the figure's PNG."""
    tags = {n.tag for n in page.order}
    assert tags <= {"div", "style", "span", "p", "code", "section", "pre", "table", "tbody", "thead", "tr",
                    "th", "td", "strong", "br", "details", "summary", "ul", "li", "figure", "img",
                    "figcaption"}, tags
    for node in page.order:
        assert not [a for a in node.attrs if a.lower().startswith("on")], node.attrs
        if node.tag == "img":
            assert node.attrs["src"].startswith("data:image/png;base64,")


def test_a_hostile_name_message_and_output_are_text():
    def hostile(input, target, weight=None, reduction="mean"):
        print("<b>printed</b>" + SCRIPT)
        raise ValueError(IMAGE + SCRIPT)

    hostile.__name__ = SCRIPT
    report = grader.check(hostile, BCE)
    page = parsed(report)
    assert_inert(page)
    text = visible_text(page)
    assert f"{SCRIPT}: FAILED in" in text  # the name, shown as text
    assert f"your function raised ValueError: {IMAGE}{SCRIPT}" in text
    assert f'raise ValueError(IMAGE + SCRIPT)' in text  # the student's traceback line
    assert "<b>printed</b>" in text


def test_every_field_of_a_failure_and_of_the_sweep_is_escaped():
    report = Report(function=SCRIPT, reference=IMAGE, torch_version=SCRIPT, categories=["shapes", "dtypes"])
    report.ran_device("cpu")
    report.skip_device(SCRIPT, IMAGE)
    failure = Failure(category="shapes", case=SCRIPT, device=IMAGE, dtype=SCRIPT, message=IMAGE, hint=SCRIPT,
                      inputs={IMAGE: SCRIPT}, expected=IMAGE, actual=SCRIPT, traceback=IMAGE,
                      difference={"reason": SCRIPT})
    report.record({"shapes"}, [failure])
    report.record({"dtypes"}, [Failure(category="dtypes", case=IMAGE, device="cpu", dtype="x", message=SCRIPT)])
    report.note(IMAGE)
    report.note_output("stdout", SCRIPT)
    report.sweep = Sweep(title=SCRIPT, x_label=IMAGE, y_label=SCRIPT, x=[0.0, 1.0],
                         series=[{"label": IMAGE, "torch": [1.0, 2.0], "yours": [1.0, None]}], rtol=1e-5, atol=1e-6)
    page = parsed(render(report))
    assert_inert(page)
    text = visible_text(page)
    assert text.count(SCRIPT) >= 8 and text.count(IMAGE) >= 6
    (img,) = page.root.find_all("img")
    assert SCRIPT in img.attrs["alt"] and IMAGE in img.attrs["alt"]


# --- the sweep ----------------------------------------------------------------------------------

def test_a_function_that_raises_on_some_points_has_no_number_there():
    def partial(input, target, weight=None, reduction="mean"):
        if bool((input > 0.5).any()):
            raise ValueError("only up to 0.5")
        return impl.bce_direct(input, target, weight, reduction)

    ask = counting(partial)
    s = gathered(partial, ask=ask)
    # the reduction='none' call raised on the whole curve, so every point was asked on its own
    assert len(s.x) == sweep.COARSE_POINTS and len(ask.asked) == 2 + 2 * sweep.COARSE_POINTS
    for series, target in zip(s.series, (0.0, 1.0)):
        assert [v is None for v in series["yours"]] == [x > 0.5 for x in s.x]
        assert_close([v for v in series["yours"] if v is not None],
                     [t for t, x in zip(torch_loss(BCE, s.x, target), s.x) if x <= 0.5])
    drawn = figure.draw(s)
    crosses = [line for ax in drawn.axes for line in ax.lines if line.get_marker() == "x"]
    assert len(crosses) == 2  # one set of marks per panel, on the x-axis
    assert "gave no number" in render_with(s)


def render_with(s: Sweep) -> str:
    report = Report(function="f", reference="r", torch_version="t", categories=["shapes"])
    report.ran_device("cpu")
    report.record({"shapes"}, [Failure(category="shapes", case="c", device="cpu", dtype="float32", message="m",
                                       difference={"reason": "r"})])
    report.sweep = s
    return render(report)


@pytest.mark.parametrize("answer", [None, "text", {"refused": "no"}, {"value": "not a tensor"}, {"timed_out": True},
                                    {"error": {"types": ["ValueError"]}}, {"not a tensor": "a float"},
                                    {"value": torch.zeros(3)}, {"value": torch.full((1,), math.nan)},
                                    {"value": torch.zeros(1, dtype=torch.complex64)}],
                         ids=lambda a: str(a)[:30])
def test_an_unusable_answer_is_no_number_and_never_an_error(answer):
    asked = []

    def ask(request):
        asked.append(request)
        return answer

    s = sweep.gather(ask, BCE, {"parameters": [{"name": "input", "kind": 1}, {"name": "target", "kind": 1}]},
                     "cpu", 5.0)
    assert all(v is None for series in s.series for v in series["yours"])
    assert all(sweep.differs(s)[0])
    # after a call that ran out of time nothing more is asked
    assert len(asked) == (1 if answer == {"timed_out": True} else 2 * sweep.COARSE_POINTS)
    assert figure.png(s).startswith(b"\x89PNG")


def test_a_mean_only_function_is_swept_point_by_point():
    def binary_cross_entropy(input, target):
        return impl.bce_direct(input, target)

    ask = counting(binary_cross_entropy)
    s = gathered(binary_cross_entropy, ask=ask)
    assert len(ask.asked) == 2 * sweep.COARSE_POINTS
    assert all(r["args"]["input"].shape == (1,) and "reduction" not in r["args"] for r in ask.asked)
    assert s.x[0] == 0.0 and s.x[-1] == 1.0 and len(s.x) == sweep.COARSE_POINTS
    for series, target in zip(s.series, (0.0, 1.0)):
        assert_close(series["yours"], torch_loss(BCE, s.x, target))
    assert not any(map(any, sweep.differs(s)))


def test_a_module_class_is_called_once_per_target_with_reduction_none():
    ask = counting(impl.BCELossModule)
    s = gathered(impl.BCELossModule, ask=ask)
    assert len(ask.asked) == 2 and all(r["args"]["reduction"] == "none" for r in ask.asked)
    assert len(s.x) == sweep.FINE_POINTS
    for series, target in zip(s.series, (0.0, 1.0)):
        assert_close(series["yours"], torch_loss(BCE, s.x, target))


def test_the_logit_sweep_holds_zero_and_its_naive_mistake():
    s = gathered(impl.logits_naive, BCE_WITH_LOGITS)
    assert s.x[0] == -30.0 and s.x[-1] == 30.0 and 0.0 in s.x
    assert [series["torch"] for series in s.series] == [torch_loss(BCE_WITH_LOGITS, s.x, y) for y in (0.0, 1.0)]
    y0, y1 = s.series
    big = [i for i, x in enumerate(s.x) if x >= 20]
    assert all(y0["yours"][i] == math.inf for i in big)  # log(1 - sigmoid(z)) is log(0) there
    assert all(y1["yours"][i] is None for i in big)  # 0 * log(0) is nan
    assert all(sweep.differs(s)[0][i] and sweep.differs(s)[1][i] for i in big)


def per_element_gradient(function, x, target):
    p = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    loss = getattr(F, function)(p, torch.full_like(p, target), reduction="sum")
    return torch.autograd.grad(loss, p)[0].tolist()


def test_a_gradient_is_swept_per_element():
    def binary_cross_entropy_grad(input, target):
        return (input - target) / (input * (1 - input)) / input.numel()

    def forgets_the_mean(input, target):
        return (input - target) / (input * (1 - input))

    function = "binary_cross_entropy_grad"
    right = gathered(binary_cross_entropy_grad, function)
    assert 0.0 < right.x[0] < 0.05 and 0.95 < right.x[-1] < 1.0
    assert right.atol == TOLERANCES[torch.float32][1] * len(right.x)
    for series, target in zip(right.series, (0.0, 1.0)):
        assert_close(series["torch"], per_element_gradient(BCE, right.x, target), rtol=1e-5)
        assert_close(series["yours"], series["torch"], rtol=1e-5)
    assert not any(map(any, sweep.differs(right)))
    wrong = gathered(forgets_the_mean, function)
    n = len(wrong.x)
    for series in wrong.series:
        assert_close(series["yours"], [n * t for t in series["torch"]], rtol=1e-4)
    assert all(all(f) for f in sweep.differs(wrong))
    # and through the whole check: the report shows the figure
    report = grader.check(forgets_the_mean, function)
    assert report.sweep is not None and len(parsed(report).root.find_all("img")) == 1


def test_the_logits_gradient_is_sigmoid_minus_the_target():
    def binary_cross_entropy_with_logits_grad(input, target):
        return (torch.sigmoid(input) - target) / input.numel()

    s = gathered(binary_cross_entropy_with_logits_grad, "binary_cross_entropy_with_logits_grad")
    assert 0.0 in s.x and s.x[0] == -30.0
    for series, target in zip(s.series, (0.0, 1.0)):
        assert_close(series["torch"], [1 / (1 + math.exp(-x)) - target for x in s.x], rtol=1e-5, atol=1e-6)
        assert_close(series["yours"], series["torch"])


@pytest.mark.parametrize("fn, function", [(impl.bce_direct, BCE), (impl.BCELossModule, BCE),
                                          (impl.logits_stable, BCE_WITH_LOGITS)],
                         ids=lambda v: getattr(v, "__name__", v))
def test_gathering_asks_a_correct_function_once_per_curve_and_one_without_reduction_once_per_point(fn, function):
    # (how long gathering takes is measured by benchmarks/battery.py)
    ask = counting(fn)
    s = gathered(fn, function, ask=ask)
    assert len(ask.asked) == len(sweep.TARGETS) and len(s.x) == sweep.FINE_POINTS
    assert all(request["args"]["input"].numel() == sweep.FINE_POINTS for request in ask.asked)

    def binary_cross_entropy(input, target):  # no reduction: asked point by point, on fewer points
        return impl.bce_direct(input, target)

    ask = counting(binary_cross_entropy)
    s = gathered(binary_cross_entropy, BCE, ask=ask)
    assert len(s.x) == sweep.COARSE_POINTS and len(ask.asked) == len(sweep.TARGETS) * sweep.COARSE_POINTS
    assert_close(s.series[0]["yours"], s.series[0]["torch"])


# --- the figure ---------------------------------------------------------------------------------

def test_the_figure_tells_torch_from_yours_without_colour_and_keeps_the_legend_off_the_curves():
    s = gathered(impl.bce_no_clamp)
    drawn = figure.draw(s)
    assert tuple(drawn.get_size_inches() * figure.DPI) == (figure.WIDTH, figure.HEIGHT)
    assert len(drawn.axes) == 2
    renderer = drawn.canvas.get_renderer()
    drawn.canvas.draw()
    (legend,) = drawn.legends
    box = legend.get_window_extent(renderer)
    for ax, series in zip(drawn.axes, s.series):
        theirs, yours = ax.lines[:2]
        assert theirs.get_linestyle() != yours.get_linestyle() and theirs.get_marker() != yours.get_marker()
        assert theirs.get_color() != yours.get_color()
        assert list(theirs.get_ydata()) == series["torch"]
        assert not box.overlaps(ax.get_window_extent(renderer))
        assert all(t.get_fontsize() >= 10 for t in ax.get_xticklabels() + ax.get_yticklabels())
        assert ax.xaxis.label.get_fontsize() >= 10
        low, high = ax.get_ylim()
        assert math.isfinite(low) and math.isfinite(high) and low <= 0 and high >= 100  # torch's clamp at 100
        # the infinite loss is a triangle on the top edge, the nan a cross on the x-axis
        assert {line.get_marker() for line in ax.lines[2:]} == {"^", "x"}
        assert ax.patches  # the shaded span where they differ
    assert all(t.get_fontsize() >= 10 for t in legend.get_texts())
    assert [t.get_text() for t in legend.get_texts()] == ["torch", "yours", "beyond the tolerance",
                                                          "yours: no number", "yours: off the chart"]


def test_a_difference_away_from_the_clamp_is_not_flattened_by_it():
    def log2_loss(input, target, weight=None, reduction="mean"):
        loss = -(target * torch.log2(input).clamp_min(-100) + (1 - target) * torch.log2(1 - input).clamp_min(-100))
        return impl._reduce(loss, reduction)

    s = gathered(log2_loss)
    for ax, series, flags in zip(figure.draw(s).axes, s.series, sweep.differs(s)):
        low, high = ax.get_ylim()
        assert high < 20  # not 100: p = 0 and 1 agree, the difference is in between
        shown = [v for v, f in zip(series["yours"], flags) if f]
        assert shown and all(low <= v <= high for v in shown)


def test_drawing_never_touches_pyplot():
    script = ("import sys; from grader._battery import figure, sweep; from grader._battery.report import Sweep; "
              "s = Sweep('t', 'x', 'y', [0.0, 1.0], [{'label': 'y = 0', 'torch': [0.0, 1.0], 'yours': [0.0, None]}],"
              " 1e-5, 1e-6); figure.png(s); print('matplotlib.pyplot' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_figure_that_cannot_be_drawn_leaves_the_report(monkeypatch):
    def broken(s):
        raise RuntimeError("no canvas")

    monkeypatch.setattr(figure, "data_url", broken)
    s = gathered(impl.bce_epsilon)
    page = parsed(render_with(s))
    assert page.root.find_all("img") == []
    assert "The figure could not be drawn (RuntimeError)" in visible_text(page)
