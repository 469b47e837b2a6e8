"""Own work, read in the source where a student checks their own function.

When autograding, the judge decides "own work" from the notebook's source
(:mod:`grader.instructor.scan.reach`): a use of torch's own loss anywhere in the code a
graded name reaches fails it, even in a branch the tests never take. A student's own
``grader.check`` reads the source the same way, so that they learn it while they work and
not from their grade:

* in a notebook, what the kernel has run so far (IPython's input history, ``In [N]``); a
  cell run again replaces what it defined before, so a function rewritten without torch's
  loss is read as it is now;
* with ``python -m grader check FILE``, the file (:mod:`grader._battery.loading`).

Plain nbgrader, which runs ``grader.assert_passes`` in the kernel, reads the history of the
notebook it runs, and so agrees with the judge.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from .answers import IN_THE_SOURCE


def torch_losses(fn: Any, name: str | None = None, chunks: list[tuple[str, str]] | None = None) -> list[str]:
    """Where the code ``fn`` (known as ``name``) reaches uses torch's own loss:
    ``"In [5], line 3: F.binary_cross_entropy"``. ``chunks`` are ``(label, source)`` of a
    loaded file (``"cell 4"``, ``"the file"``); without them, the kernel's history, where
    ``fn`` must be what ``name`` stands for."""
    name = name or getattr(fn, "__name__", None)
    if not isinstance(name, str) or not name.isidentifier():
        return []
    labels: dict[int, str] = {}
    if chunks is None:
        sources = _history(fn, name)
        labels = {i: f"In [{i}]" for i in range(len(sources))}
    else:
        sources = []
        for label, source in chunks:
            labels[len(sources)] = label
            sources.append(source)
    if not any(sources):
        return []
    try:
        from grader.instructor import scan
    except ImportError:  # a wheel without the instructor's side: the kernels' hooks still look
        return []
    cells = [{"cell_type": "code", "source": source, "metadata": {}} for source in sources]
    found = scan.Notebook(_Cells(cells), latest=True).torch_losses(name)
    return [_relabel(use, labels) for use in found]


def adding(ask: Callable[[dict], Any], uses: list[str]) -> Callable[[dict], Any]:
    """``ask``, with ``uses`` added to every answer to a call, as the engine adds them."""
    def ask_with_the_source(request: dict) -> Any:
        answer = ask(request)
        if isinstance(answer, dict) and request.get("op") == "call":
            answer = {**answer, IN_THE_SOURCE: uses}
        return answer

    return ask_with_the_source


class _Cells:
    """What :class:`grader.instructor.scan.Notebook` reads of a notebook: its cells."""

    def __init__(self, cells: list[dict]) -> None:
        self.cells = cells


def _history(fn: Any, name: str) -> list[str]:
    """The kernel's input history (entry N is ``In [N]``), when ``name`` there stands for ``fn``."""
    try:
        from IPython import get_ipython
    except ImportError:
        return []
    shell = get_ipython()
    if shell is None or shell.user_ns.get(name) is not fn:
        return []
    history = getattr(getattr(shell, "history_manager", None), "input_hist_parsed", None)
    return [source if isinstance(source, str) else "" for source in history or []]


def _relabel(use: str, labels: dict[int, str]) -> str:
    """``cell N, line L: what`` as the student sees where: ``In [N]``, ``cell N``, or the file."""
    match = re.match(r"cell (\d+), (line \d+: .*)", use, re.S)
    if match is None:
        return use
    label = labels.get(int(match.group(1)) - 1, f"cell {match.group(1)}")
    return match.group(2) if label == "the file" else f"{label}, {match.group(2)}"
