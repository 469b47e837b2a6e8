"""Collect against untrusted input: every hostile source is built here, in tmp_path (links
to a fake master, named pipes, exchange entries with a line break or '..' in their names,
damaged nbgrader metadata, broken zips, zip bombs, zip members that climb out of the
archive, files over the size cap). For each: the bad item is reported and skipped with
a reason that names it, every good submission beside it is collected (the exact list),
collect returns normally, and nothing outside the workspace is written."""

import hashlib
import json
import os
import resource
import shutil
import signal
import stat
import struct
import zipfile
from pathlib import Path

import nbformat
import pytest

from grader.instructor import collect as collect_module
from grader.instructor.cli import main
from grader.instructor.collect import collect
from grader.instructor.workspace import Workspace

from helpers import A1, A5, Class, solutions

MIB = 1024 ** 2
SECRET = "zq-the-masters-secret-" + "41c7"  # in the fake master only


@pytest.fixture
def course(released, tmp_path):
    """A fresh copy of the released workspace, the sources' folder beside it, and a class."""
    ws = Workspace.at(tmp_path / "ws")
    shutil.copytree(released.root, ws.root)
    ws.prepare()  # points the copied config at the copy
    src = tmp_path / "src"
    src.mkdir()
    master = tmp_path / "instructor" / "masters"
    master.mkdir(parents=True)
    build = Class(ws)
    s1 = solutions(A1)
    s1["bce_vector_solution"] += f"\n# {SECRET}\n"
    (master / f"{A1}.ipynb").write_text(build.notebook(A1, s1))
    return ws, src, build, master / f"{A1}.ipynb"


@pytest.fixture(autouse=True)
def never_hang():
    """A read that blocks (a named pipe opened for reading) would hang the test: fail it instead."""
    def hung(*_):
        raise TimeoutError("collect hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def snapshot(root: Path, workspace: Path) -> dict:
    """Everything under ``root`` but the workspace, without following links or opening pipes."""
    found = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d != workspace]
        for name in dirs + files:
            path = here / name
            mode = os.lstat(path).st_mode
            found[str(path.relative_to(root))] = (
                ("file", _hash(path)) if stat.S_ISREG(mode) and os.access(path, os.R_OK)
                else ("link", os.readlink(path)) if stat.S_ISLNK(mode)
                else ("folder",) if stat.S_ISDIR(mode) else ("special", stat.S_IFMT(mode)))
    return found


def run(ws, sources, **options):
    """collect, checked to write nothing outside the workspace, to leave no staging folder
    behind, and never to put a file over the cap or the master's secret into it."""
    root = ws.root.parent
    before = snapshot(root, ws.root)
    report = collect(ws, [str(s) for s in sources], **options)
    assert snapshot(root, ws.root) == before
    assert not list(ws.root.glob(".collect-*"))
    for path in (ws.root / "submitted").rglob("*"):
        assert not path.is_symlink()
        if path.is_file():
            assert path.stat().st_size <= collect_module.MAX_NOTEBOOK_BYTES
            assert SECRET not in path.read_text(errors="replace")
    saved = json.loads((ws.root / "collect-report.json").read_text())
    assert saved == report.to_dict()
    return report


def collected(report):
    return sorted((c["student"], c["assignment"]) for c in report.collected)


def problem(report, name: str) -> str:
    """The one reason given for the item whose origin ends with ``name``."""
    hits = [p["problem"] for p in report.problems if p["origin"].endswith(name)]
    assert len(hits) == 1, (name, report.problems)
    return hits[0]


def entry(inbound: Path, student: str, assignment: str = A1, stamp: str = "2026-01-02 10:00:00.000000 UTC"):
    folder = inbound / f"{student}+{assignment}+{stamp}"
    folder.mkdir(parents=True)
    return folder


# --- links, pipes, devices -------------------------------------------------------------------

def test_links_in_folders_are_never_followed(course):
    ws, src, build, master = course
    (src / f"alice_{A1}.ipynb").write_text(build.notebook(A1))
    (src / f"bob_{A1}.ipynb").symlink_to(master)                       # a link to the master
    (src / "carol").symlink_to(master.parent, target_is_directory=True)  # carol/01-bce-vector.ipynb, if followed
    (src / "dave").mkdir()
    (src / "dave" / f"{A1}.ipynb").symlink_to(master)
    with zipfile.ZipFile(master.parent / "export.zip", "w") as z:
        z.writestr(f"erin/{A1}.ipynb", master.read_text())
    (src / "linked.zip").symlink_to(master.parent / "export.zip")
    (src / f"frank_{A1}.ipynb").symlink_to(src / "nowhere.ipynb")     # a dangling link

    report = run(ws, [src])
    assert collected(report) == [("alice", A1)]
    for name in (f"bob_{A1}.ipynb", "carol", f"dave/{A1}.ipynb", "linked.zip", f"frank_{A1}.ipynb"):
        assert "is a link" in problem(report, name) and "never follows links" in problem(report, name), name
    assert str(master) in problem(report, f"bob_{A1}.ipynb")  # the teacher sees where it pointed
    by_student = {p.get("student"): p for p in report.problems}
    assert by_student["bob"]["assignment"] == A1  # the summary can say why bob has no score


def test_links_in_an_exchange_are_never_followed(course):
    ws, src, build, master = course
    inbound = src / "exchange" / "bce-course" / "inbound"
    (entry(inbound, "peggy") / f"{A1}.ipynb").write_text(build.notebook(A1))
    (entry(inbound, "eve") / f"{A1}.ipynb").symlink_to(master)        # the tester's case
    elsewhere = src.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{A1}.ipynb").write_text(master.read_text())
    (inbound / f"trudy+{A1}+2026-01-02 10:00:00.000000 UTC").symlink_to(elsewhere, target_is_directory=True)
    (entry(inbound, "victor") / f"{A1}.ipynb").mkdir()                # a folder named like a notebook

    report = run(ws, [src / "exchange"])
    assert collected(report) == [("peggy", A1)]
    assert "is a link" in problem(report, f"eve+{A1}+2026-01-02 10:00:00.000000 UTC/{A1}.ipynb")
    assert "exchange entry is a link" in problem(report, f"trudy+{A1}+2026-01-02 10:00:00.000000 UTC")
    assert "is a folder, not a file" in problem(report, f"victor+{A1}+2026-01-02 10:00:00.000000 UTC/{A1}.ipynb")
    assert {(p.get("student"), p.get("assignment")) for p in report.problems} == {
        ("eve", A1), ("trudy", A1), ("victor", A1)}
    assert not ws.submitted("eve", A1).exists()


def test_pipes_are_never_opened(course):
    ws, src, build, _ = course
    (src / f"alice_{A1}.ipynb").write_text(build.notebook(A1))
    os.mkfifo(src / f"mallory_{A1}.ipynb")
    os.mkfifo(src / "pipe.zip")
    os.mkfifo(src / "notes")
    inbound = src / "ex" / "inbound"
    os.mkfifo(entry(inbound, "oscar") / f"{A1}.ipynb")
    (entry(inbound, "peggy") / f"{A1}.ipynb").write_text(build.notebook(A1))

    report = run(ws, [src / "ex"])  # an exchange
    assert collected(report) == [("peggy", A1)]
    assert "is a named pipe (FIFO), not a file: skipped without opening it" in problem(
        report, f"oscar+{A1}+2026-01-02 10:00:00.000000 UTC/{A1}.ipynb")
    shutil.rmtree(src / "ex")
    report = run(ws, [src])  # a folder
    assert collected(report) == [("alice", A1)]
    for name in (f"mallory_{A1}.ipynb", "pipe.zip", "notes"):
        assert "named pipe (FIFO)" in problem(report, name), name


# --- names -------------------------------------------------------------------------------------

def test_exchange_entry_names_must_be_whole_ids(course):
    ws, src, build, _ = course
    inbound = src / "bce-course" / "inbound"
    for student in ("eve\n", "..", ".", "-x", "bob\t"):
        (entry(inbound, student) / f"{A1}.ipynb").write_text(build.notebook(A1))
    (entry(inbound, "frank", "..") / f"{A1}.ipynb").write_text(build.notebook(A1))
    (entry(inbound, "heidi", A1, "2026\n") / f"{A1}.ipynb").write_text(build.notebook(A1))
    (entry(inbound, "grace") / f"{A1}.ipynb").write_text(build.notebook(A1))
    (entry(inbound, "ivan") / f"{A1}\n.ipynb").write_text(build.notebook(A1))
    (entry(inbound, "judy") / f"{A1}\u202e.ipynb").write_text(build.notebook(A1))  # right-to-left override

    report = run(ws, [src])
    assert collected(report) == [("grace", A1)]
    assert sorted(p.name for p in (ws.root / "submitted").iterdir()) == ["grace"]
    stamp = "+2026-01-02 10:00:00.000000 UTC"
    assert "'eve\\n', which cannot be a student id" in problem(report, f"eve\\n+{A1}{stamp}")
    for student in ("..", ".", "-x", "bob\\t"):
        assert "cannot be a student id" in problem(report, f"/{student}+{A1}{stamp}"), student
    assert "'..' is not a name" in problem(report, f"frank+..{stamp}")
    assert "control character" in problem(report, f"heidi+{A1}+2026\\n")
    assert "control character" in problem(report, f"ivan+{A1}{stamp}/{A1}\\n.ipynb")
    assert "control character" in problem(report, f"judy+{A1}{stamp}/{A1}\\u202e.ipynb")
    # every origin can be printed on one line
    assert all("\n" not in p["origin"] and "\t" not in p["origin"] for p in report.problems)


def test_zip_members_cannot_climb_out(course, tmp_path):
    ws, src, build, _ = course
    archive = src / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"bob/{A1}.ipynb", build.notebook(A1))
        z.writestr(f"./carol/{A1}.ipynb", build.notebook(A1))
        z.writestr("../../evil.ipynb", build.notebook(A1))
        z.writestr("/abs.ipynb", build.notebook(A1))
        z.writestr(f"../eve_{A1}.ipynb", build.notebook(A1))
        z.writestr(f"dave/../../{A1}.ipynb", build.notebook(A1))
        z.writestr(f"frank\\..\\..\\{A1}.ipynb", build.notebook(A1))
        z.writestr(f"grace\n/{A1}.ipynb", build.notebook(A1))
        z.writestr(f"C:/heidi/{A1}.ipynb", build.notebook(A1))
    report = run(ws, [archive])
    assert collected(report) == [("bob", A1), ("carol", A1)]
    for name in ("../../evil.ipynb", f"../eve_{A1}.ipynb", f"dave/../../{A1}.ipynb", f"frank\\..\\..\\{A1}.ipynb"):
        assert "climbs out of the archive" in problem(report, f"export.zip:{name}"), name
    assert "is absolute" in problem(report, "export.zip:/abs.ipynb")
    assert "is absolute" in problem(report, f"export.zip:C:/heidi/{A1}.ipynb")
    assert "control character" in problem(report, f"export.zip:grace\\n/{A1}.ipynb")
    assert not list(tmp_path.rglob("evil.ipynb")) and not list(tmp_path.rglob("abs.ipynb"))


# --- damaged notebooks and archives ------------------------------------------------------------

def deeply_nested(levels: int) -> dict:
    nested: dict = {}
    for _ in range(levels):
        nested = {"a": nested}
    return nested


def damaged(build, change) -> str:
    nb = json.loads(build.notebook(A1))
    change(next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id")))
    return json.dumps(nb)


def test_damaged_metadata_is_reported_and_the_rest_collected(course):
    ws, src, build, _ = course
    (src / f"alice_{A1}.ipynb").write_text(build.notebook(A1))
    (src / f"bob_{A5}.ipynb").write_text(build.notebook(A5))
    (src / f"ivan_{A1}.ipynb").write_text(damaged(build, lambda c: c["metadata"].update(nbgrader="not a dict")))
    (src / f"judy_{A1}.ipynb").write_text(damaged(build, lambda c: c.update(metadata=["a", "list"])))
    (src / f"ken_{A1}.ipynb").write_text(damaged(build, lambda c: c["metadata"]["nbgrader"].update(grade_id=7)))
    (src / f"leo_{A1}.ipynb").write_text(damaged(build, lambda c: c["metadata"]["nbgrader"].update(points="ten")))
    (src / f"mia_{A1}.ipynb").write_text(json.dumps({**json.loads(build.notebook(A1)), "cells": {"a": 1}}))
    (src / f"ned_{A1}.ipynb").write_bytes(b"\xff\xfe\x00garbage")
    (src / f"olga_{A1}.ipynb").write_text("[" * 100_000)  # nesting deep enough to break a recursive parser
    (src / f"pia_{A1}.ipynb").write_text(damaged(build, lambda c: c["metadata"].update(deep=deeply_nested(700))))
    # readable here, where the stack is shallow, but not in nbgrader's deeper one as it grades
    (src / f"quinn_{A1}.ipynb").write_text(damaged(build, lambda c: c["metadata"].update(deep=deeply_nested(480))))
    # deeper than any notebook (the course's have 7 levels), but gradable: the limit has a margin
    (src / f"rosa_{A1}.ipynb").write_text(damaged(build, lambda c: c["metadata"].update(deep=deeply_nested(80))))
    (src / "readme.txt").write_text("not a notebook, not considered")

    report = run(ws, [src])
    assert collected(report) == [("alice", A1), ("bob", A5), ("rosa", A1)]
    assert "nbgrader metadata of its cell" in problem(report, f"ivan_{A1}.ipynb")
    assert "is a text ('not a dict')" in problem(report, f"ivan_{A1}.ipynb")
    assert "fresh copy of the assignment" in problem(report, f"ivan_{A1}.ipynb")
    assert "metadata of its cell" in problem(report, f"judy_{A1}.ipynb")
    assert "'grade_id' = a number" in problem(report, f"ken_{A1}.ipynb")
    assert "'points' = a text" in problem(report, f"leo_{A1}.ipynb")
    assert "list of cells is a dictionary" in problem(report, f"mia_{A1}.ipynb")
    assert "not a Jupyter notebook" in problem(report, f"ned_{A1}.ipynb") or \
        "invalid JSON" in problem(report, f"ned_{A1}.ipynb")
    for name in (f"olga_{A1}.ipynb", f"pia_{A1}.ipynb", f"quinn_{A1}.ipynb"):
        assert problem(report, name).startswith("nested too deeply to grade"), problem(report, name)
        assert "more than 100 levels deep" in problem(report, name) and "fresh copy of the assignment" in problem(report, name)
    assert {p["student"] for p in report.problems} == {"ivan", "judy", "ken", "leo", "mia", "ned", "olga", "pia", "quinn"}


def test_broken_zips_beside_good_notebooks(course, capsys):
    ws, src, build, _ = course
    (src / f"alice_{A1}.ipynb").write_text(build.notebook(A1))
    good = src / "good.zip"
    with zipfile.ZipFile(good, "w") as z:
        z.writestr(f"bob/{A1}.ipynb", build.notebook(A1))
    broken = bytearray(good.read_bytes())
    central = broken.rfind(b"PK\x01\x02")
    broken[central:central + 2] = b"XX"  # its central directory (table of contents) damaged
    (src / "broken.zip").write_bytes(bytes(broken))
    (src / "truncated.zip").write_bytes(good.read_bytes()[:60])
    (src / "text.zip").write_text("This is not an archive.\n")
    with zipfile.ZipFile(src / "crc.zip", "w") as z:
        z.writestr(f"carol/{A1}.ipynb", build.notebook(A1))
        z.writestr(f"dave/{A1}.ipynb", build.notebook(A1))
    data = bytearray((src / "crc.zip").read_bytes())
    start = data.find(b"PK\x03\x04") + 30 + len(f"carol/{A1}.ipynb")
    data[start + 100] ^= 0xFF  # carol's member damaged, dave's intact
    (src / "crc.zip").write_bytes(bytes(data))
    loose = src.parent / "loose-broken.zip"  # a broken archive given as a SOURCE itself
    loose.write_bytes(bytes(broken))

    report = run(ws, [loose, src])
    assert collected(report) == [("alice", A1), ("bob", A1), ("dave", A1)]
    for name in ("/broken.zip", "/truncated.zip", "/text.zip", "/loose-broken.zip"):
        assert "is not a readable zip archive" in problem(report, name), name
    assert "cannot be unpacked" in problem(report, f"crc.zip:carol/{A1}.ipynb")

    # the command line says so and exits 1 (something skipped), not 2 (could not run)
    assert main(["collect", str(loose), str(src), "--workspace", str(ws.root)]) == 1
    out = capsys.readouterr().out
    assert f"SKIPPED   {loose}: is not a readable zip archive" in out
    assert "3 collected, 5 skipped" in out


# --- sizes -----------------------------------------------------------------------------------

def bomb(path: Path, members: dict[str, int], extra: dict[str, str] | None = None) -> None:
    """A zip whose members (name: size) are zeros, deflated, written a MiB at a time."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, size in members.items():
            with z.open(name, "w") as f:
                for _ in range(size // MIB):
                    f.write(bytes(MIB))
        for name, text in (extra or {}).items():
            z.writestr(name, text)


def test_zip_bombs_are_refused_without_unpacking(course, monkeypatch):
    ws, src, build, _ = course
    archive = src / "export.zip"
    bomb(archive, {f"mallory/{A1}.ipynb": 64 * MIB, f"trudy/{A1}.ipynb": 8 * MIB},
         {f"alice/{A1}.ipynb": build.notebook(A1), f"alice/{A5}.ipynb": build.notebook(A5)})
    assert archive.stat().st_size < 1 * MIB
    # a member whose table of contents lies about its size (says 1000 bytes, holds 64 MiB)
    liar = src / "liar.zip"
    bomb(liar, {f"victor/{A1}.ipynb": 64 * MIB}, {f"bob/{A1}.ipynb": build.notebook(A1)})
    data = bytearray(liar.read_bytes())
    central = next(i for i in range(len(data)) if data.startswith(b"PK\x01\x02", i)
                   and data.startswith(f"victor/{A1}.ipynb".encode(), i + 46))
    data[central + 24:central + 28] = struct.pack("<L", 1000)
    liar.write_bytes(bytes(data))

    unpacked = []
    read = zipfile.ZipExtFile.read
    monkeypatch.setattr(zipfile.ZipExtFile, "read", lambda self, n=-1: unpacked.append(read(self, n)) or unpacked[-1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    report = run(ws, [src])
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200 * 1024
    assert sum(map(len, unpacked)) < 1 * MIB  # the good notebooks and the liar's 1000 bytes, nothing more
    assert collected(report) == [("alice", A1), ("alice", A5), ("bob", A1)]
    too_big = problem(report, f"export.zip:mallory/{A1}.ipynb")
    assert "unpacks to 64.0 MiB, more than the 32.0 MiB a notebook may have" in too_big
    assert "skipped without unpacking it" in too_big
    ratio = problem(report, f"export.zip:trudy/{A1}.ipynb")
    assert "zip bomb" in ratio and "skipped without unpacking it" in ratio
    assert "cannot be unpacked" in problem(report, f"liar.zip:victor/{A1}.ipynb")  # read 1000 bytes, no more


def test_files_over_the_cap_are_refused(course, monkeypatch):
    ws, src, build, _ = course
    (src / f"alice_{A1}.ipynb").write_text(build.notebook(A1))
    with (src / f"oscar_{A1}.ipynb").open("wb") as f:  # sparse: refused from its size, never read
        f.truncate(collect_module.MAX_NOTEBOOK_BYTES + 1)
    report = run(ws, [src])
    assert collected(report) == [("alice", A1)]
    assert "is 33,554,433 bytes, more than the 32.0 MiB a notebook may have" in problem(report, f"oscar_{A1}.ipynb")
    assert "Clear all outputs" in problem(report, f"oscar_{A1}.ipynb")

    # a smaller cap (a module constant), for files, zip members and a notebook given as a SOURCE
    small = len(build.notebook(A1)) + 100
    monkeypatch.setattr(collect_module, "MAX_NOTEBOOK_BYTES", small)
    (src / f"oscar_{A1}.ipynb").unlink()
    big = build.notebook(A1, {"bce_vector_solution": "x = 1\n" + "# padding\n" * 1000})
    (src / f"peggy_{A1}.ipynb").write_text(big)
    with zipfile.ZipFile(src / "export.zip", "w") as z:
        z.writestr(f"quinn/{A1}.ipynb", big)
        z.writestr(f"bob/{A1}.ipynb", build.notebook(A1))
    loose = src.parent / f"rupert_{A1}.ipynb"
    loose.write_text(big)
    report = run(ws, [src, loose])
    assert collected(report) == [("alice", A1), ("bob", A1)]
    for name in (f"peggy_{A1}.ipynb", f"export.zip:quinn/{A1}.ipynb", f"rupert_{A1}.ipynb"):
        assert "a notebook may have (MAX_NOTEBOOK_BYTES" in problem(report, name), name


def test_huge_trees_are_cut_short(course, monkeypatch):
    ws, src, build, _ = course
    (src / f"alice_{A1}.ipynb").write_text(build.notebook(A1))
    for n in range(60):
        (src / "zz-many" / f"{n:03}").mkdir(parents=True)
    deep = src / "deep"
    for _ in range(12):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / f"bob_{A1}.ipynb").write_text(build.notebook(A1))
    monkeypatch.setattr(collect_module, "MAX_FILES", 40)
    monkeypatch.setattr(collect_module, "MAX_DEPTH", 5)
    report = run(ws, [src])
    assert collected(report) == [("alice", A1)]
    assert "nested more than 5 folders deep" in problem(report, "deep/d/d/d/d/d")
    stopped = [p for p in report.problems if "collect stopped looking here" in p["problem"]]
    assert len(stopped) == 1 and "more than 40 files and folders (MAX_FILES)" in stopped[0]["problem"]
    assert "zz-many" in stopped[0]["origin"]


def test_unreadable_files_are_reported(course, monkeypatch):
    ws, src, build, _ = course
    (src / f"alice_{A1}.ipynb").write_text(build.notebook(A1))
    locked = src / f"bob_{A1}.ipynb"
    locked.write_text(build.notebook(A1))
    (src / "carol").mkdir()
    (src / "carol" / f"{A1}.ipynb").write_text(build.notebook(A1))
    real_open = os.open

    def deny(path, *args, **kwargs):  # what chmod 0 does, also for root (who reads anything)
        if os.path.basename(path) in (locked.name, "carol"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    report = run(ws, [src])
    assert collected(report) == [("alice", A1)]
    assert "cannot be read (permission denied)" in problem(report, f"bob_{A1}.ipynb")
    assert "this folder cannot be read (permission denied)" in problem(report, "carol")


def test_good_sources_still_collect_as_before(course):
    """The hardening changes nothing for honest sources: a folder, a zip, a notebook given
    as a SOURCE, an exchange (its latest entry), and collecting again."""
    ws, src, build, _ = course
    (src / f"alice_{A1}.ipynb").write_text(build.notebook(A1))
    (src / "bob").mkdir()
    (src / "bob" / f"{A5}.ipynb").write_text(build.notebook(A5))
    (src / ".ipynb_checkpoints").mkdir()
    (src / ".ipynb_checkpoints" / f"zed_{A1}.ipynb").write_text("ignored")
    with zipfile.ZipFile(src.parent / "lms.zip", "w") as z:
        z.writestr(f"carol/{A1}.ipynb", build.notebook(A1))
        z.writestr(f"__MACOSX/carol/._{A1}.ipynb", "ignored")
    loose = src.parent / f"dave_{A1}.ipynb"
    loose.write_text(build.notebook(A1))
    inbound = src.parent / "exchange" / "inbound"
    (entry(inbound, "erin", A1, "2026-01-01 10:00:00.000000 UTC") / f"{A1}.ipynb").write_text("old")
    (entry(inbound, "erin") / f"{A1}.ipynb").write_text(build.notebook(A1))
    sources = [src, src.parent / "lms.zip", loose, src.parent / "exchange"]
    report = run(ws, sources)
    assert collected(report) == [("alice", A1), ("bob", A5), ("carol", A1), ("dave", A1), ("erin", A1)]
    assert report.problems == []
    assert {c["status"] for c in report.collected} == {"new"}
    assert nbformat.reads(ws.submitted("bob", A5).read_text(), as_version=4).cells
    assert {c["status"] for c in run(ws, sources).collected} == {"unchanged"}
