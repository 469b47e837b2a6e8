"""Small helpers over the syntax tree, shared by the bindings, the rules and the checks.

Qualified names: what a name stands for is written as a string (``"torch.nn"``;
``[]`` marks an item of it, a leading ``*`` a container holding it, a leading ``@``
something reached indirectly, see ``bindings.Bindings``): :func:`_root`,
:func:`_plain`, :func:`_item`, :func:`_holding`; and a node's text (:func:`_text`)
or string constant (:func:`_const_str`). Scopes: the path of functions and classes
a node sits in (:data:`Scope`, :func:`_lambda_scope`), :func:`_walk` (every node
with its scope, without recursion), :func:`_locals_of` (the names a function or
class binds for itself), :func:`_bound_at_top` (the names one top-level statement
binds, and to what).
"""

from __future__ import annotations

import ast
import re


# --------------------------------------------------------------------------- qualified names


def _root(qual: str) -> str:
    return re.split(r"[.\[]", qual, maxsplit=1)[0]


def _plain(qual: str) -> str:
    return qual.replace("[]", "")


def _item(qual: str) -> str:
    """What an item of ``qual`` stands for: the element of a container that holds it, or a part of it."""
    return qual[1:] if qual.startswith("*") else qual + "[]"


def _holding(qual: str | None) -> str | None:
    """A container holding ``qual`` (which may be changed freely: only its items may not)."""
    return None if qual is None else "*" + qual


def _text(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - only for a message
        return "?"


def _const_str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


# --------------------------------------------------------------------------- scopes and bindings of a tree


Scope = tuple  # the path of functions (and classes, as "class:Name") a node sits in; () is the top level


def _lambda_scope(node: ast.Lambda) -> str:
    return f"lambda@{node.lineno}:{node.col_offset}"


def _walk(tree: ast.AST, scope: Scope = ()):
    """Every node of ``tree`` with the scope it is evaluated in (without recursion: a
    deeply nested expression must not stop the scan)."""
    stack = [(tree, scope)]
    while stack:
        node, scope = stack.pop()
        yield node, scope
        children: list[tuple[ast.AST, Scope]] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inner = scope + ((_lambda_scope(node) if isinstance(node, ast.Lambda) else node.name),)
            outer = list(node.args.defaults) + [d for d in node.args.kw_defaults if d is not None]
            if not isinstance(node, ast.Lambda):
                outer += node.decorator_list
            children += [(n, scope) for n in outer]
            arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs + [
                a for a in (node.args.vararg, node.args.kwarg) if a is not None]
            children += [(a, inner) for a in arguments]
            body = [node.body] if isinstance(node, ast.Lambda) else node.body
            children += [(n, inner) for n in body]
        elif isinstance(node, ast.ClassDef):
            inner = scope + (f"class:{node.name}",)
            children += [(n, scope) for n in node.bases + [k.value for k in node.keywords] + node.decorator_list]
            children += [(n, inner) for n in node.body]
        else:
            children += [(n, scope) for n in ast.iter_child_nodes(node)]
        stack.extend(reversed(children))


def _locals_of(node: ast.AST) -> set[str]:
    """The names a function, lambda or class body binds for itself (not those it declares global)."""
    names: set[str] = set()
    declared: set[str] = set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        names.update(a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs)
        names.update(a.arg for a in (node.args.vararg, node.args.kwarg) if a is not None)
    body = [node.body] if isinstance(node, ast.Lambda) else node.body
    stack = list(body)
    while stack:
        inner = stack.pop()
        if isinstance(inner, (ast.Global, ast.Nonlocal)):
            declared.update(inner.names)
        elif isinstance(inner, ast.Name) and isinstance(inner.ctx, (ast.Store, ast.Del)):
            names.add(inner.id)
        elif isinstance(inner, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name.split(".")[0]) for a in inner.names if a.name != "*")
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(inner.name)
            stack.extend(getattr(inner, "decorator_list", []))
            if not isinstance(inner, ast.ClassDef):
                stack.extend(list(inner.args.defaults) + [d for d in inner.args.kw_defaults if d is not None])
            else:
                stack.extend(inner.bases)
            continue  # its body is its own scope
        if isinstance(inner, ast.Lambda):
            stack.extend(inner.args.defaults)
            continue
        stack.extend(ast.iter_child_nodes(inner))
    return names - declared


def _bound_at_top(node: ast.AST) -> list[tuple[str, ast.AST | str | None]]:
    """The names one top-level statement binds, each with what it binds it to (a node, a
    qualified name for imports, or None when it is something new: a function, a class...)."""
    out: list[tuple[str, ast.AST | str | None]] = []

    def targets(target: ast.AST, value: ast.AST | None) -> None:
        if isinstance(target, ast.Name):
            out.append((target.id, value))
        elif isinstance(target, ast.Starred):
            targets(target.value, None)
        elif isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                for t, v in zip(target.elts, value.elts):
                    targets(t, v)
            else:
                for t in target.elts:
                    targets(t, None)

    if isinstance(node, ast.Import):
        for alias in node.names:
            out.append((alias.asname, alias.name) if alias.asname else
                       (alias.name.split(".")[0], alias.name.split(".")[0]))
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        out.extend((a.asname or a.name, f"{node.module}.{a.name}") for a in node.names if a.name != "*")
    elif isinstance(node, ast.Assign):
        for target in node.targets:
            targets(target, node.value)
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        if isinstance(node, ast.AugAssign) or node.value is not None:
            targets(node.target, None if isinstance(node, ast.AugAssign) else node.value)
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        out.append((node.name, None))
    elif isinstance(node, (ast.For, ast.AsyncFor)):
        targets(node.target, None)
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        for item in node.items:
            if item.optional_vars is not None:
                targets(item.optional_vars, None)
    elif isinstance(node, ast.Delete):
        for target in node.targets:
            targets(target, None)
    return out
