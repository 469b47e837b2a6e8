"""Own work, read in the source where a student checks their own function
(grader._battery.source), as the judge reads it when autograding: in a file given to
``python -m grader check``, and in a notebook's kernel, from its input history."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from grader._battery import checks, loading

DEAD_BRANCH = textwrap.dedent("""\
    import torch
    import torch.nn.functional as F


    def binary_cross_entropy(input, target):
        if input.dim() > 8:  # no test sends such an input
            return F.binary_cross_entropy(input, target)
        log_p = torch.clamp(torch.log(input), min=-100)
        log_q = torch.clamp(torch.log(1 - input), min=-100)
        return -(target * log_p + (1 - target) * log_q).mean()
    """)
OWN = DEAD_BRANCH.replace("    if input.dim() > 8:  # no test sends such an input\n"
                          "        return F.binary_cross_entropy(input, target)\n", "")


def _checked(tmp_path, text: str):
    path = tmp_path / "solution.py"
    path.write_text(text)
    loaded = loading.load(path)
    fn = loaded.functions["binary_cross_entropy"]
    return checks.run(fn, "binary_cross_entropy", categories=["article examples"], devices=["cpu"],
                      name="binary_cross_entropy", chunks=loaded.chunks)


def test_a_file_whose_function_reaches_torchs_loss_fails_own_work_with_the_line(tmp_path):
    report = _checked(tmp_path, DEAD_BRANCH)
    assert report.failed_categories() == ["own work"]
    assert "line 7: F.binary_cross_entropy" in str(report)


def test_a_file_whose_function_is_its_own_passes(tmp_path):
    assert _checked(tmp_path, OWN).passed


KERNEL = textwrap.dedent("""\
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    run = lambda source: shell.run_cell(source, store_history=True)
    run("import torch\\nimport torch.nn.functional as F\\nimport grader")
    run(%(dead)r)
    run("r = grader.check(binary_cross_entropy, categories=['article examples'], devices=['cpu'])\\n"
        "print('first', r.failed_categories(), 'In [2], line 3: F.binary_cross_entropy' in str(r))")
    run(%(own)r)  # the cell run again, without torch's loss
    run("p, y = torch.tensor([0.3]), torch.tensor([1.0])\\n"
        "print(torch.allclose(binary_cross_entropy(p, y), F.binary_cross_entropy(p, y)))")
    run("r = grader.check(binary_cross_entropy, categories=['article examples'], devices=['cpu'])\\n"
        "print('again', r.failed_categories())")
    """)


def test_a_notebooks_kernel_reads_what_it_ran_the_latest_run_of_a_cell_winning(tmp_path):
    dead = DEAD_BRANCH.split("\n\n\n", 1)[1]
    own = OWN.split("\n\n\n", 1)[1]
    script = tmp_path / "kernel.py"
    script.write_text(KERNEL % {"dead": dead, "own": own})
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython"), "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path).stdout
    assert "first ['own work'] True" in out, out
    assert "again []" in out, out
