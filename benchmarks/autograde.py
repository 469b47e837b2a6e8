"""Autograde a class both ways in the same run: plain nbgrader against the warm engine.

Builds a class of STUDENTS students (default 40), each handing in every course
notebook, with a mix of answers (all correct, only the first exercise, blank, a
mistake; and one student in five has also changed a cell of the notebook's
explanations, so that their notebooks run whole), grades it with `--engine nbgrader`
and with `--engine warm` in two copies of the same workspace, checks that both give
the same score to every cell (where they do not, it prints those cells and keeps their
autograded notebooks in a folder it names, and exits with 1), and prints:

* both times, notebooks per second and the ratio (the target: at least 30 times);
* what a class of 200 students with every notebook would take with the warm engine,
  in proportion to this class's time, start-up included (the target: under 3 minutes);
* one student's one notebook graded alone, both ways (the engine's start-up must not
  make it slower than plain nbgrader), as a command in a fresh Python (as an instructor
  runs it) and from this process (where plain nbgrader finds its modules imported);
* what the sandbox costs: a third copy of the class graded by the warm engine without
  it (grader.instructor.engine.sandbox; the verdicts are still the judge's, taken
  outside the notebook's process), and every solved notebook run with and without it,
  interleaved (the target: under 20 %).

Every run grades with one autograding secret (grader._battery.salt), given as
$BCE_GRADER_SALT: the warm engine is handed it, plain nbgrader's kernels inherit it, so
both draw the same inputs.

    python benchmarks/autograde.py [--students 40] [--jobs N] [--single NOTEBOOK]
                                   [--warm-only] [--no-sandbox-cost]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nbformat  # noqa: E402

from grader._battery import salt  # noqa: E402
from grader.instructor import release  # noqa: E402
from grader.instructor.grading import autograde  # noqa: E402
from grader.instructor.workspace import Workspace, release_course  # noqa: E402


#: The kinds of answers in the class, in turn, student by student.
KINDS = ("correct", "first only", "blank", "mistake")


def edited(number: int) -> bool:
    """Whether student ``number`` also changed a cell of the notebooks' explanations."""
    return number % 5 == 4


def build_class(workspace: Workspace, students: int) -> int:
    released = {a: nbformat.read(p, as_version=4) for a, p in workspace.released().items()}
    count = 0
    for number in range(students):
        student = f"student{number:03d}"
        kind = KINDS[number % len(KINDS)]
        for assignment, nb in released.items():
            answers = release.master_solutions(assignment)
            if kind == "first only":
                answers = dict(list(answers.items())[:1])
            elif kind == "blank":
                answers = {}
            elif kind == "mistake":
                answers = {k: v.replace("-100", "-1e9").replace("logsigmoid", "log_softmax") for k, v in answers.items()}
            copy = nbformat.from_dict(nb)
            for cell in copy.cells:
                grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                if grade_id in answers:
                    cell.source = answers[grade_id]
            if edited(number):  # tried something in the first cell of the explanations
                code = [c for c in copy.cells if c.cell_type == "code" and "nbgrader" not in c.get("metadata", {})]
                code[0].source += "\nprint('trying something')"
            target = workspace.submitted(student, assignment)
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(copy, target)
            count += 1
    return count


def scores(workspace: Workspace) -> dict:
    with workspace.gradebook() as gb:
        return {(g.student.id, g.assignment.name, g.name): g.score
                for a in gb.assignments for sub in gb.assignment_submissions(a.name)
                for nb in sub.notebooks for g in nb.grades}


def differences(first: dict, second: dict, names: tuple[str, str], keep: list[Workspace]) -> bool:
    """Whether two runs' scores are identical. Where they are not, print every cell whose score
    differs (or that only one run graded) and keep both runs' autograded notebooks of those
    students and assignments in a folder that outlives this run, for the cells' outputs."""
    differ = sorted(k for k in first.keys() | second.keys() if first.get(k) != second.get(k))
    if not differ:
        return True
    kept = Path(tempfile.mkdtemp(prefix="bce-bench-differences-"))
    print(f"  {len(differ)} cells scored differently ({names[0]} / {names[1]}); "
          f"their autograded notebooks are kept in {kept}")
    for student, assignment, cell in differ:
        print(f"    {student} {assignment} {cell}: {first.get((student, assignment, cell))} / "
              f"{second.get((student, assignment, cell))}")
        for name, workspace in zip(names, keep):
            source = workspace.root / "autograded" / student / assignment
            if source.is_dir() and not (kept / name / student / assignment).exists():
                shutil.copytree(source, kept / name / student / assignment)
    return False


def shared(workspace: Workspace) -> tuple[int, int]:
    """How many autograded notebooks began as released (and forked from a run of that
    beginning), out of how many."""
    import json

    found = [json.loads(p.read_text()).get("metadata", {}).get("bce_grader", {}).get("shared_cells", 0)
             for p in (workspace.root / "autograded").glob("*/*/*.ipynb")]
    return sum(1 for n in found if n), len(found)


def grade(workspace: Workspace, engine: str, jobs: int | None) -> float:
    start = time.perf_counter()
    autograde(workspace, engine=engine, jobs=jobs, progress=False)
    return time.perf_counter() - start


def sandbox_cost(workspace: Workspace, rounds: int = 4) -> tuple[float, float]:
    """The solved notebooks run by the engine with and without the sandbox, interleaved
    (so that load from elsewhere falls on both): the best time of each, in seconds. Measured
    in a process forked for it: the engine's warm-up patches nbgrader, which must stay plain
    in this process for plain nbgrader's run."""
    import json

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 1
        try:
            os.write(write, json.dumps(_sandbox_cost(workspace, rounds)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        found = pipe.read()
    os.waitpid(pid, 0)
    return tuple(json.loads(found))


def _sandbox_cost(workspace: Workspace, rounds: int) -> tuple[float, float]:
    from grader.instructor.engine.execute import execute
    from grader.instructor.engine.pool import warm_up
    from grader.instructor.engine.sandbox import Sandbox

    warm_up()
    solved = []
    for assignment, path in workspace.released().items():
        nb = nbformat.read(path, as_version=4)
        answers = release.master_solutions(assignment)
        for cell in nb.cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id in answers:
                cell.source = answers[grade_id]
        solved.append(nb)
    folder = tempfile.mkdtemp(prefix="bce-bench-cwd-")
    best = {"bare": float("inf"), "sandbox": float("inf")}
    for _ in range(rounds):
        for name, box in (("bare", None), ("sandbox", Sandbox())):
            start = time.perf_counter()
            for nb in solved:
                execute(nbformat.from_dict(nb), cwd=folder, sandbox=box)
            best[name] = min(best[name], time.perf_counter() - start)
    shutil.rmtree(folder, ignore_errors=True)
    return best["sandbox"], best["bare"]


def single(workspace: Workspace, root: Path, assignment: str, rounds: int = 2) -> dict:
    """One student's one notebook graded alone, with the warm engine and with plain nbgrader,
    each in a fresh copy of the ungraded class, two ways:

    * "command": as an instructor runs it, ``python -m grader autograde --student ...
      --assignment ...`` in a fresh Python, the two engines interleaved, the best of ``rounds``;
    * "in process": :func:`autograde` called from this process, once each. Plain nbgrader runs
      here, in a process that has imported nbgrader, nbconvert and jupyter_client already;
      the warm engine still starts a process of its own.

    Returns {way: (warm seconds, plain seconds)} and whether every run gave the same scores."""
    import subprocess

    times: dict = {"command": {"warm": float("inf"), "nbgrader": float("inf")}, "in process": {}}
    found = []
    for way, count in (("command", rounds), ("in process", 1)):
        for round_ in range(count):
            for engine in ("warm", "nbgrader"):
                copy = Workspace.at(root / f"single-{way.replace(' ', '-')}-{engine}-{round_}")
                shutil.copytree(workspace.root, copy.root)
                copy.prepare()
                start = time.perf_counter()
                if way == "command":
                    subprocess.run([sys.executable, "-m", "grader", "autograde", "--quiet", "--workspace", str(copy.root),
                                    "--student", "student000", "--assignment", assignment, "--engine", engine],
                                   check=True, capture_output=True, cwd=Path(__file__).resolve().parent.parent)
                else:
                    autograde(copy, students=["student000"], assignments=[assignment], engine=engine, progress=False)
                took = time.perf_counter() - start
                times[way][engine] = min(times[way].get(engine, float("inf")), took)
                found.append(scores(copy))
    return ({way: (t["warm"], t["nbgrader"]) for way, t in times.items()},
            all(f == found[0] for f in found))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=None, help="the warm engine's workers (default: cores)")
    parser.add_argument("--warm-only", action="store_true", help="skip plain nbgrader (no ratio)")
    parser.add_argument("--no-sandbox-cost", action="store_true", help="skip the run without the sandbox")
    parser.add_argument("--single", default=None, help="the notebook graded alone (default: the first)")
    args = parser.parse_args()
    import warnings

    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)  # plain nbgrader runs in this process
    import secrets

    # one secret for every run, both engines (plain nbgrader's kernels read it from the environment)
    os.environ.setdefault(salt.VARIABLE, secrets.token_hex(16))

    with tempfile.TemporaryDirectory(prefix="bce-bench-") as tmp:
        warm = Workspace.at(Path(tmp) / "warm")
        release_course(warm, Path(tmp) / "notebooks")
        notebooks = build_class(warm, args.students)
        plain = Workspace.at(Path(tmp) / "plain")
        shutil.copytree(warm.root, plain.root)
        plain.prepare()
        ungraded = Workspace.at(Path(tmp) / "ungraded")
        shutil.copytree(warm.root, ungraded.root)
        ungraded.prepare()
        bare = Workspace.at(Path(tmp) / "bare")
        shutil.copytree(warm.root, bare.root)
        bare.prepare()
        with bare.config_file.open("a") as f:
            f.write("\nc.WarmExecute.sandbox = False\n")
        print(f"{args.students} students x {len(warm.released())} notebooks = {notebooks} notebooks, "
              f"{os.cpu_count()} cores")

        warm_s = grade(warm, "warm", args.jobs)
        warm_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"warm engine:    {warm_s:7.1f} s  {notebooks / warm_s:6.2f} notebooks/s  "
              f"peak memory of one process {warm_peak:.0f} MiB")
        began, graded = shared(warm)
        print(f"  {began} of {graded} notebooks began as released and forked from one run of that beginning")
        per_notebook = warm_s / notebooks
        print(f"  a class of 200 students with every notebook ({200 * len(warm.released())} notebooks): "
              f"about {200 * len(warm.released()) * per_notebook / 60:.1f} min (target: under 3 min)")
        box_same = True
        if not args.no_sandbox_cost:
            bare_s = grade(bare, "warm", args.jobs)
            print(f"warm engine without the sandbox: {bare_s:7.1f} s  {notebooks / bare_s:6.2f} notebooks/s")
            print(f"  the sandbox costs {100 * (warm_s / bare_s - 1):+.1f} % (target: under 20 %)")
            box_same = differences(scores(warm), scores(bare), ("sandboxed", "unsandboxed"), [warm, bare])
            print(f"  identical scores: {box_same}")
            with_box, without = sandbox_cost(warm)
            print(f"  every solved notebook once, interleaved, best of 4: {with_box:.2f} s sandboxed, "
                  f"{without:.2f} s not: the sandbox costs {100 * (with_box / without - 1):+.1f} %")
        if args.warm_only:
            return 0 if box_same else 1
        assignment = args.single or sorted(warm.released())[0]
        alone, alone_same = single(ungraded, Path(tmp), assignment)
        print(f"one notebook ({assignment} of student000) graded alone; identical scores: {alone_same}")
        for way, (alone_warm, alone_plain) in alone.items():
            print(f"  {way + ':':12s} warm engine {alone_warm:.1f} s, plain nbgrader {alone_plain:.1f} s: "
                  f"{alone_plain / alone_warm:.2f} times as fast (target: at least 1)")
        plain_s = grade(plain, "nbgrader", None)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"plain nbgrader: {plain_s:7.1f} s  {notebooks / plain_s:6.2f} notebooks/s  "
              f"peak memory of one process {peak:.0f} MiB")
        print(f"ratio: the warm engine is {plain_s / warm_s:.1f} times as fast (target: at least 30)")
        same = differences(scores(warm), scores(plain), ("warm", "nbgrader"), [warm, plain])
        print(f"  identical scores: {same}")
        return 0 if same and alone_same and box_same else 1


if __name__ == "__main__":
    sys.exit(main())
