"""The course's autograding secret (grader.instructor.secret): made once per workspace, beside the
gradebook, readable by the instructor alone, never committed, the same for every run and every
shard; and handed to the warm engine on its stdin, never in its environment."""

import json
import multiprocessing
import os
import stat
import subprocess
from pathlib import Path

import pytest

import replay
from grader._battery import salt
from grader.instructor import grading, release, secret
from grader.instructor.cli import main
from grader.instructor.engine.pool import _ahead
from grader.instructor.workspace import WorkflowError, Workspace
from helpers import A1, Class, cell_scores, released_workspace, solutions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_secret_in_the_environment(monkeypatch):
    monkeypatch.delenv(salt.VARIABLE, raising=False)


def test_the_first_autograde_makes_the_secret_and_every_later_one_reads_it(tmp_path):
    workspace = Workspace(tmp_path)
    made = secret.of(workspace)
    path = tmp_path / secret.FILE
    assert len(made) == 32 and int(made, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret.of(workspace) == secret.of(Workspace(tmp_path)) == made
    assert [p.name for p in tmp_path.iterdir()] == [secret.FILE]  # nothing half written left behind
    other = tmp_path / "another course"
    other.mkdir()
    assert secret.of(Workspace(other)) != made


def test_the_environment_overrides_the_workspaces_secret(tmp_path, monkeypatch):
    monkeypatch.setenv(salt.VARIABLE, "given for every shard")
    assert secret.of(Workspace(tmp_path)) == "given for every shard"
    assert not (tmp_path / secret.FILE).exists()


def test_an_empty_secret_is_refused_in_one_line(tmp_path):
    (tmp_path / secret.FILE).write_text("\n")
    with pytest.raises(WorkflowError, match="is empty"):
        secret._read(tmp_path / secret.FILE, patience=0.2)


def _race(root, start, out):
    start.wait()
    out.put(secret.of(Workspace(Path(root))))


def test_shards_starting_at_once_agree_on_one_secret(tmp_path):
    context = multiprocessing.get_context("fork")
    start, out = context.Barrier(6), context.Queue()
    processes = [context.Process(target=_race, args=(str(tmp_path), start, out)) for _ in range(6)]
    for p in processes:
        p.start()
    found = {out.get(timeout=60) for _ in processes}
    for p in processes:
        p.join(timeout=60)
    assert len(found) == 1 and found == {(tmp_path / secret.FILE).read_text().strip()}


def test_git_never_commits_the_secret():
    for path in (f"course-workspace/{secret.FILE}", f"elsewhere/a-course/{secret.FILE}"):
        done = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", path])
        assert done.returncode == 0, path


def test_the_engine_reads_the_secret_on_its_first_line():
    line = json.dumps({"notebooks": 2, "released": [], "salt": "s3cret"})
    assert _ahead(line) == {"notebooks": 2, "released": [], "salt": "s3cret"}
    for unusable in (3, "", None, ["s3cret"]):
        assert "salt" not in _ahead(json.dumps({"notebooks": 2, "salt": unusable}))


class _Engine:
    """subprocess.Popen for the warm engine: what it was started with and what it was sent."""

    started: list = []

    def __init__(self, argv, env=None, **options):
        self.env, self.sent, self.returncode = env, None, 0
        _Engine.started.append(self)

    def communicate(self, text=None):
        self.sent = text
        return json.dumps({"results": [], "interrupted": False}), None

    def poll(self):
        return 0

    def wait(self):
        return 0

    stdin = stdout = None


def test_the_warm_engine_gets_the_secret_on_its_stdin_never_in_its_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(salt.VARIABLE, "the class's secret")
    monkeypatch.setattr(subprocess, "Popen", _Engine)
    workspace = Workspace(tmp_path, course=release.COURSE_DIR)
    monkeypatch.setattr(workspace, "released", lambda: {"01-bce-vector": tmp_path / "01-bce-vector.ipynb"})
    engine = grading._Engine(workspace)
    assert engine.grade(workspace, [("alice", "01-bce-vector")], 2, False) == []
    engine.stop()
    (started,) = _Engine.started[-1:]
    assert salt.VARIABLE not in started.env
    assert "the class's secret" not in json.dumps(started.env)
    first, job = started.sent.split("\n", 1)
    assert json.loads(first)["salt"] == "the class's secret"
    assert "secret" not in job
    assert os.environ[salt.VARIABLE] == "the class's secret"  # this process's own environment is left as it was


@pytest.mark.slow
def test_the_first_autograde_makes_the_secret_and_grading_again_gives_the_same_grades(tmp_path):
    """End to end, with the workspace's own secret: a replayed local check fails, an honest submission
    passes, and --regrade gives every cell the same score with the same secret."""
    workspace = released_workspace(tmp_path / "course", tmp_path / "notebooks", "c.Execute.timeout = 60\n")
    s1 = solutions(A1)
    recorded = replay.record(arguments=[])
    folder = tmp_path / "downloads"
    folder.mkdir()
    build = Class(workspace)
    for student, answers in {"alice": s1, "rex": {**s1, "bce_vector_solution": replay.source(recorded)}}.items():
        (folder / f"{student}_{A1}.ipynb").write_text(build.notebook(A1, answers))
    assert main(["collect", str(folder), "--workspace", str(workspace.root)]) == 0
    assert not (workspace.root / secret.FILE).exists()
    assert main(["autograde", "--quiet", "--workspace", str(workspace.root)]) == 0
    path = workspace.root / secret.FILE
    made = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = cell_scores(workspace)
    assert {cell: score for (student, _, cell), (score, _) in first.items() if student == "rex"} == {
        "bce_vector_predict": 2, "bce_vector_examples": 0, "bce_vector_edges": 0, "bce_vector_grad": 2}
    assert sum(score for (student, _, _), (score, _) in first.items() if student == "alice") == 9
    assert main(["autograde", "--quiet", "--regrade", "--workspace", str(workspace.root)]) == 0
    assert cell_scores(workspace) == first and path.read_text() == made
