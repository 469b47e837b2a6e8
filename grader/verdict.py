"""The engine's own verdict on a graded notebook, taken outside the student's process.

After a notebook has run (see :mod:`grader.engine`), each of its autograded test
cells is decided again here: every check the cell calls (``grader.assert_passes``
and the other registered checks of :mod:`grader.evidence`), with the keyword
arguments written in the cell -- the instructor's, since nbgrader restores
locked cells before the notebook runs -- must have left an observation from
that cell, and the judge, run in this process, must find nothing wrong with it.
A cell the notebook reports as passing but whose checks do not pass here gets
the error output nbgrader scores as a failure, and the notebook is named for
the instructor. Only the checks are re-decided: a plain ``assert`` in a test
cell is taken as the notebook ran it.

A static look at the code the student wrote names, for the instructor, the
constructs with which a notebook could tamper with the grader or with torch's
machinery (they change nothing in the verdict above, which no student code can
reach, but are worth a look).
"""

from __future__ import annotations

import ast
import re

from . import evidence

#: Positional parameters after the first (the student's code), by check.
_POSITIONAL = {"assert_passes": ("function",)}


def _parse(source: str) -> ast.AST | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        try:
            from IPython.core.inputtransformer2 import TransformerManager

            return ast.parse(TransformerManager().transform_cell(source))
        except Exception:  # noqa: BLE001 - not Python: nothing to read
            return None


def checks_in(source: str) -> list[tuple[str, dict, str | None]] | None:
    """The registered checks a test cell calls: (check, keyword arguments, the name of
    the student's code passed first). None when a call's arguments are not literals."""
    tree = _parse(source)
    if tree is None:
        return None
    known = evidence.judges()
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name not in known:
            continue
        subject = None
        if node.args:
            first = node.args[0]
            subject = first.id if isinstance(first, ast.Name) else first.attr if isinstance(first, ast.Attribute) else None
        params = {}
        try:
            for key, arg in zip(_POSITIONAL.get(name, ()), node.args[1:]):
                params[key] = ast.literal_eval(arg)
            for keyword in node.keywords:
                if keyword.arg is None:
                    return None
                params[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            return None
        found.append((name, evidence.plain({k: v for k, v in params.items() if v is not None}), subject))
    return found


def _failed(cell) -> bool:
    return any(o.get("output_type") == "error" for o in cell.get("outputs", []))


def judge_notebook(nb, records: list[dict], tampering: list[str] = ()) -> list[str]:
    """Re-decide the autograded test cells of an executed notebook from ``records``
    (the evidence it wrote); returns what the instructor should hear about.

    ``tampering`` (from :func:`suspicious`) fails every check: evidence from a process
    that reached into the grader's or torch's machinery proves nothing about whose
    work it measured."""
    import nbformat

    attention = []
    if tampering:
        attention.append("code that tampers with the grader, so every check fails (an instructor can "
                         "grade by hand): " + "; ".join(tampering[:5])
                         + (f" (and {len(tampering) - 5} more)" if len(tampering) > 5 else ""))
    attention += _torch_own(records)
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        calls = checks_in(cell.source)
        if calls is None:
            attention.append(f"test cell {meta.get('grade_id', index)}: its checks could not be read, "
                             "so the notebook's own verdict was kept")
            continue
        if not calls or _failed(cell):
            continue
        problems = []
        if tampering:
            problems.append("your notebook reaches into the grader or into torch's machinery ("
                            + tampering[0] + "); this check does not count it")
        for name, params, subject in calls if not tampering else ():
            mine = [r for r in records if r.get("cell") == index and r["check"] == name
                    and evidence.plain(r["params"]) == params]
            if not mine:
                problems.append(f"{name} left no result for the grader: the check did not run to its end, "
                                "or its result was hidden")
                continue
            for record in mine:
                found = evidence.decide(name, params | {"subject": subject}, record["observation"])
                if found:
                    problems.extend(found)
                    break
        if problems:
            text = "The grader's own check of this cell failed:\n" + "\n".join(problems)
            cell.outputs = [nbformat.from_dict({"output_type": "error", "ename": "AssertionError",
                                                "evalue": text, "traceback": [f"AssertionError: {text}"]})]
            if not tampering:
                attention.append(f"test cell {meta.get('grade_id', index)}: the notebook showed a pass that the "
                                 "grader's own check did not confirm")
    return attention


def _torch_own(records: list[dict]) -> list[str]:
    """The functions whose observed calls ran torch's own binary cross-entropy."""
    names = []
    for record in records:
        seen = record.get("observation", {})
        cases = seen.get("cases") if isinstance(seen, dict) else None
        if isinstance(cases, dict) and any(isinstance(c, dict) and c.get("forbidden") for c in cases.values()):
            names.append(str(seen.get("name", "?"))[:100])
    return [f"{name} called torch's own binary cross-entropy" for name in dict.fromkeys(names)]


# --- what the student wrote ------------------------------------------------------------------

#: Constructs that reach into the grader or into torch's machinery, or around names.
_SUSPECT_NAMES = {
    "eval", "exec", "compile", "__import__", "globals", "vars", "setattr", "delattr", "__builtins__",
}
_SUSPECT_MODULES = {"gc", "ctypes", "importlib", "builtins", "pickle", "marshal"}
#: The grader's modules a notebook has no business with (its students use check,
#: assert_passes and the explorers).
_INTERNAL = {"checks", "cases", "evidence", "engine", "verdict", "sandbox", "report", "loading", "workflow",
             "cli", "release", "nbgrader_plugins"}
_SUSPECT_ATTRIBUTES = re.compile(r"^(_[A-Za-z]\w*|__(dict|globals|code|closure|builtins|subclasses|bases|base|mro|"
                                 r"class|getattribute|setattr|traceback|frame)__|modules|settrace|setprofile|"
                                 r"excepthook|set_custom_exc|f_back|f_globals|tb_frame)$")
_SELF = {"self", "cls"}
_HARMLESS = {"_exit"}


def written_by_the_student(cell) -> bool:
    """Solution cells, and cells the student added (no nbgrader metadata of the course)."""
    meta = cell.get("metadata", {}).get("nbgrader")
    return cell.cell_type == "code" and (meta is None or bool(meta.get("solution")))


def _grader_names(trees) -> set[str]:
    """The names the student's cells bind to the grader or to something in it
    (``import grader.imbalance``, ``from grader import imbalance as im``, ...)."""
    names = {"grader"}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] == "grader")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "grader" and not node.level:
                names.update(a.asname or a.name for a in node.names)
    return names


def _root(node: ast.AST) -> str | None:
    """The name an attribute or subscript chain starts from: ``grader`` for ``grader.a.b[0].c``."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - only for a message
        return "?"


def suspicious(nb) -> list[str]:
    """Where the student's cells use constructs that can tamper with the grader:
    ``cell N, line L: what``."""
    found = []
    cells = [(index, _parse(cell.source)) for index, cell in enumerate(nb.cells) if written_by_the_student(cell)]
    cells = [(index, tree) for index, tree in cells if tree is not None]
    grader_names = _grader_names(tree for _, tree in cells)
    for index, tree in cells:
        for node in ast.walk(tree):
            what = None
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                names = [] if isinstance(node, ast.Import) else [a.name for a in node.names]
                bad = [m for m in modules if m.split(".")[0] in _SUSPECT_MODULES
                       or (m.split(".")[0] == "grader" and len(m.split(".")) > 1 and m.split(".")[1] in _INTERNAL)
                       or any(part.startswith("_") for part in m.split("."))]
                bad += [n for n in names if n.startswith("_") or (modules == ["grader"] and n in _INTERNAL)]
                if bad:
                    what = "imports " + ", ".join(bad)
            elif isinstance(node, ast.Name) and node.id in _SUSPECT_NAMES:
                what = f"uses {node.id}"
            elif isinstance(node, ast.Name) and node.id in ("AssertionError",) and isinstance(node.ctx, ast.Store):
                what = f"redefines {node.id}"
            elif (isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.ctx, (ast.Store, ast.Del))
                  and _root(node) in grader_names):
                what = f"assigns to {_dotted(node)}, part of the grader"
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "grader"
                  and node.attr in _INTERNAL):
                what = f"reaches grader.{node.attr}"
            elif isinstance(node, ast.Attribute) and _SUSPECT_ATTRIBUTES.match(node.attr) \
                    and node.attr not in _HARMLESS and not (
                    isinstance(node.value, ast.Name) and node.value.id in _SELF):
                what = f"reaches .{node.attr}"
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                  and len(node.args) > 1 and not isinstance(node.args[1], ast.Constant)):
                what = "uses getattr with a computed name"
            if what:
                found.append(f"cell {index + 1}, line {getattr(node, 'lineno', '?')}: {what}")
    return list(dict.fromkeys(found))
