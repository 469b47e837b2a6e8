"""The feedback of a hostile notebook: what a student writes in Markdown or sends to an output
can neither stop anyone's feedback from being written nor run or load anything in a page (the
browser's own parse of it, html5lib's here, holds nothing live), and an honest notebook's
feedback shows what it showed."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest

from grader.instructor import results
from grader.instructor.feedback_html import MathMLRenderer, self_contained
from grader.instructor.workspace import Workspace

FORGED = "# My notes <span data-held-math=\"7\">on the gradient</span>"


def _markdown(source: str) -> str:
    from nbconvert.filters.markdown_mistune import MarkdownWithMath

    return MarkdownWithMath(renderer=MathMLRenderer(escape=False)).render(source)


# --- a placeholder a student writes stays their text ----------------------------------------------

def test_a_forged_placeholder_in_a_heading_renders_as_text():
    page = _markdown(FORGED)
    assert page.startswith('<h1 id="My-notes-on-the-gradient">') and "on the gradient</span>" in page


def test_a_forged_placeholder_beside_a_formula_takes_nothing_of_it():
    """A formula in the same heading is held as placeholder 0: the student's "0" is not it."""
    page = _markdown("## The loss $L$ and <span data-held-math=\"0\">my words</span> "
                     "<span data-held-math=\"1\">more</span>")
    assert page.count("<math ") == 1 and '<annotation encoding="application/x-tex">L</annotation>' in page
    assert "my words</span>" in page and "more</span>" in page
    assert "<mi>L</mi>" not in page.split("my words")[1]  # the formula is where it was, once


# --- one student's failure stops no one else's feedback ------------------------------------------

class _Gradebook:
    def __init__(self, students, assignments):
        self.students = [type("Student", (), {"id": s}) for s in students]
        self.assignments = [type("Assignment", (), {"name": a}) for a in assignments]


class _API:
    """nbgrader's generate_feedback, writing a page for each student but those in ``fails``."""

    def __init__(self, root: Path, fails: dict[str, str]):
        self.root, self.fails, self.calls = root, fails, []

    def generate_feedback(self, assignment, student, force=True):
        self.calls.append((student, assignment))
        if student in self.fails:
            return {"success": False, "log": "[ERROR] There was an error processing assignment",
                    "error": f"Traceback (most recent call last):\n  File \"feedback_html.py\", line 1, in heading\n"
                             f"{self.fails[student]}\n"}
        folder = self.root / "feedback" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{assignment}.html").write_text("<p>feedback</p>")
        return {"success": True}


@pytest.fixture
def class_of_four(tmp_path, monkeypatch):
    students, assignments = ["alice", "bob", "mallory", "zoe"], ["01-a", "02-b"]
    for student in students:
        for assignment in assignments:
            (tmp_path / "autograded" / student / assignment).mkdir(parents=True)
    workspace = Workspace(tmp_path)
    monkeypatch.setattr(workspace, "gradebook",
                        contextlib.contextmanager(lambda **_: iter([_Gradebook(students, assignments)])))
    return workspace


def test_a_student_whose_feedback_fails_stops_no_one_else(class_of_four, monkeypatch):
    api = _API(class_of_four.root, {"mallory": "IndexError: list index out of range"})
    monkeypatch.setattr(class_of_four, "api", lambda: api)
    with pytest.raises(results.FeedbackFailed) as failed:
        results.feedback(class_of_four)
    assert len(api.calls) == 8  # everyone's, those after mallory included
    written = sorted(p.relative_to(class_of_four.root / "feedback").parts[0]
                     for p in (class_of_four.root / "feedback").rglob("*.html"))
    assert written == ["alice", "alice", "bob", "bob", "zoe", "zoe"]
    assert sorted(failed.value.written) == sorted((class_of_four.root / "feedback").rglob("*.html"))
    assert failed.value.failed == [("mallory", "01-a", "IndexError: list index out of range (in feedback_html.heading)"),
                                   ("mallory", "02-b", "IndexError: list index out of range (in feedback_html.heading)")]
    message = str(failed.value)
    assert message.startswith("nbgrader could not write feedback for 2 notebooks (everyone else's is written: "
                              f"6 files under {class_of_four.root / 'feedback'}):\n"
                              "  mallory 01-a: IndexError: list index out of range (in feedback_html.heading)\n"
                              "  mallory 02-b: IndexError: list index out of range (in feedback_html.heading)\n"), message
    assert isinstance(failed.value, results.WorkflowError)  # the command line says it, exit status 2


def test_the_command_line_says_which_feedback_failed_and_exits_non_zero(class_of_four, monkeypatch, capsys):
    from grader.instructor import cli, grading

    api = _API(class_of_four.root, {"bob": "ValueError: the feedback's HTML does not settle"})
    monkeypatch.setattr(class_of_four, "api", lambda: api)
    monkeypatch.setattr(cli, "_workspace", lambda args: class_of_four)
    monkeypatch.setattr(grading, "check_selection", lambda *a: None)
    monkeypatch.setattr(Workspace, "released", lambda self: {})
    assert cli.main(["feedback", "--assignment", "01-a"]) == cli.EXIT_UNREADABLE
    printed = capsys.readouterr()
    error = printed.err
    # the pages that were written are named, as when nothing fails
    assert sorted(line.split("/")[-3] for line in printed.out.splitlines() if line.startswith("wrote ")) == \
        ["alice", "mallory", "zoe"], printed.out
    assert error.startswith("error: nbgrader could not write feedback for 1 notebook (everyone else's is written: "
                            "3 files under "), error
    assert "\n  bob 01-a: ValueError: the feedback's HTML does not settle" in error
    assert [p.parts[-3] for p in sorted((class_of_four.root / "feedback").rglob("*.html"))] == ["alice", "mallory", "zoe"]


def test_ctrl_c_during_feedback_stops_it(class_of_four, monkeypatch):
    """nbgrader catches Ctrl-C itself and reports a failure: feedback stops there, as asked."""
    api = _API(class_of_four.root, {"alice": "KeyboardInterrupt"})
    monkeypatch.setattr(class_of_four, "api", lambda: api)
    with pytest.raises(KeyboardInterrupt):
        results.feedback(class_of_four)
    assert api.calls == [("alice", "01-a")]


# --- a notebook's HTML holds nothing live, however a browser parses it -------------------------------

#: What a student's output or Markdown may hold: markup that a plain HTML parser (Python's
#: html.parser) reads otherwise than a browser (the HTML standard's parser), so that a sanitizer
#: using it checks one tree and the browser builds another (mutation XSS), then the plain ones.
HOSTILE = {
    "style in svg": ('<svg><style><meta http-equiv="refresh" content="1;url=https://evil.example/phish">'
                     '<img src="x" onerror="document.title=1"><a href="javascript:alert(1)">click</a></style></svg>'),
    "mglyph in a table in mtext": '<math><mtext><table><mglyph><style><img src=x onerror="document.title=2">',
    "mglyph and a comment": ('<math><mtext><table><mglyph><style><!--</style><img title="--&gt;&lt;/mglyph&gt;'
                             '&lt;img&Tab;src=1&Tab;onerror=document.title=3&gt;">'),
    "style in an svg title": '<svg><title><style><img src=x onerror="document.title=4"></style></title></svg>',
    "noscript": '<noscript><p title="</noscript><img src=x onerror=document.title=5>">',
    "a comment in an attribute": '<!--<img src="--><img src=x onerror=document.title=6//">',
    "an empty comment": ('<!--><meta http-equiv="refresh" content="0;url=https://evil.example/">'
                         '<img src=x onerror=document.title=7>-->'),
    "a comment closed by --!>": '<!--x--!><img src=x onerror=document.title=8>-->',
    "CDATA outside svg": '<![CDATA[><img src=x onerror=document.title=9>]]>',
    "CDATA in svg": '<svg><![CDATA[</svg><img src=x onerror=document.title=10>]]></svg>',
    "nested forms": '<form><math><mtext></form><form><mglyph><style></math><img src onerror=document.title=11>',
    "xmp": '<xmp><p title="</xmp><img src=x onerror=document.title=12>">',
    "textarea": '<textarea><img title="</textarea><img src=x onerror=document.title=13>"></textarea>',
    "noembed and noframes": ('<noembed><p title="</noembed><img src=x onerror=document.title=14>"></noembed>'
                             '<noframes><p title="</noframes><img src=x onerror=document.title=15>"></noframes>'),
    "annotation-xml": ('<math><annotation-xml encoding="text/html"><style><img src=x onerror=document.title=16>'
                       '</style></annotation-xml></math>'),
    "foreignObject": ('<svg><foreignObject><iframe src="javascript:alert(17)"></iframe><p onclick="x()">p</p>'
                      '</foreignObject></svg>'),
    "svg animation and links": ('<svg><a><animate attributeName="href" values="javascript:alert(18)"/>'
                                '<text x="20" y="20">click</text></a><a xlink:href="javascript:alert(19)">'
                                '<text>x</text></a><set attributeName="onclick" to="alert(20)"/></svg>'),
    "links in MathML": '<math href="javascript:alert(21)"><mi xlink:href="javascript:alert(22)">x</mi></math>',
    "frames, objects, bases, forms": ('<iframe srcdoc="&lt;script&gt;alert(23)&lt;/script&gt;"></iframe>'
                                      '<object data="data:text/html,x"></object><embed src="javascript:alert(24)">'
                                      '<base href="https://evil.example/"><link rel="stylesheet" '
                                      'href="https://evil.example/x.css"><form action="https://evil.example/">'
                                      '<input name="a"></form><template><img src=x onerror=alert(25)></template>'),
    "disguised links": ('<a href="&#106;avascript:alert(26)">a</a><a href="  java&#x09;script:alert(27)">b</a>'
                        '<a href="data:text/html;base64,PHNjcmlwdD4=">c</a><img src="data:text/html,x">'
                        '<a href="vbscript:x">d</a><svg><image href="data:text/html,x"/></svg>'),
    "the page's own html and body": '<body onload="document.title=28"><html onmouseover="document.title=29">',
    "a second style sheet": '<style>p{}</style><img src=x onerror=document.title=30><style>a{}</style>',
    "select": '<select><img src=x onerror=document.title=31></select>',
    "scripts": '<script>document.title=32</script><svg><script>document.title=33</script></svg>',
    "a refresh in a table": '<table><meta http-equiv="refresh" content="0;url=https://evil.example/"></table>',
}


def _html5lib():
    try:
        import html5lib
    except ImportError:  # the copy bleach holds (nbconvert requires bleach)
        from bleach._vendor import html5lib
    return html5lib


def _page(body: str) -> str:
    """A page as nbconvert writes it, with ``body`` in an output."""
    return ('<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8" />\n<title>01-bce-vector</title>\n'
            '<script src="https://cdn.example/mathjax.js"></script>\n<style type="text/css">body { margin: 0; }</style>'
            f'\n</head>\n<body>\n<div class="output_html rendered_html output_subarea">{body}</div>\n</body>\n</html>\n')


def _browser_tree(page: str, scripting: bool = True):
    """``page`` as a browser's parser builds it (html5lib implements the HTML standard's parser)."""
    html5lib = _html5lib()
    return html5lib.HTMLParser(tree=html5lib.getTreeBuilder("etree")).parse(page, scripting=scripting)


URLS = ("href", "src", "action", "formaction", "data", "xlink:href", "values", "to", "from", "srcdoc")


def _live(page: str) -> list[str]:
    """What in ``page``, as a browser parses it (scripting on or off), could run a script, load
    or show another page or move the reader elsewhere."""
    from grader.instructor.feedback_html import POLICY

    found = []
    for scripting in (True, False):
        root = _browser_tree(page, scripting)
        head = root.find("{http://www.w3.org/1999/xhtml}head")
        for element in root.iter():
            if not isinstance(element.tag, str):
                continue
            name = element.tag.rsplit("}", 1)[-1]
            if name in ("meta", "base", "link", "iframe", "frame", "object", "embed", "form", "script", "noscript",
                        "template", "animate", "set", "foreignObject", "annotation-xml") and not (
                    name == "meta" and element in list(head) and (
                        element.attrib == {"charset": "utf-8"}
                        or element.attrib == {"http-equiv": "Content-Security-Policy", "content": POLICY})):
                found.append(name)
            for key, value in element.attrib.items():
                attribute = key.rsplit("}", 1)[-1]
                squeezed = "".join(value.split()).lower()
                if attribute.lower().startswith("on"):
                    found.append(f"{name} {attribute}")
                elif attribute in URLS and squeezed.startswith(("javascript:", "vbscript:", "data:")) and not (
                        (name, attribute) == ("img", "src") and squeezed.startswith("data:image/")):
                    found.append(f"{name} {attribute}={value[:30]}")
    return found


def _tags(page: str) -> list[tuple[str, dict[str, str]]]:
    """Every tag of ``page`` (its name and attributes), read from the text: after the doctype,
    each "<" must open a tag written as the feedback writes them, its attributes' values quoted
    with every '"', "<" and ">" escaped, and there may be no comment. Any HTML parser, however it
    then arranges them, reads from such a text these tags and no other (a style sheet's text holds
    no "<"; nothing else's text is raw)."""
    import html

    assert page.startswith("<!DOCTYPE html>\n")
    tags = []
    for match in re.finditer("<", page[len("<!DOCTYPE html>\n"):]):
        rest = page[len("<!DOCTYPE html>\n") + match.start():]
        tag = re.match(r'<(/?)([A-Za-z][A-Za-z0-9-]*)((?: [A-Za-z][A-Za-z0-9:-]*="[^"<>]*")*)>', rest)
        assert tag, rest[:80]
        attributes = dict(re.findall(r' ([^=]+)="([^"]*)"', tag.group(3)))
        assert not (tag.group(1) and attributes)
        tags.append((tag.group(2), {k: html.unescape(v) for k, v in attributes.items()}))
    return tags


def _kept_names() -> set[str]:
    from grader.instructor.feedback_html import _KEPT

    return set().union(*_KEPT.values()) | {"meta", "title"}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_notebooks_html_holds_nothing_live_as_a_browser_parses_the_feedback(case):
    page = self_contained(_page(HOSTILE[case]))
    assert _live(_page(HOSTILE[case])) or case in ("CDATA in svg", "nested forms", "select")  # live before
    assert _live(page) == [], page.split("<body>")[1]


@pytest.mark.parametrize("case", HOSTILE)
def test_the_feedbacks_text_holds_only_the_tags_it_keeps(case):
    """Read from the text, not parsed: what any parser reads, the parse of a browser or not."""
    from grader.instructor.feedback_html import POLICY

    page = self_contained(_page(HOSTILE[case]))
    tags = _tags(page)
    assert {name for name, _ in tags} <= _kept_names(), {name for name, _ in tags} - _kept_names()
    assert [a for name, a in tags if name == "meta"] == [
        {"http-equiv": "Content-Security-Policy", "content": POLICY}, {"charset": "utf-8"}]
    attributes = [(name, key, value) for name, kept in tags for key, value in kept.items()]
    assert not [a for a in attributes if a[1].lower().startswith("on")], attributes
    assert not [a for a in attributes if re.sub(r"[\s\x00-\x1f]+", "", a[2]).lower().startswith(
        ("javascript:", "vbscript:", "data:"))], attributes


@pytest.mark.parametrize("case", HOSTILE)
def test_the_feedback_is_what_was_sanitized(case):
    """Its text parsed again and sanitized again is the same page: what the browser builds from it
    is the tree that was sanitized."""
    page = self_contained(_page(HOSTILE[case]))
    assert self_contained(page).split("</head>", 1)[1] == page.split("</head>", 1)[1]


def test_html_nested_thousands_deep_is_sanitized_too():
    """A browser lays out only so many levels (Chromium 512), a recursive sanitizer overflows the
    stack: the student's own feedback would not be written."""
    depth = 5000
    page = self_contained(_page("<label><div>" * depth + HOSTILE["style in svg"] + "</div></label>" * depth))
    assert page.count("<div>") == depth and "<label" not in page and _live(page) == []
    assert "click</a></div>" in page


def test_what_a_hostile_output_showed_it_still_shows():
    page = self_contained(_page(HOSTILE["style in svg"] + HOSTILE["disguised links"]))
    body = _browser_tree(page).find("{http://www.w3.org/1999/xhtml}body")
    assert "".join(body.itertext()).strip() == "clickabcd"  # the links' text, the links gone


# --- an honest notebook's feedback shows what it showed -----------------------------------------------

PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
#: pandas' DataFrame._repr_html_, with its scoped style sheet
PANDAS = ('<div>\n<style scoped>\n    .dataframe tbody tr th:only-of-type {\n        vertical-align: middle;\n    }\n'
          '\n    .dataframe thead th {\n        text-align: right;\n    }\n</style>\n<table border="1" class="dataframe">\n'
          '  <thead>\n    <tr style="text-align: right;">\n      <th></th>\n      <th>p</th>\n      <th>y</th>\n    </tr>\n'
          '  </thead>\n  <tbody>\n    <tr>\n      <th>0</th>\n      <td>0.1 &lt; 1</td>\n      <td>0</td>\n    </tr>\n'
          '  </tbody>\n</table>\n</div>')
#: a figure drawn as SVG (matplotlib's, shortened)
SVG = ('<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="100pt" height="50pt" viewBox="0 0 100 50" '
       'xmlns="http://www.w3.org/2000/svg" version="1.1"><defs><clipPath id="p1"><rect x="0" y="0" width="100" '
       'height="50"/></clipPath><path id="m1" d="M 0 0 L 0 3.5" style="stroke: #000000; stroke-width: 0.8"/></defs>'
       '<g id="axes_1" clip-path="url(#p1)"><path d="M 5 45 L 50 20 L 95 10" style="fill: none; stroke: #1f77b4; '
       'stroke-width: 1.5; stroke-linecap: square"/><use xlink:href="#m1" x="5" y="45"/><text x="5" y="48" '
       'transform="rotate(-0 5 48)" style="font: 10px \'DejaVu Sans\'; text-anchor: middle">loss &lt; 1</text></g>'
       '</svg>')
#: a Markdown cell: headings with formulas, formulas, raw MathML, a table, links, a task list
MARKDOWN = ("# Notes on $\\mathcal{L}$\n\n## The loss $L = -\\frac{1}{N}\\sum_i y_i \\log p_i$\n\n"
            "Inline $a<b$ and \\(c > d\\), and\n\n$$\\int_0^1 x\\,dx$$\n\n\\begin{align}a &= b \\\\ c &= d\\end{align}\n\n"
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n[docs](https://pytorch.org/docs) `code < x` **bold** <sub>i</sub>\n\n"
            "<math display=\"block\"><mfrac><mn>1</mn><mi>N</mi></mfrac><msub><mi>&#x2113;</mi><mi>i</mi></msub></math>"
            "\n\n- [ ] to do\n- [x] done\n\n> quoted\n\n<details><summary>more</summary><p>x &amp; y</p></details>\n")
HONEST = {
    "text": ('<div class="output_subarea output_stream output_stdout output_text"><pre>\ntensor([0.1000, 0.9000]) &lt; 1 '
             '&amp; "quoted" &lt;b&gt;not bold&lt;/b&gt;\n</pre></div>'),
    "error": ('<div class="output_subarea output_text output_error"><pre><span class="ansi-red-fg">AssertionError</span>:'
              ' Hint: torch clamps log(0) at -100</pre></div>'),
    "figure": (f'<div class="output_png output_subarea"><img src="data:image/png;base64,{PNG}" '
               'alt="No description has been provided for this image"/></div>'),
    "pandas": f'<div class="output_html rendered_html output_subarea output_execute_result">{PANDAS}</div>',
    "svg": f'<div class="output_html rendered_html output_subarea">{SVG}</div>',
    "nbgrader": ('<div tabindex="-1" id="notebook" class="border-box-sizing"><a name="bce_vector_examples"></a>'
                 '<div class="panel-heading"><span class="nbgrader-label">Grade cell: <code>bce_vector_examples'
                 '</code></span><span class="pull-right">Score: 2.0 / 2.0 <a href="#top">(Top)</a></span></div></div>'),
}


def _tree(page: str) -> list:
    """The body of ``page`` as a browser parses it: each element's name, attributes and text."""
    def walk(element):
        if not isinstance(element.tag, str):
            return [element.tail or ""]
        return [(element.tag, sorted(element.attrib.items()), element.text or "",
                 [walk(child) for child in element]), element.tail or ""]
    return walk(_browser_tree(page).find("{http://www.w3.org/1999/xhtml}body"))


@pytest.mark.parametrize("case", [*HONEST, "markdown"])
def test_an_honest_output_is_in_the_feedback_as_it_was(case):
    body = HONEST[case] if case in HONEST else f'<div class="text_cell_render rendered_html">{_markdown(MARKDOWN)}</div>'
    if case == "markdown":
        assert body.count("<math") == 6 and "<mfrac>" in body and '<a class="anchor-link"' in body
    assert _tree(self_contained(_page(body))) == _tree(_page(body))


# --- in a real browser, offline ---------------------------------------------------------------------

#: In the page: every element and attribute that could run, load or move the reader, and its title.
LIVE = """() => {
    const found = [];
    const dropped = ['base', 'link', 'iframe', 'frame', 'object', 'embed', 'form', 'script', 'noscript', 'template',
                     'animate', 'set', 'foreignObject', 'annotation-xml'];
    for (const e of document.querySelectorAll('*')) {
        if (dropped.includes(e.localName)) found.push(e.localName);
        if (e.localName === 'meta' && !(e.parentElement === document.head
                && (e.getAttribute('charset') || e.httpEquiv === 'Content-Security-Policy'))) found.push(e.outerHTML);
        for (const a of e.attributes) {
            const url = a.value.replace(/[\\s\\x00-\\x1f]+/g, '').toLowerCase();
            if (a.name.toLowerCase().startsWith('on')) found.push(e.localName + ' ' + a.name);
            else if (/^(javascript|vbscript|data):/.test(url)
                     && !(e.localName === 'img' && a.name === 'src' && url.startsWith('data:image/')))
                found.push(e.localName + ' ' + a.name + '=' + a.value);
        }
    }
    return {found, title: document.title};
}"""


@pytest.mark.browser
@pytest.mark.parametrize("case", HOSTILE)
def test_in_chromium_a_notebooks_html_neither_runs_nor_loads_anything(browser, tmp_path, case):
    path = tmp_path / "feedback.html"
    path.write_text(self_contained(_page(HOSTILE[case])))
    page = browser.new_page()
    try:
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.route(re.compile(r"^(?!file:|data:)"), lambda route: route.abort())  # offline
        page.goto(path.as_uri(), wait_until="load")
        if "refresh" in HOSTILE[case]:
            page.wait_for_timeout(1500)  # the refresh was due after a second
        seen = page.evaluate(LIVE)
        url = page.url
    finally:
        page.close()
    assert seen == {"found": [], "title": "01-bce-vector"}
    assert url == path.as_uri() and [u for u in requests if not u.startswith(("file:", "data:"))] == []
