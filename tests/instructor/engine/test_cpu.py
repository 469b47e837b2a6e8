"""Each notebook's processes are held to their worker's share of the processors: a control
group with a CPU quota where one can be made, a lower priority otherwise."""

import textwrap

from helpers import run_script

CPU_CHECK = textwrap.dedent('''
    import json, tempfile
    import nbformat
    from grader.instructor.engine import cpu
    from grader.instructor.engine.execute import execute
    from grader.instructor.engine.pool import warm_up

    warm_up()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, json\\n"
        "groups = open('/proc/self/cgroup').read()\\n"
        "quota = None\\n"
        "for line in groups.splitlines():\\n"
        "    path = line.split(':', 2)[2]\\n"
        "    for base in ('/sys/fs/cgroup/cpu', '/sys/fs/cgroup'):\\n"
        "        for name in ('cpu.cfs_quota_us', 'cpu.max'):\\n"
        "            if 'bce-grader' in path and os.path.exists(base + path + '/' + name):\\n"
        "                quota = open(base + path + '/' + name).read().split()[0]\\n"
        "print(json.dumps({'groups': groups, 'quota': quota, 'nice': os.nice(0)}))")])
    out = execute(nb, cwd=tempfile.mkdtemp(), timeout=30, threads=1)
    seen = json.loads(out.cells[0].outputs[0]["text"])
    print(json.dumps(seen))
''')


def test_a_notebooks_processes_are_held_to_their_workers_share():
    seen, _ = run_script(CPU_CHECK)
    if "bce-grader/notebook-" in seen["groups"]:
        assert seen["quota"] == "100000", seen        # one core: the share of a worker given one thread
    else:  # no CPU controller here: the documented fallback
        assert seen["nice"] >= 10, seen
