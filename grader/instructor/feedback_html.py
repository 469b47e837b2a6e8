"""The feedback's HTML: one self-contained file a student opens from disk, offline.

nbgrader's generate_feedback renders the autograded notebook with nbconvert's HTMLExporter
and nbgrader's ``feedback`` template, which leaves every formula as raw LaTeX for MathJax
to typeset in the browser, loaded from a CDN (the template calls nbconvert's ``mathjax()``
macro without an address, so ``HTMLExporter.mathjax_url`` does not even apply). Offline a
student sees ``$\\frac{1}{N}\\sum ...$``. And its outputs keep their lines as they are, so a
long line of a test's report (its hint) runs off the page.

``FeedbackExporter`` (``c.GenerateFeedback.exporter_class`` in the course's
nbgrader_config.py) renders instead:

- every formula of a Markdown cell or output (``$...$``, ``$$...$$``, ``\\(...\\)``,
  ``\\[...\\]``, ``\\begin{env}...\\end{env}``) and every ``text/latex`` output as MathML, at
  export time (latex2mathml, pure Python). Browsers lay MathML out themselves (Chromium and
  Edge since 2023, Firefox and Safari for longer): no script, no font to fetch. A formula
  latex2mathml cannot read stays as its source, in a ``code.math-source`` element;
- no script at all (the MathJax loader and its configuration are removed), and nothing of
  a notebook's own HTML that could run or load anything: a content security policy first in
  the page, then no event handler, ``javascript:`` link, frame, form or refresh (its outputs
  and Markdown are the student's);
- every remote image as its alternative text (the Colab badge in the title cell becomes
  the words "Open In Colab", still a link): opening the file fetches nothing;
- with style rules that wrap long lines in code and outputs (``white-space: pre-wrap;
  overflow-wrap: anywhere``), so nothing is cut on screen or on paper.

Shipping MathJax instead was weighed: MathJax 2 (the jupyter-server-mathjax package) is
608 files (9.6 MB) loaded by the page at run time, so it would have to sit beside every
feedback file, and nbgrader's template ignores the address anyway; MathJax 3's single-file
build is about 2 MB of script in every feedback file and an npm download to install.
"""

from __future__ import annotations

import html
import re
import secrets

from nbconvert.exporters.html import HTMLExporter, contextfilter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

#: Style rules added to every feedback file.
FEEDBACK_CSS = """
/* Long lines wrap, in code and in outputs: nothing runs off the page or the paper. */
#notebook pre, #notebook code, div.output_area pre, div.output_subarea pre, div.input_area pre,
div.highlight pre, div.output_text pre {
  white-space: pre-wrap;
  overflow-wrap: anywhere;
  word-break: normal;
}
div.output_subarea { overflow-x: visible; max-width: 100%; min-width: 0; }
div.output_area, div.inner_cell, div.input_area { min-width: 0; }
/* Figures shrink to the page's width. */
#notebook img, #notebook svg { max-width: 100%; height: auto; }
/* Formulas, rendered as MathML by the browser. */
math { font-family: "Latin Modern Math", "STIX Two Math", "Cambria Math", "DejaVu Math TeX Gyre", math;
       font-size: 1.1em; }
math[display="block"] { display: block math; margin: 0.6em 0; overflow-x: auto; overflow-y: hidden;
                        max-width: 100%; }
code.math-source { white-space: pre-wrap; overflow-wrap: anywhere; }
"""


def to_mathml(tex: str, display: bool = False) -> str:
    """``tex`` (without its delimiters) as a MathML element; as its source, escaped, in a
    ``code.math-source`` element when latex2mathml cannot read it."""
    try:
        from latex2mathml.converter import convert
    except ImportError as exc:
        raise ImportError("the feedback renders formulas with latex2mathml, which is not installed: "
                          "pip install 'bce-course[instructor]' (or pip install latex2mathml)") from exc
    try:
        mathml = convert(tex.strip(), display="block" if display else "inline")
    except Exception:  # noqa: BLE001 - latex2mathml raises many kinds on a formula it cannot read
        delimiter = "$$" if display else "$"
        return f'<code class="math-source">{html.escape(delimiter + tex + delimiter)}</code>'
    # latex2mathml leaves a few characters as they are (an alignment '&'): escape them for HTML
    mathml = re.sub(r"&(?!#?\w+;)", "&amp;", mathml)
    # the source as the formula's annotation (not shown; what a copy or a screen reader may use)
    head, rest = mathml.split(">", 1)
    body = rest.rsplit("</math>", 1)[0]
    return (f'{head}><semantics><mrow>{body}</mrow><annotation encoding="application/x-tex">'
            f'{html.escape(tex.strip(), quote=False)}</annotation></semantics></math>')


class MathMLRenderer(IPythonRenderer):
    """nbconvert's Markdown renderer, with every formula as MathML instead of text for MathJax."""

    def block_math(self, body: str) -> str:
        return to_mathml(body, display=True)

    def latex_environment(self, name: str, body: str) -> str:
        return to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)

    def inline_math(self, body: str) -> str:
        return to_mathml(body)

    def heading(self, text: str, level: int, **attrs) -> str:
        # nbconvert adds the heading's anchor through xml.etree, which would write MathML with
        # namespace prefixes (ns0:math) that HTML does not read: hold each formula back meanwhile,
        # as its source (so the heading's id reads as nbconvert's own, dollars aside)
        # The placeholders are marked with a token drawn for this heading: the heading's text is
        # the student's, who can write such a span too, but not guess the token (theirs stay text)
        held: list[str] = []
        token = secrets.token_hex(16)

        def hold(match: re.Match) -> str:
            held.append(match.group(0))
            source = re.search(r'<annotation encoding="application/x-tex">(.*?)</annotation>', match.group(0), re.S)
            return f'<span data-held-math="{token}-{len(held) - 1}">{source.group(1) if source else ""}</span>'

        def restore(match: re.Match) -> str:
            index = int(match.group(1))
            return held[index] if index < len(held) else match.group(0)

        text = re.sub(r"<math\b.*?</math>", hold, text, flags=re.S)
        page = super().heading(text, level, **attrs)
        return re.sub(rf'<span data-held-math="{token}-(\d+)">.*?</span>', restore, page, flags=re.S)


_LATEX_OUTPUT = re.compile(r"^\s*(\$\$|\\\[|\$|\\\()(?P<body>.*?)(\$\$|\\\]|\$|\\\))\s*$", re.S)


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTMLExporter, writing a file that needs neither a script nor the network:
    formulas as MathML, no MathJax, no remote image, long lines wrapped."""

    @contextfilter
    def markdown2html(self, context, source):
        cell = context.get("cell", {})
        renderer = MathMLRenderer(
            escape=False,
            attachments=cell.get("attachments", {}),
            embed_images=self.embed_images,
            path=context.get("resources", {}).get("metadata", {}).get("path", ""),
            anchor_link_text=self.anchor_link_text,
            exclude_anchor_links=self.exclude_anchor_links,
            **self.lexer_options,
        )
        return MarkdownWithMath(renderer=renderer).render(source)

    def from_notebook_node(self, nb, resources=None, **kw):
        output, resources = super().from_notebook_node(nb, resources, **kw)
        return self_contained(output), resources


#: The page's content security policy, its first element: whatever HTML a notebook's outputs
#: or Markdown hold, the browser runs no script (not an event handler, not a ``javascript:``
#: link), loads nothing (images and fonts from the page itself only, styles written in it),
#: and sends no form.
POLICY = ("default-src 'none'; img-src data:; font-src data:; style-src 'unsafe-inline'; "
          "base-uri 'none'; form-action 'none'")

#: Elements removed wherever they are: what runs code, embeds another page or sends a form.
_REMOVED = ("script", "iframe", "frame", "frameset", "object", "embed", "applet", "form", "noscript", "portal")
#: Elements kept only where nbconvert writes them, in the page's head: elsewhere they come
#: from a notebook (a ``meta`` refresh moves the reader elsewhere, and no policy stops it; a
#: ``base`` redirects every link).
_HEAD_ONLY = ("meta", "link", "base")


def _harmless(soup) -> None:
    """Take out of ``soup`` what a notebook's HTML (its outputs and its Markdown, which the
    student's process and the student wrote) could do beyond showing text, tables, images and
    formulas: the elements :data:`_REMOVED` and :data:`_HEAD_ONLY`, every event handler
    (``on...``) and every link to a script (``javascript:``, ``vbscript:``, ``data:`` other
    than an image)."""
    for element in soup.find_all(_REMOVED):
        element.decompose()
    for element in soup.find_all(_HEAD_ONLY):
        if soup.head is None or element.parent is not soup.head or element.get("http-equiv"):
            element.decompose()
    for element in soup.find_all(True):
        for name, value in list(element.attrs.items()):
            text = " ".join(value) if isinstance(value, list) else str(value)
            squeezed = re.sub(r"[\s\x00-\x1f]+", "", text).lower()
            if name.lower().startswith("on") or (
                    re.match(r"(javascript|vbscript|data):", squeezed) and not squeezed.startswith("data:image/")):
                del element.attrs[name]


def self_contained(page: str) -> str:
    """``page`` (nbconvert's HTML) without scripts or remote images, its ``text/latex``
    outputs as MathML, and with the feedback's style rules; nothing a notebook's HTML holds can
    run or load anything (:data:`POLICY`, :func:`_harmless`)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page, features="html.parser")
    _harmless(soup)
    for image in soup.find_all("img"):
        if re.match(r"(?i)\s*(https?:)?//", image.get("src", "")):
            span = soup.new_tag("span", attrs={"class": "remote-image"})
            span.string = image.get("alt") or image.get("title") or ""
            image.replace_with(span)
    for latex in soup.select("div.output_latex"):
        match = _LATEX_OUTPUT.match(latex.get_text())
        if match:
            latex.clear()
            mathml = to_mathml(match["body"], display=match.group(1) in ("$$", "\\["))
            latex.append(BeautifulSoup(mathml, features="html.parser"))
    style = soup.new_tag("style")
    style.string = FEEDBACK_CSS
    (soup.head or soup).append(style)
    policy = soup.new_tag("meta", attrs={"http-equiv": "Content-Security-Policy", "content": POLICY})
    (soup.head or soup).insert(0, policy)
    return str(soup)
