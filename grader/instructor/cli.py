"""The command line: ``python -m grader check FILE`` (also ``bce-grader check FILE``), the
instructor's commands, and ``python -m grader lab``."""

from __future__ import annotations

import argparse
import json
import sys

from .. import __version__
from .._battery.cases import CATEGORIES, CHECKABLE
from .._battery.checks import run
from .._battery.judge import KNOWN_DEVICES
from .._battery.loading import LoadError, load

EXIT_PASSED, EXIT_FAILED, EXIT_UNREADABLE = 0, 1, 2
EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by Ctrl-C


def _visible(value) -> str:
    """``value`` as text fit for the terminal: control and invisible formatting characters
    (but line breaks and tabs) written as escapes, as ``collect`` writes a file's name. What
    this command prints may quote a submission (a flag names the string a student's code
    opened), and must not move the cursor, retitle or clear the instructor's terminal, or
    hide what follows it."""
    from .collect.names import _shown

    return _shown(str(value), keep="\n\t")


def say(*values, **kwargs) -> None:
    """``print``, each value made :func:`_visible`."""
    print(*(_visible(v) for v in values), **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grader",
        description=("The course's grader: check BCE implementations against PyTorch's own, open the course "
                     "in JupyterLab, and run the course with nbgrader (release, collect, autograde, feedback, "
                     "export, report)."))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check", help="compare the BCE functions a file defines with torch's",
        description=(f"Run FILE (a .py file or an .ipynb notebook) and compare the functions it "
                     f"defines ({', '.join(CHECKABLE)}) with torch's over the whole battery. "
                     "Exit status: 0 when every case passes, 1 when some case fails, "
                     "2 when FILE cannot be read or defines none of them."))
    check.add_argument("file", metavar="FILE")
    check.add_argument("--function", choices=CHECKABLE, action="append",
                       help="check only this function (may be repeated)")
    check.add_argument("--device", action="append", metavar="DEVICE",
                       help=f"run on this device: {', '.join(KNOWN_DEVICES)} or 'all' (may be "
                            "repeated; default: all, those absent reported as skipped)")
    check.add_argument("--category", action="append", choices=list(CATEGORIES), metavar="CATEGORY",
                       help="check only this category (may be repeated): " + ", ".join(CATEGORIES))
    check.add_argument("--json", action="store_true", help="print a machine-readable report")

    lab = commands.add_parser(
        "lab", help="open JupyterLab on the course, without nbgrader's tools (what `make lab` runs)",
        description=("Start JupyterLab with this Python, without nbgrader's JupyterLab extension (its "
                     "Nbgrader menu, Validate button and Create Assignment sidebar) and its server "
                     "extensions (the formgrader among them), which students do not need: the folder "
                     "grader/student-lab/ goes first on JUPYTER_CONFIG_PATH. Nothing is written to your "
                     "own Jupyter configuration. Every other argument goes to JupyterLab as it is: a "
                     "folder to open, JupyterLab's options (see `jupyter lab --help`)."))
    lab.add_argument("--instructor", action="store_true",
                     help="keep nbgrader's tools: JupyterLab as nbgrader's installation configures it "
                          "(what `make instructor-lab` runs)")
    lab.add_argument("jupyterlab", nargs=argparse.REMAINDER, metavar="ARGUMENT ...",
                     help="JupyterLab's arguments, passed on unchanged")

    workspace = argparse.ArgumentParser(add_help=False)
    workspace.add_argument("--workspace", metavar="DIR",
                           help="the course workspace: gradebook, submissions, autograded and feedback "
                                "folders (default: $BCE_COURSE_WORKSPACE, else course-workspace/ in the "
                                "repository, which git ignores; run from an installed package, course-workspace/ "
                                "in the current folder)")
    workspace.add_argument("--db-url", metavar="URL",
                           help="the gradebook: any SQLAlchemy URL nbgrader accepts, such as "
                                "postgresql://USER:PASSWORD@HOST:PORT/DATABASE (default: $BCE_COURSE_DB_URL, else "
                                "the one the workspace was released with, else sqlite:///WORKSPACE/gradebook.db)")
    workspace.add_argument("--course", metavar="DIR",
                           help="the nbgrader course folder: nbgrader_config.py and the masters, "
                                "source/<assignment>/<assignment>.ipynb (default: the course the workspace was "
                                "released from, else $BCE_COURSE_DIR, else grader/course/ in a checkout of the "
                                "repository)")
    select = argparse.ArgumentParser(add_help=False)
    select.add_argument("--student", action="append", metavar="ID", help="only this student (repeatable)")
    select.add_argument("--assignment", action="append", metavar="NAME", help="only this assignment (repeatable)")

    release = commands.add_parser(
        "release", parents=[workspace], help="generate the student notebooks from the masters",
        description=("Bring the masters' header cells (the Colab badge under the title, the setup "
                     "cell) in line with [tool.bce-course] in pyproject.toml, then generate the student copies with "
                     "nbgrader's generate_assignment in the course workspace (its release/ folder "
                     "and gradebook) and copy them to notebooks/, with notebooks/README.md listing "
                     "them. Exit status: 0 on success (with --check: when notebooks/ is up to date), "
                     "1 when --check finds differences, 2 when a master or the configuration is unusable."))
    release.add_argument("--out", metavar="DIR",
                         help="where the student copies go (default: notebooks/ in a checkout of the repository; "
                              "for a course folder of its own, they stay in the workspace's release/ folder)")
    release.add_argument("--check", action="store_true",
                         help="change nothing; report whether notebooks/ and the headers are up to date")

    collect = commands.add_parser(
        "collect", parents=[workspace], help="bring submissions into the workspace",
        description=("Collect submitted notebooks from SOURCE: a folder of .ipynb files (what Colab "
                     "students download), a .zip archive from an LMS, or an nbgrader exchange (its root, "
                     "or a course's inbound folder). A notebook's assignment is read from its nbgrader "
                     "cells; its student from the exchange entry or from the file's path by the naming "
                     "rule: the first --pattern (a regular expression with a (?P<student>...) group, "
                     "searched in the path relative to SOURCE) that matches; by default "
                     "'alice_01-bce-vector.ipynb', then 'alice/01-bce-vector.ipynb'. What cannot be "
                     "read or matched without guessing is reported and skipped. Exit status 1 when "
                     "something was reported."))
    collect.add_argument("sources", nargs="+", metavar="SOURCE")
    collect.add_argument("--pattern", action="append", metavar="REGEX", help="a naming rule (repeatable, in order)")
    collect.add_argument("--roster", metavar="FILE",
                         help="the students' ids, one per line (or a CSV whose first column is the id): "
                              "others are reported, and missing submissions are listed")
    collect.add_argument("--assignment", metavar="NAME", help="collect only this assignment")

    autograde = commands.add_parser(
        "autograde", parents=[workspace, select], help="grade the collected submissions",
        description=("Autograde every collected submission (or those selected) with nbgrader, showing a "
                     "progress bar, then print each student's score and maximum per notebook and what "
                     "needs attention: edited or deleted test cells (graded with the original tests), "
                     "cells that ran out of time, submissions nbgrader could not grade, missing ones, "
                     "answers to grade by hand. Safe to run again: it re-grades."))
    autograde.add_argument("--quiet", action="store_true", help="no progress bar")
    autograde.add_argument("--engine", choices=("warm", "nbgrader"), default="warm",
                           help="warm (default): notebooks run in processes forked from a warm one, in "
                                "parallel; nbgrader: plain nbgrader, a new kernel per notebook, one at a time")
    autograde.add_argument("--jobs", type=_at_least_one, metavar="N",
                           help="notebooks graded at once by the warm engine (default: the number of cores)")
    autograde.add_argument("--regrade", action="store_true",
                           help="grade every selected submission again, not only those new or changed since "
                                "they were graded (a change of the released notebook counts as a change)")
    autograde.add_argument("--shard", metavar="I/N",
                           help="grade only shard I of N (a fixed share of the students, by a hash of their id) "
                                "into a gradebook of its own, gradebook-shard-I-of-N.db; then run `merge`")
    merge = commands.add_parser("merge", parents=[workspace],
                                help="merge the shards' gradebooks, keeping the newest grading of each submission",
                                description=("Copy the submissions, grades and comments of every "
                                             "gradebook-shard-I-of-N.db in the workspace (or the files given) "
                                             "into the workspace's gradebook, keeping for each submission the "
                                             "newest grading, wherever it is. Safe to run again."))
    merge.add_argument("shards", nargs="*", metavar="FILE")
    remove = commands.add_parser(
        "remove-student", parents=[workspace], help="remove a student and all of theirs from the workspace",
        description=("List what the workspace holds of each student ID: their record, submissions and grades in "
                     "the gradebook (and in the shards' gradebooks), their folders under submitted/, "
                     "autograded/ and feedback/, their entries in the workspace's records (autograde's flags "
                     "and graded records, the remembered roster, the latest collect report); with --yes, remove "
                     "them. Exit status: 0 when listed (or removed), 2 when an ID is not in the workspace "
                     "(then nothing is removed)."))
    remove.add_argument("students", nargs="+", metavar="ID", help="a student's id (several may be given)")
    remove.add_argument("--yes", action="store_true",
                        help="remove what is listed (without it, nothing is removed)")

    commands.add_parser("feedback", parents=[workspace, select], help="write per-student HTML feedback",
                        description=("Write feedback/<student>/<assignment>/<notebook>.html for every "
                                     "autograded submission (or those selected), without any hidden test: one "
                                     "file a student opens from disk, offline, with its formulas rendered "
                                     "(MathML, no script) and long lines wrapped."))
    export = commands.add_parser("export", parents=[workspace], help="write the grades as CSV",
                                 description=("Write the grades as CSV: a row of maxima (and due dates), then "
                                              "one row per student (the roster's, when collect was given one); "
                                              "for each notebook its score (empty when there is none), its status "
                                              "(graded, blank, needs manual grading, not graded, missing), when it "
                                              "was handed in and nbgrader's late penalty; then the total, where "
                                              "what is missing counts 0."))
    export.add_argument("--out", metavar="FILE", help="default: WORKSPACE/grades.csv")
    report = commands.add_parser("report", parents=[workspace], help="draw the class's results",
                                 description=("Write PNG figures (each notebook's score distribution, of "
                                              "those who handed it in; the pass rate of each test cell, in "
                                              "notebook order; the checker's failing categories per notebook and "
                                              "exercise), report.json with their numbers and summary.txt, and "
                                              "print the summary."))
    report.add_argument("--out", metavar="DIR", help="default: WORKSPACE/report")
    return parser


def _at_least_one(text: str) -> int:
    """argparse's type for --jobs: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (the notebooks graded at once), not {value}")
    return value


def _patterns(patterns: list[str] | None) -> list[str] | None:
    """The naming rules given with --pattern, each a valid regular expression with a
    (?P<student>...) group, or a WorkflowError saying which is not and why."""
    import re

    from .workspace import WorkflowError

    for pattern in patterns or ():
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise WorkflowError(f"--pattern {pattern!r} is not a regular expression: {exc}") from None
        if "student" not in compiled.groupindex:
            raise WorkflowError(f"--pattern {pattern!r} has no (?P<student>...) group to say which part is the "
                                "student's id; for instance '(?P<student>[^_]+)_[^/]*\\.ipynb$'")
    return patterns


def _quiet_database_warnings() -> None:
    """nbgrader's gradebook makes SQLAlchemy warn (SAWarning) about its sessions on every
    submission: noise to an instructor, a hundred lines a run."""
    import warnings

    try:
        from sqlalchemy.exc import SAWarning
    except ImportError:  # without the instructor's tools, nothing warns
        return
    warnings.filterwarnings("ignore", category=SAWarning)


def _check(args) -> int:
    try:
        loaded = load(args.file)
    except LoadError as exc:
        if args.json:
            say(json.dumps({"file": args.file, "error": str(exc)}, indent=2))
        else:
            say(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    names = [n for n in CHECKABLE if n in loaded.functions and (not args.function or n in args.function)]
    if not names:
        message = f"{args.file} does not define {' or '.join(args.function)}"
        if args.json:
            say(json.dumps({"file": args.file, "error": message}, indent=2))
        else:
            say(f"error: {message}", file=sys.stderr)
        return EXIT_UNREADABLE
    devices = None if not args.device or "all" in args.device else args.device
    reports = []
    for name in names:
        try:
            reports.append(run(loaded.functions[name], name, categories=args.category, devices=devices,
                               name=name, chunks=loaded.chunks))
        except ValueError as exc:  # a category that does not apply to this function
            say(f"error: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
    passed = all(r.passed for r in reports)
    if args.json:
        say(json.dumps({"file": args.file, "passed": passed, "problems": loaded.problems,
                        "reports": [r.to_dict() for r in reports]}, indent=2))
    else:
        for problem in loaded.problems:
            say(f"note: while running {args.file}, {problem}")
        if loaded.problems:
            say()
        say("\n\n".join(str(r) for r in reports))
    return EXIT_PASSED if passed else EXIT_FAILED


def _workspace(args):
    from .workspace import Workspace

    return Workspace.at(args.workspace, args.db_url, args.course)


def _release(args) -> int:
    import tempfile
    from pathlib import Path

    from . import release
    from .workspace import WorkflowError, release_course

    try:
        workspace = _workspace(args)
        source = workspace.source
        # notebooks/ and the README's list are a checkout's; a course folder of its own has neither
        checkout = release.checkout_of(workspace.course_dir())
        where = release.location(checkout) if checkout else None
        out = Path(args.out) if args.out else checkout / "notebooks" if checkout else None
        if args.check:
            if out is None:
                raise WorkflowError(f"the course {workspace.course_dir()} is not in a checkout of the repository, "
                                    "which has notebooks/: give --out DIR, the student copies to compare")
            problems = []
            for name in release.assignments(source) if checkout else ():
                path = release.master_path(name, source)
                if release.bring_headers_in_line(release._read(path), name, where, path):
                    problems.append(f"{path.name}: its header cells are out of date")
            with tempfile.TemporaryDirectory() as tmp:
                release.generate(Path(tmp), source=source)
                problems += release.differences(Path(tmp), out)
            if checkout and release.update_readme(checkout / "README.md", release.assignments(source), where,
                                                  write=False, source=source):
                problems.append("README.md: its list of notebooks is out of date")
            for problem in problems:
                say(problem)
            if problems:
                say("run `python -m grader release` to bring them up to date")
                return EXIT_FAILED
            say(f"{out} is up to date with the masters")
            return EXIT_PASSED
        for path in release.sync_headers(where, source) if checkout else ():
            say(f"updated the header cells of {path.name}")
        for path in release_course(workspace, out):
            say(f"wrote {path}")
        if checkout and release.update_readme(checkout / "README.md", release.assignments(source), where,
                                              source=source):
            say("updated the list of notebooks in README.md")
        say(f"released in {workspace.root / 'release'}")
        if out is None:
            say(f"the student copies are in {workspace.root / 'release'}/<assignment>/; "
                "--out DIR puts them in a folder of their own")
        return EXIT_PASSED
    except (release.ReleaseError, WorkflowError) as exc:
        say(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE


def _workflow(args) -> int:
    from pathlib import Path

    from . import collect, grading, results, shards
    from .workspace import WorkflowError

    _quiet_database_warnings()
    workspace = _workspace(args)
    try:
        if args.command == "collect":
            report = collect.collect(workspace, args.sources, patterns=_patterns(args.pattern),
                                     roster=Path(args.roster) if args.roster else None,
                                     assignment=args.assignment)
            for item in report.collected:
                say(f"{item['status']:9} {item['student']} {item['assignment']}  <- {item['origin']}")
            for item in report.problems:
                say(f"SKIPPED   {item['origin']}: {item['problem']}")
            for item in report.missing:
                say(f"missing   {item['student']} {item['assignment']}")
            say(f"{len(report.collected)} collected, {len(report.problems)} skipped, "
                f"{len(report.missing)} missing; the list is in {workspace.root / 'collect-report.json'}")
            return EXIT_FAILED if report.problems else EXIT_PASSED
        if args.command == "autograde":
            shard = shards.parse_shard(args.shard) if args.shard else None
            rows = grading.autograde(workspace, students=args.student, assignments=args.assignment,
                                     progress=not args.quiet, engine=args.engine, jobs=args.jobs, shard=shard,
                                     regrade=args.regrade)
            say(grading.summary_table(rows))
            if rows.unchanged:
                say(f"graded {rows.graded}; {rows.unchanged} graded before and unchanged since, not graded again "
                    "(--regrade grades them again)")
            failed = [r for r in rows if any(a.startswith("nbgrader could not") for a in r.attention)]
            return EXIT_FAILED if failed else EXIT_PASSED
        if args.command == "remove-student":
            for line in collect.remove_students(workspace, args.students, apply=args.yes):
                say(line)
            return EXIT_PASSED
        if args.command == "merge":
            for path in shards.merge(workspace, [Path(p) for p in args.shards] or None):
                say(f"merged {path}")
            return EXIT_PASSED
        if args.command == "feedback":
            grading.check_selection(workspace, args.student, args.assignment, workspace.released())
            if not (workspace.root / "autograded").is_dir() or not any((workspace.root / "autograded").iterdir()):
                raise WorkflowError("nothing is autograded yet: run `python -m grader autograde` first")
            try:
                written = results.feedback(workspace, students=args.student, assignments=args.assignment)
            except results.FeedbackFailed as failed:
                for path in failed.written:  # what was written is said as always, then what was not
                    say(f"wrote {path}")
                raise
            for path in written:
                say(f"wrote {path}")
            return EXIT_PASSED
        if args.command == "export":
            say(f"wrote {results.export(workspace, Path(args.out) if args.out else None)}")
            return EXIT_PASSED
        if args.command == "report":
            data = results.report(workspace, Path(args.out) if args.out else None)
            say(data["text"])
            return EXIT_PASSED
    except grading.Interrupted as exc:
        say(exc, file=sys.stderr)
        return EXIT_INTERRUPTED
    except WorkflowError as exc:
        say(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except KeyboardInterrupt:
        say(f"interrupted: {args.command} stopped before it finished; run it again (it is safe to)",
            file=sys.stderr)
        return EXIT_INTERRUPTED
    raise AssertionError(args.command)


def _lab(arguments: list[str]) -> int:
    """``lab [--instructor] ARGUMENT...``: every argument but ``--instructor`` goes to
    JupyterLab unchanged and in order, options with separate values included."""
    from . import lab

    if {"-h", "--help"} & set(arguments):
        _parser().parse_args(["lab", "--help"])
    instructor = "--instructor" in arguments
    return lab.launch([a for a in arguments if a != "--instructor"], instructor=instructor)


def main(argv: list[str] | None = None) -> int:
    from . import skip_iri_grammar

    skip_iri_grammar()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["lab"]:
        return _lab(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "check":
        return _check(args)
    if args.command == "release":
        return _release(args)
    return _workflow(args)


if __name__ == "__main__":
    sys.exit(main())
