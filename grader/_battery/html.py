"""The report as HTML, for a notebook: what ``Report._repr_html_`` returns.

In order: the headline (the report's summary), the first failure explained in full, the figure
of the student's function against torch's when the report has a sweep, the other failing
categories folded under "Also failing", the table of every category (folded when something
failed), and the notes. A function not written yet is one line, as in the text report; a report
with no categories (a check that did not run here) is its summary and its notes.

Every piece of text is escaped with :func:`html.escape`: the function's name, messages,
tracebacks, tensors and printed output come from the student's code, and the only markup is
written here. Every verdict has a symbol and a word besides its colour.

The styles are a ``<style>`` block whose every selector starts with the class :data:`ROOT`
(twice, to outweigh JupyterLab's own rules for rendered HTML), so nothing applies outside the
report. Text inherits the notebook's colour (JupyterLab's ``--jp-content-font-color1`` where it
is defined), and backgrounds are translucent tints or JupyterLab's own layout colours, so the
report reads in light and dark themes. Nothing is loaded from elsewhere. The two rules that
matter most are also written on the elements themselves: code and tensors keep their lines
(``white-space: pre``, scrolling sideways rather than breaking a word), and the figure keeps its
size. JupyterLab's sanitizer keeps those attributes in an untrusted notebook, where it drops
``<style>`` blocks.
"""

from __future__ import annotations

import html
import re

from .report import CategoryResult, Failure, Report, _short
from .sweep import differs

#: The class of the report's outer element; every style rule is scoped under it.
ROOT = "bce-grader-report"

#: Symbol and word of each verdict: never colour alone.
VERDICTS = {"passed": "\u2713 passed", "failed": "\u2717 FAILED", "skipped": "\u2013 skipped",
            "blank": "\u270e not written yet"}

_PRE_STYLE = "white-space:pre;overflow-x:auto;word-break:normal;overflow-wrap:normal"

_CSS = """
.R{color:var(--jp-content-font-color1,inherit);font-family:var(--jp-content-font-family,system-ui,sans-serif);
font-size:var(--jp-content-font-size1,14px);line-height:1.45;word-break:normal;overflow-wrap:normal;
hyphens:manual;max-width:100%;overflow-x:auto;padding:2px 0}
.R .bce-headline{display:flex;flex-wrap:wrap;align-items:baseline;gap:.3em .6em;margin:0 0 .25em;
padding:.4em .7em;border-left:5px solid;border-radius:3px;font-weight:600;font-size:1.08em}
.R .bce-passed{background:rgba(0,158,115,.14);border-color:#009E73}
.R .bce-failed{background:rgba(213,94,0,.14);border-color:#D55E00}
.R .bce-skipped,.R .bce-blank{background:rgba(127,127,127,.14);border-color:rgba(127,127,127,.8)}
.R .bce-badge{display:inline-block;white-space:nowrap;font-weight:700;padding:0 .45em;border:1px solid;
border-radius:3px}
.R .bce-sub{margin:0 0 .6em;opacity:.85}
.R .bce-first{margin:.4em 0;padding:.5em .8em;border:1px solid rgba(213,94,0,.55);border-radius:4px}
.R .bce-title{font-weight:700;margin:0 0 .3em}
.R .bce-message{margin:.2em 0 .4em;font-weight:600}
.R .bce-label{margin:.3em 0 0;font-size:.92em;opacity:.85}
.R .bce-code{white-space:pre;overflow-x:auto;max-width:100%;margin:.1em 0 .3em;padding:.3em .55em;
background:var(--jp-layout-color2,rgba(127,127,127,.13));color:inherit;border:0;border-radius:3px;
font-family:var(--jp-code-font-family,ui-monospace,Menlo,Consolas,monospace);
font-size:var(--jp-code-font-size,13px);line-height:1.35}
.R code{font-family:var(--jp-code-font-family,ui-monospace,Menlo,Consolas,monospace);
background:var(--jp-layout-color2,rgba(127,127,127,.13));color:inherit;padding:0 .25em;border-radius:2px;
white-space:pre}
.R table.bce-table{border-collapse:collapse;margin:.2em 0 .5em;table-layout:auto;color:inherit;
font-size:inherit;width:auto}
.R table.bce-table th,.R table.bce-table td{text-align:left;vertical-align:top;padding:.2em .6em;
white-space:normal;border:0}
.R table.bce-table thead th{border-bottom:1px solid rgba(127,127,127,.5)}
.R table.bce-fields th{white-space:nowrap;font-weight:600;padding-left:0}
.R table.bce-fields tbody tr{background:transparent}
.R table.bce-fields td{max-width:0;width:100%}
.R .bce-nowrap{white-space:nowrap}
.R .bce-hint{margin:.5em 0 .2em;padding:.35em .7em;border-left:4px solid var(--jp-info-color1,#0072B2);
background:rgba(0,114,178,.10);border-radius:2px}
.R details{margin:.5em 0}
.R details>summary{cursor:pointer;font-weight:600}
.R ul{margin:.3em 0;padding-left:1.4em}
.R .bce-figure{margin:.6em 0}
.R .bce-figure img{display:block;background:#fff;border-radius:4px;max-width:100%;height:auto}
.R .bce-figure figcaption{margin-top:.3em;font-size:.92em;opacity:.9;max-width:560px}
.R .bce-notes{margin:.5em 0 0}
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _pre(text: str) -> str:
    return f'<pre class="bce-code" style="{_PRE_STYLE}">{_e(text)}</pre>'


def _badge(status: str) -> str:
    return f'<span class="bce-badge bce-{status}">{VERDICTS[status]}</span>'


def _wrap(body: str) -> str:
    # div.ROOT.ROOT: more specific than JupyterLab's own rules for rendered HTML (two classes and
    # an element, as in ".jp-ThemedContainer .jp-RenderedHTMLCommon pre"), which set pre-wrap
    css = _CSS.replace(".R", f"div.{ROOT}.{ROOT}").replace("\n", "")
    return f'<div class="{ROOT}"><style>{css}</style>{body}</div>'


def _overall(report: Report) -> str:
    if report.failures:
        return "failed"
    return "passed" if report.categories and report.ran else "skipped"


def _headline(report: Report) -> str:
    status = _overall(report)
    return (f'<div class="bce-headline bce-{status}" role="status">{_badge(status)}'
            f"<span>{_e(report.summary())}</span></div>")


def _subline(report: Report) -> str:
    parts = [f"compared with <code>{_e(report.reference)}</code> (torch {_e(report.torch_version)})"]
    ran = [d for d, r in report.devices.items() if r is None]
    skipped = [f"{d} ({r})" for d, r in report.devices.items() if r is not None]
    if report.devices:
        parts.append("devices: " + _e(", ".join(ran) or "none")
                     + (f"; skipped: {_e(', '.join(skipped))}" if skipped else ""))
    return '<p class="bce-sub">' + " \u00b7 ".join(parts) + "</p>"


def _difference(d: dict) -> str:
    if "index" not in d:
        return f"<p>{_e(d.get('reason', ''))}</p>"
    where = f" at index {_e(d['index'])}" if d["index"] else ""
    return (f"<p>largest difference{where}: torch <code>{_e(repr(d['expected']))}</code>, yours "
            f"<code>{_e(repr(d['actual']))}</code> ({_e(d['mismatched'])} of {_e(d['total'])} elements differ)"
            f"<br>tolerance: <code>|yours - torch| &lt;= {_e(format(d['atol'], 'g'))} + "
            f"{_e(format(d['rtol'], 'g'))} * |torch|</code></p>")


def explain(failure: Failure) -> str:
    """One failure in full: what :meth:`Failure.explain` says, as HTML."""
    where = f" ({failure.device}, {failure.dtype})" if failure.device != "-" else ""
    parts = [f'<div class="bce-title">First failure: {_e(failure.category)}: {_e(failure.case)}{_e(where)}</div>',
             f'<p class="bce-message">{_e(failure.message)}</p>']
    if failure.traceback:
        parts.append('<p class="bce-label">where your code was when it happened:</p>' + _pre(failure.traceback))
    rows = [(f"{key} =", text) for key, text in failure.inputs.items()]
    if failure.expected is not None:
        rows += [("torch returned", failure.expected), ("yours returned", failure.actual or "")]
    if rows:
        parts.append('<table class="bce-table bce-fields"><tbody>' + "".join(
            f'<tr><th scope="row">{_e(label)}</th><td>{_pre(text)}</td></tr>' for label, text in rows)
            + "</tbody></table>")
    if failure.difference:
        parts.append(_difference(failure.difference))
    if failure.hint:
        parts.append(f'<p class="bce-hint"><strong>Hint:</strong> {_e(failure.hint)}</p>')
    return '<section class="bce-first">' + "".join(parts) + "</section>"


def _detail(report: Report, result: CategoryResult) -> str:
    """The table's third column: the text report's, unshortened but for very long messages."""
    if result.status == "failed":
        total = result.passed + result.failed
        return (f"{result.failed} of {total} cases: {result.failures[0].case}"
                if total > 1 else _short(result.failures[0].message, 300))
    if result.status == "passed" and result.passed > 1:
        return f"{result.passed} cases" + (f", {result.skipped} skipped" if result.skipped else "")
    if result.status == "skipped" and result.skipped:
        return f"{result.skipped} cases skipped: {report._skip_reason(result.name)}"
    return result.description


def _table(report: Report) -> str:
    counts = {s: sum(c.status == s for c in report.categories.values()) for s in ("failed", "passed", "skipped")}
    said = ", ".join(f"{n} {'FAILED' if s == 'failed' else s}" for s, n in counts.items() if n)
    rows = "".join(
        f'<tr><td class="bce-nowrap">{_badge(c.status)}</td><td class="bce-nowrap">{_e(c.name)}</td>'
        f"<td>{_e(_detail(report, c))}</td></tr>" for c in report.categories.values())
    opened = "" if report.failures else " open"
    return (f'<details class="bce-categories"{opened}><summary>Every category: {_e(said)}</summary>'
            '<table class="bce-table"><thead><tr><th scope="col">verdict</th><th scope="col">category</th>'
            f'<th scope="col">what was checked</th></tr></thead><tbody>{rows}</tbody></table></details>')


def _also(report: Report, first: Failure) -> str:
    others = [c for c in report.failed_categories() if c != first.category]
    if not others:
        return ""
    items = "".join(
        f"<li><strong>{_e(name)}</strong>: {_e(f.case)}: {_e(_short(f.message, 300))}</li>"
        for name in others for f in report.categories[name].failures[:1])
    return (f'<details class="bce-also"><summary>Also failing: {_e(", ".join(others))}</summary>'
            f"<ul>{items}</ul></details>")


def _notes(report: Report) -> str:
    notes = report.notes + report._output_notes()
    if not notes:
        return ""
    return '<ul class="bce-notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"


def figure_html(sweep) -> str:
    """The figure of a sweep: a PNG at a fixed CSS size, its caption and its description."""
    flags = differs(sweep)
    total = sum(len(f) for f in flags)
    bad = sum(map(sum, flags))
    missing = sum(v is None for s in sweep.series for v in s["yours"])
    said = (f"Yours differs from torch's beyond the tolerance at {bad} of {total} points"
            if bad else f"Yours agrees with torch's within the tolerance at all {total} points")
    if missing:
        said += f"; at {missing} of them your function gave no number"
    said += (f" (tolerance: |yours - torch| <= {sweep.atol:g} + {sweep.rtol:g} * |torch|). torch: solid blue line "
             "with dots; yours: dashed orange line with squares.")
    try:
        from . import figure

        url = figure.data_url(sweep)
    except Exception as error:  # noqa: BLE001 - the figure is an extra: the report is shown without it
        return f'<p class="bce-figure">The figure could not be drawn ({_e(type(error).__name__)}). {_e(said)}</p>'
    style = f"width:{figure.WIDTH}px;max-width:100%;height:auto"
    alt = f"{sweep.title}, for {', '.join(s['label'] for s in sweep.series)}. {said}"
    return (f'<figure class="bce-figure"><img src="{url}" width="{figure.WIDTH}" height="{figure.HEIGHT}" '
            f'style="{style}" alt="{_e(alt)}"><figcaption>{_e(sweep.title)}. {_e(said)}</figcaption></figure>')


def _backticks(escaped: str) -> str:
    """`code` in an escaped text as <code>code</code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def render(report: Report) -> str:
    """The report as one self-contained HTML fragment."""
    if not report.categories:
        body = _headline(report) + _notes(report)
        return _wrap(body)
    if report.blank:
        return _wrap(f'<p class="bce-line">{_badge("blank")} {_backticks(_e(str(report)))}</p>')
    parts = [_headline(report), _subline(report)]
    first = report.first_failure()
    if first is not None:
        parts.append(explain(first))
        if report.sweep is not None:
            parts.append(figure_html(report.sweep))
        parts.append(_also(report, first))
    parts += [_table(report), _notes(report)]
    return _wrap("".join(parts))
