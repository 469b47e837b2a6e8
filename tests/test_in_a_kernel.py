"""In a real Jupyter kernel, as nbgrader runs test cells: a failing check raises
AssertionError with the report, and nothing ever reaches stderr."""

import nbformat
import pytest
from nbclient import NotebookClient

SETUP = "import warnings, torch\nimport grader\nimport implementations as impl"


def run(cells, tests_dir):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tests_dir)}})
    client.execute()
    return nb


def outputs(cell, kind):
    return [o for o in cell.outputs if o.output_type == kind]


def stderr(cell):
    return [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]


@pytest.fixture(scope="module")
def executed(request):
    tests_dir = request.path.parent
    return run([
        SETUP,
        # a correct function that makes torch warn: the warning must not reach stderr
        "def binary_cross_entropy(input, target, weight=None, reduction='mean'):\n"
        "    warnings.warn('torch.something is deprecated', UserWarning)\n"
        "    return impl.bce_direct(input, target, weight, reduction)\n"
        "grader.assert_passes(binary_cross_entropy);",
        "grader.assert_passes(impl.bce_no_clamp, 'binary_cross_entropy')",
        "grader.check(impl.bce_epsilon, 'binary_cross_entropy')",
    ], tests_dir)


def test_passing_check_is_silent_even_when_the_function_warns(executed):
    cell = executed.cells[1]
    assert outputs(cell, "error") == [] and stderr(cell) == []


def test_failing_check_raises_assertion_error_with_the_report(executed):
    cell = executed.cells[2]
    (error,) = outputs(cell, "error")
    assert error.ename == "AssertionError"
    assert "edge values" in error.evalue and "Hint:" in error.evalue
    assert stderr(cell) == []


def test_check_shows_the_report_as_the_cells_result(executed):
    cell = executed.cells[3]
    (result,) = outputs(cell, "execute_result")
    assert "FAILED" in result.data["text/plain"] and "First failure" in result.data["text/plain"]
    assert stderr(cell) == [] and outputs(cell, "error") == []
