"""Grading in shards, merged: merge keeps, for each student and assignment, the newest
grading, whichever gradebook holds it (the workspace's own or a shard's), with its flags;
running it again changes nothing; and the autograded/ and feedback/ folders match the
grade kept. The real commands, on a small class, as an instructor would run them."""

import csv
import json
import shutil

import pytest

from grader.instructor.cli import main
from grader.instructor.shards import OTHER_FOLDER, in_shard
from grader.instructor.workspace import Workspace
from helpers import A1, Class, cell_scores, solutions

pytestmark = pytest.mark.slow  # grades a class several times: a minute or two

EDITED = "edited test cell bce_vector_examples"
FULL = {"bce_vector_predict": (2, 2), "bce_vector_examples": (2, 2), "bce_vector_edges": (3, 3),
        "bce_vector_grad": (2, 2)}   # 9
FIRST_ONLY = {"bce_vector_predict": (0, 2), "bce_vector_examples": (2, 2), "bce_vector_edges": (3, 3),
              "bce_vector_grad": (0, 2)}  # 5
NOTHING = {"bce_vector_predict": (0, 2), "bce_vector_examples": (0, 2), "bce_vector_edges": (0, 3),
           "bce_vector_grad": (0, 2)}  # 0


def cells(**students):
    return {(student, A1, cell): score for student, scores in students.items() for cell, score in scores.items()}


def read(workspace, name):
    path = workspace.root / name
    return json.loads(path.read_text()) if path.exists() else None


def state(workspace):
    """Everything merge may change: the grades, the flags, the graded-at records."""
    return {"cells": cell_scores(workspace), "flags": read(workspace, "autograde-flags.json"),
            "graded": read(workspace, "autograde-graded.json")}


def exported(workspace):
    run(workspace, "export")
    with (workspace.root / "grades.csv").open() as f:
        # the first row holds each notebook's maximum, the others a student's grades
        return {row["student"]: float(row[A1]) for row in csv.DictReader(f) if row["student"] != "(maximum)"}


def submitted_answer(workspace, student):
    """The first answer cell of the student's autograded notebook: which submission it graded."""
    notebook = json.loads((workspace.root / "autograded" / student / A1 / f"{A1}.ipynb").read_text())
    (cell,) = [c for c in notebook["cells"]
               if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "bce_vector_solution"]
    return "".join(cell["source"])


def run(workspace, *argv):
    assert main([*argv, "--workspace", str(workspace.root)]) == 0, argv


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A class of three graded in two shards and merged; bob resubmits twice, regraded once
    without shards and once in his shard, with merges in between. What the workspace held
    at each step."""
    tmp = tmp_path_factory.mktemp("merge")
    ws = Workspace.at(tmp / "workspace")
    run(ws, "release", "--out", str(tmp / "notebooks"))
    assert [s for s in ("alice", "bob", "erin") if in_shard(s, (1, 2))] == ["bob", "erin"]
    assert [s for s in ("alice", "bob", "erin") if in_shard(s, (1, 3))] == ["erin"]
    build, s1 = Class(ws), solutions(A1)
    first_only = {"bce_vector_solution": s1["bce_vector_solution"]}
    answers = {"bob-1": build.notebook(A1, {}, edit={"bce_vector_examples": "pass"}),   # 0, flagged
               "bob-2": build.notebook(A1, s1),                                              # 9
               "bob-3": build.notebook(A1, first_only, edit={"bce_vector_examples": "pass"})}  # 5, flagged

    def hand_in(name, files):
        folder = tmp / name
        folder.mkdir()
        for student, text in files.items():
            (folder / f"{student}_{A1}.ipynb").write_text(text)
        run(ws, "collect", str(folder))

    steps = {}
    grade = ("autograde", "--quiet", "--jobs", "1")
    hand_in("first", {"alice": build.notebook(A1, s1), "bob": answers["bob-1"],
                      "erin": build.notebook(A1, first_only)})
    run(ws, *grade, "--shard", "1/2")
    run(ws, *grade, "--shard", "2/2")
    run(ws, "merge")
    steps["sharded"] = state(ws)
    run(ws, "feedback")
    steps["feedback"] = sorted(p.parent.parent.name for p in (ws.root / "feedback").glob(f"*/{A1}/*.html"))
    # A later array of 3 shards: its gradebooks start as copies of the workspace's (bob's first
    # grade included); shard 1 of 3 grades only erin, again.
    run(ws, *grade, "--shard", "1/3")
    steps["erin-again"] = state(ws)

    hand_in("second", {"bob": answers["bob-2"]})
    run(ws, *grade, "--student", "bob")                       # straight into the workspace's gradebook
    steps["regraded"] = state(ws)
    run(ws, "merge")
    steps["merged"] = state(ws)
    steps["merged-export"] = exported(ws)
    steps["merged-answer"] = submitted_answer(ws, "bob")
    steps["merged-feedback"] = sorted(p.parent.parent.name for p in (ws.root / "feedback").glob(f"*/{A1}/*.html"))
    run(ws, "merge")
    steps["merged-again"] = state(ws)

    hand_in("third", {"bob": answers["bob-3"]})
    run(ws, *grade, "--shard", "1/2")                          # bob's shard, after the regrade
    run(ws, "merge")
    steps["shard-wins"] = state(ws)
    steps["shard-wins-export"] = exported(ws)
    steps["shard-wins-answer"] = submitted_answer(ws, "bob")
    steps["shard-wins-feedback"] = sorted(p.parent.parent.name for p in (ws.root / "feedback").glob(f"*/{A1}/*.html"))
    run(ws, "merge")
    steps["shard-wins-again"] = state(ws)

    shutil.rmtree(ws.root / "autograded" / "bob" / A1)       # the folder no longer matches the grade kept
    run(ws, "merge")
    steps["no-folder"] = state(ws)
    run(ws, "merge")
    steps["no-folder-again"] = state(ws)
    steps["answers"] = {k: v for k, v in answers.items()}
    steps["first_only"] = first_only["bce_vector_solution"]
    return ws, steps


def test_two_shards_merged(course):
    _, steps = course
    first = steps["sharded"]
    assert first["cells"] == cells(alice=FULL, bob=NOTHING, erin=FIRST_ONLY)
    assert first["flags"] == {f"alice/{A1}": [], f"bob/{A1}": [EDITED], f"erin/{A1}": []}
    assert {k: v["graded_in"] for k, v in first["graded"].items()} == {
        f"alice/{A1}": "gradebook-shard-2-of-2.db", f"bob/{A1}": "gradebook-shard-1-of-2.db",
        f"erin/{A1}": "gradebook-shard-1-of-2.db"}
    assert steps["feedback"] == ["alice", "bob", "erin"]


def test_a_regrade_without_shards_is_not_undone_by_merge(course):
    _, steps = course
    regraded, merged = steps["regraded"], steps["merged"]
    assert regraded["cells"] == cells(alice=FULL, bob=FULL, erin=FIRST_ONLY)
    assert regraded["flags"][f"bob/{A1}"] == []
    # merge keeps bob's regrade (newer than his shard's grading), its flags and its record
    assert merged["cells"] == cells(alice=FULL, bob=FULL, erin=FIRST_ONLY)
    assert steps["merged-export"] == {"alice": 9, "bob": 9, "erin": 5}
    assert merged["flags"] == {f"alice/{A1}": [], f"bob/{A1}": [], f"erin/{A1}": []}
    assert regraded["graded"][f"bob/{A1}"]["graded_in"] == "main"
    assert merged["graded"][f"bob/{A1}"] == regraded["graded"][f"bob/{A1}"]
    assert steps["merged-answer"] == solutions(A1)["bce_vector_solution"]   # autograded/ is the regrade
    # running it again changes nothing
    assert steps["merged-again"] == merged


def test_a_shard_gradebook_copied_from_the_workspace_brings_nothing_back(course):
    _, steps = course
    # shard 1 of 3 began as a copy of the workspace's gradebook, bob's first grade in it; it
    # graded only erin, whose grading is the newest and kept (the same scores), and the
    # feedback written from the grading it replaced is gone
    merged = steps["merged"]
    assert merged["graded"][f"erin/{A1}"]["graded_in"] == "gradebook-shard-1-of-3.db"
    assert merged["graded"][f"alice/{A1}"]["graded_in"] == "gradebook-shard-2-of-2.db"
    assert steps["merged-feedback"] == ["alice", "bob"]


def test_a_shard_graded_after_the_regrade_wins(course):
    ws, steps = course
    kept = steps["shard-wins"]
    assert kept["cells"] == cells(alice=FULL, bob=FIRST_ONLY, erin=FIRST_ONLY)
    assert steps["shard-wins-export"] == {"alice": 9, "bob": 5, "erin": 5}
    assert kept["flags"] == {f"alice/{A1}": [], f"bob/{A1}": [EDITED], f"erin/{A1}": []}
    record = kept["graded"][f"bob/{A1}"]
    assert record["graded_in"] == "gradebook-shard-1-of-2.db"
    assert record["graded_at_ns"] > steps["merged"]["graded"][f"bob/{A1}"]["graded_at_ns"]
    assert record == json.loads((ws.root / "gradebook-shard-1-of-2.graded.json").read_text())[f"bob/{A1}"]
    assert steps["shard-wins-answer"] == steps["first_only"]
    # bob's feedback was written from the grade replaced: gone, for `feedback` to write again
    assert steps["shard-wins-feedback"] == ["alice"]
    assert steps["shard-wins-again"] == kept


def test_a_folder_that_does_not_match_the_grade_kept_is_flagged(course):
    _, steps = course
    kept, flagged = steps["shard-wins"], steps["no-folder"]
    assert flagged["cells"] == kept["cells"] and flagged["graded"] == kept["graded"]
    assert flagged["flags"] == {**kept["flags"], f"bob/{A1}": [EDITED, OTHER_FOLDER]}
    assert steps["no-folder-again"] == flagged
