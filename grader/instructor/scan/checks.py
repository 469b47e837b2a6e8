"""The checks: the visitor that walks one piece of a student's cell and names what it
does that is suspect.

:class:`_Scan` asks the bindings what each node stands for and the rules whether
that is suspect: rebinding the course's names or guarded built-ins at the top
level, suspect imports, built-ins, attributes and qualified names, stores and
in-place changes into torch, the grader, built-ins, ``sys`` or IPython,
``setattr``/``getattr`` and kin, ``inspect`` on torch or the grader, unsafe
``torch.load``, strings run as code (read as Python when they are constants),
files written that could be imported and reads of ``/proc``.
"""

from __future__ import annotations

import ast
import re

from . import descriptors
from .bindings import Bindings
from .cells import _Piece, _Reading, _read_python
from .rules import (
    _ALLOWED_STORES,
    _CODE_RUNNERS,
    _FRAME_ATTRIBUTES,
    _GUARDED_BUILTINS,
    _HARMLESS,
    _INSPECT_FILES,
    _INSPECT_ON_TAINT,
    _MUTATING,
    _NO_INPLACE,
    _PROTECTED,
    _SELF,
    _SUSPECT_ATTRIBUTES,
    _SUSPECT_BUILTINS,
    _TAKES_CALLABLES,
    _danger,
)
from .syntax import Scope, _bound_at_top, _const_str, _lambda_scope, _plain, _root, _text


class _Scan(ast.NodeVisitor):
    """Names what one piece of a student's cell does that is suspect."""

    def __init__(self, bindings: Bindings, piece: _Piece, found: list[tuple[int, str]], scope: Scope = ()) -> None:
        self.b = bindings
        self.piece = piece
        self.found = found
        self.scope: Scope = scope
        self.declared_global: list[set[str]] = []

    def say(self, node: ast.AST, what: str) -> None:
        self.found.append((self.piece.line(getattr(node, "lineno", 1)), what))

    def qual(self, node: ast.AST | None) -> str | None:
        return self.b.qual(node, self.scope)

    # ------------------------------------------------------------------ scopes

    def _inside(self, name: str, body: list[ast.AST], declared: set[str]) -> None:
        self.scope = self.scope + (name,)
        self.declared_global.append(declared)
        try:
            for statement in body:
                self.visit(statement)
        finally:
            self.declared_global.pop()
            self.scope = self.scope[:-1]

    @staticmethod
    def _globals_of(node: ast.AST) -> set[str]:
        return {n for s in ast.walk(node) if isinstance(s, ast.Global) for n in s.names}

    def _at_top(self, name: str) -> bool:
        return not self.scope or (bool(self.declared_global) and name in self.declared_global[-1])

    def visit_FunctionDef(self, node) -> None:
        if node.name in ("__torch_function__", "__torch_dispatch__"):
            self.say(node, f"intercepts torch's operators ({node.name})")
        self._rebinding(node, node.name, None)
        for expression in node.decorator_list + node.args.defaults + [
                d for d in node.args.kw_defaults if d is not None]:
            self.visit(expression)
        self._inside(node.name, node.body, self._globals_of(node))

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node) -> None:
        for expression in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(expression)
        self._inside(_lambda_scope(node), [node.body], set())

    def visit_ClassDef(self, node) -> None:
        self._rebinding(node, node.name, None)
        for expression in node.bases + [k.value for k in node.keywords] + node.decorator_list:
            self.visit(expression)
        self._inside(f"class:{node.name}", node.body, set())

    # ------------------------------------------------------------------ bindings of names

    def _rebinding(self, node: ast.AST, name: str, value, deleting: bool = False) -> None:
        if not self._at_top(name):
            return
        if name in self.b.course:
            qual = value if isinstance(value, str) or value is None else self.qual(value)
            if deleting or qual is None or _plain(qual) != _plain(self.b.course[name]):
                self.say(node, f"{'deletes' if deleting else 'rebinds'} {name}, which the course's cells use")
        elif name in _GUARDED_BUILTINS:
            self.say(node, f"redefines {name}")

    def _statement_bindings(self, node: ast.AST) -> None:
        for name, value in _bound_at_top(node):
            self._rebinding(node, name, value, deleting=isinstance(node, ast.Delete))

    def visit_Import(self, node) -> None:
        self._statement_bindings(node)
        for alias in node.names:
            why = _danger(alias.name)
            if why:
                self.say(node, why)
            elif any(part.startswith("_") and not part.startswith("__") for part in alias.name.split(".")):
                self.say(node, f"imports {alias.name}, a private module")

    def visit_ImportFrom(self, node) -> None:
        self._statement_bindings(node)
        module = node.module or ""
        for alias in node.names:
            full = f"{module}.{alias.name}" if alias.name != "*" else module
            why = _danger(full)
            if why:
                self.say(node, why)
            elif any(part.startswith("_") and not part.startswith("__") for part in full.split(".")):
                self.say(node, f"imports {full}, a private name")

    def _binding_statement(self, node) -> None:
        self._statement_bindings(node)
        self.generic_visit(node)

    visit_Assign = visit_AnnAssign = visit_AugAssign = visit_Delete = _binding_statement
    visit_For = visit_AsyncFor = visit_With = visit_AsyncWith = _binding_statement

    def visit_NamedExpr(self, node) -> None:
        if isinstance(node.target, ast.Name):
            self._rebinding(node, node.target.id, node.value)
        self.generic_visit(node)

    # ------------------------------------------------------------------ names and attributes

    def visit_Name(self, node) -> None:
        qual = self.qual(node)
        if qual and qual.startswith("@builtin."):
            why = _SUSPECT_BUILTINS.get(qual[len("@builtin."):])
            if why:
                self.say(node, why)
        elif qual and isinstance(node.ctx, ast.Load) and node.id != qual.split(".")[-1]:
            why = _danger(qual)  # an alias of something suspect (from inspect import stack as s)
            if why:
                self.say(node, why)
        if node.id in ("__torch_function__", "__torch_dispatch__") and isinstance(node.ctx, ast.Store):
            self.say(node, f"intercepts torch's operators ({node.id})")

    def visit_Attribute(self, node) -> None:
        attr = node.attr
        on_self = isinstance(node.value, ast.Name) and node.value.id in _SELF
        if attr in _FRAME_ATTRIBUTES:
            self.say(node, f"walks the call stack (.{attr})")
        elif _SUSPECT_ATTRIBUTES.match(attr) and attr not in _HARMLESS and not on_self:
            kind = "the inside of an object" if attr.startswith("__") else "a private part of an object"
            self.say(node, f"reaches .{attr}, {kind}")
        if id(node) not in self.piece.read:
            qual = self.qual(node)
            if qual is not None:
                why = _danger(qual)
                if why:
                    self.say(node, why)
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._store(node, isinstance(node.ctx, ast.Del))
        self.generic_visit(node)

    def visit_Subscript(self, node) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._store(node, isinstance(node.ctx, ast.Del))
        self.generic_visit(node)

    def _store(self, node: ast.Attribute | ast.Subscript, deleting: bool) -> None:
        base = self.qual(node.value)
        if base is None or _root(base) not in _PROTECTED:
            return
        full = f"{_plain(base)}.{node.attr}" if isinstance(node, ast.Attribute) else f"{_plain(base)}[...]"
        if full in _ALLOWED_STORES:
            return
        spelled = _text(node)
        if base == "IPython.shell":
            full = f"get_ipython().{node.attr}" if isinstance(node, ast.Attribute) else "get_ipython()[...]"
        shown = spelled if spelled == full or full.startswith("@") or "get_ipython()" in spelled \
            else f"{spelled}, which is {full}"
        self.say(node, f"{'deletes' if deleting else 'assigns to'} {shown} ({_PROTECTED[_root(base)]})")

    # ------------------------------------------------------------------ calls

    def visit_Call(self, node) -> None:
        callee = self.qual(node.func)
        plain = _plain(callee) if callee else ""
        args = node.args
        first = self.qual(args[0]) if args else None
        first_is_self = bool(args) and isinstance(args[0], ast.Name) and args[0].id in _SELF
        if plain in ("@builtin.setattr", "@builtin.delattr") and not first_is_self:
            name = plain.split(".")[-1]
            what = f"{'sets' if name == 'setattr' else 'deletes'} an attribute by name ({name}"
            if first and _root(first) in _PROTECTED:
                what += f" on {_plain(first)}: {_PROTECTED[_root(first)]}"
            self.say(node, what + ")")
        elif plain in ("@builtin.getattr", "@builtin.hasattr") and len(args) > 1:
            name = _const_str(args[1])
            if name is None and plain == "@builtin.getattr":
                self.say(node, "reads an attribute whose name is computed (getattr)")
            elif name and (_SUSPECT_ATTRIBUTES.match(name) or name in _FRAME_ATTRIBUTES) \
                    and name not in _HARMLESS and not first_is_self:
                self.say(node, f"reaches .{name} through {plain.split('.')[-1]}")
            elif name and first:
                why = _danger(f"{first}.{name}")
                if why:
                    self.say(node, why)
        elif plain == "@builtin.type" and len(args) == 1 and first and _root(first) in _PROTECTED:
            self.say(node, f"takes the type of {_plain(first)} (type)")
        elif plain in _INSPECT_ON_TAINT and first and _root(first) in ("torch", "grader", "builtins", "sys"):
            self.say(node, _INSPECT_ON_TAINT[plain].format(_plain(first)))
        elif plain in _INSPECT_FILES and first and _root(first) == "grader":
            self.say(node, f"locates the grader's files on disk ({plain})")
        elif plain in ("operator.attrgetter", "operator.methodcaller") and args:
            name = _const_str(args[0])
            if name is None:
                self.say(node, f"reads an attribute whose name is computed ({plain})")
            elif any(_SUSPECT_ATTRIBUTES.match(p) or p in _FRAME_ATTRIBUTES for p in name.split(".")):
                self.say(node, f"reaches .{name} through {plain}")
        elif plain == "torch.load" and any(k.arg == "weights_only" and isinstance(k.value, ast.Constant)
                                           and k.value.value is False for k in node.keywords):
            self.say(node, "unpickles a file, which can run any code (torch.load with weights_only=False)")
        elif plain in _CODE_RUNNERS:
            self._code_runner(node, plain)
        elif plain == "@builtin.open" or (isinstance(node.func, ast.Attribute)
                                           and node.func.attr in ("write_text", "write_bytes", "open")):
            self._writes_code(node, plain)
        self._descriptors(node, plain)
        if isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATING:
            base = self.qual(node.func.value)
            if base is not None and _root(base) in _NO_INPLACE:
                self.say(node, f"changes {_plain(base)} in place (.{node.func.attr}: {_PROTECTED[_root(base)]})")
        for arg in args:
            if isinstance(arg, ast.Name) and _plain(self.qual(arg) or "") in (
                    "@builtin.getattr", "@builtin.setattr", "@builtin.delattr"):
                self.say(arg, f"passes {arg.id} to another function")
        self.generic_visit(node)

    def _descriptors(self, node: ast.Call, plain: str) -> None:
        """A file descriptor the code did not open itself, reached by number (the engine's pipes
        are among them: see :mod:`.descriptors`)."""
        kinds_of = lambda key: self.b.descriptors.get(key, frozenset())  # noqa: E731
        key = lambda name: self.b.key(name, self.scope)  # noqa: E731
        given = [node.args[p] for p in descriptors.DESCRIPTOR_ARGUMENTS.get(plain, ()) if p < len(node.args)]
        if plain in descriptors.DESCRIPTOR_ARGUMENTS or plain == "socket.socket":
            given += [k.value for k in node.keywords if k.arg in descriptors.DESCRIPTOR_KEYWORDS]
            if any(not descriptors.own(arg, kinds_of, key, self.qual) for arg in given):
                self.say(node, f"uses a file descriptor it did not open itself ({plain.replace('@builtin.', '')}), "
                               "which can reach the grader's pipes")
        elif plain in descriptors.PATH_OR_DESCRIPTOR and node.args \
                and descriptors.a_number(node.args[0], kinds_of, key):
            self.say(node, f"opens a file descriptor by number ({plain.replace('@builtin.', '')}), "
                           "which can reach the grader's pipes")
        if plain != "@builtin.open":  # open's path is read by _writes_code
            for arg in node.args:
                path = _const_str(arg)
                if path and re.match(r"/proc/|/dev/fd\b|/dev/mem", path):
                    self.say(node, f"reads the process's memory or state ({path})")

    def _code_runner(self, node: ast.Call, plain: str) -> None:
        spec = _CODE_RUNNERS[plain]
        for keyword, position in zip(spec[1::2], spec[0::2]):
            value = node.args[position] if position < len(node.args) else next(
                (k.value for k in node.keywords if k.arg == keyword), None)
            callable_ = isinstance(value, (ast.Lambda, ast.Name, ast.Attribute))
            if value is None or (plain in _TAKES_CALLABLES and callable_):
                continue  # a callable, or a variable holding one
            code = _const_str(value)
            if code is None:
                self.say(node, f"runs code built at run time ({plain})")
                continue
            at = self.piece.line(node.lineno)
            reading = _Reading([], [])
            _read_python(code, lambda n: at, reading)
            for piece in reading.pieces:
                _Scan(self.b, piece, self.found, self.scope).visit(piece.tree)

    def _writes_code(self, node: ast.Call, plain: str) -> None:
        if plain == "@builtin.open":
            path = _const_str(node.args[0]) if node.args else None
            mode = _const_str(node.args[1]) if len(node.args) > 1 else next(
                (_const_str(k.value) for k in node.keywords if k.arg == "mode"), "r")
        else:
            receiver = node.func.value  # type: ignore[union-attr]
            path = next((_const_str(n) for n in ast.walk(receiver) if _const_str(n)), None)
            mode = "w" if node.func.attr.startswith("write") else (  # type: ignore[union-attr]
                _const_str(node.args[0]) if node.args else "r")
        if path and mode and any(c in mode for c in "wax+") and re.search(r"\.(py|pth|pyc|so|ipynb)$", path):
            self.say(node, f"writes a file the notebook could import ({path})")
        if path and re.match(r"/proc/|/dev/mem|/dev/fd\b", path):
            self.say(node, f"reads the process's memory or state ({path})")
