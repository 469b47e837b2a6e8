"""The report as HTML, for a notebook."""

from __future__ import annotations

import html


def render(report) -> str:
    return f"<pre>{html.escape(str(report))}</pre>"
