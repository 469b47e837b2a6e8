"""Where submissions come from: folders (walked without following links, at most
MAX_DEPTH deep), zip archives (each member checked before it is unpacked) and nbgrader
exchanges (the latest entry of each student and assignment). Each yields Candidates;
whatever it refuses is a Candidate with its problem, reported and skipped. All the
sources of one collect share one _Budget (MAX_FILES, MAX_TOTAL_BYTES)."""

from __future__ import annotations

import datetime
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .. import collect as limits  # the package: the limits are set (and raised, or patched by tests)
                                  # there, and read from it each time they are needed
from ..workspace import WorkflowError, _short
from .files import _Dir, _kind, _link, _read, _Refused, _too_large, _unreadable
from .names import EXCHANGE_ENTRY, STUDENT_ID, _bad_name, _entry_problem, _member_problem, _size
from . import times


@dataclass
class Candidate:
    origin: str          # where it came from, for the report
    relative: str        # the path the naming rule reads
    data: bytes | None = None
    student: str | None = None
    assignment: str | None = None  # named by an exchange entry
    problem: str | None = None     # why it is skipped without being read (then no data)
    digest: str | None = None      # of the data, once it is set aside in the staging folder
    staged: Path | None = None
    time: datetime.datetime | None = None  # when it was handed in (UTC), as far as the source tells
    time_from: str | None = None           # where that time came from (times.FROM_...)


class _Budget:
    """How many more files collect considers and bytes it reads, all sources together."""

    def __init__(self):
        self.files, self.bytes, self.stopped = limits.MAX_FILES, limits.MAX_TOTAL_BYTES, False

    def take(self) -> bool:
        if self.files <= 0 or self.bytes <= 0:
            self.stopped = True
            return False
        self.files -= 1
        return True

    def stop(self, origin: str | os.PathLike) -> "Candidate":
        what = (f"more than {limits.MAX_FILES:,} files and folders (MAX_FILES)" if self.files <= 0 else
                f"more than {_size(limits.MAX_TOTAL_BYTES)} of notebooks (MAX_TOTAL_BYTES)")
        return Candidate(str(origin), "", problem=(
            f"the sources hold {what}: collect stopped looking here, and nothing after it was considered; "
            "collect the sources in smaller parts, or raise the limit in grader/instructor/collect/__init__.py"))


def _skipped(origin: str | os.PathLike, relative: str, problem: str, student: str | None = None,
             assignment: str | None = None) -> Candidate:
    return Candidate(str(origin), relative, student=student, assignment=assignment, problem=problem)


def _suffix(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _from_folder(folder: _Dir, relative: str, depth: int, budget: _Budget) -> Iterator[Candidate]:
    """The notebooks in ``folder`` and below it (and in the zip archives there), in the
    order of their paths; links, pipes, devices and sockets reported and skipped."""
    try:
        names = folder.names(budget.files)
    except OSError as exc:
        yield _skipped(folder.path, relative, _unreadable(exc, "folder"))
        return
    for name in names:
        path, rel = folder.path / name, relative + name
        if not budget.take():
            yield budget.stop(path)
            return
        try:
            seen = folder.lstat(name)
        except OSError as exc:
            yield _skipped(path, rel, _unreadable(exc))
            continue
        if stat.S_ISLNK(seen.st_mode):
            yield _skipped(path, rel, _link(path, folder.readlink(name)))
        elif stat.S_ISDIR(seen.st_mode):
            if name == ".ipynb_checkpoints":
                continue
            if depth >= limits.MAX_DEPTH:
                yield _skipped(path, rel, f"is nested more than {limits.MAX_DEPTH} folders deep: skipped with "
                                          "everything in it (MAX_DEPTH in grader/instructor/collect/__init__.py)")
                continue
            try:
                sub = folder.sub(name, seen)
            except _Refused as exc:
                yield _skipped(path, rel, str(exc))
                continue
            except OSError as exc:
                yield _skipped(path, rel, _unreadable(exc, "folder"))
                continue
            try:
                yield from _from_folder(sub, rel + "/", depth + 1, budget)
            finally:
                sub.close()
            if budget.stopped:
                return
        elif not stat.S_ISREG(seen.st_mode):
            yield _skipped(path, rel, f"is {_kind(seen.st_mode)}, not a file: skipped without opening it")
        elif _suffix(name) in (".ipynb", ".zip"):
            yield from _from_file(folder, name, seen, rel, budget)
            if budget.stopped:
                return


def _from_file(folder: _Dir, name: str, seen: os.stat_result, relative: str, budget: _Budget,
               follow: bool = False) -> Iterator[Candidate]:
    """The notebook ``name`` in ``folder``, or the notebooks in the zip archive ``name``."""
    path = folder.path / name
    problem = _bad_name(name)
    if problem:
        yield _skipped(path, relative, problem)
        return
    try:
        if _suffix(name) == ".zip":
            fd = folder.open(name, seen, follow)
            with os.fdopen(fd, "rb") as archive:
                yield from _from_zip(archive, str(path), relative, budget, seen.st_mtime)
        else:
            yield Candidate(str(path), relative, _read(folder, name, seen, budget, follow),
                            time=times.from_epoch(seen.st_mtime), time_from=times.FROM_FILE)
    except _Refused as exc:
        yield _skipped(path, relative, str(exc))
    except OSError as exc:
        yield _skipped(path, relative, _unreadable(exc))


def _zip_directory_problem(archive) -> str | None:
    """Why the table of contents of ``archive`` is too large to read, if it is (read from
    its end record before zipfile reads it all)."""
    end = getattr(zipfile, "_EndRecData", None)
    if end is None:  # a Python without it: zipfile reads the table of contents unchecked
        return None
    try:
        record = end(archive)
    except (OSError, ValueError, EOFError):
        return None  # zipfile says what is wrong
    if not record:
        return None
    entries, size = record[getattr(zipfile, "_ECD_ENTRIES_TOTAL", 4)], record[getattr(zipfile, "_ECD_SIZE", 5)]
    if size > limits.MAX_ZIP_DIRECTORY_BYTES or entries > limits.MAX_FILES:
        return (f"lists {entries:,} files in a table of contents of {_size(size)}, more than collect reads from "
                f"an archive ({limits.MAX_FILES:,} files, {_size(limits.MAX_ZIP_DIRECTORY_BYTES)}): refused without "
                "reading it; unpack it yourself and collect the folders in parts")
    return None


def _from_zip(archive, origin: str, relative: str, budget: _Budget,
              archive_mtime: float | None = None) -> Iterator[Candidate]:
    """The notebooks in the zip archive open as ``archive``: each member checked (its path,
    its size, how much it unpacks from how little) before it is unpacked, and unpacked no
    further than MAX_NOTEBOOK_BYTES; each dated by the archive (times.zip_member_time)."""
    try:
        problem = _zip_directory_problem(archive)
        if problem:
            yield _skipped(origin, relative, problem)
            return
        z = zipfile.ZipFile(archive)
    except Exception as exc:  # noqa: BLE001 - a broken archive is reported, never fatal
        yield _skipped(origin, relative, f"is not a readable zip archive ({_short(exc)}): download or export it "
                                         "again; the files beside it are collected all the same")
        return
    with z:
        for info in sorted(z.infolist(), key=lambda i: i.filename):
            name = info.filename
            if not budget.take():
                yield budget.stop(f"{origin}:{name}")
                return
            path = name.replace("\\", "/")
            if info.is_dir() or not path.lower().endswith(".ipynb") or "__MACOSX" in path \
                    or ".ipynb_checkpoints" in path:
                continue
            where, inside = f"{origin}:{name}", path.lstrip("/")
            problem = _member_problem(path)
            if problem is None and info.flag_bits & 0x1:
                problem = "is encrypted (protected by a password): ask for it without a password"
            if problem is None and info.file_size > limits.MAX_NOTEBOOK_BYTES:
                problem = _too_large(info.file_size, unpacked=True) + "; skipped without unpacking it"
            if problem is None and info.file_size > limits.RATIO_CHECKED_FROM \
                    and info.file_size > limits.MAX_COMPRESSION_RATIO * info.compress_size:
                problem = (f"would unpack {_size(info.compress_size)} into {_size(info.file_size)} "
                           f"({info.file_size // max(info.compress_size, 1):,} to 1), which no notebook does (at most "
                           f"{limits.MAX_COMPRESSION_RATIO} to 1, MAX_COMPRESSION_RATIO): a zip bomb or a damaged "
                           "archive; skipped without unpacking it")
            if problem:
                yield _skipped(where, inside, problem)
                continue
            try:
                with z.open(info) as member:  # never more than the cap, whatever the archive claims
                    data = member.read(limits.MAX_NOTEBOOK_BYTES + 1)
                budget.bytes -= len(data)
                if len(data) > limits.MAX_NOTEBOOK_BYTES:
                    raise _Refused(_too_large(None, unpacked=True))
            except _Refused as exc:
                yield _skipped(where, inside, str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - a damaged member is reported, never fatal
                yield _skipped(where, inside, f"cannot be unpacked ({_short(exc)}): the archive is damaged; "
                                              "download or export it again")
                continue
            when, source = times.zip_member_time(info, archive_mtime)
            yield Candidate(where, inside, data, time=when, time_from=source)


def _from_exchange(inbound: _Dir, budget: _Budget) -> Iterator[Candidate]:
    """The latest submission of each student and assignment in an nbgrader exchange's inbound."""
    latest: dict[tuple[str, str], tuple[str, str, os.stat_result]] = {}
    try:
        names = inbound.names(budget.files)
    except OSError as exc:
        yield _skipped(inbound.path, "", _unreadable(exc, "folder"))
        return
    for name in names:
        if not budget.take():
            yield budget.stop(inbound.path / name)
            return
        match = EXCHANGE_ENTRY.fullmatch(name)
        if not match:
            continue
        try:
            seen = inbound.lstat(name)
        except OSError as exc:
            yield _skipped(inbound.path / name, "", _unreadable(exc, "folder"))
            continue
        if not (stat.S_ISDIR(seen.st_mode) or stat.S_ISLNK(seen.st_mode)):
            continue  # a file beside the entries, as before
        problem = _entry_problem(match["student"], match["assignment"], name.split("+", 2)[2])
        if problem:
            student = match["student"] if STUDENT_ID.fullmatch(match["student"]) else None
            yield _skipped(inbound.path / name, "", problem, student)
            continue
        key = (match["student"], match["assignment"])
        if key not in latest or match["timestamp"] > latest[key][0]:
            latest[key] = (match["timestamp"], name, seen)
    for (student, assignment), (stamp, name, seen) in sorted(latest.items()):
        path = inbound.path / name
        if stat.S_ISLNK(seen.st_mode):
            yield _skipped(path, f"{student}/", "this exchange entry " + _link(path, inbound.readlink(name)),
                           student, assignment)
            continue
        try:
            entry = inbound.sub(name, seen)
        except _Refused as exc:
            yield _skipped(path, f"{student}/", str(exc), student, assignment)
            continue
        except OSError as exc:
            yield _skipped(path, f"{student}/", _unreadable(exc, "folder"), student, assignment)
            continue
        try:
            for candidate in _from_entry(entry, student, assignment, budget, times.parse(stamp)):
                yield candidate
                if budget.stopped:
                    return
        finally:
            entry.close()


def _from_entry(entry: _Dir, student: str, assignment: str, budget: _Budget,
                stamp: datetime.datetime | None = None) -> Iterator[Candidate]:
    """The notebooks in one exchange entry (not in folders below it), handed in at ``stamp``
    (the time in the entry's name; when it cannot be read, the file's own time)."""
    try:
        names = entry.names(budget.files)
    except OSError as exc:
        yield _skipped(entry.path, f"{student}/", _unreadable(exc, "folder"), student, assignment)
        return
    for name in names:
        path, relative = entry.path / name, f"{student}/{name}"
        if not budget.take():
            yield budget.stop(path)
            return
        if not name.endswith(".ipynb"):
            continue
        try:
            problem = _bad_name(name)
            if problem:
                raise _Refused(problem)
            seen = entry.lstat(name)
            data = _read(entry, name, seen, budget)
        except _Refused as exc:
            yield _skipped(path, relative, str(exc), student, assignment)
            continue
        except OSError as exc:
            yield _skipped(path, relative, _unreadable(exc), student, assignment)
            continue
        yield Candidate(str(path), relative, data, student, assignment,
                        time=stamp or times.from_epoch(seen.st_mtime),
                        time_from=times.FROM_EXCHANGE if stamp else times.FROM_FILE)


def _exchange_inbound(source: _Dir, course_id: str) -> _Dir | None:
    """The inbound folder of the nbgrader exchange at ``source`` (opened), if it is one."""
    for parts in ((*Path(course_id).parts, "inbound"), ("inbound",), ()):
        opened, here = [], source
        try:
            for part in parts:
                here = here.sub(part, here.lstat(part))
                opened.append(here)
            for name in here.names(limits.MAX_FILES):
                if EXCHANGE_ENTRY.fullmatch(name) and stat.S_ISDIR(here.lstat(name).st_mode):
                    for other in opened[:-1]:
                        other.close()
                    return here
        except (OSError, _Refused):
            pass
        for other in opened:
            other.close()
    return None


def _candidates(source: Path, course_id: str, budget: _Budget) -> Iterator[Candidate]:
    try:
        seen = os.stat(source)  # the instructor's own path: followed if it is a link
    except FileNotFoundError:
        raise WorkflowError(f"{source} does not exist") from None
    except OSError as exc:
        raise WorkflowError(f"cannot read {source}: {exc.strerror or exc}") from exc
    if stat.S_ISREG(seen.st_mode) and _suffix(source.name) in (".zip", ".ipynb"):
        yield from _from_file(_Dir(source.parent, None), source.name, seen, source.name, budget, follow=True)
        return
    if not stat.S_ISDIR(seen.st_mode):
        raise WorkflowError(f"{source} is neither a folder, a .zip archive nor an .ipynb notebook")
    try:
        folder = _Dir.source(source)
    except OSError as exc:
        raise WorkflowError(f"cannot read the folder {source}: {exc.strerror or exc}") from exc
    try:
        inbound = _exchange_inbound(folder, course_id)
        if inbound is None:
            yield from _from_folder(folder, "", 0, budget)
            return
        try:
            yield from _from_exchange(inbound, budget)
        finally:
            if inbound is not folder:
                inbound.close()
    finally:
        folder.close()
