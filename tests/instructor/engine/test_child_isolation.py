"""What a notebook's process holds of its own job while the student's cells run, and where its
temporary files go: a cell that walks the stack (``traceback.walk_stack``, ``inspect``) or the
garbage collector's objects finds neither the job (the cells with the names their tests'
checks are given, hidden tests' included; the scratch folder, a path of the host's) nor a name
that only a hidden test gives; and in the sandbox, ``tempfile`` and ``multiprocessing`` write to
the sandbox's own ``/tmp``, not to the host's ``TMPDIR`` (which does not exist in there)."""

import textwrap

import pytest

from helpers import run_script

# A student's cell: every string it can reach from each frame's locals (through containers and
# objects' attributes) and in the garbage collector's containers, searched for the hidden name
# and the host's scratch folder. The patterns are built so that this source, its code's
# constants and the pattern itself never match.
WALK = textwrap.dedent(r'''
    import gc, inspect, re, traceback, warnings
    warnings.simplefilter("ignore")
    secret = re.compile("".join(["zq_hidden_subje", "[c]t|bce-note", "book-[a-z0-9_]"]))

    def strings(value, path, depth=0, seen=None):
        seen = set() if seen is None else seen
        if id(value) in seen or depth > 8:
            return
        seen.add(id(value))
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, dict):
            for k, v in list(value.items()):
                yield from strings(k, path, depth + 1, seen)
                yield from strings(v, f"{path}[{k!r:.20}]", depth + 1, seen)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for i, v in enumerate(list(value)):
                yield from strings(v, f"{path}[{i}]", depth + 1, seen)
        elif hasattr(value, "__dict__") and not inspect.ismodule(value) and not isinstance(value, type):
            yield from strings(vars(value), path + ".", depth + 1, seen)

    def is_job(value):  # the job, or the list of its cells, wherever it is
        return isinstance(value, dict) and "cells" in value and (
            "scratch" in value or isinstance(value["cells"], (list, tuple)))

    found = []
    for frame, _ in traceback.walk_stack(None):
        for name, value in inspect.getargvalues(frame).locals.items():
            if is_job(value):
                found.append(f"a job in {frame.f_code.co_name}: {name}")
            found += [f"{frame.f_code.co_name}: {p}" for p, s in strings(value, name) if secret.search(s)]
    for o in gc.get_objects():
        if is_job(o):
            found.append("a job among the collector's objects, held by "
                         + ", ".join(sorted({type(r).__name__ for r in gc.get_referrers(o)})))
        elif isinstance(o, (list, tuple, dict, set)) and o is not found:
            found += [f"among the collector's objects: {s[:80]}" for s in o if isinstance(s, str) and secret.search(s)]
    print(sorted(set(found)) or "nothing")
''')

TEMPORARY = ("import multiprocessing.util, os, tempfile\n"
             "fd, path = tempfile.mkstemp()\nos.close(fd)\n"
             "print(tempfile.gettempdir(), os.environ.get('TMPDIR'), os.path.dirname(path), "
             "os.path.dirname(multiprocessing.util.get_temp_dir()))")

CHECK = f"WALK = {WALK!r}\nTEMPORARY = {TEMPORARY!r}\n" + textwrap.dedent('''
    import json, multiprocessing.util, os, tempfile
    import nbformat
    from grader.instructor.engine import forker

    # as in the engine, the forker starts before any notebook is read, having found the host's
    # temporary folder (one of this script's own here, so that it cannot be /tmp by chance)
    os.environ["TMPDIR"] = host = tempfile.mkdtemp(prefix="host-tmp-")
    tempfile.tempdir = None
    assert tempfile.gettempdir() == host
    multiprocessing.util.get_temp_dir()
    forker.mine()
    from grader.instructor.engine.execute import execute
    from grader.instructor.engine.sandbox import Sandbox

    hidden = "".join(["zq_hidden_", "subject"])  # (not a constant of this script's code)
    code = nbformat.v4.new_code_cell
    test = {"nbgrader": {"grade": True, "grade_id": "t", "points": 1, "solution": False, "locked": True,
                         "schema_version": 3}}
    nb = nbformat.v4.new_notebook()
    nb.cells = [code("x = 1"), code(WALK),
                code(f"import grader\\ngrader.assert_passes(x)\\n### BEGIN HIDDEN TESTS\\n"
                     f"grader.assert_passes({hidden})\\n### END HIDDEN TESTS", metadata=test),
                code(WALK), code(TEMPORARY)]
    results = {"host": host}
    for name, box in (("sandboxed", Sandbox()), ("unconfined", None)):
        out = execute(nbformat.from_dict(nb), cwd=tempfile.mkdtemp(), timeout=60, sandbox=box)
        results[name] = [[o.get("text") or f"{o.get('ename')}: {o.get('evalue')}" for o in c.outputs]
                         for c in out.cells]
    print(json.dumps(results))
''')


@pytest.fixture(scope="module")
def ran():
    return run_script(CHECK, timeout=240)[0]


@pytest.mark.parametrize("how", ["sandboxed", "unconfined"])
def test_a_cell_that_walks_the_stack_and_the_collector_finds_no_job_and_no_hidden_name(ran, how):
    _, before, _, after, _ = ran[how]
    assert before == ["nothing\n"], before  # the cells to come, the test cell's hidden subject among them
    assert after == ["nothing\n"], after    # once the test cell has been judged


def test_a_sandboxed_notebook_writes_temporary_files_in_its_own_tmp(ran):
    *_, temporary = ran["sandboxed"]
    assert temporary == ["/tmp /tmp /tmp /tmp\n"], temporary
    assert ran["host"] not in temporary[0]
    *_, unconfined = ran["unconfined"]  # unconfined, the host's, where it exists
    assert unconfined == [" ".join([ran["host"]] * 4) + "\n"], unconfined
