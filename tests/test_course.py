"""The course: masters that pass their tests, student copies generated from them
that fail them, and every printed number of a source example recomputed with torch."""

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from grader import articles
from grader.instructor import release

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NAMES = release.assignments()


def graded(cell) -> bool:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade", False) and cell.cell_type == "code"


def nbgrader(*args):
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], capture_output=True, text=True,
                          timeout=600, env=env, cwd=release.COURSE_DIR)


@pytest.fixture(scope="module", params=NAMES)
def executed_student_copy(request, tmp_path_factory):
    """A student copy, executed top to bottom the way a student would run it."""
    nb = nbformat.read(NOTEBOOKS / f"{request.param}.ipynb", as_version=4)
    work = tmp_path_factory.mktemp(request.param)
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(work)}}).execute()
    return request.param, nb


def test_there_is_a_course():
    assert len(NAMES) >= 5
    assert [n[:2] for n in NAMES] == [f"{i:02d}" for i in range(1, len(NAMES) + 1)]


@pytest.mark.parametrize("name", NAMES)
def test_master_is_clean_and_opens_with_current_headers(name):
    path = release.master_path(name)
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: stale outputs"
    # its title first, with the Colab badge under it, then the setup cell; as release writes them
    title, setup = nb.cells[0], nb.cells[1]
    badge, setup_source = release.header_sources(name, release.location())
    assert title.cell_type == "markdown" and title.source.startswith(f"# {release.title(path)}\n\n{badge}\n\n")
    assert setup.cell_type == "code" and setup.source == setup_source
    assert not release.bring_headers_in_line(nb, name, release.location(), path)
    assert any(graded(c) for c in nb.cells), f"{name} has no autograded tests"
    assert any("BEGIN HIDDEN TESTS" in c.source for c in nb.cells if graded(c)), f"{name} has no hidden tests"


def test_notebooks_folder_is_what_release_generates(tmp_path):
    release.generate(tmp_path)
    assert release.differences(tmp_path, NOTEBOOKS) == []
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


def test_the_notebooks_readme_lists_them_in_order():
    readme = (NOTEBOOKS / "README.md").read_text()
    positions = [readme.index(f"({name}.ipynb)") for name in NAMES]
    assert positions == sorted(positions)
    for name in NAMES:
        assert release.title(release.master_path(name)) in readme


@pytest.mark.parametrize("name", NAMES)
def test_student_copy_holds_no_solution_and_no_hidden_test(name):
    text = (NOTEBOOKS / f"{name}.ipynb").read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    master = nbformat.read(release.master_path(name), as_version=4)
    student = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    for m, s in zip(master.cells, student.cells):
        if graded(m) and "### BEGIN HIDDEN TESTS" in m.source:
            hidden = m.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0].strip()
            assert hidden not in s.source
        if m.get("metadata", {}).get("nbgrader", {}).get("solution") and m.cell_type == "code":
            answer = m.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0].strip()
            assert answer not in s.source and "raise NotImplementedError()" in s.source


@pytest.mark.parametrize("name", NAMES)
def test_master_passes_its_tests(name):
    done = nbgrader("validate", str(release.master_path(name)))
    assert "Success! Your notebook passes all the tests." in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("name", NAMES)
def test_student_copy_fails_its_tests(name):
    done = nbgrader("validate", "--invert", str(NOTEBOOKS / f"{name}.ipynb"))
    assert "Success! The notebook does not pass any tests." in done.stdout, done.stdout + done.stderr


def test_student_copy_runs_without_errors_outside_the_tests(executed_student_copy):
    name, nb = executed_student_copy
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if graded(cell):
            assert errors, f"{name} cell {index}: a test passes without a solution"
        elif cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            # an answer still to write (a prediction left blank raises where it stands)
            assert all(e.ename == "NotImplementedError" for e in errors), \
                f"{name} cell {index}: {errors[0].ename}: {errors[0].evalue}"
        else:
            assert not errors, f"{name} cell {index}: {errors[0].ename}: {errors[0].evalue}"
        stderr = [o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
        assert not stderr, f"{name} cell {index} wrote to stderr: {stderr}"


def _printed_loss(cell) -> float:
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    lines = [line for line in text.splitlines() if line.startswith("loss: ")]
    assert len(lines) == 1, f"a seed cell prints one 'loss: ' line, got {lines}"
    match = re.match(r"loss: tensor\(([-0-9.e+]+)", lines[0])
    assert match, lines[0]
    return float(match.group(1))


_NUMBER = re.compile(r"-?\d+\.?\d*(?:e[-+]?\d+)?")


def _printed_tensor(cell, label: str) -> list[float] | None:
    """The numbers of the tensor printed after ``label: `` in a cell's output, if any."""
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    start = text.find(f"{label}: tensor(")
    if start < 0:
        return None
    body = text[start + len(label) + len(": tensor("):]
    depth, end = 1, 0
    for end, char in enumerate(body):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            break
    numbers = body[:end].split("grad_fn")[0].split("requires_grad")[0]
    return [float(n) for n in _NUMBER.findall(numbers.replace("[", " ").replace("]", " "))]


def _torch_input_grad(key: str) -> torch.Tensor:
    """input.grad after the article's call and backward(); for the examples that
    apply a sigmoid first, the article's input is the logits."""
    ex = articles.example(key)
    args = articles.logits_of(key) if key in ("002-1", "002-2") else ex.build()
    x = args["input"].clone().requires_grad_(True)
    probabilities = torch.sigmoid(x) if key in ("002-1", "002-2") else x
    ex.criterion(args)(probabilities, args["target"]).backward()
    return x.grad


def test_every_printed_article_example_matches_torch(executed_student_copy):
    name, nb = executed_student_copy
    tagged = [(tag.split(":", 1)[1], cell) for cell in nb.cells
              for tag in cell.get("metadata", {}).get("tags", []) if tag.startswith("seed:")]
    assert tagged, f"{name} reproduces no source example"
    for key, cell in tagged:
        expected = articles.torch_value(articles.example(key)).item()
        printed = _printed_loss(cell)
        # torch prints four decimals
        assert abs(printed - expected) <= 5e-5 + 1e-4 * abs(expected), (name, key, printed, expected)
        grad = _printed_tensor(cell, "input.grad")
        if grad is not None:
            expected_grad = _torch_input_grad(key).flatten().tolist()
            assert len(grad) == len(expected_grad), (name, key, grad)
            for p, e in zip(grad, expected_grad):
                assert abs(p - e) <= 5e-5 + 1e-3 * abs(e), (name, key, "input.grad", p, e)


def test_every_source_example_is_reproduced_somewhere():
    keys = set()
    for name in NAMES:
        nb = nbformat.read(release.master_path(name), as_version=4)
        keys |= {t.split(":", 1)[1] for c in nb.cells for t in c.get("metadata", {}).get("tags", [])
                 if t.startswith("seed:")}
    assert keys == {ex.key for ex in articles.EXAMPLES}


def test_release_check_reports_up_to_date():
    from grader.instructor.cli import main

    assert main(["release", "--check"]) == 0


def test_every_notebook_has_an_explorer_that_renders_headless(executed_student_copy):
    name, nb = executed_student_copy
    cells = [c for c in nb.cells if c.cell_type == "code" and "explorer" in c.metadata.get("tags", [])]
    assert cells, f"{name} has no explorer"
    for cell in cells:
        views = [o for o in cell.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert views, f"{name}: the explorer cell shows no widget: {cell.outputs}"
        # a static view (GitHub, nbviewer, the feedback) shows the explorer's figure
        assert all("image/png" in o.data for o in views), f"{name}: an explorer has no static figure"


#: Words that name a colour. A reader who cannot tell red from green (one man in twelve)
#: must be able to follow every sentence: the prose names line styles and markers instead.
COLOURS = re.compile(r"\b(red|orange|green|blue|purple|violet|yellow|pink|brown|cyan|magenta|grey|gray)\b", re.I)


@pytest.mark.parametrize("name", NAMES)
def test_no_sentence_names_a_colour(name):
    nb = nbformat.read(release.master_path(name), as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            prose = re.sub(r"\(https?://[^)]*\)", "", cell.source)  # addresses are not prose
            assert not COLOURS.search(prose), f"{name} cell {index}: {COLOURS.search(prose)[0]!r} in {prose[:200]!r}"


def test_no_explorer_title_names_a_colour():
    from grader import explore, imbalance

    for make in [m for m, _, _ in explore.EXPLORERS.values()] + [imbalance.imbalance_explorer]:
        widget = make()
        texts = [item["t"] for frame in widget.payload_for(widget._kernel_params())["frames"][:5]
                 for item in frame["a"] if item and "t" in item]
        assert texts and not [t for t in texts if COLOURS.search(t)], texts
