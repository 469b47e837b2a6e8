"""Autograding a workspace's submissions (with the warm engine, run as
``python -m grader.instructor.engine``, or with plain nbgrader), the summary of
what needs attention, and grading in shards merged afterwards."""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from . import secret
from .release import environment_bin_on_path
from .shards import (MAIN_FLAGS, MAIN_GRADED, _autograded_notebook, _fingerprint, _record_graded, in_shard,
                     shard_workspace)
from .workspace import WorkflowError, Workspace, _short, _submitted_students

# --- autograde ---------------------------------------------------------------------------

def edited_test_cells(workspace: Workspace, student: str, assignment: str) -> list[str]:
    """Test cells of a submission that differ from the released ones: edited or deleted."""
    import nbformat
    from nbgrader.utils import compute_checksum

    released = workspace.released()[assignment]
    stat = released.stat()
    tests = _released_tests(str(released), stat.st_mtime_ns, stat.st_size)
    try:
        theirs = _cells_with_grade_ids(workspace.submitted(student, assignment).read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - unreadable: nbgrader will say so
        return []
    found = []
    for grade_id, (checksum, source) in tests.items():
        mine = theirs.get(grade_id)
        if mine is None:
            found.append(f"deleted test cell {grade_id}")
        elif compute_checksum(mine) != checksum or mine.source != source:
            found.append(f"edited test cell {grade_id}")
    return found


def _cells_with_grade_ids(text: str) -> dict:
    """The cells of a notebook (its JSON ``text``) that have an nbgrader grade id, by it, read
    as nbformat reads them, without its schema validation (which only logs): a class's worth
    of submissions is read after grading, one after another. A version 4 notebook is read as
    JSON, and only these cells made nbformat's nodes (with their sources joined, as nbformat
    joins them); any other version is read and converted by nbformat."""
    import nbformat

    data = json.loads(text)
    if not (isinstance(data, dict) and data.get("nbformat") == 4 and isinstance(data.get("cells"), list)):
        submitted = nbformat.convert(nbformat.reader.reads(text), 4)
        return {c.metadata.nbgrader.grade_id: c for c in submitted.cells
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")}
    found = {}
    for cell in data["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell, dict) else {}
        if isinstance(meta, dict) and meta.get("grade_id"):
            source = cell.get("source", "")
            found[meta["grade_id"]] = nbformat.from_dict(
                {**cell, "source": "".join(source) if isinstance(source, list) else source})
    return found


@functools.lru_cache(maxsize=64)
def _released_tests(path: str, mtime_ns: int, size: int) -> dict[str, tuple[str, str]]:
    """The autograded test cells of a released notebook (read once per version of the file):
    {grade id: (nbgrader's checksum, source)}, in order."""
    import nbformat
    from nbgrader.utils import compute_checksum, is_grade

    released = nbformat.read(path, as_version=4)
    return {cell.metadata.nbgrader.grade_id: (compute_checksum(cell), cell.source) for cell in released.cells
            if cell.cell_type == "code" and is_grade(cell) and cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")}


class Interrupted(WorkflowError):
    """Ctrl-C during autograde: what was graded is saved; ``graded`` and ``left`` count."""

    def __init__(self, graded: int, left: int):
        super().__init__(f"interrupted: {graded} submission{'s' if graded != 1 else ''} graded and saved, "
                         f"{left} not graded; run the same command again to grade the rest (what is graded "
                         "and unchanged is not graded again)")
        self.graded, self.left = graded, left


@dataclass
class Graded:
    student: str
    assignment: str
    score: float | None
    max_score: float | None
    attention: list[str]


ENGINES = ("warm", "nbgrader")


def _names(names: Iterable[str], limit: int = 8) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_selection(workspace: Workspace, students: Iterable[str] | None, assignments: Iterable[str] | None,
                    released) -> None:
    """A selection that names no student or assignment of the workspace is a mistake, said in one line."""
    unknown = set(assignments or ()) - set(released)
    if unknown:
        raise WorkflowError(f"no assignment {_names(unknown)}; the assignments are {_names(released)}")
    known = set(_submitted_students(workspace))
    unknown = set(students or ()) - known
    if unknown:
        raise WorkflowError(f"no student {_names(unknown)} in {workspace.root}: "
                            + (f"the students collected are {_names(known)}" if known
                               else "nothing is collected yet; run `python -m grader collect SOURCE` first"))


def _source_key(workspace: Workspace, student: str, assignment: str, released: Path) -> str:
    """What a grade depends on: the submitted notebook and the released one, by content."""
    import hashlib

    digest = hashlib.sha256(workspace.submitted(student, assignment).read_bytes())
    digest.update(b"\0" + released.read_bytes())
    return digest.hexdigest()


def autograde(workspace: Workspace, *, students: Iterable[str] | None = None,
              assignments: Iterable[str] | None = None, progress: bool = True,
              engine: str = "warm", jobs: int | None = None, shard: tuple[int, int] | None = None,
              regrade: bool = False) -> list[Graded]:
    """Autograde the collected submissions (or the selected ones) that are new or changed since
    they were graded (all of them with ``regrade``) with nbgrader, then read every score
    back from the gradebook.

    ``engine="warm"`` runs the notebooks in processes forked from a warm one, in
    ``jobs`` parallel workers (default: the number of cores), whose judge draws its random
    inputs with the workspace's autograding secret (:mod:`.secret`, made by the first run);
    ``"nbgrader"`` is plain nbgrader, a kernel per notebook, one at a time. Ctrl-C stops it
    with what was graded saved (:class:`Interrupted`)."""
    if engine not in ENGINES:
        raise WorkflowError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if jobs is not None and jobs < 1:
        raise WorkflowError(f"--jobs must be at least 1, not {jobs}")
    warm = _Engine(workspace) if engine == "warm" else None
    try:
        return _autograde(workspace, students, assignments, progress, engine, jobs, shard, regrade, warm)
    finally:
        if warm is not None:
            warm.stop()


def _autograde(workspace, students, assignments, progress, engine, jobs, shard, regrade, warm) -> "Summary":
    flags_file, graded_file, gradebook = MAIN_FLAGS, MAIN_GRADED, "main"
    if shard:
        workspace = shard_workspace(workspace, shard)
        gradebook = Path(workspace.db_url.removeprefix("sqlite:///")).name
        flags_file = Path(gradebook).with_suffix(".flags.json").name
        graded_file = Path(gradebook).with_suffix(".graded.json").name
    sources_file = Path(graded_file).name.replace("graded", "sources")
    released = workspace.released()
    check_selection(workspace, students, assignments, released)
    wanted_students = set(students) if students else None
    wanted_assignments = set(assignments) if assignments else set(released)
    selected = [(s, a) for s in _submitted_students(workspace) for a in released
                if a in wanted_assignments and (wanted_students is None or s in wanted_students)
                and (shard is None or in_shard(s, shard)) and workspace.submitted(s, a).exists()]
    if not selected and not shard:  # a shard may hold no student of a small class: nothing to do, no mistake
        raise WorkflowError("nothing to grade: no submission is collected"
                            + (" for this selection" if students or assignments or shard else "")
                            + "; run `python -m grader collect SOURCE` first")
    sources: dict = workspace.read_json(sources_file, {})
    keys = {(s, a): _source_key(workspace, s, a, released[a]) for s, a in selected}
    pending = [(s, a) for s, a in selected
               if regrade or sources.get(f"{s}/{a}") != keys[(s, a)]
               or not _autograded_notebook(workspace, s, a).exists()]
    flags: dict = workspace.read_json(flags_file, {})
    done: dict[tuple[str, str], dict | None] = {}
    if engine == "warm":
        results = warm.grade(workspace, pending, jobs or os.cpu_count() or 1, progress)
    else:
        results = _grade_plain(workspace, pending, progress)
    try:
        for result in results:
            _take(workspace, engine, result, flags, done)
            sources[f"{result[0]}/{result[1]}"] = keys[(result[0], result[1])]
    except KeyboardInterrupt:
        _save(workspace, flags_file, flags, graded_file, gradebook, done, sources_file, sources)
        raise Interrupted(len(done), len(pending) - len(done)) from None
    if isinstance(results, _Partial):
        _save(workspace, flags_file, flags, graded_file, gradebook, done, sources_file, sources)
        raise Interrupted(len(done), len(pending) - len(done))
    _save(workspace, flags_file, flags, graded_file, gradebook, done, sources_file, sources)
    rows = summary(workspace, flags_file)
    return Summary([r for r in rows if (wanted_students is None or r.student in wanted_students)
                    and r.assignment in wanted_assignments and (shard is None or in_shard(r.student, shard))],
                   graded=len(done), unchanged=len(selected) - len(pending))


def _save(workspace, flags_file, flags, graded_file, gradebook, done, sources_file, sources) -> None:
    workspace.write_json(flags_file, flags)
    workspace.write_json(sources_file, sources)
    _record_graded(workspace, graded_file, gradebook, done)  # when, for merge to keep the newest


def _take(workspace: Workspace, engine: str, result, flags: dict, done: dict) -> None:
    """Record what grading one submission found."""
    student, assignment, success, log = result
    attention = edited_test_cells(workspace, student, assignment)
    if not success:
        attention.append("nbgrader could not grade it: " + _last_error(log))
    notebook = _autograded_notebook(workspace, student, assignment)
    done[(student, assignment)] = _fingerprint(notebook)
    text = notebook.read_text() if notebook.exists() else ""
    if "CellTimeoutError" in text or "Timeout" in log:
        attention.append("a cell ran out of time")
    engine_notes = _engine_attention(text) if engine == "warm" else []
    if engine_notes:
        attention += engine_notes  # the crash, with its cause, is among them
    elif "DeadKernelError" in text or "DeadKernelError" in log or "Kernel died" in log:
        attention.append("the notebook's process died")
    flags[f"{student}/{assignment}"] = attention


def _engine_attention(text: str) -> list[str]:
    """What the warm engine found while it ran a notebook (its sandbox and verdict), from
    the metadata it writes into the autograded notebook."""
    try:
        notes = json.loads(text).get("metadata", {}).get("bce_grader", {}).get("attention", [])
    except (ValueError, AttributeError):
        return []
    return [str(n) for n in notes] if isinstance(notes, list) else []


def _grade_plain(workspace: Workspace, pending, progress: bool):
    api = workspace.api()
    with environment_bin_on_path():
        for student, assignment in _progress(pending, progress):
            result = api.autograde(assignment, student, force=True, create=True)
            yield student, assignment, bool(result.get("success")), \
                (result.get("log") or "") + (result.get("error") or "")


class Summary(list):
    """The rows of :func:`summary` for a selection, with how many submissions this run
    ``graded`` and how many it left ``unchanged`` (graded before, and not changed since)."""

    def __init__(self, rows, graded: int = 0, unchanged: int = 0):
        super().__init__(rows)
        self.graded, self.unchanged = graded, unchanged


class _Partial(list):
    """The results of a warm run that Ctrl-C stopped: those of the submissions it finished."""


class _Engine:
    """The warm engine, in a process of its own, which warms up single-threaded whatever state
    this process is in (one that has used torch's thread pool cannot fork). It is started
    before this process reads the submissions, so that both warm up at once; it waits for how
    many notebooks to grade, then for the job. It runs in a session of its own, so that Ctrl-C
    reaches only this process: this one then asks the engine to stop, and the engine answers
    with what it finished."""

    def __init__(self, workspace: Workspace):
        import subprocess
        import sys

        from .._battery.salt import VARIABLE

        with environment_bin_on_path():
            # the course folder (masters: solutions, hidden tests) is hidden from the notebooks wherever it is
            env = {**os.environ, "BCE_COURSE_DIR": str(workspace.course_dir())}
            # the autograding secret goes on the engine's stdin (grade), never into its environment, which
            # its root forker, and so every notebook's process, would inherit
            env.pop(VARIABLE, None)
            self.process = subprocess.Popen([sys.executable, "-m", "grader.instructor.engine"],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                            start_new_session=True)

    def grade(self, workspace: Workspace, pending, jobs: int, progress: bool):
        import signal

        if not pending:
            return []
        job = {"workspace": str(workspace.root), "db_url": workspace.db_url, "tasks": pending, "jobs": jobs,
               "progress": progress}
        engine = self.process
        try:
            # how many notebooks first, their released notebooks and the autograding secret (not which
            # students': the engine starts the forker of its notebooks' processes before it reads any of
            # this, and sets the secret in its judge only), then the job
            released = workspace.released()
            ahead = {"notebooks": len(pending), "released": sorted({str(released[a]) for _, a in pending if a in released}),
                     "salt": secret.of(workspace)}
            out, _ = engine.communicate(json.dumps(ahead) + "\n" + json.dumps(job))
        except KeyboardInterrupt:
            engine.send_signal(signal.SIGINT)
            out, _ = engine.communicate()
        try:
            answer = json.loads(out)
        except ValueError:
            answer = None
        if engine.returncode != 0 or not isinstance(answer, dict):
            raise WorkflowError(f"the warm engine failed (exit code {engine.returncode}); "
                                "run again with --engine nbgrader to grade with plain nbgrader")
        results = [tuple(r) for r in answer["results"]]
        return _Partial(results) if answer.get("interrupted") else results

    def stop(self) -> None:
        """End the engine if it is still waiting (nothing was given to it, or this process failed)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


def _progress(items, enabled: bool):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="autograde", unit="notebook")


_EXCEPTION = re.compile(r"^\s*(?P<name>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning))(?::\s*(?P<text>.*))?$")
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line \d+, in (?P<function>\S+)')
_NOT_THE_CAUSE = ("Please see the", "There was an error processing")


def _last_error(log: str) -> str:
    """nbgrader's own error, from its log: the last exception a traceback there ends with (and
    the function it was raised in), not its "Please see the above traceback" that follows;
    else its first [ERROR] line that says something; else the log's last line."""
    lines = [line.rstrip() for line in log.splitlines() if line.strip()]
    where = None
    found = None
    for line in lines:
        frame = _FRAME.match(line)
        if frame:
            if not frame["function"].startswith("<"):  # <listcomp>, <module>: the function around it says more
                where = f"{Path(frame['file']).stem}.{frame['function']}"
            continue
        match = _EXCEPTION.match(line)
        if match and not any(words in line for words in _NOT_THE_CAUSE):
            name = match["name"].rsplit(".", 1)[-1]
            found = f"{name}: {match['text']}" if match["text"] else name
            if where:
                found += f" (in nbgrader's {where})" if "nbgrader" in line or "nbgrader" in log else f" (in {where})"
            where = None
    if found is None:
        errors = [line.split("]", 1)[-1].strip() for line in lines
                  if "[ERROR]" in line and not any(words in line for words in _NOT_THE_CAUSE)]
        found = errors[0] if errors else (lines[-1].strip() if lines else "(nbgrader wrote nothing)")
    return _short(Exception(found), limit=200)


def summary(workspace: Workspace, flags_file: str = MAIN_FLAGS) -> list[Graded]:
    """Every submission's score and maximum as the gradebook holds them, with what needs attention."""
    flags = workspace.read_json(flags_file, {})
    collected = workspace.read_json("collect-report.json", {"problems": [], "missing": []})
    rows = []
    with workspace.gradebook() as gb:
        assignments = [a.name for a in gb.assignments]
        # each assignment's submissions in one query (nbgrader's own, for its formgrader): a
        # query or three per submission took most of a large class's summary
        found = {(d["student"], assignment): d for assignment in assignments for d in gb.submission_dicts(assignment)}
        for student in sorted(s.id for s in gb.students):
            for assignment in assignments:
                attention = list(flags.get(f"{student}/{assignment}", []))
                known = found.get((student, assignment))
                try:
                    if known is None:  # a submission without grades: nbgrader's own object says
                        sub = gb.find_submission(assignment, student)
                        known = {"score": sub.score, "max_score": sub.max_score,
                                 "needs_manual_grade": sub.needs_manual_grade}
                except Exception:  # noqa: BLE001 - nbgrader raises MissingEntry
                    problems = [p["problem"] for p in collected.get("problems", [])
                                if p.get("student") == student and p.get("assignment") == assignment]
                    if problems:
                        rows.append(Graded(student, assignment, None, None,
                                           [f"not collected: {p}" for p in problems]))
                    elif any(m["student"] == student and m["assignment"] == assignment
                             for m in collected.get("missing", [])):
                        rows.append(Graded(student, assignment, None, None, ["missing"]))
                    continue
                if known["needs_manual_grade"]:
                    attention.append("needs manual grading")
                rows.append(Graded(student, assignment, known["score"], known["max_score"], attention))
    return rows


def one_line(text) -> str:
    """``text`` as part of one line of the summary: every character that is not printable (line
    breaks, carriage returns, tabs, the terminal's escape sequences, invisible formatting
    characters, line and paragraph separators) written as an escape (``\\n``, ``\\x1b``,
    ``\\u2028``). A note may quote a submission (an error's message, a string its code opened):
    what it quotes can neither start a row of its own nor drive the terminal."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def summary_table(rows: list[Graded]) -> str:
    """The summary, one line per row: each field made :func:`one_line`."""
    lines = [f"{'student':16} {'assignment':24} {'score':>12}  needs attention"]
    for r in rows:
        score = "-" if r.score is None else f"{r.score:g} / {r.max_score:g}"
        notes = "; ".join(one_line(note) for note in r.attention)
        lines.append(f"{one_line(r.student):16} {one_line(r.assignment):24} {score:>12}  {notes}")
    return "\n".join(lines)
