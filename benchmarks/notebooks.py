"""How long each course notebook takes to execute top to bottom on this machine.

Each notebook runs in a fresh kernel, kernel start included, as a student or
`nbgrader validate` would run it: the master (with its solutions) and the
student copy. The baseline is a notebook holding only the setup cell
(`import torch`, `import grader`), measured in the same run, because most of a
notebook's time is starting the kernel and importing torch. Target: every
notebook under 30 s on the CPU.

    python benchmarks/notebooks.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.instructor import release  # noqa: E402

TARGET = 30.0


def execute(nb) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": tmp}}).execute()
        return time.perf_counter() - start


def main() -> int:
    names = release.assignments()
    baseline_nb = nbformat.v4.new_notebook()
    baseline_nb.cells = [nbformat.v4.new_code_cell(release.header_sources(names[0], release.location())[1])]
    baseline = execute(baseline_nb)
    print(f"baseline (kernel start, import torch and grader): {baseline:.1f} s")
    print(f"{'notebook':32} {'master':>8} {'student':>8} {'master / baseline':>18}")
    worst = 0.0
    for name in names:
        master = execute(nbformat.read(release.master_path(name), as_version=4))
        student = execute(nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4))
        worst = max(worst, master, student)
        print(f"{name:32} {master:7.1f}s {student:7.1f}s {master / baseline:17.1f}x")
    verdict = "ok" if worst < TARGET else "OVER TARGET"
    print(f"slowest: {worst:.1f} s; target < {TARGET:g} s: {verdict}")
    return 0 if worst < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
