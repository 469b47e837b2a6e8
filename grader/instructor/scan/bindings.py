"""What the names of a notebook stand for: the scan's small taint analysis.

:class:`Bindings` follows torch, the grader, ``sys``, IPython ... through imports,
assignments, unpacking, containers, loops, comprehensions, ``with``, the walrus,
default arguments, the student's own functions (arguments and return values),
``getattr``, ``vars``, ``type``, ``inspect.getmodule``, ``importlib`` and
``sys.modules``, over every cell of the notebook and by scope, until nothing
changes. The checks ask it what a node stands for (:meth:`Bindings.qual`).
"""

from __future__ import annotations

import ast
from typing import Iterable

from .cells import _Piece, _read
from .rules import _BUILTIN_NAMES, _METHOD_PASSTHROUGH, _PASSTHROUGH, _PROTECTED, COURSE_NAMES
from .syntax import (
    Scope,
    _bound_at_top,
    _const_str,
    _holding,
    _item,
    _lambda_scope,
    _locals_of,
    _plain,
    _root,
    _text,
    _walk,
)


def _weight(qual: str | None) -> int:
    return 0 if qual is None else 2 if _root(qual.lstrip("*")) in _PROTECTED else 1


class Bindings:
    """What the names of a notebook stand for: ``F`` for ``torch.nn.functional``,
    ``m`` for the grader (``m = inspect.getmodule(grader.check)``), ...

    Learned from every code cell (the instructor's too, through :meth:`learn`),
    then :meth:`settle` reads the cells again until nothing changes. A value is a
    qualified name (``"torch.nn.functional"``, ``"grader.check"``; ``[]`` marks an
    item or an element of it, a leading ``@`` something reached indirectly:
    ``@type`` the class of an object, ``@module`` a module found by
    ``inspect.getmodule``, ``@import`` one imported by a computed name). Names are
    kept by scope: a function's parameters and local variables are its own (a
    function's scope is known by its name, so two functions of one name share it).
    """

    def __init__(self) -> None:
        #: (scope, name) -> what the name stands for.
        self.names: dict[tuple[Scope, str], str] = {((), name): qual for name, qual in COURSE_NAMES.items()}
        #: scope -> the names bound in it.
        self.locals: dict[Scope, set[str]] = {}
        #: Targets like ``self.m`` or ``A.m`` bound to something known (by their text, in any scope).
        self.targets: dict[str, str] = {}
        #: The student's functions: the scope of their body, their parameters; what they return.
        self.functions: dict[str, tuple[Scope, list[str]]] = {}
        self.returns: dict[str, str] = {}
        #: Names the instructor's cells bind (to what), which a student must not rebind.
        self.course: dict[str, str] = dict(COURSE_NAMES)
        self._pieces: list[_Piece] = []
        self._changed = False

    # ---------------------------------------------------------------- learning

    def learn(self, source: str, by_the_course: bool = False) -> None:
        """Read one cell's bindings (``by_the_course``: an instructor's cell, whose
        top-level names become names a student must not rebind)."""
        self.learn_pieces(_read(source).pieces, by_the_course)

    def learn_pieces(self, pieces: list[_Piece], by_the_course: bool = False) -> None:
        self._pieces.extend(pieces)
        for piece in pieces:
            for node, scope in _walk(piece.tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                    inner = scope + ((_lambda_scope(node) if isinstance(node, ast.Lambda)
                                      else f"class:{node.name}" if isinstance(node, ast.ClassDef) else node.name),)
                    self.locals.setdefault(inner, set()).update(_locals_of(node))
            self._bind_piece(piece)
            if by_the_course:
                for node in piece.tree.body:
                    for name, value in _bound_at_top(node):
                        qual = self.qual(value) if isinstance(value, ast.AST) else value
                        if qual is not None:
                            self.course[name] = qual

    def settle(self, rounds: int = 20) -> "Bindings":
        """Read every cell learned again until what the names stand for no longer changes."""
        for _ in range(rounds):
            self._changed = False
            for piece in self._pieces:
                self._bind_piece(piece)
            if not self._changed:
                break
        return self

    def _bind_piece(self, piece: _Piece) -> None:
        try:
            self._bind_tree(piece.tree)
        except RecursionError:
            pass  # nested too deeply to follow: the scan names the cell instead

    def key(self, name: str, scope: Scope) -> tuple[Scope, str]:
        """Where ``name``, used in ``scope``, lives: the innermost enclosing scope that binds it
        (a class body only for its own statements), else the top level."""
        for depth in range(len(scope), 0, -1):
            if depth < len(scope) and scope[depth - 1].startswith("class:"):
                continue
            if name in self.locals.get(scope[:depth], ()):
                return scope[:depth], name
        return (), name

    def _bind(self, name: str, qual: str | None, scope: Scope = (), table: dict | None = None) -> None:
        if qual is None:
            return
        if table is None:
            table, key = self.names, self.key(name, scope)
        else:
            key = name
        old = table.get(key)
        if old is None or _weight(qual) > _weight(old):
            table[key] = qual
            self._changed = True

    def _bind_target(self, target: ast.AST, value: ast.AST | None, scope: Scope, qual: str | None = None) -> None:
        if value is not None and isinstance(target, (ast.Tuple, ast.List)) and isinstance(
                value, (ast.Tuple, ast.List)) and len(target.elts) == len(value.elts):
            for t, v in zip(target.elts, value.elts):
                self._bind_target(t, v, scope)
            return
        if qual is None and value is not None:
            qual = self.qual(value, scope)
        if qual is None:
            return
        if isinstance(target, ast.Name):
            self._bind(target.id, qual, scope)
        elif isinstance(target, ast.Starred):
            self._bind_target(target.value, None, scope, qual)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:  # a starred element takes a list of the items
                self._bind_target(element, None, scope, qual if isinstance(element, ast.Starred) else _item(qual))
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            self._bind(_text(target), qual, table=self.targets)

    def _bind_function(self, node, scope: Scope, name: str | None) -> None:
        inner = scope + ((_lambda_scope(node) if isinstance(node, ast.Lambda) else node.name),)
        args = node.args
        positional = args.posonlyargs + args.args
        for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults):
            self._bind(arg.arg, self.qual(default, scope), inner)
        for arg, default in zip(args.kwonlyargs, args.kw_defaults):
            if default is not None:
                self._bind(arg.arg, self.qual(default, scope), inner)
        if name is not None:
            signature = (inner, [a.arg for a in positional] + [a.arg for a in args.kwonlyargs])
            if self.functions.get(name) != signature:
                self.functions[name] = signature
                self._changed = True
            if isinstance(node, ast.Lambda):
                self._bind(name, self.qual(node.body, inner), table=self.returns)
            else:
                for inner_node, inner_scope in _walk(node):
                    if isinstance(inner_node, (ast.Return, ast.Yield, ast.YieldFrom)) and inner_node.value is not None:
                        self._bind(name, self.qual(inner_node.value, inner_scope), table=self.returns)

    def _bind_tree(self, tree: ast.AST) -> None:
        for node, scope in _walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self._bind(alias.asname, alias.name, scope)
                    else:
                        top = alias.name.split(".")[0]
                        self._bind(top, top, scope)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                for alias in node.names:
                    if alias.name != "*":
                        self._bind(alias.asname or alias.name, f"{node.module}.{alias.name}", scope)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    self._bind_target(target, node.value, scope)
                if isinstance(node.value, ast.Lambda):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            self._bind_function(node.value, scope, target.id)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
                self._bind_target(node.target, node.value, scope)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                iterated = self.qual(node.iter, scope)
                self._bind_target(node.target, None, scope, _item(iterated) if iterated else None)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        self._bind_target(item.optional_vars, item.context_expr, scope)
            elif isinstance(node, ast.NamedExpr):
                self._bind_target(node.target, node.value, scope)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._bind_function(node, scope, node.name)
            elif isinstance(node, ast.Lambda):
                self._bind_function(node, scope, None)
            elif isinstance(node, ast.ClassDef):
                for statement in node.body:
                    for name, value in _bound_at_top(statement):
                        if isinstance(value, ast.AST):
                            self._bind(f"{node.name}.{name}", self.qual(value, scope + (f"class:{node.name}",)),
                                       table=self.targets)
            elif isinstance(node, ast.Call):
                self._bind_call(node, scope)

    def _bind_call(self, node: ast.Call, scope: Scope) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.functions:  # the student's own function
            inner, params = self.functions[func.id]
            for param, arg in zip(params, node.args):
                self._bind(param, self.qual(arg, scope), inner)
            for keyword in node.keywords:
                if keyword.arg in params:
                    self._bind(keyword.arg, self.qual(keyword.value, scope), inner)
        elif (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
              and func.attr in ("append", "extend", "insert", "add", "update", "setdefault", "appendleft")):
            for arg in list(node.args) + [k.value for k in node.keywords]:  # a container of torch
                qual = self.qual(arg, scope)
                if qual is not None:
                    self._bind(func.value.id, "*" + (_item(qual) if func.attr in ("extend", "update") else qual),
                               scope)

    # ---------------------------------------------------------------- resolving

    def qual(self, node: ast.AST | None, scope: Scope = ()) -> str | None:
        """What ``node`` (evaluated in ``scope``) stands for, as a qualified name, or None
        when it is nothing known."""
        if node is None:
            return None
        if isinstance(node, ast.Name):
            known = self.names.get(self.key(node.id, scope))
            if known is not None:
                return known
            if node.id == "get_ipython":
                return "IPython.get_ipython"
            return f"@builtin.{node.id}" if node.id in _BUILTIN_NAMES else None
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            known = self.targets.get(_text(node))
            if known is not None:
                return known
        if isinstance(node, ast.Attribute):
            base = self.qual(node.value, scope)
            if base is None:
                return None
            return f"{base}.{node.attr}"
        if isinstance(node, ast.Subscript):
            base = self.qual(node.value, scope)
            key = _const_str(node.slice)
            if base is None:
                return None
            if _plain(base) == "sys.modules":
                return key if key else "@import"
            if base.endswith(".__dict__") and key:
                return f"{base[:-len('.__dict__')]}.{key}"
            return _item(base)
        if isinstance(node, ast.Call):
            return self._qual_call(node, scope)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return _holding(self._strongest(self.qual(e, scope) for e in node.elts))
        if isinstance(node, ast.Dict):
            return _holding(self._strongest(self.qual(v, scope) for v in node.values))
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            return _holding(self.qual(node.elt, scope))
        if isinstance(node, ast.DictComp):
            return _holding(self.qual(node.value, scope))
        if isinstance(node, (ast.Starred, ast.NamedExpr, ast.Await)):
            return self.qual(node.value, scope)
        if isinstance(node, ast.IfExp):
            return self._strongest([self.qual(node.body, scope), self.qual(node.orelse, scope)])
        if isinstance(node, ast.BoolOp):
            return self._strongest(self.qual(v, scope) for v in node.values)
        return None

    @staticmethod
    def _strongest(quals: Iterable[str | None]) -> str | None:
        best = None
        for qual in quals:
            if _weight(qual) > _weight(best):
                best = qual
        return best

    def _qual_call(self, node: ast.Call, scope: Scope) -> str | None:
        func = node.func
        # operator.attrgetter("a.b")(x), operator.itemgetter(k)(x)
        if isinstance(func, ast.Call):
            maker = self.qual(func.func, scope)
            if maker in ("operator.attrgetter", "operator.itemgetter") and node.args:
                base = self.qual(node.args[0], scope)
                if base is None:
                    return None
                name = _const_str(func.args[0]) if func.args else None
                if maker.endswith("itemgetter"):
                    return _item(base)
                return f"{base}.{name}" if name else base + ".?"
            return None
        args = node.args
        if isinstance(func, ast.Attribute) and func.attr in _METHOD_PASSTHROUGH:
            base = self.qual(func.value, scope)
            if base is not None:  # items of something known
                attr = func.attr
                if _plain(base) == "sys.modules":
                    key = _const_str(args[0]) if args and attr in ("get", "pop", "__getitem__") else None
                    item = key or "@import"
                else:
                    item = _item(base)
                if attr == "copy":
                    return base
                if attr in ("values", "keys"):
                    return "*" + item
                if attr == "items":
                    return "**" + item
                return item
        callee = self.qual(func, scope)
        first = self.qual(args[0], scope) if args else None
        if callee is None:
            if isinstance(func, ast.Name) and func.id in self.returns:
                return self.returns[func.id]
            return None
        plain = _plain(callee)
        if plain in ("IPython.get_ipython", "IPython.core.getipython.get_ipython"):
            return "IPython.shell"
        if plain == "@builtin.type" and len(args) == 1:
            return f"{first}.__class__" if first else "@type"
        if plain == "@builtin.vars" and args:
            return f"{first}.__dict__" if first else None
        if plain in ("@builtin.getattr", "@builtin.object.__getattribute__", "@builtin.type.__getattribute__"):
            if first is None:
                return None
            name = _const_str(args[1]) if len(args) > 1 else None
            return f"{first}.{name}" if name else first + ".?"
        if plain == "inspect.getmodule":
            return (_root(first) + ".?") if first and not first.startswith("@") else "@module"
        if plain in ("importlib.import_module", "importlib.__import__", "@builtin.__import__"):
            name = _const_str(args[0]) if args else None
            if not name:
                return "@import"
            fromlist = args[3] if len(args) > 3 else next(
                (k.value for k in node.keywords if k.arg == "fromlist"), None)
            wants_leaf = plain == "importlib.import_module" or (
                fromlist is not None and not (isinstance(fromlist, (ast.Tuple, ast.List)) and not fromlist.elts)
                and not (isinstance(fromlist, ast.Constant) and not fromlist.value))
            return name if wants_leaf else name.split(".")[0]
        if plain in ("importlib.reload", "copy.copy", "contextlib.nullcontext"):
            return first
        if plain.startswith("@builtin.") and plain[len("@builtin."):] in _PASSTHROUGH:
            name = plain[len("@builtin."):]
            quals = [self.qual(a, scope) for a in args] + [self.qual(k.value, scope) for k in node.keywords]
            strongest = self._strongest(quals)
            if strongest is None:
                return None
            if name == "next":
                return _item(strongest)
            if name in ("zip", "enumerate"):
                return "**" + _item(strongest)  # a container of tuples
            if name == "dict" and not args:
                return "*" + strongest  # dict(t=torch)
            return "*" + _item(strongest)
        if plain == "functools.reduce" and len(args) > 2:
            third = self.qual(args[2], scope)
            return third + ".?" if third else None
        return None
