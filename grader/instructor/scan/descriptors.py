"""File descriptors in a student's code: which it opened itself, and which it reaches by number.

A notebook's process holds, besides standard input, output and error (0, 1, 2), the
pipes on which it talks to the engine. Code that reads, writes or duplicates one of
those can read the judge's requests and answer them in the student's function's stead
(computing torch's loss, say, where no graded name reaches), or write the messages of
cells that have not run. The engine believes only function outputs on those pipes; a
proxy supplies exactly those. So the scan names the use of a descriptor the student's
code did not open itself (:data:`DESCRIPTOR_ARGUMENTS`), and leaves alone the ordinary
uses: ``os.dup(2)``, ``os.dup2(null, 2)`` with ``null = os.open(os.devnull, ...)``,
``os.write(1, ...)``, ``r, w = os.pipe()``, ``sys.stderr.fileno()``.

:func:`kinds` reads, for every name of the notebook (by scope, as the bindings keep
them), what each of its bindings holds, as far as descriptors go (:data:`OWN`...); a
name is a descriptor of the code's own only when every binding of it is.
"""

from __future__ import annotations

import ast
import weakref
from typing import Iterable

from .syntax import Scope, _lambda_scope, _plain, _walk

#: What a binding holds, as far as descriptors go.
OWN = "own"  # what os.open, os.dup, os.pipe ... returned: a descriptor the code opened itself
STANDARD = "standard"  # 0, 1 or 2
NUMBER = "number"  # an integer made otherwise: a constant, arithmetic, int(), a loop over range()
OTHER = "other"  # anything else: a parameter, a loop variable, a call's result, an item...

#: The calls whose result is a descriptor the calling code opened itself (or a tuple of them).
OPENERS = {"os.open", "os.dup", "os.pipe", "os.pipe2", "os.openpty", "os.memfd_create", "os.eventfd",
           "tempfile.mkstemp", "pty.openpty"}
#: Descriptors of the standard streams, through their file objects.
STANDARD_FILENOS = {f"sys.{s}.fileno" for s in ("stdin", "stdout", "stderr", "__stdin__", "__stdout__", "__stderr__")}

#: Functions that act on a file descriptor given by number: the positions of those arguments.
DESCRIPTOR_ARGUMENTS: dict[str, tuple[int, ...]] = {
    **{f"os.{name}": (0,) for name in (
        "read", "write", "dup", "fdopen", "fstat", "fstatvfs", "lseek", "close", "pread", "pwrite", "readv",
        "writev", "preadv", "pwritev", "set_blocking", "get_blocking", "set_inheritable", "get_inheritable",
        "ftruncate", "fsync", "fdatasync", "fchmod", "fchown", "fchdir", "fpathconf", "lockf", "posix_fadvise",
        "posix_fallocate", "ttyname", "device_encoding", "login_tty", "tcgetpgrp", "tcsetpgrp",
        "get_terminal_size", "eventfd_read", "eventfd_write", "fdopendir")},
    "os.dup2": (0, 1), "os.sendfile": (0, 1), "os.splice": (0, 1), "os.copy_file_range": (0, 1),
    "os.closerange": (0, 1),
    "socket.fromfd": (0,), "socket.socket.fromfd": (0,), "mmap.mmap": (0,), "select.epoll.fromfd": (0,),
    "multiprocessing.connection.Connection": (0,), "asyncio.unix_events._UnixReadPipeTransport": (0,),
}
#: Keyword arguments that give a descriptor (``socket.socket(fileno=...)``, ``os.dup2(fd=...)``).
DESCRIPTOR_KEYWORDS = {"fd", "fd2", "fileno", "in_fd", "out_fd", "src", "dst", "fd_in", "fd_out"}
#: Functions that take a path or a descriptor: named only when given a number that is not 0, 1, 2.
PATH_OR_DESCRIPTOR = {"@builtin.open", "io.open", "io.FileIO", "_io.open", "_io.FileIO", "os.stat", "os.listdir",
                      "os.scandir", "os.chdir", "os.truncate", "os.utime", "os.chmod", "os.chown",
                      "os.statvfs", "os.pathconf", "os.path.exists", "os.path.getsize"}


def _an_integer(node: ast.AST) -> bool:
    """Whether ``node`` is an integer constant (negated or not)."""
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) is int


def _kind(value: ast.AST | None, qual) -> str:
    """What a binding to ``value`` holds (``qual`` resolves a node, as :meth:`Bindings.qual`)."""
    if isinstance(value, ast.Constant) and type(value.value) is int:
        return STANDARD if value.value in (0, 1, 2) else NUMBER
    if isinstance(value, ast.UnaryOp) and _an_integer(value):
        return NUMBER
    if isinstance(value, ast.BinOp) and (_an_integer(value.left) or _an_integer(value.right)):
        return NUMBER  # fd + 3; a path (DATA / "x.csv", "a" + name) is something else
    if isinstance(value, ast.Call):
        callee = _plain(qual(value.func) or "")
        if callee in OPENERS:
            return OWN
        if callee in STANDARD_FILENOS:
            return STANDARD
        if callee in ("@builtin.int", "@builtin.len", "@builtin.sum", "@builtin.abs", "@builtin.range"):
            return NUMBER
    return OTHER


def _targets(target: ast.AST) -> Iterable[str]:
    return (n.id for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))


def kinds(bindings, pieces: Iterable) -> dict[tuple[Scope, str], frozenset[str]]:
    """For each name bound in ``pieces`` (by where it lives, :meth:`Bindings.key`), what its
    bindings hold."""
    found: dict[tuple[Scope, str], set[str]] = {}
    for piece in pieces:
        try:
            events = _events(piece)
        except RecursionError:
            continue  # nested too deeply to read: the scan names the cell instead
        for name, scope, value in events:
            try:
                kind = value if isinstance(value, str) else _kind(value, lambda n, s=scope: bindings.qual(n, s))
            except RecursionError:
                kind = OTHER
            found.setdefault(bindings.key(name, scope), set()).add(kind)
    return {key: frozenset(value) for key, value in found.items()}


#: Each piece's bindings, as :func:`_events` finds them, for as long as the piece lives.
_EVENTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _events(piece) -> tuple:
    """The bindings of ``piece``'s names, found once per piece (a kept cell's piece is shared by
    every notebook that has the cell): ``(name, scope, kind)``, or ``(name, scope, node)`` where
    what the node holds depends on the notebook's bindings (a call's callee)."""
    events = _EVENTS.get(piece)
    if events is None:
        events = _EVENTS[piece] = tuple(_read_tree(piece.tree))
    return events


def _held(value: ast.AST | None):
    """What a binding to ``value`` holds, or the node when that depends on the bindings."""
    return value if isinstance(value, ast.Call) else _kind(value, lambda node: None)


def _read_tree(tree: ast.AST):
    """Each binding of ``tree``: ``(name, scope, kind or node)``."""
    for node, scope in _walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inner = scope + ((_lambda_scope(node) if isinstance(node, ast.Lambda) else node.name),)
            a = node.args
            for arg in a.posonlyargs + a.args + a.kwonlyargs + [x for x in (a.vararg, a.kwarg) if x]:
                yield arg.arg, inner, OTHER
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            held = _held(node.value)
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for name in _targets(target):
                    yield name, scope, held
        elif isinstance(node, ast.AugAssign):
            for name in _targets(node.target):
                yield name, scope, NUMBER if _an_integer(node.value) else OTHER
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            over = node.iter.func if isinstance(node.iter, ast.Call) else None
            for name in _targets(node.target):
                yield name, scope, (ast.Call(func=over, args=[], keywords=[]) if over is not None else OTHER)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    for name in _targets(item.optional_vars):
                        yield name, scope, OTHER


def own(node: ast.AST, kinds_of, key, qual) -> bool:
    """Whether ``node``, given where a descriptor is expected, is 0, 1, 2 or one the code opened."""
    if isinstance(node, ast.Constant):
        return type(node.value) is int and node.value in (0, 1, 2)
    if isinstance(node, ast.Name):
        held = kinds_of(key(node.id))
        return bool(held) and held <= {OWN, STANDARD}
    return isinstance(node, ast.Call) and _plain(qual(node.func) or "") in STANDARD_FILENOS


def a_number(node: ast.AST, kinds_of, key) -> bool:
    """Whether ``node``, given where a path or a descriptor is expected, may be a descriptor
    other than 0, 1, 2: a number the code made (``5``, ``fd + 3``, a name bound to one)."""
    if isinstance(node, ast.Constant):
        return type(node.value) is int and node.value not in (0, 1, 2)
    if isinstance(node, ast.UnaryOp):
        return a_number(node.operand, kinds_of, key) or _an_integer(node)
    if isinstance(node, ast.BinOp):
        return _an_integer(node.left) or _an_integer(node.right) or a_number(node.left, kinds_of, key) \
            or a_number(node.right, kinds_of, key)
    if isinstance(node, ast.Name):
        return NUMBER in kinds_of(key(node.id))
    return False
