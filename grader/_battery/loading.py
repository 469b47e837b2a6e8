"""Find a student's functions in a ``.py`` file or an ``.ipynb`` notebook."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .guard import StderrCapture, call_guarded
from .cases import CHECKABLE, FUNCTIONS

#: Seconds the whole file may take to run before it counts as hanging.
LOAD_TIME_LIMIT = 120.0


class LoadError(Exception):
    """The file cannot be read, or defines none of the functions."""


@dataclass
class Loaded:
    path: Path
    functions: dict[str, object]
    problems: list[str] = field(default_factory=list)
    #: ``(label, source)`` of what ran, cell by cell: where "own work" is read.
    chunks: list[tuple[str, str]] = field(default_factory=list)


_checks_suppressed = False


def checks_suppressed() -> bool:
    """True while a file is being loaded for ``grader check``: its own check
    cells would only repeat the battery that the command runs next."""
    return _checks_suppressed


def _code_cells(path: Path) -> list[tuple[str, str]]:
    """(label, source) for each code cell of a notebook, IPython syntax removed."""
    import nbformat  # here, not at the top: a check cell's ``import grader`` must stay quick

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a notebook"
        raise LoadError(f"{path} is not a readable Jupyter notebook ({type(exc).__name__}: {exc}). "
                        "Open it in JupyterLab and save it again, or download it again.") from exc
    cells = []
    for number, cell in enumerate(nb.cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if source.lstrip().startswith("%%"):
            continue  # a cell magic (%%time, %%bash ...): not Python
        # line magics and shell commands become `pass`, so that an indented one
        # (`if "google.colab" in sys.modules: %pip install ...`) leaves valid Python
        lines = [line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
                 else line for line in source.splitlines()]
        cells.append((f"cell {number}", "\n".join(lines)))
    return cells


def load(path: str | os.PathLike) -> Loaded:
    """Run the file in a fresh namespace and return the BCE functions it defines.

    A notebook runs cell by cell: a cell that raises is reported and the next
    one runs, so that a failing check cell does not hide the definitions after it.
    """
    path = Path(path)
    if not path.exists():
        raise LoadError(f"{path} does not exist")
    if path.is_dir():
        raise LoadError(f"{path} is a folder; give a .py file or an .ipynb notebook")
    if path.suffix == ".ipynb":
        chunks = _code_cells(path)
    else:
        try:
            chunks = [("the file", path.read_text(encoding="utf-8"))]
        except (OSError, UnicodeDecodeError) as exc:
            raise LoadError(f"cannot read {path}: {exc}") from exc

    namespace: dict = {"__name__": "__student__", "__file__": str(path)}
    problems = []
    global _checks_suppressed
    _checks_suppressed = True
    old_path = list(sys.path)
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        with StderrCapture(), contextlib.redirect_stdout(io.StringIO()):
            for label, source in chunks:
                try:
                    code = compile(source, f"{path.name} ({label})", "exec")
                except SyntaxError as exc:
                    problems.append(f"{label} has a syntax error on line {exc.lineno}: {exc.msg}")
                    continue
                call = call_guarded(exec, (code, namespace), time_limit=LOAD_TIME_LIMIT, record_ops=False)
                if call.timed_out:
                    problems.append(f"{label} ran longer than {LOAD_TIME_LIMIT:g} s and was stopped")
                elif call.error is not None:
                    problems.append(f"{label} raised {type(call.error).__name__}: {call.error}")
    finally:
        _checks_suppressed = False
        sys.path[:] = old_path

    functions = {name: namespace[name] for name in CHECKABLE if name in namespace}
    if not functions:
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise LoadError(f"{path} defines neither {FUNCTIONS[0]} nor {FUNCTIONS[1]} (nor their gradients){detail}")
    return Loaded(path, functions, problems, chunks)
