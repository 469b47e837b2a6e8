"""Each notebook's processes are held to their worker's share of the processors: a control
group with a CPU quota, joined once by the forker that forks a worker's notebooks, where one
can be made; a lower priority otherwise."""

import os
import subprocess
import sys
import textwrap

from helpers import run_script

from grader.instructor.engine import cpu

CPU_CHECK = textwrap.dedent('''
    import json, os, tempfile
    import nbformat
    from grader.instructor.engine import forker
    from grader.instructor.engine.execute import execute
    from grader.instructor.engine.pool import warm_up

    warm_up()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, json, subprocess, sys\\n"
        "def where():\\n"
        "    groups = open('/proc/self/cgroup').read()\\n"
        "    quota = None\\n"
        "    for line in groups.splitlines():\\n"
        "        path = line.split(':', 2)[2]\\n"
        "        for base in ('/sys/fs/cgroup/cpu', '/sys/fs/cgroup'):\\n"
        "            for name in ('cpu.cfs_quota_us', 'cpu.max'):\\n"
        "                if 'bce-grader' in path and os.path.exists(base + path + '/' + name):\\n"
        "                    quota = open(base + path + '/' + name).read().split()[0]\\n"
        "    return {'groups': groups, 'quota': quota, 'nice': os.nice(0)}\\n"
        "started = subprocess.run([sys.executable, '-c', 'print(open(\\"/proc/self/cgroup\\").read())'],\\n"
        "                         capture_output=True, text=True).stdout\\n"
        "print(json.dumps({**where(), 'started': started}))")])
    seen = []
    for _ in range(2):
        out = execute(nbformat.from_dict(nb), cwd=tempfile.mkdtemp(), timeout=30, threads=1)
        seen.append(json.loads(out.cells[0].outputs[0]["text"]))
    print(json.dumps({"seen": seen, "forker": forker.mine().pid}))
''')


def test_a_notebooks_processes_are_held_to_their_workers_share():
    found, _ = run_script(CPU_CHECK)
    first, second = found["seen"]
    if "bce-grader/forker-" in first["groups"]:
        assert first["quota"] == "100000", first        # one core: the share of a worker given one thread
        # the forker joined its group once, and every notebook it forks starts there
        assert f"bce-grader/{cpu.FORKER}{found['forker']}" in first["groups"], first
        assert second["groups"] == first["groups"], (first, second)
        # a process the notebook starts stays in the group
        assert first["started"].strip() == first["groups"].strip(), first
    else:  # no CPU controller here: the documented fallback
        assert first["nice"] >= 10 and second["nice"] >= 10, found


def test_the_groups_of_forkers_that_ended_are_removed_and_no_others(tmp_path, monkeypatch):
    """:func:`cpu.sweep` removes an empty group whose forker is gone (or whose notebook is:
    the groups of earlier versions), and leaves alone the group of a forker still there and
    a group that is not the engine's."""
    base = tmp_path / "bce-grader"
    base.mkdir()
    monkeypatch.setattr(cpu, "_V2", str(tmp_path))
    monkeypatch.setattr(cpu, "_V1", str(tmp_path / "none"))
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True).stdout.strip()
    gone, old, alive, other = (base / f"{cpu.FORKER}{ended}", base / f"notebook-{ended}",
                               base / f"{cpu.FORKER}{os.getpid()}", base / "someone-else")
    for folder in (gone, old, alive, other):
        folder.mkdir()
    cpu.sweep()
    assert not gone.exists() and not old.exists()
    assert alive.exists() and other.exists()


def test_each_worker_keeps_to_processors_of_its_own_only_where_there_are_enough(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert [cpu.processors_of_worker(i, 1, 2) for i in range(2)] == [[0], [1]]
    assert [cpu.processors_of_worker(i, 2, 2) for i in range(2)] == [[0, 1], [2, 3]]
    assert cpu.processors_of_worker(0, 4, 1) == []      # one worker: the scheduler places it
    assert cpu.processors_of_worker(2, 2, 3) == []      # three workers of two: not enough for each
    assert cpu.processors_of_worker(4, 1, 2) == []      # no such worker


KEEP_CHECK = textwrap.dedent('''
    import json, os, tempfile
    import nbformat
    from grader.instructor.engine import cpu
    from grader.instructor.engine.execute import execute
    from grader.instructor.engine.pool import warm_up

    warm_up()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, subprocess, sys\\n"
        "print(sorted(os.sched_getaffinity(0)), subprocess.run([sys.executable, '-c', "
        "'import os; print(sorted(os.sched_getaffinity(0)))'], capture_output=True, text=True).stdout.strip())")])
    everything = sorted(os.sched_getaffinity(0))
    seen = []
    for kept in ([everything[-1]], []):  # as a worker keeping to its last processor, then as one that keeps to none
        os.environ[cpu.CPUS] = ",".join(map(str, kept))
        out = execute(nbformat.from_dict(nb), cwd=tempfile.mkdtemp(), timeout=30, threads=1)
        seen.append(out.cells[0].outputs[0]["text"])
    print(json.dumps({"seen": seen, "everything": everything}))
''')


def test_a_notebooks_processes_keep_to_their_workers_processors():
    if len(os.sched_getaffinity(0)) < 2:
        import pytest

        pytest.skip("one processor: nothing to keep to")
    found, _ = run_script(KEEP_CHECK)
    kept, free = found["seen"]
    last, everything = found["everything"][-1], found["everything"]
    assert kept == f"[{last}] [{last}]\n"                   # the notebook and the process it starts
    assert free == f"{everything} {everything}\n"           # the same forker, back to every processor
