"""Which beginnings the engine's first process runs for its workers, and the pipes it gives a
notebook's process."""

import fcntl
import os
import shutil

from grader.instructor.engine import forker
from grader.instructor.engine.preprocessor import SHARE_FROM, beginnings_worth_sharing
from grader.instructor.workspace import Workspace


def _copy(released, tmp_path, config: str = "") -> Workspace:
    workspace = Workspace.at(tmp_path / "workspace")
    shutil.copytree(released.root, workspace.root)
    workspace.prepare()
    if config:
        with workspace.config_file.open("a") as f:
            f.write(config)
    return workspace


def test_only_assignments_with_enough_submissions_share_their_beginnings(released, tmp_path):
    workspace = _copy(released, tmp_path)
    first, second, *_ = sorted(workspace.released())
    found = beginnings_worth_sharing(workspace.config(), {first: SHARE_FROM, second: SHARE_FROM - 1})
    assert [shared.notebook for shared, _ in found] == [str(workspace.released()[first])]
    shared, timeout = found[0]
    assert shared.sources and timeout > 0
    assert beginnings_worth_sharing(workspace.config(), {first: 1, second: 2}) == []


def test_no_beginning_is_shared_when_the_configuration_says_so(released, tmp_path):
    workspace = _copy(released, tmp_path, "\nc.WarmExecute.share_prefix = False\n")
    counts = {name: 40 for name in workspace.released()}
    assert beginnings_worth_sharing(workspace.config(), counts) == []


def test_the_pipes_to_a_notebooks_process_hold_a_large_case_at_once():
    read, write = os.pipe()
    try:
        forker._widen(write)
        size = fcntl.fcntl(write, getattr(fcntl, "F_GETPIPE_SZ", 1032))
        limit = int(open("/proc/sys/fs/pipe-max-size").read())
        assert size == min(forker.PIPE_SIZE, limit) and size > 65536
    finally:
        os.close(read)
        os.close(write)
