"""Where a notebook's autograding time goes: the warm engine's workers profiled.

Builds the class of benchmarks/autograde.py (STUDENTS students, every notebook, the same mix of
answers), autogrades it with the warm engine with $BCE_ENGINE_PROFILE set (each worker then
profiles every notebook it grades with cProfile: grader/instructor/engine/pool.py), and prints,
per notebook on average, in seconds of the worker that graded it:

* the whole of it (nbgrader's autograde of one submission);
* running the notebook (``execute``), split into waiting for the notebook's process to run its
  cells, waiting for it to answer the judge's requests, the judge's own work, the scan, and the
  rest (starting the process, copying its folder, filling in outputs);
* nbgrader's part around it (reading and writing the notebook, the gradebook, its preprocessors);

then the functions that took most time themselves (tottime), waiting on the process left out.
The notebook's process is another process: its time shows here as waiting for it. So the
processor time of the notebook's process, measured from outside (by the kernel's count, not under
cProfile: grader/instructor/engine/profiling.py), follows: its cells, its answers to the judge,
per kind of student and assignment, and the cells that took most of it.

    python benchmarks/notebook_profile.py [--students 12] [--jobs N] [--top 30] [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import os
import pstats
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from autograde import KINDS, build_class, edited  # noqa: E402

from grader.instructor.engine.execute import Channel  # noqa: E402
from grader.instructor.engine.pool import PROFILE  # noqa: E402
from grader.instructor.grading import autograde  # noqa: E402
from grader.instructor.workspace import Workspace, release_course  # noqa: E402


#: The line of Channel.ask: the judge's requests to the notebook's process (execute.py has other
#: functions named ask).
ASK = Channel.ask.__code__.co_firstlineno


def _find(stats: pstats.Stats, filename_end: str, name: str) -> list:
    return [key for key in stats.stats if key[0].endswith(filename_end) and key[2] == name]


def cumulative(stats: pstats.Stats, filename_end: str, name: str, line: int | None = None) -> float:
    """The cumulative time of the function ``name`` of the file ending ``filename_end`` (all of
    its definitions there, e.g. methods of one name, unless ``line`` says which)."""
    return sum(stats.stats[key][3] for key in _find(stats, filename_end, name) if line in (None, key[1]))


def through(stats: pstats.Stats, callee: tuple[str, str], caller: tuple[str, str]) -> float:
    """The cumulative time of ``callee`` when called by ``caller`` (each (file ending, name))."""
    total = 0.0
    for key in _find(stats, *callee):
        for by, (_, _, _, ct) in stats.stats[key][4].items():
            if by[0].endswith(caller[0]) and by[2] == caller[1]:
                total += ct
    return total


def waiting_for_cells(stats: pstats.Stats) -> float:
    """The time ``execute.listen`` waited for the notebook's process to send its cells' outputs
    (``Channel.next``, which the worker measures through ``profiling``'s wrapper)."""
    return through(stats, ("engine/execute.py", "next"), ("engine/execute.py", "listen")) \
        + through(stats, ("engine/profiling.py", "timed_next"), ("engine/execute.py", "listen"))


def report(stats: pstats.Stats, notebooks: int, top: int) -> None:
    per = 1.0 / notebooks
    whole = cumulative(stats, "engine/pool.py", "_grade")
    execute = cumulative(stats, "engine/execute.py", "execute")
    cells = waiting_for_cells(stats)
    asked = cumulative(stats, "engine/execute.py", "ask", ASK)
    judged = cumulative(stats, "instructor/verdict.py", "judge_test_cell")
    scanned = cumulative(stats, "scan/__init__.py", "__init__") + cumulative(stats, "scan/__init__.py", "suspicious") \
        + cumulative(stats, "scan/__init__.py", "torch_losses")
    rows = [
        ("the whole notebook (nbgrader's autograde of it)", whole),
        ("  running it (execute)", execute),
        ("    waiting for its process to run its cells", cells),
        ("    waiting for its process to answer the judge", asked),
        ("    the judge's own work (the checks, torch's side, the verdicts)", judged - asked),
        ("    the scan (tampering, own work)", scanned),
        ("    the rest (starting the process, its folder, the outputs)", execute - cells - judged - scanned),
        ("  nbgrader around it (reading, preprocessors, writing, the gradebook)", whole - execute),
    ]
    print(f"per notebook, average of {notebooks}:")
    for name, seconds in rows:
        print(f"  {name:72s} {1000 * seconds * per:8.1f} ms  {100 * seconds / whole:5.1f} %")
    waits = {key for key in stats.stats if key[2] in ("select", "<built-in method select.select>")
             or "select.select" in key[2] or "method 'acquire'" in key[2] or key[2] == "sleep"}
    print(f"\nthe {top} functions that took most time themselves (waiting on the process left out):")
    ranked = sorted((v[2], k) for k, v in stats.stats.items() if k not in waits)[::-1][:top]
    for tottime, (filename, line, name) in ranked:
        where = filename.split("site-packages/")[-1].split("/work/")[-1] if filename != "~" else ""
        print(f"  {1000 * tottime * per:8.2f} ms  {name}  {where}:{line}" if where else
              f"  {1000 * tottime * per:8.2f} ms  {name}")


def by_assignment(files: list[Path]) -> None:
    """Per assignment: the whole notebook, waiting for its cells, waiting for its answers, on average."""
    found: dict = {}
    for path in files:
        stats = pstats.Stats(str(path))
        assignment = path.stem.split("-", 1)[1]
        row = found.setdefault(assignment, [0, 0.0, 0.0, 0.0])
        row[0] += 1
        row[1] += cumulative(stats, "engine/pool.py", "_grade")
        row[2] += waiting_for_cells(stats)
        row[3] += cumulative(stats, "engine/execute.py", "ask", ASK)
    print("\nper assignment, average per notebook:  whole / waiting for its cells / waiting for its answers")
    for assignment, (count, whole, cells, asked) in sorted(found.items()):
        print(f"  {assignment:24s} {count:3d} notebooks  {1000 * whole / count:7.1f} / {1000 * cells / count:7.1f} / "
              f"{1000 * asked / count:7.1f} ms")


def kind(student: str) -> str:
    """The kind of answers benchmarks/autograde.py's build_class gave ``student``."""
    number = int(student[len("student"):])
    return KINDS[number % len(KINDS)] + (", edited" if edited(number) else "")


def process_time(files: list[Path], released: dict[str, Path], top: int) -> None:
    """The notebook's processes' processor time, from the .cpu.json beside each profile."""
    import json

    import nbformat

    rows, cells = [], {}
    for path in files:
        measured = json.loads(path.with_suffix("").with_suffix(".cpu.json").read_text())
        student, assignment = path.stem.split("-", 1)
        ran = {int(k): v for k, v in measured["cells"].items()}
        first = measured["first"]
        rows.append((kind(student), assignment, sum(ran.values()), ran.get(first, 0.0), measured["answers"],
                     measured["requests"]))
        for index, seconds in ran.items():
            if index != first:
                cells.setdefault((assignment, index), []).append(seconds)
    count = len(rows)
    total = sum(r[2] + r[4] for r in rows)
    print(f"\nthe notebook's process, processor time per notebook (average of {count}, outside cProfile):")
    for name, seconds in [("all of it (the time after its last message left out)", total),
                          ("  its cells", sum(r[2] for r in rows)),
                          ("    of which the first cell it ran, with the process's start", sum(r[3] for r in rows)),
                          ("  answering the judge's requests", sum(r[4] for r in rows))]:
        print(f"  {name:72s} {1000 * seconds / count:8.1f} ms  {100 * seconds / total:5.1f} %")
    print(f"  {'requests answered':72s} {sum(r[5] for r in rows) / count:8.1f}")
    assignments = sorted({r[1] for r in rows})
    print("\nits cells / its answers, ms per notebook, by kind of student:")
    print(" " * 22 + "".join(f"{a[:2]:>14}" for a in assignments))
    for k in sorted({r[0] for r in rows}, key=lambda k: (KINDS.index(k.split(",")[0]), k)):
        line = f"  {k:20s}"
        for a in assignments:
            mine = [r for r in rows if r[0] == k and r[1] == a]
            line += (f"{1000 * sum(r[2] for r in mine) / len(mine):8.0f} /{1000 * sum(r[4] for r in mine) / len(mine):4.0f}"
                     if mine else f"{'-':>14}")
        print(line)
    print(f"\nthe {top} cells (first cells run left out) that took most processor time in all:")
    sources = {a: nbformat.read(p, as_version=4) for a, p in released.items()}
    for (assignment, index), times in sorted(cells.items(), key=lambda kv: -sum(kv[1]))[:top]:
        nb = sources.get(assignment)
        first_line = nb.cells[index].source.strip().splitlines()[0][:60] if nb and index < len(nb.cells) \
            and nb.cells[index].source.strip() else ""
        print(f"  {1000 * sum(times) / count:7.1f} ms per notebook  {assignment[:2]} cell {index + 1:3d}, "
              f"{len(times):3d} runs of {1000 * sum(times) / len(times):6.1f} ms  {first_line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--keep", type=Path, default=None,
                        help="a folder to copy the profiles to, one per notebook, for pstats")
    args = parser.parse_args()
    import secrets
    import warnings

    from sqlalchemy.exc import SAWarning

    from grader._battery import salt

    warnings.filterwarnings("ignore", category=SAWarning)
    os.environ.setdefault(salt.VARIABLE, secrets.token_hex(16))
    with tempfile.TemporaryDirectory(prefix="bce-profile-") as tmp:
        workspace = Workspace.at(Path(tmp) / "class")
        release_course(workspace, Path(tmp) / "notebooks")
        notebooks = build_class(workspace, args.students)
        folder = Path(tmp) / "profiles"
        folder.mkdir()
        os.environ[PROFILE] = str(folder)
        try:
            autograde(workspace, engine="warm", jobs=args.jobs, progress=False)
        finally:
            del os.environ[PROFILE]
        files = sorted(folder.glob("*.prof"))
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in folder.iterdir():
                shutil.copy(path, args.keep / path.name)
        print(f"{args.students} students, {notebooks} notebooks, {len(files)} profiled, {os.cpu_count()} cores\n")
        if not files:
            print("no profile was written")
            return 1
        report(pstats.Stats(*map(str, files)), len(files), args.top)
        by_assignment(files)
        process_time(files, workspace.released(), args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
