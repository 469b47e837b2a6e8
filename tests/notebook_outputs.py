"""The course's masters, executed once per test session, and what their cells printed:
for the tests that recompute with torch every number and claim a notebook states."""

from __future__ import annotations

import re
import tempfile

import nbformat
from nbclient import NotebookClient

from grader.instructor import release

_EXECUTED: dict[str, nbformat.NotebookNode] = {}
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan")


def executed_master(name: str) -> nbformat.NotebookNode:
    """The master of ``name`` (solutions and tests included) run top to bottom, once per
    session; a cell that raises fails the test that asked for it."""
    if name not in _EXECUTED:
        nb = nbformat.read(release.master_path(name), as_version=4)
        with tempfile.TemporaryDirectory(prefix=f"bce-{name}-") as work:
            NotebookClient(nb, timeout=180, kernel_name="python3",
                           resources={"metadata": {"path": work}}).execute()
        _EXECUTED[name] = nb
    return _EXECUTED[name]


def tagged(nb, tag: str) -> list:
    """The cells of ``nb`` carrying ``tag`` in their metadata."""
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def cell(nb, tag: str):
    """The one cell tagged ``tag``."""
    found = tagged(nb, tag)
    assert len(found) == 1, f"{len(found)} cells are tagged {tag!r}"
    return found[0]


def printed(code_cell) -> str:
    """Everything a code cell printed or showed as text."""
    parts = []
    for output in code_cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif "data" in output and "text/plain" in output["data"]:
            parts.append(output["data"]["text/plain"])
    return "".join(parts)


def numbers(text: str) -> list[float]:
    """The numbers in ``text``, in order (inf and nan included)."""
    return [float(n) for n in NUMBER.findall(text)]


def without_badge(text: str) -> str:
    """A markdown cell's text without the "Open in Colab" badge that release writes under the
    title: the author's words alone."""
    return "\n".join(line for line in text.split("\n") if not line.startswith(release.BADGE_LINE))


def markdown_after(nb, code_cell) -> str:
    """The markdown cell right after ``code_cell``: where prose comments on its output."""
    index = nb.cells.index(code_cell)
    following = [c for c in nb.cells[index + 1:] if c.cell_type == "markdown"]
    return following[0].source if following else ""
