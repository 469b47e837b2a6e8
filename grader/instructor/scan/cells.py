"""Reading a cell: the Python in it, as IPython would run it.

A cell is passed through IPython's input transformer (or :func:`_plain_transform`,
a small stand-in, without IPython), parsed, and mapped back to the cell's own
lines. The calls the transformer writes for magics and shell escapes
(``get_ipython().run_line_magic(...)``, ``.system(...)``, ``.run_cell_magic(...)``)
are read here: the statement of ``%time``/``%timeit``/``%prun``/``%debug`` and the
body of a Python cell magic are read as Python, the ``{expr}``/``$name`` IPython
expands in arguments too, and what a magic or a shell command does that is
suspect is noted at once (in :attr:`_Reading.found`). The result is a
:class:`_Reading`: pieces of Python (:class:`_Piece`) for the bindings and the
checks, and what the magics already tell.

A reading depends on the cell's source alone, and most cells of a course's
notebooks are the same from one student to the next: :func:`_read` keeps the
readings of whole cells, by their source, in a bounded cache (:data:`_READINGS`),
frozen (tuples, frozensets) and shared, so whoever reads one must not change it
nor its trees.
"""

from __future__ import annotations

import ast
import difflib
import re
import string
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Generic, Hashable, TypeVar

from .rules import (
    _DISPLAY_CELL_MAGICS,
    _FLAGGED_LINE_MAGICS,
    _HARMLESS_COMMANDS,
    _HARMLESS_LINE_MAGICS,
    _INSTALL_LINE_MAGICS,
    _MAGIC_OPTIONS_WITH_VALUE,
    _PY_BODY_CELL_MAGICS,
    _PY_LINE_MAGICS,
    _SCRIPT_CELL_MAGICS,
    _SHELL_ENTRY_POINTS,
    _SHELL_OPERATORS,
)


@dataclass(frozen=True, eq=False)
class _Piece:
    """Python read from a cell: its tree, and the cell's line of each of its lines.

    A piece is known by its identity (the bindings keep what they learn of its tree
    by it); one from a kept reading is shared by every notebook with that cell."""
    tree: ast.Module
    line: Callable[[int], int]
    #: ``get_ipython().X`` calls already read here (their ``X`` is not named again).
    read: set[int] | frozenset[int] = field(default_factory=set)


@dataclass
class _Reading:
    pieces: list[_Piece] | tuple[_Piece, ...]
    found: list[tuple[int, str]] | tuple[tuple[int, str], ...]
    #: False when reading ran out of stack or memory somewhere, which depends on
    #: where it was read from, not on the source alone: such a reading is not kept.
    whole: bool = True
    #: True for a reading from :data:`_READINGS`: shared, frozen, and shallow enough
    #: (:data:`_DEEPEST_KEPT`) that how deep the stack already is where it is read or
    #: scanned does not matter, so what is found of it alone may be kept too.
    kept: bool = False


_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class _Cache(Generic[_K, _V]):
    """A bounded map that forgets what was used least recently: a class of a few
    hundred students brings thousands of cells, most seen once (the answers), some
    in every notebook (the course's), and memory must not grow with the class."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()  # a process may scan on several threads

    def get(self, key: _K) -> _V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


#: Readings of whole cells, by their source (the text itself is the key).
_READINGS: _Cache[str, _Reading] = _Cache(2048)
#: A tree deeper than this is read again each time: the stack it takes to read and
#: scan depends on where it is read from, and a cell that deep is no one's honest code.
_DEEPEST_KEPT = 100


_TRANSFORMER = None


def _transform(source: str) -> tuple[str, bool]:
    """The cell as IPython runs it, and False when IPython ran out of stack or memory
    reading it (which depends on where it was read from)."""
    global _TRANSFORMER
    try:
        if _TRANSFORMER is None:
            from IPython.core.inputtransformer2 import TransformerManager

            _TRANSFORMER = TransformerManager()
        return _TRANSFORMER.transform_cell(source), True
    except ImportError:
        return _plain_transform(source), True
    except Exception as error:  # noqa: BLE001 - IPython could not read it: read it as Python
        return source, not isinstance(error, (RecursionError, MemoryError))


_ESCAPE = re.compile(r"^(\s*)(?:([\w., ()*]+?)\s*=\s*)?(!!|!|%%|%)(.*)$")


def _plain_transform(source: str) -> str:
    """A small stand-in for IPython's input transformer (used only without IPython)."""
    lines = source.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and lines[0].lstrip().startswith("%%"):
        name, _, line = lines[0].lstrip()[2:].partition(" ")
        body = "\n".join(lines[1:]) + "\n"
        return f"get_ipython().run_cell_magic({name!r}, {line!r}, {body!r})\n"
    out = []
    for text in lines:
        match = _ESCAPE.match(text)
        if not match:
            out.append(text)
            continue
        indent, target, escape, rest = match.groups()
        if escape in ("!", "!!"):
            call = f"get_ipython().{'getoutput' if target or escape == '!!' else 'system'}({rest!r})"
        else:
            name, _, args = rest.partition(" ")
            call = f"get_ipython().run_line_magic({name!r}, {args!r})"
        out.append(f"{indent}{target} = {call}" if target else indent + call)
    return "\n".join(out) + "\n"


def _line_map(source: str, code: str) -> Callable[[int], int]:
    """The line of ``source`` that each line of its transformed ``code`` came from."""
    old = [line.strip() for line in source.splitlines()]
    new = [line.strip() for line in code.splitlines()]
    mapping: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            for k in range(j2 - j1):
                mapping[j1 + k + 1] = i1 + k + 1
        elif tag in ("replace", "insert"):
            start = i1
            while start < i2 - 1 and not old[start]:
                start += 1
            for k in range(j2 - j1):
                mapping[j1 + k + 1] = min(start + 1, max(len(old), 1))
    last = max(len(old), 1)
    return lambda line: mapping.get(line, min(line, last))


def _read(source: str, line: Callable[[int], int] | None = None) -> _Reading:
    """The Python in one cell (or in a magic's body, whose lines are ``line`` of the cell's),
    and what its magics already tell.

    A whole cell's reading (no ``line``) is kept by its source and shared: frozen, and
    read-only for everyone (its trees too)."""
    if line is None:
        kept = _READINGS.get(source)
        if kept is not None:
            return kept
    reading = _Reading([], [])
    if not source.strip():
        return _kept(source, reading) if line is None else reading
    code, reading.whole = _transform(source)
    try:
        tree = ast.parse(code)
        local = _line_map(source, code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        reading.whole = reading.whole and not isinstance(error, (RecursionError, MemoryError))
        try:
            tree = ast.parse(source)
            local = lambda n: n  # noqa: E731
        except (SyntaxError, ValueError, RecursionError, MemoryError) as again:
            reading.whole = reading.whole and not isinstance(again, (RecursionError, MemoryError))
            return _kept(source, reading) if line is None else reading  # the kernel cannot run it either
    where = local if line is None else lambda n: line(local(n))  # noqa: E731
    piece = _Piece(tree, where)
    reading.pieces.append(piece)
    lines = source.splitlines()
    first = next((n for n, text in enumerate(lines, 1) if text.strip()), 1)
    starts_with_cell_magic = lines[first - 1].lstrip().startswith("%%")
    for node in ast.walk(tree):
        entry = _shell_entry(node)
        if entry is None:
            continue
        piece.read.add(id(node.func))
        at = where(node.lineno)
        if entry == "run_cell_magic" and starts_with_cell_magic and node.lineno == 1:
            body_line = lambda n, at=at: at + n  # noqa: E731 - the body starts below the magic's line
        else:
            body_line = lambda n, at=at: at  # noqa: E731
        _read_entry(entry, node, at, body_line, lines[min(local(node.lineno), len(lines)) - 1], reading)
    return _kept(source, reading) if line is None else reading


def _kept(source: str, reading: _Reading) -> _Reading:
    """``reading``, frozen and kept for ``source`` when it is whole and shallow enough."""
    if not reading.whole or any(_deeper_than(piece.tree, _DEEPEST_KEPT) for piece in reading.pieces):
        return reading
    frozen = _Reading(tuple(_Piece(piece.tree, piece.line, frozenset(piece.read)) for piece in reading.pieces),
                      tuple(reading.found), whole=True, kept=True)
    _READINGS.put(source, frozen)
    return frozen


def _deeper_than(tree: ast.AST, limit: int) -> bool:
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return False


def _shell_entry(node: ast.AST) -> str | None:
    """``X`` for a call ``get_ipython().X(...)``, one of the entry points IPython's transformer writes."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in _SHELL_ENTRY_POINTS):
        return None
    receiver = node.func.value
    if (isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name)
            and receiver.func.id == "get_ipython" and not receiver.args and not receiver.keywords):
        return node.func.attr
    return None


def _constant_args(node: ast.Call) -> list[str] | None:
    values = []
    for arg in node.args:
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            return None
        values.append(arg.value)
    return values


def _read_entry(entry: str, node: ast.Call, at: int, body_line, text: str, reading: _Reading) -> None:
    args = _constant_args(node)
    explicit = "get_ipython" in text
    if args is None or (entry not in ("run_cell_magic",) and not args):
        reading.found.append((at, f"runs code built at run time through IPython (get_ipython().{entry})"))
        return
    if entry in ("system", "getoutput", "system_raw", "system_piped"):
        _read_shell(args[0], at, explicit, reading)
    elif entry in ("run_line_magic", "magic"):
        if entry == "magic":
            name, _, line = args[0].lstrip().lstrip("%").partition(" ")
        else:
            name, line = args[0], (args[1] if len(args) > 1 else "")
        _read_line_magic(name, line, at, reading)
    elif entry == "run_cell_magic":
        name, line, body = (args + ["", "", ""])[:3]
        _read_cell_magic(name, line, body, at, body_line, reading)
    else:  # run_cell, ex, ev: code run by IPython itself
        reading.found.append((at, f"runs code through IPython (get_ipython().{entry})"))
        if entry == "ev":
            _read_python(args[0], lambda n: at, reading, mode="eval")
        else:
            _add(reading, _read(args[0], lambda n: at))


def _add(reading: _Reading, other: _Reading) -> None:
    reading.pieces.extend(other.pieces)
    reading.found.extend(other.found)
    reading.whole = reading.whole and other.whole


def _read_python(code: str, line, reading: _Reading, mode: str = "exec") -> None:
    """A string IPython runs as plain Python (no magics in it)."""
    try:
        tree = ast.parse(code.strip() if mode == "eval" else code, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        reading.whole = reading.whole and not isinstance(error, (RecursionError, MemoryError))
        return  # it cannot run either
    if mode == "eval":
        tree = ast.Module(body=[ast.Expr(tree.body, lineno=1, col_offset=0)], type_ignores=[])
        ast.fix_missing_locations(tree)
    reading.pieces.append(_Piece(tree, line))


def _expansions(text: str, at: int, reading: _Reading) -> bool:
    """Read the ``{expr}`` and ``$name`` IPython evaluates in a magic's or a command's arguments;
    True when there are any."""
    found = False
    try:
        fields = [f"{name}:{spec}" if spec else name
                  for _, name, spec, _ in string.Formatter().parse(text) if name is not None]
    except ValueError:
        fields = []  # IPython leaves a string it cannot format as it is
    fields += re.findall(r"(?<!\$)\$([A-Za-z_][\w.]*)", text)
    for expression in fields:
        found = True
        _read_python(expression, lambda n: at, reading, mode="eval")
    return found


def _read_shell(command: str, at: int, explicit: bool, reading: _Reading) -> None:
    shown = f"get_ipython().system({_short(command)!r})" if explicit else f"!{_short(command)}"
    expanded = _expansions(command, at, reading)
    unquoted = re.sub(r"'[^']*'|\"[^\"$`\\]*\"", "''", command)
    if expanded or not _HARMLESS_COMMANDS.match(command) or _SHELL_OPERATORS.search(unquoted):
        reading.found.append((at, f"runs a shell command ({shown})"))


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _statement_of(name: str, line: str) -> str:
    """The Python statement of ``%time``/``%timeit``/``%prun``/``%debug``, without their options."""
    with_value = _MAGIC_OPTIONS_WITH_VALUE.get(name, "")
    words = line.strip()
    while words.startswith("-"):
        option, _, rest = words.partition(" ")
        if option.startswith("--"):  # %debug --breakpoint FILE:LINE
            words = rest.strip().partition(" ")[2].strip() if option == "--breakpoint" else rest.strip()
            continue
        letters = option[1:]
        takes_value = any(letter in with_value for letter in letters[:1])
        words = rest.strip()
        if takes_value and len(letters) == 1:  # "-n 10", not "-n10"
            words = words.partition(" ")[2].strip()
    return words


def _read_line_magic(name: str, line: str, at: int, reading: _Reading) -> None:
    if name.startswith("%"):
        return  # "%%x" not at the top of a cell: IPython finds no such line magic and runs nothing
    if name in _PY_LINE_MAGICS:
        _add(reading, _read(_statement_of(name, line), lambda n: at))
    elif name in _INSTALL_LINE_MAGICS:
        if _expansions(line, at, reading) or _SHELL_OPERATORS.search(
                re.sub(r"'[^']*'|\"[^\"$`\\]*\"", "''", line)):
            reading.found.append((at, f"runs a shell command built at run time (%{name} {_short(line)})"))
    elif name in _HARMLESS_LINE_MAGICS:
        _expansions(line, at, reading)
        if name == "config" and not _literal_config(line):
            reading.found.append((at, f"runs code through %config ({_short(line)})"))
    elif name in _FLAGGED_LINE_MAGICS:
        reading.found.append((at, _FLAGGED_LINE_MAGICS[name] if not line.strip()
                              else _FLAGGED_LINE_MAGICS[name][:-1] + f" {_short(line, 40)})"))
    else:
        reading.found.append((at, f"uses the magic %{name}, which the scan cannot read"))


def _literal_config(line: str) -> bool:
    """``%config``, ``%config Class`` or ``%config Class.trait = <literal>``: nothing runs."""
    text = line.strip()
    if re.fullmatch(r"(\w+(\.\w+)*)?", text):
        return True
    match = re.fullmatch(r"\w+\.\w+\s*=\s*(.+)", text, re.S)
    if not match:
        return False
    try:
        ast.literal_eval(match.group(1).strip())
        return True
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def _read_cell_magic(name: str, line: str, body: str, at: int, body_line, reading: _Reading) -> None:
    if name in _PY_BODY_CELL_MAGICS:
        if name != "capture":
            _add(reading, _read(_statement_of(name, line), lambda n: at))
        else:
            _expansions(line, at, reading)
        _add(reading, _read(body, body_line))
    elif name in _DISPLAY_CELL_MAGICS:
        _expansions(line, at, reading)
    elif name in _SCRIPT_CELL_MAGICS:
        reading.found.append((at, f"runs a shell script (%%{name}{' ' + _short(line, 40) if line.strip() else ''})"))
    elif name in ("writefile", "file"):
        reading.found.append((at, f"writes a file the notebook could import (%%{name} {_short(line, 40)})"))
    elif name in ("javascript", "js"):
        reading.found.append((at, f"runs JavaScript in the browser (%%{name})"))
    else:
        reading.found.append((at, f"uses the cell magic %%{name}, which the scan cannot read"))
