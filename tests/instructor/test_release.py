"""The release machinery, on small courses made for the test: clear errors for
an instructor's broken masters, and a --check that notices stale copies."""

from pathlib import Path

import nbformat
import pytest

from grader.instructor import release
from grader.instructor.cli import main


def master(source: Path, name: str, *, headers=True, extra=None):
    nb = nbformat.v4.new_notebook()
    cells = []
    if headers:
        badge = nbformat.v4.new_markdown_cell("old badge", metadata={"tags": ["header"]})
        setup = nbformat.v4.new_code_cell("old setup", metadata={"tags": ["header"]})
        cells += [badge, setup]
    cells.append(nbformat.v4.new_markdown_cell(f"# Title of {name}"))
    solution = nbformat.v4.new_code_cell(
        "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION")
    solution.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "task": False,
                                     "grade_id": "f", "schema_version": 3}
    cells.append(solution)
    cells += extra or []
    nb.cells = cells
    (source / name).mkdir(parents=True)
    path = source / name / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def test_headers_are_brought_in_line_once(tmp_path):
    master(tmp_path, "01-a")
    (changed,) = release.sync_headers(source=tmp_path)
    nb = nbformat.read(changed, as_version=4)
    assert (nb.cells[0].source, nb.cells[1].source) == release.header_sources("01-a", release.location())
    assert "colab.research.google.com/github/" in nb.cells[0].source
    assert release.sync_headers(source=tmp_path) == []


def test_a_master_without_headers_is_named(tmp_path):
    master(tmp_path, "01-a", headers=False)
    with pytest.raises(release.ReleaseError, match="01-a.ipynb must open with its two header cells"):
        release.sync_headers(source=tmp_path)


def test_a_malformed_master_is_named(tmp_path):
    (tmp_path / "01-a").mkdir()
    (tmp_path / "01-a" / "01-a.ipynb").write_text("{ not json")
    with pytest.raises(release.ReleaseError, match="not a readable notebook"):
        release.sync_headers(source=tmp_path)


def test_an_assignment_without_its_master_is_named(tmp_path):
    (tmp_path / "01-a").mkdir()
    with pytest.raises(release.ReleaseError, match="no master notebook 01-a.ipynb"):
        release.generate(tmp_path / "out", source=tmp_path)


def test_generate_writes_student_copies_and_readme(tmp_path):
    source = tmp_path / "source"
    master(source, "01-a")
    release.sync_headers(source=source)
    release.generate(tmp_path / "out", source=source, release_dir=tmp_path / "release")
    student = nbformat.read(tmp_path / "out" / "01-a.ipynb", as_version=4)
    assert "raise NotImplementedError()" in student.cells[3].source
    assert "return x" not in student.cells[3].source
    assert "1. [Title of 01-a](01-a.ipynb)" in (tmp_path / "out" / "README.md").read_text()
    assert (tmp_path / "release" / "01-a" / "01-a.ipynb").exists()
    assert release.differences(tmp_path / "out", tmp_path / "out") == []


def test_release_check_finds_a_stale_copy(tmp_path, capsys):
    out = tmp_path / "notebooks"
    release.generate(out)
    assert main(["release", "--check", "--out", str(out)]) == 0
    first = sorted(out.glob("*.ipynb"))[0]
    first.write_text(first.read_text().replace("Learning objectives", "Objectives"))
    assert main(["release", "--check", "--out", str(out)]) == 1
    assert f"{first.name} differs" in capsys.readouterr().out


def test_a_bad_repository_setting_is_an_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.bce-course]\nrepository = "no-slash"\n')
    with pytest.raises(release.ReleaseError, match="OWNER/NAME"):
        release.location(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    with pytest.raises(release.ReleaseError, match=r"\[tool.bce-course\]"):
        release.location(tmp_path)


_RUN_SETUP = r'''
import sys, types
from IPython.core.inputtransformer2 import TransformerManager

source, colab, installed = sys.argv[1], sys.argv[2] == "colab", sys.argv[3] == "installed"
if not installed:
    sys.modules["grader"] = None          # as if the package were not in this environment
if colab:
    sys.modules["google.colab"] = types.ModuleType("google.colab")
magics = []
shell = types.SimpleNamespace(run_line_magic=lambda name, line: magics.append((name, line)))
namespace = {"get_ipython": lambda: shell}
try:
    exec(TransformerManager().transform_cell(source), namespace)
except ModuleNotFoundError as error:
    print("ERROR", error)
print("MAGICS", magics)
'''


@pytest.mark.parametrize("colab", [False, True], ids=["outside Colab", "in Colab"])
@pytest.mark.parametrize("installed", [False, True], ids=["missing", "installed"])
def test_the_setup_cell_stops_with_the_install_command_when_the_package_is_missing(tmp_path, colab, installed):
    import subprocess
    import sys

    where = release.location()
    _, setup = release.header_sources("01-bce-vector", where)
    done = subprocess.run([sys.executable, "-c", _RUN_SETUP, setup, "colab" if colab else "local",
                           "installed" if installed else "missing"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)})
    out = done.stdout
    requirement = f"bce-course @ git+https://github.com/{where.repository}@{where.branch}"
    assert done.returncode == 0, done.stderr
    assert ("pip" in out.split("MAGICS")[1]) == colab    # only Colab installs anything
    if installed:
        assert "ERROR" not in out and "Setup: " in out
    elif colab:
        assert "ERROR the course package is missing. Its install failed" in out, out
    else:
        assert f'ERROR the course package is missing. Install it in this kernel\'s environment with: pip install ' \
               f'"{requirement}", then restart the kernel.' in out, out
