"""What binding needs of a piece's tree, found once per piece (:class:`_Plan`) and kept as long
as the piece is: the nodes that bind, in the order they are met, each with its scope; the
scopes and names its functions and classes bind; what its top-level statements bind.
:class:`grader.instructor.scan.bindings.Bindings` follows the plan's steps."""

from __future__ import annotations

import ast
import weakref

from .cells import _Piece
from .syntax import Scope, _bound_at_top, _lambda_scope, _locals_of, _walk


#: What a plan's step does (the branches of binding a tree, in :meth:`Bindings._bind_steps`).
_IMPORT, _ASSIGN, _ASSIGN_LAMBDA, _TARGET, _LOOP, _WITH, _FUNCTION, _CLASS, _CALL = range(9)
_CONTAINER_METHODS = ("append", "extend", "insert", "add", "update", "setdefault", "appendleft")


class _Function:
    """What binding a function or lambda needs of it, read from its node once."""

    __slots__ = ("name", "defaults", "signature", "returns")

    def __init__(self, node) -> None:
        #: The name of its scope (the scope of its body is the scope it is defined in, and this).
        self.name = _lambda_scope(node) if isinstance(node, ast.Lambda) else node.name
        args = node.args
        positional = args.posonlyargs + args.args
        #: (parameter, its default) for each default, positional then keyword-only.
        self.defaults = tuple(
            [(arg.arg, default) for arg, default in zip(positional[len(positional) - len(args.defaults):],
                                                         args.defaults)]
            + [(arg.arg, default) for arg, default in zip(args.kwonlyargs, args.kw_defaults) if default is not None])
        self.signature = tuple(a.arg for a in positional) + tuple(a.arg for a in args.kwonlyargs)
        #: What it returns or yields, each with the scope it is evaluated in: a lambda's body in
        #: its own scope (None), a function's as :func:`_walk` gives it from the function's node.
        if isinstance(node, ast.Lambda):
            self.returns = ((node.body, None),)
        else:
            self.returns = tuple((inner_node.value, inner_scope) for inner_node, inner_scope in _walk(node)
                                 if isinstance(inner_node, (ast.Return, ast.Yield, ast.YieldFrom))
                                 and inner_node.value is not None)


class _Plan:
    """What binding needs of one piece's tree, found once: read-only, shared by every
    notebook that has the piece.

    ``steps`` are the nodes binding acts on (:meth:`Bindings._bind_steps`), in the order
    :func:`_walk` meets them, with their scope and what of them is known without the
    bindings (the names an import binds, a function's parameters and returns...); nodes
    it does nothing with (most of a tree) are not in it. ``scopes`` are the names each function, lambda and
    class binds for itself, ``top`` what each top-level statement binds (for the
    course's cells)."""

    __slots__ = ("steps", "scopes", "top", "__weakref__")

    def __init__(self, tree: ast.AST) -> None:
        steps: list[tuple] = []
        scopes: list[tuple[Scope, frozenset[str]]] = []
        functions: dict[int, _Function] = {}

        def function(node) -> _Function:
            if id(node) not in functions:
                functions[id(node)] = _Function(node)
            return functions[id(node)]

        for node, scope in _walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                inner = scope + ((_lambda_scope(node) if isinstance(node, ast.Lambda)
                                  else f"class:{node.name}" if isinstance(node, ast.ClassDef) else node.name),)
                scopes.append((inner, frozenset(_locals_of(node))))
            if isinstance(node, ast.Import):
                steps.append((_IMPORT, scope, tuple(
                    (alias.asname, alias.name) if alias.asname else (alias.name.split(".")[0],) * 2
                    for alias in node.names)))
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                steps.append((_IMPORT, scope, tuple((alias.asname or alias.name, f"{node.module}.{alias.name}")
                                                    for alias in node.names if alias.name != "*")))
            elif isinstance(node, ast.Assign):
                if isinstance(node.value, ast.Lambda):
                    steps.append((_ASSIGN_LAMBDA, scope, (node, function(node.value), tuple(
                        target.id for target in node.targets if isinstance(target, ast.Name)))))
                else:
                    steps.append((_ASSIGN, scope, node))
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
                steps.append((_TARGET, scope, (node.target, node.value)))
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                steps.append((_LOOP, scope, node))
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                steps.append((_WITH, scope, tuple((item.optional_vars, item.context_expr) for item in node.items
                                                  if item.optional_vars is not None)))
            elif isinstance(node, ast.NamedExpr):
                steps.append((_TARGET, scope, (node.target, node.value)))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                steps.append((_FUNCTION, scope, (function(node), node.name)))
            elif isinstance(node, ast.Lambda):
                steps.append((_FUNCTION, scope, (function(node), None)))
            elif isinstance(node, ast.ClassDef):
                inner = scope + (f"class:{node.name}",)
                steps.append((_CLASS, scope, tuple(
                    (f"{node.name}.{name}", value, inner) for statement in node.body
                    for name, value in _bound_at_top(statement) if isinstance(value, ast.AST))))
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) or (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                                                  and func.attr in _CONTAINER_METHODS):
                    steps.append((_CALL, scope, node))
        self.steps = tuple(steps)
        self.scopes = tuple(scopes)
        body = tree.body if isinstance(tree, ast.Module) else []
        self.top = tuple(pair for node in body for pair in _bound_at_top(node))


#: The plan of each piece, for as long as the piece lives (a kept reading's, as long as it is kept).
_PLANS: "weakref.WeakKeyDictionary[_Piece, _Plan]" = weakref.WeakKeyDictionary()


def _plan(piece: _Piece) -> _Plan:
    plan = _PLANS.get(piece)
    if plan is None:
        plan = _PLANS[piece] = _Plan(piece.tree)
    return plan
