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
  a notebook's own HTML that could run or load anything (its outputs and Markdown are the
  student's): a content security policy first in the page, then only the elements and
  attributes of an allowlist (text, tables, links, images, formulas, figures), of the page
  as a browser parses it (html5lib), written again so that any parser reads those and no
  other (no event handler, ``javascript:`` link, frame, form or refresh, however nested);
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

# --- what of a notebook's HTML the page keeps ----------------------------------------------------
#
# The page is parsed as a browser parses it (html5lib: the HTML standard's algorithm, with
# scripting on, as in a browser), every element and attribute not on an allowlist is taken out,
# and the page is written again from that tree: each text escaped, each attribute value quoted
# and escaped, no comment, and no "<" in a style sheet's text. So the only tags in the page are
# those of kept elements: a parser that reads the page otherwise than html5lib did (as Python's
# html.parser reads a <style> in <svg> as text where a browser reads markup, or a <noscript>)
# can arrange them differently, but cannot find an element or an attribute that is not kept.

_HTML, _SVG, _MATHML = "http://www.w3.org/1999/xhtml", "http://www.w3.org/2000/svg", "http://www.w3.org/1998/Math/MathML"
_PREFIXES = {"http://www.w3.org/1999/xlink": "xlink:", "http://www.w3.org/XML/1998/namespace": "xml:",
             "http://www.w3.org/2000/xmlns/": "xmlns:"}

#: The elements kept, by namespace: text, lists, tables, links, images, formulas, figures. A <title>,
#: <meta charset> and <style> are also kept in the page's head (nbconvert's).
_KEPT = {
    _HTML: set("""a abbr address article aside b bdi bdo big blockquote body br caption center cite code col
        colgroup data dd del details dfn div dl dt em figcaption figure font footer h1 h2 h3 h4 h5 h6 head header
        hgroup hr html i img input ins kbd li main mark nav ol p pre q rp rt ruby s samp section small span strike
        strong style sub summary sup table tbody td tfoot th thead time tr tt u ul var wbr""".split()),
    _SVG: set("""svg g defs symbol use path rect circle ellipse line polyline polygon text tspan textPath clipPath
        mask pattern marker linearGradient radialGradient stop image a switch""".split()),
    _MATHML: set("""math semantics annotation mrow mi mn mo ms mtext mspace mfrac msqrt mroot msub msup msubsup
        munder mover munderover mmultiscripts mprescripts none mtable mtr mtd mlabeledtr mstyle mpadded mphantom
        menclose mfenced merror""".split()),
}
#: The elements dropped with all they hold (any other element that is not kept gives way to what it
#: holds; any other of SVG is dropped): what runs code, embeds a page, sends a form, moves the reader
#: elsewhere or redirects links (meta, base, link); what holds text a parser reads as markup elsewhere
#: (raw text, a style outside HTML) or switches a formula or figure back to HTML (annotation-xml,
#: foreignObject, title and desc in SVG); SVG's animations, which can set a link to a script.
_DROPPED = set("""script noscript template iframe frame frameset object embed applet param form portal meta link
    base title style xmp noembed noframes plaintext textarea select button audio video canvas source track
    foreignObject annotation-xml mglyph malignmark desc metadata animate animateMotion animateTransform set
    discard handler listener""".split())

#: The attributes kept, by namespace, on every element ("*") and on some; no event handler (on...) is
#: one of them. URLs (_URLS) are kept only as links to pages, fragments or data: images (_IMAGES).
_ATTRIBUTES = {
    _HTML: {"*": set("class id title lang dir style name role tabindex hidden align valign width height border"
                     .split()),
            "a": {"href", "target", "rel", "hreflang"}, "img": {"src", "alt"}, "input": {"type", "checked", "disabled"},
            "td": {"colspan", "rowspan", "headers", "scope", "abbr", "nowrap"},
            "th": {"colspan", "rowspan", "headers", "scope", "abbr", "nowrap"},
            "table": {"cellpadding", "cellspacing", "summary", "frame", "rules"},
            "col": {"span"}, "colgroup": {"span"}, "ol": {"start", "type", "reversed"}, "ul": {"type"},
            "li": {"value", "type"}, "details": {"open"}, "blockquote": {"cite"}, "q": {"cite"},
            "del": {"cite", "datetime"}, "ins": {"cite", "datetime"}, "time": {"datetime"}, "data": {"value"},
            "font": {"color", "face", "size"}, "hr": {"size", "noshade"}, "meta": {"charset"},
            "style": {"type", "media", "scoped"}},
    _SVG: {"*": set("""id class style transform x y x1 y1 x2 y2 cx cy r rx ry fx fy fr dx dy width height d points
        viewBox preserveAspectRatio pathLength rotate textLength lengthAdjust startOffset offset fill fill-opacity
        fill-rule stroke stroke-width stroke-linecap stroke-linejoin stroke-miterlimit stroke-dasharray
        stroke-dashoffset stroke-opacity opacity clip-path clip-rule clipPathUnits mask maskUnits maskContentUnits
        patternUnits patternContentUnits patternTransform gradientUnits gradientTransform spreadMethod
        stop-color stop-opacity font-family font-size font-style font-weight font-variant text-anchor
        dominant-baseline alignment-baseline baseline-shift letter-spacing word-spacing text-decoration
        writing-mode visibility display color marker-start marker-mid marker-end markerWidth markerHeight
        markerUnits refX refY orient overflow vector-effect shape-rendering text-rendering image-rendering
        paint-order role version xmlns xmlns:xlink xml:space href xlink:href""".split())},
    _MATHML: {"*": set("""id class style dir display displaystyle scriptlevel mathvariant mathsize mathcolor
        mathbackground href xmlns encoding accent accentunder align bevelled close columnalign columnlines
        columnspacing columnspan columnwidth denomalign depth equalcolumns equalrows fence form frame
        framespacing height largeop linebreak linethickness lspace lquote maxsize minsize movablelimits notation
        numalign open rowalign rowlines rowspacing rowspan rquote rspace separator separators side stretchy
        subscriptshift superscriptshift symmetric voffset width""".split())},
}
_URLS = {"href", "src", "cite", "xlink:href"}
#: The attributes whose URL may be a data: image, by namespace and element.
_IMAGES = {(_HTML, "img", "src"), (_SVG, "image", "href"), (_SVG, "image", "xlink:href")}
#: The void elements (no end tag) and those whose text is raw (never escaped), of HTML.
_VOID = set("area base basefont bgsound br col embed frame hr img input keygen link meta param source track wbr".split())
_RAW_TEXT = {"style", "script", "xmp", "iframe", "noembed", "noframes", "plaintext", "noscript"}


def _html5lib():
    """html5lib, which parses HTML as a browser does; when it is not installed, the copy bleach
    holds (nbconvert requires bleach, which sanitizes with it)."""
    try:
        import html5lib
    except ImportError:
        from bleach._vendor import html5lib
    return html5lib


def _parser():
    """html5lib's parser, building an xml.etree tree (tags ``{namespace}name``)."""
    html5lib = _html5lib()
    return html5lib.HTMLParser(tree=html5lib.getTreeBuilder("etree"))


def _name(key: str) -> tuple[str, str]:
    """An element's or attribute's namespace, and its name as HTML writes it (``xlink:href``)."""
    if not key.startswith("{"):
        return "", key
    namespace, name = key[1:].split("}", 1)
    return namespace, _PREFIXES[namespace] + name if namespace in _PREFIXES and name != "xmlns" else name


def _squeezed(url: str) -> str:
    """``url`` without what a browser skips in its scheme (blanks, control characters), lowercase."""
    return re.sub(r"[\s\x00-\x1f\x7f]+", "", url).lower()


def _safe_url(value: str, image: bool) -> bool:
    """Whether ``value`` links to a page, a fragment or an e-mail address (or, ``image``, is a data:
    image): no script (``javascript:``, disguised with blanks or not), no data: page."""
    squeezed = _squeezed(value)
    scheme = re.match(r"([a-z][a-z0-9+.-]*):", squeezed)
    if scheme is None or scheme.group(1) in ("http", "https", "mailto"):
        return True
    return image and re.match(r"data:image/(png|jpeg|gif|webp|avif|bmp|svg\+xml)[;,]", squeezed) is not None


def _keep_attributes(element, namespace: str, name: str) -> None:
    allowed = _ATTRIBUTES[namespace]
    for key, value in list(element.attrib.items()):
        attribute = _name(key)[1]
        kept = (attribute in allowed["*"] or attribute in allowed.get(name, ())
                or (namespace == _HTML and re.fullmatch(r"(aria|data)-[a-z0-9_.-]+", attribute)))
        if (not kept or attribute.lower().startswith("on")
                or (attribute in _URLS and not _safe_url(value, (namespace, name, attribute) in _IMAGES))):
            del element.attrib[key]


def _append_text(element, text: str | None) -> None:
    if not text:
        return
    if len(element):
        element[-1].tail = (element[-1].tail or "") + text
    else:
        element.text = (element.text or "") + text


def _harmless(root) -> None:
    """Keep in ``root`` (html5lib's tree) only the elements and attributes of the allowlists, and
    every text outside what is dropped; a remote image becomes its alternative text (opening the
    page fetches nothing). Without recursion: a notebook may nest elements thousands deep."""
    from xml.etree.ElementTree import Element

    elements = [(root, False)]
    while elements:
        element, head = elements.pop()
        pending = list(element)[::-1]  # its children, the next last; texts and elements
        for child in pending:
            element.remove(child)
        while pending:
            child = pending.pop()
            if isinstance(child, str):
                _append_text(element, child)
                continue
            tail, child.tail = child.tail, None
            namespace, name = _name(child.tag) if isinstance(child.tag, str) else (None, None)  # a comment: dropped
            if head:
                keep = namespace == _HTML and name in ("title", "style", "meta") and (
                    name != "meta" or "charset" in child.attrib)
                verdict = "keep" if keep else "drop"
            elif name in _KEPT.get(namespace, ()):
                verdict = "keep"
            else:
                verdict = "drop" if namespace not in (_HTML, _MATHML) or name in _DROPPED else "unwrap"
            if verdict == "keep" and name == "img" and re.match(r"(https?:)?//", _squeezed(child.get("src", ""))):
                span = Element(f"{{{_HTML}}}span", {"class": "remote-image"})
                span.text = child.get("alt") or child.get("title") or ""
                element.append(span)
            elif verdict == "keep":
                _keep_attributes(child, namespace, name)
                if namespace == _HTML and name == "style":  # no "<": its text is text wherever a parser puts it
                    child.text = (child.text or "").replace("<", "\\3C ")
                element.append(child)
                elements.append((child, namespace == _HTML and name == "head"))
            elif verdict == "unwrap":  # what it holds takes its place
                pending += [tail or "", *list(child)[::-1], child.text or ""]
                continue
            _append_text(element, tail)


def _escape(text: str, attribute: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("\xa0", "&nbsp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if attribute else text


def _serialize(root) -> str:
    """``root`` (a harmless tree) as HTML: the HTML standard's serialization, with "<" and ">"
    escaped in attribute values too. Without recursion, as :func:`_harmless`."""
    out: list[str] = []
    pending = [root]  # elements to write, and texts, the next last
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            out.append(node)
            continue
        namespace, name = _name(node.tag)
        out.append(f"<{name}" + "".join(f' {_name(k)[1]}="{_escape(v, True)}"' for k, v in node.attrib.items()) + ">")
        if namespace == _HTML and name in _VOID:
            continue
        raw = namespace == _HTML and name in _RAW_TEXT
        if namespace == _HTML and name in ("pre", "textarea", "listing") and (node.text or "").startswith("\n"):
            out.append("\n")  # the parser drops a first line break there
        out.append((node.text or "") if raw else _escape(node.text or ""))
        pending.append(f"</{name}>")
        for child in reversed(node):
            pending += [(child.tail or "") if raw else _escape(child.tail or ""), child]
    return "".join(out)


def self_contained(page: str) -> str:
    """``page`` (nbconvert's HTML) without scripts or remote images, its ``text/latex``
    outputs as MathML, and with the feedback's style rules; nothing a notebook's HTML holds can
    run or load anything (:data:`POLICY`, :func:`_harmless`)."""
    from xml.etree.ElementTree import Element

    root = _parser().parse(page, scripting=True)  # as a browser parses it (scripting on: a <noscript> is text)
    for latex in [e for e in root.iter(f"{{{_HTML}}}div") if "output_latex" in e.get("class", "").split()]:
        match = _LATEX_OUTPUT.match("".join(latex.itertext()))
        if match:
            for child in list(latex):
                latex.remove(child)
            mathml = to_mathml(match["body"], display=match.group(1) in ("$$", "\\["))
            fragment = _parser().parseFragment(mathml)
            latex.text = fragment.text
            latex.extend(list(fragment))
    _keep_attributes(root, _HTML, "html")  # a notebook's <html onload=...> adds to the page's own
    _harmless(root)
    head = root.find(f"{{{_HTML}}}head")
    head.insert(0, Element(f"{{{_HTML}}}meta", {"http-equiv": "Content-Security-Policy", "content": POLICY}))
    style = Element(f"{{{_HTML}}}style")
    style.text = FEEDBACK_CSS
    head.append(style)
    return "<!DOCTYPE html>\n" + _serialize(root)
