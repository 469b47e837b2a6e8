"""``python -m grader lab``: JupyterLab on the course, as students need it, or as instructors do.

nbgrader, installed in an environment, shows its tools in every JupyterLab started there: an
Nbgrader menu, a Validate button, a Create Assignment sidebar and the formgrader. Students need
none of them. The students' lab puts the folder ``grader/student-lab/`` first on
``JUPYTER_CONFIG_PATH``: its ``labconfig/page_config.json`` disables nbgrader's JupyterLab
extension and its ``jupyter_server_config.json`` nbgrader's server extensions. Nothing is
written to the user's own Jupyter configuration and nbgrader stays installed; the instructors'
lab (``--instructor``) leaves the configuration as it is, nbgrader's tools included.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

#: The students' Jupyter configuration folder.
STUDENT_CONFIG = Path(__file__).resolve().parent.parent / "student-lab"


def environment(instructor: bool = False, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment JupyterLab runs in: ``base`` (default: this process's), with the
    students' configuration first on JUPYTER_CONFIG_PATH unless ``instructor``."""
    env = dict(os.environ if base is None else base)
    if not instructor:
        others = [p for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p and p != str(STUDENT_CONFIG)]
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join([str(STUDENT_CONFIG), *others])
    return env


def command(arguments: Sequence[str]) -> list[str]:
    """JupyterLab, run by this Python, with ``arguments`` (a folder, JupyterLab's options)."""
    return [sys.executable, "-m", "jupyterlab", *arguments]


def launch(arguments: Sequence[str], instructor: bool = False) -> int:
    """Replace this process with JupyterLab (so that Ctrl-C and signals reach it directly);
    return only when it cannot start."""
    if importlib.util.find_spec("jupyterlab") is None:
        print('error: JupyterLab is not installed in this environment; install it with: '
              'pip install "bce-course[lab]"', file=sys.stderr)
        return 2
    argv = command(arguments)
    os.execve(argv[0], argv, environment(instructor))
    return 2  # not reached
