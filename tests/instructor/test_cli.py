"""python -m grader check FILE: exit status 0, 1 or 2, text or JSON."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

import implementations

from grader.instructor.cli import main

# A student's file: the tests' own implementations, with the names the checker looks for.
CORRECT = (Path(implementations.__file__).read_text()
           + "\n\nbinary_cross_entropy = bce_direct\n")

LOGITS = '''
import torch.nn.functional as F

def binary_cross_entropy_with_logits(input, target, weight=None, pos_weight=None, reduction="mean"):
    return F.binary_cross_entropy_with_logits(input, target, weight, pos_weight=pos_weight, reduction=reduction)
'''


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def notebook(tmp_path, cells, name="work.ipynb"):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# An exercise")] + [nbformat.v4.new_code_cell(c) for c in cells]
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def test_correct_file_exits_0(tmp_path, capsys):
    assert main(["check", str(write(tmp_path, "bce.py", CORRECT))]) == 0
    out = capsys.readouterr().out
    assert "binary_cross_entropy: all checks passed" in out


def test_failing_file_exits_1_and_checks_both_functions(tmp_path, capsys):
    path = write(tmp_path, "both.py", CORRECT + LOGITS)
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "binary_cross_entropy: all checks passed" in out
    assert "binary_cross_entropy_with_logits: FAILED in own work" in out


def test_function_option_selects_one(tmp_path, capsys):
    path = write(tmp_path, "both.py", CORRECT + LOGITS)
    assert main(["check", str(path), "--function", "binary_cross_entropy"]) == 0
    assert "with_logits" not in capsys.readouterr().out


@pytest.mark.parametrize("content, words", [
    (None, "does not exist"),
    ("x = 1\n", "defines neither"),
    ("def binary_cross_entropy(:\n", "syntax error"),
])
def test_unusable_file_exits_2(tmp_path, capsys, content, words):
    path = tmp_path / "student.py"
    if content is not None:
        path.write_text(content)
    assert main(["check", str(path)]) == 2
    assert words in capsys.readouterr().err


def test_malformed_notebook_exits_2(tmp_path, capsys):
    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": [ not json')
    assert main(["check", str(path)]) == 2
    assert "not a readable Jupyter notebook" in capsys.readouterr().err


def test_notebook_with_magics_and_failing_cells(tmp_path, capsys):
    path = notebook(tmp_path, [
        "%matplotlib inline\n!echo hello\nimport torch",
        "%%time\nthis is not python",
        "raise RuntimeError('a cell that fails before the definition')",
        CORRECT,
        "import grader\ngrader.assert_passes(binary_cross_entropy)  # skipped while loading",
        "assert False, 'a failing check cell after the definition'",
    ])
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "cell 4 raised RuntimeError" in out
    assert "cell 7 raised AssertionError" in out
    assert "binary_cross_entropy: all checks passed" in out


def test_json_report(tmp_path, capsys):
    path = write(tmp_path, "bce.py", CORRECT.replace("min=-100)", "min=-1e9)"))
    assert main(["check", str(path), "--json", "--device", "cpu"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is False
    (report,) = data["reports"]
    assert report["devices"] == {"cpu": {"ran": True}}
    assert report["failures"][0]["category"] == "edge values"


def test_json_report_for_an_unreadable_file(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.py"), "--json"]) == 2
    assert "does not exist" in json.loads(capsys.readouterr().out)["error"]


def test_absent_device_is_skipped_not_failed(tmp_path, capsys):
    import grader

    absent = [d for d in ("cuda", "mps") if d not in grader.available_devices()]
    if not absent:
        pytest.skip("every device is present here")
    assert main(["check", str(write(tmp_path, "bce.py", CORRECT)), "--device", absent[0]]) == 0
    assert "skipped" in capsys.readouterr().out


def test_python_dash_m_entry_point(tmp_path):
    path = write(tmp_path, "bce.py", CORRECT)
    done = subprocess.run([sys.executable, "-m", "grader", "check", str(path), "--category", "article examples"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "article examples" in done.stdout
    assert done.stderr == ""
