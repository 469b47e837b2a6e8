"""The verdict on each autograded test cell, taken by the judge outside the student's process.

nbgrader restores every test cell from its gradebook before the notebook runs, so the
source here is the instructor's, hidden tests included. The notebook's process runs only
the visible part (:func:`split_test_cell`); the checks the whole cell calls
(``grader.assert_passes`` and the other registered checks of
:mod:`grader._battery.checks`), with the keyword arguments the cell writes, are run by
the judge (:func:`judge_test_cell`), which drives the student's code through the
notebook's process and decides from the outputs it gets back. A cell fails when one of
its checks finds a problem, or when its visible code raised in the notebook.

A hidden test may only call registered checks: anything else in a hidden region would
have to run in the student's process, where it could be read, so it is never run, and
the cell fails with a note to the instructor.
"""

from __future__ import annotations

import ast
import textwrap

from .._battery import checks as _checks

#: A check call: (check name, keyword arguments as literals, the student's code it is given).
Call = tuple[str, dict, "str | None"]


def parse(source: str) -> ast.AST | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        try:
            from IPython.core.inputtransformer2 import TransformerManager

            return ast.parse(TransformerManager().transform_cell(source))
        except Exception:  # noqa: BLE001 - not Python: nothing to read
            return None


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _literal_plain(value):
    """A literal as JSON would give it back (tuples and sets become lists)."""
    if isinstance(value, (tuple, list, set, frozenset)):
        items = [_literal_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, dict):
        return {str(k): _literal_plain(v) for k, v in value.items()}
    return value


def checks_in(source: str) -> list[Call] | None:
    """The registered checks a test cell calls. None when a call's arguments are not
    literals, or the cell cannot be read."""
    tree = parse(source)
    if tree is None:
        return None
    known = _checks.judges()
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name not in known:
            continue
        subject = _dotted(node.args[0]) if node.args else None
        params = {}
        try:
            for key, arg in zip(_checks.POSITIONAL.get(name, ()), node.args[1:]):
                params[key] = _literal_plain(ast.literal_eval(arg))
            for keyword in node.keywords:
                if keyword.arg is None:
                    return None
                params[keyword.arg] = _literal_plain(ast.literal_eval(keyword.value))
        except ValueError:
            return None
        found.append((name, {k: v for k, v in params.items() if v is not None}, subject))
    return found


def _only_checks(source: str) -> bool:
    """Whether ``source`` (a hidden region) does nothing but import the grader and call checks."""
    tree = parse(source)
    if tree is None:
        return False
    known = _checks.judges()
    for statement in tree.body:
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in statement.names] if isinstance(statement, ast.Import) else [statement.module or ""]
            if all(m.split(".")[0] == "grader" for m in modules):
                continue
            return False
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            func = statement.value.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name in known:
                continue
        if isinstance(statement, ast.Pass):
            continue
        return False
    return True


def is_test_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def split_test_cell(source: str, hide) -> tuple[str, list[Call] | None, str | None]:
    """What the notebook's process runs of a test cell (its visible code), the checks the
    judge runs for it (visible and hidden), and what is wrong with it, if anything.
    ``hide`` is :meth:`grader.instructor.plugins.HideHiddenTests.split`."""
    try:
        visible, hidden = hide(source)
    except RuntimeError as error:  # unbalanced delimiters
        return "", None, f"its hidden tests cannot be read ({error})"
    calls = checks_in(source)
    if calls is None:
        return visible, None, "its checks could not be read (arguments that are not literals?)"
    problem = None
    if hidden is not None and hidden.strip() and not _only_checks(textwrap.dedent(hidden)):
        problem = ("its hidden tests do more than call the grader's checks; that code would have to run in "
                   "the student's process, where it could be read, so it was not run")
    return visible, calls, problem


def judge_test_cell(calls: list[Call], ask_about) -> list[str]:
    """Run every check of a test cell in the judge; ``ask_about(subject, check)`` gives the
    ``ask`` that reaches the student's code the check was given. Returns the problems."""
    problems = []
    for name, params, subject in calls:
        problems += _checks.decide(name, params, subject, ask_about(subject, name))
    return problems


def fail(cell, text: str) -> None:
    """Give ``cell`` the error output nbgrader scores as a failure, saying ``text``. Whatever
    the notebook's process showed there stays visible but cannot be scored: nbgrader scores a
    test cell by its first error or ``execute_result``, so a value the student's code made
    the cell show (a check replaced by one that returns text, say) would otherwise come
    first and earn the points; it becomes ``display_data``, which nbgrader does not score."""
    import nbformat

    kept = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "error":
            continue
        if kind == "execute_result":
            output = nbformat.from_dict({"output_type": "display_data", "data": output.get("data", {}),
                                         "metadata": output.get("metadata", {})})
        kept.append(output)
    cell.outputs = kept + [nbformat.from_dict({"output_type": "error", "ename": "AssertionError", "evalue": text,
                                               "traceback": [f"AssertionError: {text}"]})]
