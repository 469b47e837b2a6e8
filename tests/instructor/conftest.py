"""Fixtures the instructor's test modules share."""

import pytest

from grader.instructor.cli import main
from grader.instructor.workspace import Workspace


@pytest.fixture(scope="session")
def released(tmp_path_factory):
    """A released workspace, made once (release takes a while); tests copy it, never change it."""
    tmp = tmp_path_factory.mktemp("released")
    ws = Workspace.at(tmp / "workspace")
    assert main(["release", "--out", str(tmp / "notebooks"), "--workspace", str(ws.root)]) == 0
    return ws
