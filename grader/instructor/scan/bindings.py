"""What the names of a notebook stand for: the scan's small taint analysis.

:class:`Bindings` follows torch, the grader, ``sys``, IPython ... through imports,
assignments, unpacking, containers, loops, comprehensions, ``with``, the walrus,
default arguments, the student's own functions (arguments and return values),
``getattr``, ``vars``, ``type``, ``inspect.getmodule``, ``importlib`` and
``sys.modules``, over every cell of the notebook and by scope, until nothing
changes. The checks ask it what a node stands for (:meth:`Bindings.qual`).

What binding needs of a piece's tree (the nodes that bind, in the order they are
met, each with its scope; the scopes and names its functions and classes bind;
what its top-level statements bind) is found once per piece (:class:`_Plan`) and
kept as long as the piece is: a piece of a kept reading is shared by every notebook
with that cell, so its plan is too, and neither is ever changed.
"""

from __future__ import annotations

import ast
from typing import Iterable

from . import descriptors
from .cells import _Piece, _read
from .plans import _ASSIGN, _ASSIGN_LAMBDA, _CLASS, _FUNCTION, _IMPORT, _LOOP, _TARGET, _WITH, _Function, _Plan, _plan
from .rules import _BUILTIN_NAMES, _METHOD_PASSTHROUGH, _PASSTHROUGH, _PROTECTED, COURSE_NAMES
from .syntax import Scope, _const_str, _holding, _item, _lambda_scope, _plain, _root, _text

#: The built-ins that hand a function the items of iterables (:meth:`Bindings._bind_mapped`).
_MAPPING = ("@builtin.map", "@builtin.filter")


def _weight(qual: str | None) -> int:
    return 0 if qual is None else 2 if _root(qual.lstrip("*")) in _PROTECTED else 1


class _Targets(dict):
    """Targets like ``self.m`` or ``A.m`` by their text (``ast.unparse``), knowing how those
    texts end: the text of an attribute ends with its name, a subscript's with ``]``, so
    a node whose ending no target has cannot be one, and is not unparsed to look."""

    def __init__(self) -> None:
        super().__init__()
        #: The endings of the texts held (None for a text that is neither: look for every node).
        self.ends: set[str | None] = set()

    def __setitem__(self, text: str, qual: str) -> None:
        super().__setitem__(text, qual)
        self.ends.add("]" if text.endswith("]") else text[text.rfind(".") + 1:] if "." in text else None)

    def may_hold(self, node: ast.Attribute | ast.Subscript) -> bool:
        ends = self.ends
        return bool(ends) and (None in ends or (node.attr if isinstance(node, ast.Attribute) else "]") in ends)


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
        self.targets: _Targets = _Targets()
        #: The student's functions: the scope of their body, their parameters; what they return.
        self.functions: dict[str, tuple[Scope, tuple[str, ...]]] = {}
        self.returns: dict[str, str] = {}
        #: Names the instructor's cells bind (to what), which a student must not rebind.
        self.course: dict[str, str] = dict(COURSE_NAMES)
        #: What the bindings of each name hold, as far as file descriptors go (:mod:`.descriptors`).
        self.descriptors: dict[tuple[Scope, str], frozenset[str]] = {}
        self._pieces: list[_Piece] = []
        self._changed = False

    # ---------------------------------------------------------------- learning

    def learn(self, source: str, by_the_course: bool = False) -> None:
        """Read one cell's bindings (``by_the_course``: an instructor's cell, whose
        top-level names become names a student must not rebind)."""
        self.learn_pieces(_read(source).pieces, by_the_course)

    def learn_pieces(self, pieces: Iterable[_Piece], by_the_course: bool = False) -> None:
        pieces = list(pieces)
        self._pieces.extend(pieces)
        for piece in pieces:
            plan = _plan(piece)
            for inner, names in plan.scopes:
                self.locals.setdefault(inner, set()).update(names)
            self._bind_piece(plan)
            if by_the_course:
                for name, value in plan.top:
                    qual = self.qual(value) if isinstance(value, ast.AST) else value
                    if qual is not None:
                        self.course[name] = qual

    def settle(self, rounds: int = 20) -> "Bindings":
        """Read every cell learned again until what the names stand for no longer changes.

        A round is a function of what the names stand for when it starts (the scopes no
        longer change once every cell is learned): a round that ends where it started is
        the fixpoint, and every round after it would end there too. What the student's
        functions are (:attr:`functions`) is not a monotone fact like the rest (two
        functions of one name take turns), so it is compared, not counted as a change."""
        plans = [_plan(piece) for piece in self._pieces]
        for _ in range(rounds):
            self._changed = False
            functions = dict(self.functions)
            for plan in plans:
                self._bind_piece(plan)
            if not self._changed and self.functions == functions:
                break
        self.descriptors = descriptors.kinds(self, self._pieces)
        return self

    def _bind_piece(self, plan: _Plan) -> None:
        try:
            self._bind_steps(plan.steps)
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

    def _bind_function(self, function: _Function, scope: Scope, name: str | None) -> None:
        inner = scope + (function.name,)
        for arg, default in function.defaults:
            self._bind(arg, self.qual(default, scope), inner)
        if name is not None:
            signature = (inner, function.signature)
            if self.functions.get(name) != signature:
                self.functions[name] = signature
            for value, value_scope in function.returns:
                self._bind(name, self.qual(value, inner if value_scope is None else value_scope), table=self.returns)

    def _bind_steps(self, steps: tuple) -> None:
        """What a tree binds, from its plan's steps (see :class:`_Plan`): imports, assignments,
        loops and comprehensions, ``with``, the walrus, functions and lambdas, classes, calls."""
        for kind, scope, what in steps:
            if kind == _IMPORT:
                for name, qual in what:
                    self._bind(name, qual, scope)
            elif kind == _ASSIGN:
                for target in what.targets:
                    self._bind_target(target, what.value, scope)
            elif kind == _ASSIGN_LAMBDA:
                node, function, names = what
                for target in node.targets:
                    self._bind_target(target, node.value, scope)
                for name in names:
                    self._bind_function(function, scope, name)
            elif kind == _TARGET:
                self._bind_target(what[0], what[1], scope)
            elif kind == _LOOP:
                iterated = self.qual(what.iter, scope)
                self._bind_target(what.target, None, scope, _item(iterated) if iterated else None)
            elif kind == _WITH:
                for target, value in what:
                    self._bind_target(target, value, scope)
            elif kind == _FUNCTION:
                self._bind_function(what[0], scope, what[1])
            elif kind == _CLASS:
                for name, value, inner in what:
                    self._bind(name, self.qual(value, inner), table=self.targets)
            else:
                self._bind_call(what, scope)

    def _bind_call(self, node: ast.Call, scope: Scope) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.functions:  # the student's own function
            inner, params = self.functions[func.id]
            for param, arg in zip(params, node.args):
                self._bind(param, self.qual(arg, scope), inner)
            for keyword in node.keywords:
                if keyword.arg in params:
                    self._bind(keyword.arg, self.qual(keyword.value, scope), inner)
        elif isinstance(func, ast.Name) and node.args and _plain(self.qual(func, scope) or "") in _MAPPING:
            self._bind_mapped(node.args[0], node.args[1:], scope)
        elif (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
              and func.attr in ("append", "extend", "insert", "add", "update", "setdefault", "appendleft")):
            for arg in list(node.args) + [k.value for k in node.keywords]:  # a container of torch
                qual = self.qual(arg, scope)
                if qual is not None:
                    self._bind(func.value.id, "*" + (_item(qual) if func.attr in ("extend", "update") else qual),
                               scope)

    def _bind_mapped(self, function: ast.AST, iterables: list[ast.AST], scope: Scope) -> None:
        """``map(function, *iterables)``, ``filter(function, iterable)``: the parameters of
        ``function`` (a lambda, or the student's own function) stand for the items of the
        iterables, one each."""
        if isinstance(function, ast.Lambda):
            inner = scope + (_lambda_scope(function),)
            params = tuple(a.arg for a in function.args.posonlyargs + function.args.args)
        elif isinstance(function, ast.Name) and function.id in self.functions:
            inner, params = self.functions[function.id]
        else:
            return
        for param, iterable in zip(params, iterables):
            qual = self.qual(iterable, scope)
            if qual is not None:
                self._bind(param, _item(qual), inner)

    def _mapped(self, function: ast.AST, scope: Scope) -> str | None:
        """What ``map(function, ...)`` gives items of: what ``function`` returns, when it is a
        lambda or the student's own function (its parameters bound by :meth:`_bind_mapped`)."""
        if isinstance(function, ast.Lambda):
            return self.qual(function.body, scope + (_lambda_scope(function),))
        if isinstance(function, ast.Name) and function.id in self.returns:
            return self.returns[function.id]
        return None

    def agrees(self, reads: Iterable[tuple[tuple[str, object], object]]) -> bool:
        """Whether these bindings answer every read noted by a :class:`_Noting` as it was answered."""
        tables = {"names": self.names, "targets": self.targets, "returns": self.returns, "course": self.course,
                  "descriptors": self.descriptors}
        for (tag, key), value in reads:
            if tag == "key":
                if self.key(*key) != value:  # type: ignore[misc]
                    return False
            elif tables[tag].get(key, _ABSENT) != value:
                return False
        return True

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
        if isinstance(node, (ast.Attribute, ast.Subscript)) and self.targets.may_hold(node):
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
        if plain == "@builtin.map" and args:  # a new name for what the function returns
            return _holding(self._mapped(args[0], scope))
        if plain == "@builtin.filter" and len(args) > 1:  # the iterable's items, under a new name
            items = self.qual(args[1], scope)
            return None if items is None else "*" + _item(items)
        if plain in ("@builtin.min", "@builtin.max") and args:  # an item of the one iterable, or an argument
            if len(args) == 1:
                return _item(first) if first is not None else None
            return self._strongest(self.qual(a, scope) for a in args)
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


_ABSENT = object()


class _Noted:
    """A table of the bindings read through a :class:`_Noting`: the first value read of each
    key (or that it was absent) is noted in ``reads``."""

    __slots__ = ("table", "reads", "tag")

    def __init__(self, table: dict, reads: dict, tag: str) -> None:
        self.table, self.reads, self.tag = table, reads, tag

    def get(self, key, default=None):
        value = self.table.get(key, _ABSENT)
        self.reads.setdefault((self.tag, key), value)
        return default if value is _ABSENT else value

    def __contains__(self, key) -> bool:
        return self.get(key, _ABSENT) is not _ABSENT

    def __getitem__(self, key):
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def may_hold(self, node: ast.AST) -> bool:
        return True  # every look is noted, even those that could not find anything


class _Noting(Bindings):
    """``bindings`` as the checks see them, noting every read: which scope each name used
    lives in, what each name, target and function's return stands for, what the course
    binds. A scan is a function of its cell's source and of the answers to these reads,
    so what it found holds for any bindings that give the same answers
    (:meth:`Bindings.agrees`): the course's cells, the same in every notebook, are mostly
    scanned with the same answers."""

    def __init__(self, bindings: Bindings, reads: dict) -> None:
        self.bindings, self.reads = bindings, reads
        self.locals, self.functions = bindings.locals, bindings.functions
        self.names = _Noted(bindings.names, reads, "names")  # type: ignore[assignment]
        self.targets = _Noted(bindings.targets, reads, "targets")  # type: ignore[assignment]
        self.returns = _Noted(bindings.returns, reads, "returns")  # type: ignore[assignment]
        self.course = _Noted(bindings.course, reads, "course")  # type: ignore[assignment]
        self.descriptors = _Noted(bindings.descriptors, reads, "descriptors")  # type: ignore[assignment]
        self._pieces, self._changed = [], False

    def key(self, name: str, scope: Scope) -> tuple[Scope, str]:
        where = Bindings.key(self, name, scope)
        self.reads.setdefault(("key", (name, scope)), where)
        return where
