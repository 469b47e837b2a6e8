"""The command line: ``python -m grader check FILE`` (also ``bce-grader check FILE``)."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .cases import CATEGORIES, CHECKABLE, FUNCTIONS
from .checks import KNOWN_DEVICES, run
from .loading import LoadError, load

EXIT_PASSED, EXIT_FAILED, EXIT_UNREADABLE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grader",
        description="Check binary cross-entropy implementations against PyTorch's own.")
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

    release = commands.add_parser(
        "release", help="generate the student notebooks from the masters",
        description=("Bring the masters' header cells (Colab badge, setup) in line with "
                     "[tool.bce-course] in pyproject.toml, then generate the student copies with "
                     "nbgrader's generate_assignment into notebooks/, with notebooks/README.md "
                     "listing them. Exit status: 0 on success (with --check: when notebooks/ is up "
                     "to date), 1 when --check finds differences, 2 when a master or the "
                     "configuration is unusable."))
    release.add_argument("--out", metavar="DIR", help="where the student copies go (default: notebooks/)")
    release.add_argument("--release-dir", metavar="DIR",
                         help="also copy nbgrader's release folder (release/<assignment>/) here")
    release.add_argument("--check", action="store_true",
                         help="change nothing; report whether notebooks/ and the headers are up to date")
    return parser


def _release(args) -> int:
    import tempfile
    from pathlib import Path

    from . import release

    out = Path(args.out) if args.out else release.REPO_ROOT / "notebooks"
    try:
        if args.check:
            problems = []
            where = release.location()
            for name in release.assignments():
                path = release.master_path(name)
                badge, setup = release._header_cells(release._read(path), path)
                if (badge.source, setup.source) != release.header_sources(name, where):
                    problems.append(f"{path.name}: its header cells are out of date")
            with tempfile.TemporaryDirectory() as tmp:
                release.generate(Path(tmp))
                problems += release.differences(Path(tmp), out)
            for problem in problems:
                print(problem)
            if problems:
                print("run `python -m grader release` to bring them up to date")
                return EXIT_FAILED
            print(f"{out} is up to date with the masters")
            return EXIT_PASSED
        for path in release.sync_headers():
            print(f"updated the header cells of {path.name}")
        release_dir = Path(args.release_dir) if args.release_dir else None
        for path in release.generate(out, release_dir=release_dir):
            print(f"wrote {path}")
        return EXIT_PASSED
    except release.ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE


def _check(args) -> int:
    try:
        loaded = load(args.file)
    except LoadError as exc:
        if args.json:
            print(json.dumps({"file": args.file, "error": str(exc)}, indent=2))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    names = [n for n in CHECKABLE if n in loaded.functions and (not args.function or n in args.function)]
    if not names:
        message = f"{args.file} does not define {' or '.join(args.function)}"
        if args.json:
            print(json.dumps({"file": args.file, "error": message}, indent=2))
        else:
            print(f"error: {message}", file=sys.stderr)
        return EXIT_UNREADABLE
    devices = None if not args.device or "all" in args.device else args.device
    reports = []
    for name in names:
        try:
            reports.append(run(loaded.functions[name], name, categories=args.category, devices=devices))
        except ValueError as exc:  # a category that does not apply to this function
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
    passed = all(r.passed for r in reports)
    if args.json:
        print(json.dumps({"file": args.file, "passed": passed, "problems": loaded.problems,
                          "reports": [r.to_dict() for r in reports]}, indent=2))
    else:
        for problem in loaded.problems:
            print(f"note: while running {args.file}, {problem}")
        if loaded.problems:
            print()
        print("\n\n".join(str(r) for r in reports))
    return EXIT_PASSED if passed else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return _check(args)
    if args.command == "release":
        return _release(args)
    raise AssertionError(args.command)  # argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
