"""The autograding secret in the engine: torch's answers recorded by a local grader.check, replayed by a
function that looks them up, pass the engine's judge without the secret and fail it with one. The
notebook's process is forked from a forker started before the secret was set, as the engine starts its
root forker before it reads it; tests/hostile/reads_the_grading_secret.ipynb looks for it there, graded
by the whole engine (tests/instructor/test_hostile.py)."""

import json
import textwrap
from pathlib import Path

import nbformat
import pytest

import replay
from grader.instructor import release
from helpers import A1, run_script

pytestmark = pytest.mark.slow  # runs notebook 01 twice in the engine: a minute or two

SECRET = "zq-engine-secret" + "-93c1f0"

SCRIPT = textwrap.dedent('''
    import json, sys, tempfile
    import nbformat
    from grader._battery import salt
    from grader.instructor.engine import forker
    from grader.instructor.engine.execute import execute
    from grader.instructor.engine.pool import warm_up

    warm_up()
    forker.mine()  # the notebooks' forker first, as the engine starts its root forker before it reads the secret
    nb = nbformat.read(NOTEBOOK, as_version=4)
    found = {}
    for secret in (None, SECRET):
        salt.use(secret)
        done = execute(nbformat.from_dict(nb), cwd=tempfile.mkdtemp(), timeout=60)
        found[str(secret)] = {
            "failed": sorted(c.metadata["nbgrader"]["grade_id"] for c in done.cells
                             if c.metadata.get("nbgrader", {}).get("grade")
                             and any(o.output_type == "error" for o in c.outputs)),
            "printed": "".join(o.get("text", "") for c in done.cells for o in c.get("outputs", []))}
    print(json.dumps(found))
''')

#: A cell that shows the secret, if the notebook's environment held it (the battery's own state is looked
#: for by tests/hostile/reads_the_grading_secret.ipynb, which the tampering scan then names).
LOOKS = 'import os\nprint("the notebook\'s secret:", os.environ.get("BCE_GRADER_SALT"))\n'



def test_a_replayed_local_check_passes_the_engines_judge_without_the_secret_and_fails_it_with_one(tmp_path):
    master = nbformat.read(release.master_path(A1), as_version=4)
    table = replay.record(arguments=[])  # here: the script's process must not use torch's threads before it forks
    at = next(i for i, c in enumerate(master.cells)
              if c.metadata.get("nbgrader", {}).get("grade_id") == "bce_vector_solution")
    master.cells[at].source = replay.source(table)
    master.cells.insert(at + 1, nbformat.v4.new_code_cell(LOOKS))
    path = tmp_path / f"{A1}.ipynb"
    nbformat.write(master, path)
    found, _ = run_script(f"NOTEBOOK = {str(path)!r}\nSECRET = {SECRET!r}\n" + SCRIPT, timeout=900)
    plain, salted = found["None"], found[SECRET]
    assert plain["failed"] == [], plain["printed"][-3000:]  # the replayed answers pass every check: the attack works on public inputs
    assert salted["failed"] == ["bce_vector_edges", "bce_vector_examples"]  # its loss misses; the gradient is honest
    for run in (plain, salted):
        assert "the notebook's secret: None" in run["printed"], run["printed"][-2000:]
        assert SECRET not in run["printed"]
