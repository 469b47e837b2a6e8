"""What a notebook's cells bring back is limited in all, not only cell by cell: past the
engine's limit a cell keeps its errors (nbgrader scores by them) and a line saying the
rest was dropped, so that a chatty or hostile notebook cannot grow its autograded copy
and its feedback without end."""

import textwrap

import pytest

from helpers import run_script

pytestmark = pytest.mark.slow  # starts the engine in a fresh Python: seconds

SCRIPT = textwrap.dedent('''
    import json, tempfile
    import nbformat
    from grader.instructor.engine.execute import NOTEBOOK_OUTPUT_LIMIT, execute
    from grader.instructor.engine.pool import warm_up
    from grader.instructor.engine.session import OUTPUT_LIMIT

    warm_up()
    cells = NOTEBOOK_OUTPUT_LIMIT // OUTPUT_LIMIT + 3
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"print('{i}' * {OUTPUT_LIMIT - 100})") for i in range(cells)]
    nb.cells.append(nbformat.v4.new_code_cell("raise ValueError('the last cell fails')"))
    done = execute(nb, cwd=tempfile.mkdtemp(), timeout=30)
    print(json.dumps({"limit": NOTEBOOK_OUTPUT_LIMIT, "sizes": [len(json.dumps(c.outputs)) for c in done.cells],
                      "first": [dict(o) for o in done.cells[0].outputs],
                      "last": [dict(o) for o in done.cells[-1].outputs],
                      "attention": done.metadata["bce_grader"]["attention"]}))
''')


def test_outputs_past_the_notebooks_limit_are_dropped_but_errors_kept():
    found, _ = run_script(SCRIPT)
    assert sum(found["sizes"]) < found["limit"] + (2 << 20)
    assert found["sizes"][0] > (1 << 20) - 200  # the first cells keep what they printed
    assert "0" * 1000 in found["first"][0]["text"]
    last = found["last"]
    assert [o["output_type"] for o in last] == ["stream", "error"]
    assert "outputs dropped" in last[0]["text"] and last[1]["evalue"] == "the last cell fails"
    assert any("MiB in all" in note for note in found["attention"]), found["attention"]
