"""Reading untrusted files: never through a link, regular files only (never a named pipe,
a device or a socket, and never in a way that can block), each opened relative to its
already opened folder (O_NOFOLLOW) and checked to be what lstat saw, and no more read
than MAX_NOTEBOOK_BYTES (a limit set in the package, read from there at run time)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from .. import collect as limits  # the package: the limits are set (and raised, or patched by tests)
                                  # there, and read from it each time they are needed
from ..workspace import _short
from .names import _clip, _shown, _size

if TYPE_CHECKING:
    from .sources import _Budget


class _Refused(Exception):
    """One thing that is reported, with why (the message), and skipped."""


_FILE_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0))
_DIR_FLAGS = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
              | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
#: Whether files can be opened relative to an open folder (POSIX): then no folder on the way
#: can be swapped for a link while collect reads.
_AT = {os.open, os.stat} <= os.supports_dir_fd and os.scandir in os.supports_fd


def _kind(mode: int) -> str:
    return ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a folder" if stat.S_ISDIR(mode)
            else "not a regular file")


def _link(path: Path, target: str | None) -> str:
    to = f" to '{_clip(_shown(target), 200)}'" if target is not None else ""
    return (f"is a link{to}, not a file: collect never follows links (a link could hand in someone else's "
            "file, or the master with its solutions); ask the student for the file itself")


def _unreadable(exc: OSError, what: str = "file") -> str:
    if isinstance(exc, PermissionError):
        return f"this {what} cannot be read (permission denied): give your account read access to it and collect again"
    if exc.errno == errno.ELOOP:
        return "became a link while collect read it: links are never followed; collect again"
    return f"this {what} cannot be read ({exc.strerror or _short(exc)}): check it and collect again"



class _Dir:
    """A folder opened without following links; what is in it is opened relative to it."""

    def __init__(self, path: Path, fd: int | None):
        self.path, self.fd = path, fd

    @classmethod
    def source(cls, path: Path) -> "_Dir":
        """A SOURCE folder (the instructor's own path: a link there is followed)."""
        return cls(path, os.open(path, _DIR_FLAGS & ~getattr(os, "O_NOFOLLOW", 0)) if _AT else None)

    def ref(self, name: str) -> tuple[str, int | None]:
        return (name, self.fd) if self.fd is not None else (str(self.path / name), None)

    def lstat(self, name: str) -> os.stat_result:
        where, fd = self.ref(name)
        return os.stat(where, dir_fd=fd, follow_symlinks=False)

    def readlink(self, name: str) -> str | None:
        where, fd = self.ref(name)
        try:
            return os.readlink(where, dir_fd=fd) if fd is not None else os.readlink(where)
        except (OSError, ValueError):
            return None

    def names(self, limit: int) -> list[str]:
        """At most ``limit`` + 1 of the names in this folder, sorted."""
        names = []
        with os.scandir(self.fd if self.fd is not None else self.path) as entries:
            for entry in entries:
                names.append(entry.name)
                if len(names) > limit:
                    break
        return sorted(names)

    def sub(self, name: str, seen: os.stat_result) -> "_Dir":
        """The folder ``name`` in this one, which lstat saw as ``seen``."""
        if self.fd is None:
            return _Dir(self.path / name, None)
        fd = os.open(name, _DIR_FLAGS, dir_fd=self.fd)
        now = os.fstat(fd)
        if not stat.S_ISDIR(now.st_mode) or (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
            os.close(fd)
            raise _Refused("changed while collect looked at it: collect again")
        return _Dir(self.path / name, fd)

    def open(self, name: str, seen: os.stat_result, follow: bool = False) -> int:
        """A descriptor of the regular file ``name``, which (l)stat saw as ``seen``: opened
        without following a link and without blocking, and checked to be that same file."""
        if not stat.S_ISREG(seen.st_mode):
            raise _Refused(_link(self.path / name, self.readlink(name)) if stat.S_ISLNK(seen.st_mode) else
                           f"is {_kind(seen.st_mode)}, not a file: skipped without opening it")
        where, dir_fd = self.ref(name)
        fd = os.open(where, _FILE_FLAGS & ~(getattr(os, "O_NOFOLLOW", 0) if follow else 0), dir_fd=dir_fd)
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
            os.close(fd)
            raise _Refused("changed while collect read it: collect again")
        return fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _too_large(size: int | None, unpacked: bool = False) -> str:
    """Why a notebook of ``size`` bytes (None: more than the cap, read no further) is refused."""
    cap = _size(limits.MAX_NOTEBOOK_BYTES)
    shown = _size(size) if size is not None and _size(size) != cap else f"{size:,} bytes" if size else ""
    what = f"{'unpacks to' if unpacked else 'is'} {shown + ', more than' if shown else 'more than'}"
    return (f"{what} the {cap} a notebook may have (MAX_NOTEBOOK_BYTES in grader/instructor/collect/__init__.py): "
            "ask the "
            "student to clear its outputs (Edit > Clear all outputs) and hand it in again, or raise the limit if "
            "the notebook is genuine")


def _read_fd(fd: int, size: int, budget: _Budget) -> bytes:
    """At most MAX_NOTEBOOK_BYTES from ``fd`` (refused if there is more)."""
    if size > limits.MAX_NOTEBOOK_BYTES:
        raise _Refused(_too_large(size))
    data = bytearray()
    while len(data) <= limits.MAX_NOTEBOOK_BYTES:
        chunk = os.read(fd, min(1024 ** 2, limits.MAX_NOTEBOOK_BYTES + 1 - len(data)))
        if not chunk:
            break
        data += chunk
    budget.bytes -= len(data)
    if len(data) > limits.MAX_NOTEBOOK_BYTES:
        raise _Refused(_too_large(None))
    return bytes(data)


def _read(folder: _Dir, name: str, seen: os.stat_result, budget: _Budget, follow: bool = False) -> bytes:
    if stat.S_ISREG(seen.st_mode) and seen.st_size > limits.MAX_NOTEBOOK_BYTES:
        raise _Refused(_too_large(seen.st_size))   # without opening it
    fd = folder.open(name, seen, follow)
    try:
        return _read_fd(fd, os.fstat(fd).st_size, budget)
    finally:
        os.close(fd)
