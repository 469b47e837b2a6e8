"""What a graded name reaches in the student's code, and whether torch's own BCE is there.

A student writes ``binary_cross_entropy`` (or ``BCELoss``, ...) themselves; "own work"
means that function computes the loss from elementwise operations, not by calling
``F.binary_cross_entropy``, ``nn.BCELoss`` and kin. The notebook's process cannot be
believed about that: whatever it reports of the calls it made, its own code can forge.
So the judge reads the source instead, outside every process that ran student code.

:func:`torch_losses` starts from the name a test cell passes to a check and follows it
through the student's cells: every definition of that name at the top level of the
notebook (``def``, ``class``, an assignment, an import, a ``for``/``with`` target,
a function that declares it ``global``), then every top-level name those definitions
use, and so on: the helpers a function calls, the objects it closes over
(``crit = nn.BCELoss()``), the classes a class derives from, the defaults and
decorators of a function. It names each use of torch's binary cross-entropy it meets
in them, as the bindings of the whole notebook resolve it (``F.binary_cross_entropy``
after ``import torch.nn.functional as F``, ``fn`` after ``fn = F.binary_cross_entropy``,
``torch.ops.aten.binary_cross_entropy``, a subclass of ``nn.BCELoss``...).

A use counts wherever it is in the code the graded name reaches, even in a branch that
the judge's inputs never take: the course asks for the loss computed by hand, and a
function that can fall back on torch's is not that. Code the graded name does not
reach is not read: a cell that compares the student's function with torch's is fine.

What it does not follow: the instructor's cells (the course may use torch's loss
freely), attributes of the student's objects other than their class's own code, and
anything reached through names built at run time (``getattr(F, name)``), which the
tampering scan names on its own.
"""

from __future__ import annotations

import ast
import weakref

from .bindings import Bindings
from .cells import _Piece
from .syntax import Scope, _plain, _text, _walk

#: The last part of a qualified name of torch that is one of its BCE losses (lower case),
#: besides any name that contains ``binary_cross_entropy``.
_LOSS_CLASSES = {"bceloss", "bcewithlogitsloss"}


def is_torch_loss(qual: str | None) -> bool:
    """Whether the qualified name ``qual`` (see :class:`Bindings`) is one of torch's own BCE
    losses: a function, operator or module class of torch whose name says so."""
    if not qual:
        return False
    plain = _plain(qual).lstrip("*")
    parts = plain.split(".")
    if parts[0] != "torch":
        return False
    return any("binary_cross_entropy" in part.lower() or part.lower() in _LOSS_CLASSES for part in parts[1:])


class _Binding:
    """One place a piece binds a name: the scope it is bound in, and what of the piece to read
    when the name is followed (``uses``: each node that may name something, with its scope, in
    the order :func:`_walk` meets them). Found once per piece and shared, read-only."""

    __slots__ = ("name", "scope", "uses")

    def __init__(self, name: str, scope: Scope, nodes: list[ast.AST]) -> None:
        self.name, self.scope = name, scope
        self.uses = tuple((node, inner) for root in nodes for node, inner in _walk(root, scope)
                          if isinstance(node, (ast.Attribute, ast.Import, ast.ImportFrom))
                          or (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)))


class _Definition:
    """A :class:`_Binding` of a top-level name in a student's cell."""

    __slots__ = ("piece", "cell", "binding")

    def __init__(self, piece: _Piece, cell: int, binding: _Binding) -> None:
        self.piece, self.cell, self.binding = piece, cell, binding


#: Each piece's bindings (:class:`_Binding`), for as long as the piece lives.
_BINDINGS: "weakref.WeakKeyDictionary[_Piece, tuple[_Binding, ...]]" = weakref.WeakKeyDictionary()


def _bindings_of(piece: _Piece) -> tuple[_Binding, ...]:
    found = _BINDINGS.get(piece)
    if found is None:
        found = []
        for node, scope in _walk(piece.tree):
            if isinstance(node, (ast.stmt, ast.NamedExpr)):
                names, nodes = _bound_nodes(node)
                found += [_Binding(name, scope, nodes) for name in names]
        found = _BINDINGS[piece] = tuple(found)
    return found


def _bound_nodes(statement: ast.AST) -> tuple[list[str], list[ast.AST]]:
    """The names ``statement`` binds, and the part of it that says what they are bound to."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [statement.name], [statement]
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return [a.asname or a.name.split(".")[0] for a in statement.names if a.name != "*"], [statement]
    targets: list[ast.AST] = []
    values: list[ast.AST] = []
    if isinstance(statement, ast.Assign):
        targets, values = statement.targets, [statement.value]
    elif isinstance(statement, (ast.AnnAssign, ast.AugAssign)) and statement.value is not None:
        targets, values = [statement.target], [statement.value]
    elif isinstance(statement, (ast.For, ast.AsyncFor)):
        targets, values = [statement.target], [statement.iter]
    elif isinstance(statement, (ast.With, ast.AsyncWith)):
        targets = [i.optional_vars for i in statement.items if i.optional_vars is not None]
        values = [i.context_expr for i in statement.items]
    elif isinstance(statement, ast.NamedExpr):
        targets, values = [statement.target], [statement.value]
    names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    return names, values


class Reach:
    """The top-level definitions of the student's cells, to follow graded names through; with
    ``latest``, only those of the last cell that binds each name (a kernel's history, in which a
    cell run again comes again)."""

    def __init__(self, bindings: Bindings, pieces: list[tuple[int, _Piece]], latest: bool = False) -> None:
        self.b = bindings
        #: top-level name -> every place a student's cell binds it
        self.definitions: dict[str, list[_Definition]] = {}
        for cell, piece in pieces:
            try:
                bindings_of = _bindings_of(piece)
            except RecursionError:
                continue  # nested too deeply to read: the tampering scan names the cell
            for binding in bindings_of:
                if self.b.key(binding.name, binding.scope)[0] == ():
                    self.definitions.setdefault(binding.name, []).append(_Definition(piece, cell, binding))
        if latest:  # only the last cell that binds a name counts (a kernel's history)
            self.definitions = {name: [d for d in found if d.cell == found[-1].cell]
                                for name, found in self.definitions.items()}

    def torch_losses(self, subject: str) -> list[str]:
        """Each use of torch's BCE in the code ``subject`` (a name, or ``name.attr``) reaches:
        ``"cell N, line L: F.binary_cross_entropy"``, in the order met, without repeats."""
        found: dict[tuple[int, int], str] = {}  # by cell and line: the outermost name met there
        todo = [subject.split(".")[0]]
        seen = set(todo)
        while todo:
            name = todo.pop(0)
            for definition in self.definitions.get(name, ()):
                try:
                    self._read(definition, seen, todo, found)
                except RecursionError:
                    continue  # nested too deeply to read: the tampering scan names the cell
        return list(found.values())

    def _read(self, definition: _Definition, seen: set, todo: list, found: dict) -> None:
        """Note the top-level names ``definition`` uses (in ``seen`` and ``todo``) and its uses
        of torch's loss (in ``found``)."""
        for node, scope in definition.binding.uses:
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) \
                    and node.id not in seen and node.id in self.definitions \
                    and self.b.key(node.id, scope)[0] == ():
                seen.add(node.id)
                todo.append(node.id)
            what = None
            if isinstance(node, (ast.Name, ast.Attribute)) and is_torch_loss(self.b.qual(node, scope)):
                what = _text(node)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
                names = [f"{module}.{a.name}" if module else a.name for a in node.names]
                what = next((f"import of {n}" for n in names if is_torch_loss(n)), None)
            if what is not None:
                line = definition.piece.line(getattr(node, "lineno", 1))
                found.setdefault((definition.cell, line), f"cell {definition.cell + 1}, line {line}: {what}")
