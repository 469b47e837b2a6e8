"""What the engine draws: figures and explorers only in the cells somebody grades.

A cell nobody grades (an explanation, a cell the student added) still runs whole, and makes
its figures, but they are neither laid out nor rendered: the autograded notebook shows a
line in their place. A cell somebody grades (a test cell, an answer graded by hand) shows
its figure as a Jupyter kernel would."""

import base64
import textwrap
from pathlib import Path

import pytest

from helpers import run_script

pytestmark = pytest.mark.slow  # forks notebooks' processes from a warmed-up engine: seconds

DRAWING_CHECK = textwrap.dedent('''
    import json, tempfile
    import nbformat
    from grader.instructor.engine.execute import execute
    from grader.instructor.engine.pool import warm_up
    from grader.instructor.engine.sandbox import Sandbox

    warm_up(1)
    figure = ("import matplotlib.pyplot as plt\\nfig, ax = plt.subplots()\\nax.plot([1, 2], [3, 4])\\n"
              "ax.set_yscale('log')\\nfig.tight_layout()\\nplacement = fig.subplotpars.left")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(figure),                                   # an explanation
        nbformat.v4.new_code_cell("print(round(placement, 3)); print(plt.get_fignums())"),
        nbformat.v4.new_code_cell(figure + "\\nplt.show()\\nprint('shown')"),  # an answer graded by hand
        nbformat.v4.new_code_cell("from grader.explore import probability_explorer\\n"
                                  "e = probability_explorer(target=0.3)\\ne.update(target=0.5)\\n"
                                  "print(e.params, type(e).__name__)\\ne"),
        nbformat.v4.new_code_cell("from grader.explore import probability_explorer\\n"
                                  "probability_explorer(target=0.333)"),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\\nplt.plot([1, 2])\\n"
                                  "print('a test cell draws')"),
    ]
    nb.cells[2].metadata["nbgrader"] = {"grade": True, "solution": True, "grade_id": "drawn", "points": 1,
                                        "locked": False, "schema_version": 3}
    nb.cells[5].metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "test", "points": 1,
                                        "locked": True, "schema_version": 3}
    out = execute(nb, cwd=tempfile.mkdtemp(), timeout=30, sandbox=Sandbox())
    # the capstone, solved, run whole (no shared beginning): its figures and fonts, its training
    from grader.instructor import release
    capstone = nbformat.read("CAPSTONE", as_version=4)
    answers = release.master_solutions("06-class-imbalance")
    for cell in capstone.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    whole = execute(capstone, cwd=tempfile.mkdtemp(), timeout=60, sandbox=Sandbox())
    print(json.dumps({"cells": [[dict(o) for o in c.outputs] for c in out.cells],
                      "capstone": whole.metadata["bce_grader"]["attention"],
                      "capstone errors": [o.get("ename") for c in whole.cells if c.cell_type == "code"
                                          for o in c.outputs if o.get("output_type") == "error"]}))
''')

SETTLE_CHECK = textwrap.dedent('''
    import gc, json, os
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    from grader.instructor.engine.child import settle_before_forking

    def fonts():
        found = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                found.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        return [path for path in found if path.endswith((".ttf", ".otf"))]

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [1e-3, 1.0, 1e3])
    ax.set_yscale("log")  # mathtext tick labels: their fonts are kept in its cache
    fig.canvas.draw()
    plt.close(fig)
    before = len(fonts())
    settle_before_forking()
    print(json.dumps({"before": before, "after": len(fonts()), "frozen": gc.get_freeze_count()}))
''')


@pytest.fixture(scope="module")
def executed():
    capstone = Path(__file__).resolve().parents[3] / "notebooks" / "06-class-imbalance.ipynb"
    return run_script(DRAWING_CHECK.replace("CAPSTONE", str(capstone)))[0]


@pytest.fixture(scope="module")
def outputs(executed):
    return executed["cells"]


def test_the_capstone_runs_whole_to_the_end(executed):
    # matplotlib keeps font files open in objects freed late: the engine lets them go before it
    # forks, so that none later closes a file (a pipe to the judge) that has taken its number
    assert executed["capstone"] == []
    assert executed["capstone errors"] == []


def test_a_process_that_forks_notebooks_keeps_no_font_file_open_and_freezes_its_heap():
    found = run_script(SETTLE_CHECK)[0]
    assert found["before"] > 0  # the check sees the fonts matplotlib keeps open
    assert found["after"] == 0
    assert found["frozen"] > 0


def _kinds(cell):
    return [sorted(o.get("data", {})) or o["output_type"] for o in cell]


def test_a_figure_in_a_cell_nobody_grades_is_made_but_not_drawn(outputs):
    explanation = outputs[0]
    assert _kinds(explanation) == [["text/plain"]]
    text = explanation[0]["data"]["text/plain"]
    assert text.startswith("<Figure size") and "not drawn by the autograder" in text
    # the figure was made (and closed at the end of the cell, as the inline backend does), not laid out
    after = "".join(o.get("text", "") for o in outputs[1])
    assert after == "0.125\n[]\n"  # matplotlib's default left margin: tight_layout did not run


def test_a_figure_in_a_graded_cell_is_drawn(outputs):
    graded = outputs[2]
    pngs = [o for o in graded if "image/png" in o.get("data", {})]
    assert len(pngs) == 1
    assert base64.b64decode(pngs[0]["data"]["image/png"]).startswith(b"\x89PNG")
    assert any(o.get("text") == "shown\n" for o in graded)
    test_cell = outputs[5]
    assert any("image/png" in o.get("data", {}) for o in test_cell)


def test_an_explorer_in_a_cell_nobody_grades_is_one_line_and_works_as_one(outputs):
    explorer = outputs[3]
    printed = "".join(o.get("text", "") for o in explorer if o["output_type"] == "stream")
    assert printed == "{'target': 0.5} UndrawnExplorer\n"
    shown = [o for o in explorer if o["output_type"] == "execute_result"]
    assert len(shown) == 1 and list(shown[0]["data"]) == ["text/plain"]
    assert "an explorer: not drawn by the autograder" in shown[0]["data"]["text/plain"]
    # a value off the explorer's grid is refused as it is in the student's notebook
    error = outputs[4][0]
    assert error["output_type"] == "error" and error["ename"] == "ValueError"
    assert "target must be one of the explorer's values" in error["evalue"]
