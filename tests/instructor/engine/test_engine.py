"""The warm engine: IPython semantics in forked processes, nothing leaking from one
notebook to the next, and exactly the scores plain nbgrader gives."""

import shutil
import tempfile
import textwrap
from pathlib import Path

import pytest

from grader._battery import salt
from grader.instructor.cli import main
from grader.instructor.workspace import Workspace
from helpers import A1, Class, cell_scores, released_workspace, run_script, solutions

pytestmark = pytest.mark.slow  # grades a class, or builds an environment: minutes


ENGINE_CHECK = textwrap.dedent('''
    import json, os, sys, tempfile
    import nbformat
    from grader.instructor.engine import prefix
    from grader.instructor.engine.execute import execute
    from grader.instructor.engine.pool import warm_up
    from grader.instructor.engine.sandbox import Sandbox

    warm_up()
    def notebook(*sources):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
        return nb

    results = {}
    first = execute(notebook(
        "import torch\\ntorch.log = lambda x: 'patched'\\n_ = open('left-behind.txt', 'w').write('x')",
        "%time x = 1 + 1",
        "print('out'); import sys; print('err', file=sys.stderr)",
        "from IPython.display import display, HTML\\ndisplay(HTML('<b>hi</b>'))\\n21 * 2",
        "1 / 0",
        "import torch; torch.get_num_threads()",
    ), cwd=tempfile.mkdtemp(), timeout=10, threads=2)
    results["first"] = [[dict(o) for o in c.outputs] for c in first.cells]
    cwd = tempfile.mkdtemp()
    second = execute(notebook(
        "import torch, os\\nprint(torch.log is torch._C._VariableFunctions.log, os.path.exists('left-behind.txt'))",
        "import time\\nwhile True: time.sleep(0.01)",
        "print('after the timeout')",
        "import os\\nos._exit(3)",
        "print('never')",
    ), cwd=cwd, timeout=2)
    results["second"] = [[dict(o) for o in c.outputs] for c in second.cells]
    third = execute(notebook("print('third')"), cwd=tempfile.mkdtemp(), timeout=10)
    results["third"] = [[dict(o) for o in c.outputs] for c in third.cells]
    print(json.dumps(results))
''')


@pytest.fixture(scope="module")
def executed():
    return run_script(ENGINE_CHECK)[0]


def test_cells_run_with_ipython_semantics(executed):
    cells = executed["first"]
    assert cells[0] == []
    assert any("Wall time" in o.get("text", "") for o in cells[1])           # a magic
    assert {(o["name"], o["text"]) for o in cells[2]} == {("stdout", "out\n"), ("stderr", "err\n")}
    kinds = [o["output_type"] for o in cells[3]]
    assert kinds == ["display_data", "execute_result"]
    assert cells[3][1]["data"]["text/plain"] == "42"
    (error,) = cells[4]
    assert error["output_type"] == "error" and error["ename"] == "ZeroDivisionError"
    assert any("1 / 0" in line for line in error["traceback"])
    assert cells[5][0]["data"]["text/plain"] == "2"                          # torch's threads, restored


def test_nothing_leaks_into_the_next_notebook(executed):
    assert executed["second"][0][0]["text"] == "True False\n"


def test_timeouts_and_crashes_are_recorded_like_nbgrader_does(executed):
    cells = executed["second"]
    assert cells[1][0]["ename"] == "CellTimeoutError"
    assert cells[2][0]["text"] == "after the timeout\n"                      # the notebook goes on
    assert cells[3][0]["ename"] == "DeadKernelError"                          # os._exit ends it
    # its own status, read after the status of the notebook before it, which was left unread
    # while that one ended (Forker.wait_later)
    assert "exit code 3" in cells[3][0]["evalue"], cells[3][0]
    assert cells[4] == []
    assert executed["third"] == [[{"output_type": "stream", "name": "stdout", "text": "third\n"}]]


@pytest.fixture(scope="module")
def two_engines(tmp_path_factory):
    """The same class graded with plain nbgrader and with the warm engine, with temporary
    folders of their own (what is left behind is theirs), and one autograding secret: plain
    nbgrader's kernels inherit it from the environment, the warm engine is handed it."""
    tmp = tmp_path_factory.mktemp("engines")
    private = tmp_path_factory.mktemp("engines-tmp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(salt.VARIABLE, "the secret of both engines")
        patch.setenv("TMPDIR", str(private))
        patch.setattr(tempfile, "tempdir", str(private))
        yield _two_engines(tmp)


def _two_engines(tmp):
    # a cell's time limit: dan's loop reaches it, in each of the three runs; every other cell stays
    # well within it, importing torch in nbgrader's kernel included, on a machine busy with other
    # work (pytest-xdist's other worker: 6 s was not enough there)
    plain = released_workspace(tmp / "plain", tmp / "notebooks", "c.Execute.timeout = 15\n")
    build = Class(plain)
    s1 = solutions(A1)
    hang = "import time\nwhile True:\n    time.sleep(0.05)"
    raising = "raise RuntimeError('a mistake before the definition')\n" + s1["bce_vector_solution"]
    warns = ("import warnings\nwarnings.warn('deprecated', DeprecationWarning)\n"
             + s1["bce_vector_solution"].replace("    return ", "    warnings.warn('careful')\n    return ", 1))
    folder = tmp / "downloads"
    folder.mkdir()
    for student, answers in {
        "ann": s1, "ben": {}, "cat": {"bce_vector_solution": s1["bce_vector_solution"]},
        "dan": {**s1, "bce_vector_grad_solution": hang}, "eve": {**s1, "bce_vector_solution": raising},
        "fay": {**s1, "bce_vector_solution": warns},
    }.items():
        (folder / f"{student}_{A1}.ipynb").write_text(build.notebook(A1, answers))
    assert main(["collect", str(folder), "--workspace", str(plain.root)]) == 0
    copies = {}
    for name in ("warm", "sharded"):
        copies[name] = Workspace.at(tmp / name)
        shutil.copytree(plain.root, copies[name].root)
        text = copies[name].config_file.read_text().replace(str(plain.root), str(copies[name].root))
        copies[name].config_file.write_text(text)
    warm, sharded = copies["warm"], copies["sharded"]
    assert main(["autograde", "--quiet", "--engine", "nbgrader", "--workspace", str(plain.root)]) == 0
    scratch = set(Path(tempfile.gettempdir()).glob("bce-*"))
    assert main(["autograde", "--quiet", "--engine", "warm", "--jobs", "2", "--workspace", str(warm.root)]) == 0
    for shard in ("1/2", "2/2"):  # as two jobs of a SLURM array would
        assert main(["autograde", "--quiet", "--shard", shard, "--workspace", str(sharded.root)]) == 0
    warm.left_behind = sorted(p.name for p in set(Path(tempfile.gettempdir()).glob("bce-*")) - scratch)
    for _ in range(2):  # merging again changes nothing
        assert main(["merge", "--workspace", str(sharded.root)]) == 0
    return plain, warm, sharded


def test_the_warm_engine_gives_exactly_nbgraders_scores(two_engines):
    plain, warm, _ = two_engines
    expected, got = cell_scores(plain), cell_scores(warm)
    assert len(expected) == 6 * 4 and got == expected
    totals = {}
    for (student, _, _), (score, _) in got.items():
        totals[student] = totals.get(student, 0) + score
    assert totals == {"ann": 9, "ben": 0, "cat": 5, "dan": 7, "eve": 4, "fay": 9}
    # every student kept the released beginning: the engine ran it once for both workers, not per student
    import json

    for student in totals:
        notebook = warm.root / "autograded" / student / A1 / f"{A1}.ipynb"
        assert json.loads(notebook.read_text())["metadata"]["bce_grader"]["shared_cells"] > 0, student


def test_the_warm_engine_leaves_no_folder_behind(two_engines):
    # the notebooks' scratch copies, and the folders where the beginnings ran
    assert two_engines[1].left_behind == []


def test_timeouts_are_flagged_by_both_engines(two_engines):
    import json

    for workspace in two_engines:
        flags = json.loads((workspace.root / "autograde-flags.json").read_text())
        assert "a cell ran out of time" in flags[f"dan/{A1}"], (workspace.root, flags)
        autograded = (workspace.root / "autograded" / "dan" / A1 / f"{A1}.ipynb").read_text()
        assert "CellTimeoutError" in autograded


def test_two_shards_and_a_merge_give_the_gradebook_of_one_run(two_engines):
    import json

    plain, warm, sharded = two_engines
    assert cell_scores(sharded) == cell_scores(warm)
    shards = sorted(p.name for p in sharded.root.glob("gradebook-shard-*.db"))
    assert shards == ["gradebook-shard-1-of-2.db", "gradebook-shard-2-of-2.db"]
    with sharded.gradebook() as gb:
        assert sorted(s.id for s in gb.students) == ["ann", "ben", "cat", "dan", "eve", "fay"]
    flags = json.loads((sharded.root / "autograde-flags.json").read_text())
    assert "a cell ran out of time" in flags[f"dan/{A1}"]


def test_a_malformed_shard_is_refused(tmp_path, capsys):
    assert main(["autograde", "--shard", "3/2", "--workspace", str(tmp_path)]) == 2
    assert "i/N with 1 <= i <= N" in capsys.readouterr().err


LIMITS_CHECK = textwrap.dedent('''
    import json, socket, tempfile, threading
    import nbformat
    from grader.instructor.engine import prefix
    from grader.instructor.engine.execute import execute
    from grader.instructor.engine.pool import warm_up
    from grader.instructor.engine.sandbox import Sandbox

    warm_up()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in (
        "import torch\\nx = torch.zeros(10**11)",
        "y = torch.zeros(1000)\\nprint('still here', y.sum().item())",
        f"import socket\\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)",
    )]
    out = execute(nb, cwd=tempfile.mkdtemp(), timeout=20,
                         limits={"memory_mb": 4096, "cpu_seconds": 60, "network": False})
    free = nbformat.v4.new_notebook()
    free.cells = [nbformat.v4.new_code_cell(
        f"import socket\\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).close()\\nprint('connected')")]
    execute(free, cwd=tempfile.mkdtemp(), timeout=20)
    print(json.dumps({"confined": [[dict(o) for o in c.outputs] for c in out.cells],
                      "free": [dict(o) for o in free.cells[0].outputs]}))
''')


def test_a_notebook_is_confined_in_memory_and_network():
    result, _ = run_script(LIMITS_CHECK)
    memory, after, network = result["confined"]
    assert memory[0]["output_type"] == "error" and "alloc" in memory[0]["evalue"].lower(), memory
    assert after[0]["text"] == "still here 0.0\n"          # the notebook goes on
    assert network[0]["output_type"] == "error", network   # no network inside
    assert result["free"][0]["text"] == "connected\n"       # without limits, the same call connects


PREFIX_CHECK = textwrap.dedent('''
    import json, os, shutil, sys, tempfile
    import nbformat
    from grader.instructor.engine import prefix
    from grader.instructor.engine.execute import execute
    from grader.instructor.engine.pool import warm_up
    from grader.instructor.engine.sandbox import Sandbox

    warm_up()
    root = tempfile.mkdtemp()
    code = nbformat.v4.new_code_cell
    released = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# A notebook"),
        code("import os, torch\\nstate = {'n': 0}\\n_ = open('made-by-prefix.txt', 'w').write('prefix')\\n"
             "print('prefix ran in', os.getpid())"),
        code("x = torch.arange(3.)\\nx"),
        code("answer = None", metadata={"nbgrader": {"solution": True, "grade": False, "grade_id": "answer"}}),
        code("print(state, open('made-by-prefix.txt').read(), open('data.txt').read(), os.path.exists('extra.txt'), "
             "x.tolist())\\nstate['n'] += 1\\nx.mul_(10)",
             metadata={"nbgrader": {"solution": False, "grade": True, "grade_id": "test", "points": 1}}),
        code("print(torch.get_num_threads(), torch.ones(1 << 22).sum().item())"),
    ])
    os.makedirs(f"{root}/release")
    nbformat.write(released, f"{root}/release/nb.ipynb")
    os.makedirs(f"{root}/source")
    open(f"{root}/source/data.txt", "w").write("data")
    nbformat.write(released, f"{root}/source/nb.ipynb")
    shared = prefix.SharedPrefix.of(f"{root}/release/nb.ipynb", f"{root}/source", ["*.pyc"])

    def submission(name, edit=None, files=None):
        folder = f"{root}/{name}"
        os.makedirs(folder)
        for file, text in {"data.txt": "data", "timestamp.txt": name, **(files or {})}.items():
            open(f"{folder}/{file}", "w").write(text)
        nb = nbformat.from_dict(json.loads(json.dumps(released)))
        nb.cells[3].source = "answer = 42"
        if edit:
            nb.cells[2].source = edit
        nbformat.write(nb, f"{folder}/nb.ipynb")
        return nb, folder

    results = {}
    for name, edit, files, box, threads in [
        ("ann", None, None, Sandbox(), 1), ("ben", None, None, Sandbox(), 2),
        ("cat", "x = torch.arange(4.)\\nx", None, Sandbox(), 1),
        ("dan", None, {"extra.txt": "mine"}, Sandbox(), 1), ("eve", None, {"data.txt": "changed"}, Sandbox(), 1),
        ("fay", None, None, None, 1),
    ]:
        nb, folder = submission(name, edit, files)
        out = execute(nb, cwd=folder, timeout=20, sandbox=box, shared=shared, threads=threads)
        results[name] = {"shared": out.metadata["bce_grader"]["shared_cells"],
                         "attention": out.metadata["bce_grader"]["attention"],
                         "outputs": [[dict(o) for o in c.get("outputs", [])] for c in out.cells],
                         "counts": [c.get("execution_count") for c in out.cells],
                         "left": sorted(os.listdir(folder))}
    # a beginning that leaves a thread running is not shared: the thread would not exist in the children
    threaded = nbformat.from_dict(json.loads(json.dumps(released)))
    threaded.cells[1].source += ("\\nimport threading, time\\n"
                                 "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()")
    os.makedirs(f"{root}/threaded")
    nbformat.write(threaded, f"{root}/release/nb.ipynb")
    again = prefix.SharedPrefix.of(f"{root}/release/nb.ipynb", f"{root}/source", ["*.pyc"])
    threaded.cells[3].source = "answer = 42"
    open(f"{root}/threaded/data.txt", "w").write("data")
    nbformat.write(threaded, f"{root}/threaded/nb.ipynb")
    out = execute(threaded, cwd=f"{root}/threaded", timeout=20, sandbox=Sandbox(), shared=again)
    results["gus"] = {"shared": out.metadata["bce_grader"]["shared_cells"],
                      "outputs": [[dict(o) for o in c.get("outputs", [])] for c in out.cells]}
    prefix.close_servers()
    print(json.dumps(results))
''')


@pytest.fixture(scope="module")
def prefixed():
    return run_script(PREFIX_CHECK)[0]


def _text(outputs):
    return "".join(o.get("text", "") for o in outputs)


def test_notebooks_that_begin_as_released_share_one_run_of_the_beginning(prefixed):
    ann, ben = prefixed["ann"], prefixed["ben"]
    assert ann["shared"] == ben["shared"] == 2
    # the beginning ran once: both notebooks show the output of the same process
    assert _text(ann["outputs"][1]).startswith("prefix ran in ")
    assert _text(ann["outputs"][1]) == _text(ben["outputs"][1])
    assert ann["outputs"][2][0]["data"]["text/plain"] == "tensor([0., 1., 2.])"
    assert ann["counts"][1:] == [1, 2, 3, 4, 5]
    # each notebook continues from the state the beginning left, files included, and
    # what one notebook changes (state, tensors in place) the next does not see
    assert _text(ann["outputs"][4]) == "{'n': 0} prefix data False [0.0, 1.0, 2.0]\n"
    assert _text(ben["outputs"][4]) == _text(ann["outputs"][4])
    assert ann["attention"] == ben["attention"] == []
    # the beginning ran on one thread; a notebook forked from it uses torch's threads in full
    assert _text(ann["outputs"][5]) == "1 4194304.0\n"
    assert _text(ben["outputs"][5]) == "2 4194304.0\n"


def test_a_notebook_that_differs_runs_whole(prefixed):
    cat, dan, eve = prefixed["cat"], prefixed["dan"], prefixed["eve"]
    assert cat["shared"] == dan["shared"] == eve["shared"] == 0
    assert _text(cat["outputs"][1]) != _text(prefixed["ann"]["outputs"][1])     # a run of its own
    assert cat["outputs"][2][0]["data"]["text/plain"] == "tensor([0., 1., 2., 3.])"  # the student's edit
    assert _text(cat["outputs"][4]).endswith("[0.0, 1.0, 2.0, 3.0]\n")
    assert _text(dan["outputs"][4]) == "{'n': 0} prefix data True [0.0, 1.0, 2.0]\n"  # its own extra file
    assert _text(eve["outputs"][4]) == "{'n': 0} prefix changed False [0.0, 1.0, 2.0]\n"


def test_a_beginning_that_leaves_a_thread_running_is_not_shared(prefixed):
    gus = prefixed["gus"]
    assert gus["shared"] == 0
    assert _text(gus["outputs"][4]) == "{'n': 0} prefix data False [0.0, 1.0, 2.0]\n"


def test_without_the_sandbox_the_beginning_leaves_its_files_in_the_folder(prefixed):
    fay = prefixed["fay"]
    assert fay["shared"] == 2
    assert _text(fay["outputs"][4]) == "{'n': 0} prefix data False [0.0, 1.0, 2.0]\n"
    assert "made-by-prefix.txt" in fay["left"]                               # as a whole run would leave it


FILES_CHECK = textwrap.dedent('''
    import json, os, tempfile
    import nbformat
    from grader.instructor.engine import prefix
    from grader.instructor.engine.execute import execute
    from grader.instructor.engine.pool import warm_up
    from grader.instructor.engine.sandbox import Sandbox

    warm_up()
    held = open(os.path.join(tempfile.mkdtemp(), "gradebook.lock"), "w")  # as a worker holds its lock
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, json\\nlinks = []\\nfor fd in os.listdir('/proc/self/fd'):\\n    try:\\n"
        "        links.append(os.readlink(f'/proc/self/fd/{fd}'))\\n    except OSError:\\n        pass\\n"
        "os.write(1, b'written to the engine output\\\\n')\\nprint(json.dumps(links))")])
    results = {}
    for name, box in (("bare", None), ("sandboxed", Sandbox())):
        out = execute(nbformat.from_dict(nb), cwd=tempfile.mkdtemp(), timeout=20, sandbox=box)
        results[name] = [dict(o) for o in out.cells[0].outputs]
    print(json.dumps(results))
''')


def test_a_notebook_inherits_no_open_file_of_the_grader():
    import json

    results, printed = run_script(FILES_CHECK)
    assert "written to the engine output" not in printed        # file descriptor 1 is /dev/null
    for name, outputs in results.items():
        links = json.loads(outputs[0]["text"])
        assert not any("gradebook.lock" in link for link in links), (name, links)
        # standard input/output (/dev/null), standard error, the pipe to the engine, and
        # the folder os.listdir opened: nothing else
        assert len(links) <= 6 and links.count("/dev/null") >= 2, (name, links)


SCHEMA_CHECK = textwrap.dedent('''
    import json
    import nbformat
    from nbgrader.nbgraderformat import ValidationError
    from nbgrader.nbgraderformat.v3 import MetadataValidatorV3
    from grader.instructor import patches

    def verdicts():
        out = []
        for meta in ({"grade": True, "solution": False, "locked": True, "points": 2, "grade_id": "a",
                      "schema_version": 3},
                     {"grade": True, "solution": False, "locked": True, "points": "two", "grade_id": "a",
                      "schema_version": 3},
                     {"grade": "yes", "solution": False, "grade_id": "b", "schema_version": 3}):
            cell = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": meta})
            try:
                MetadataValidatorV3().validate_cell(cell)
                out.append("valid")
            except ValidationError as error:
                out.append(f"invalid: {error}")
        return out

    before = verdicts()
    patches.check_schemas_once()
    print(json.dumps({"before": before, "after": verdicts()}))
''')


def test_nbgraders_metadata_is_validated_as_before_with_its_schema_checked_once():
    result, _ = run_script(SCHEMA_CHECK, timeout=120)
    assert result["before"][0] == "valid" and all(v.startswith("invalid") for v in result["before"][1:])
    assert result["after"] == result["before"]


def test_no_notebooks_process_holds_anything_of_another_students_submission(tmp_path):
    """Every notebook's process is forked from one that never saw a submission, and reads its
    own job after the fork: even unconfined (it may then read its own memory), a notebook
    finds nothing of the student graded before it in the same worker. The same scan finds
    the student's own marker, so it would find another's."""
    import json

    import nbformat

    scanner = nbformat.read(Path(__file__).parents[2] / "hostile" / "reads_inherited_memory.ipynb", as_version=4)
    scan = next(c.source for c in scanner.cells if "after" in c.metadata["hostile"])
    marker = "zq-marker-of-alice" + "-9f31c7"
    ws = released_workspace(tmp_path / "course", tmp_path / "notebooks", "c.WarmExecute.sandbox = False\n")
    build = Class(ws)
    folder = tmp_path / "downloads"
    folder.mkdir()
    s1 = solutions(A1)
    marked = {**s1, "bce_vector_solution": s1["bce_vector_solution"] + f"\n# {marker}\n"}
    for student, answers, scans in (("alice", marked, False), ("amy", marked, True), ("zed", s1, True)):
        nb = nbformat.reads(build.notebook(A1, answers), as_version=4)
        if scans:
            at = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "bce_vector_grad")
            nb.cells.insert(at + 1, nbformat.v4.new_code_cell(scan))
        (folder / f"{student}_{A1}.ipynb").write_text(nbformat.writes(nb))
    assert main(["collect", str(folder), "--workspace", str(ws.root)]) == 0
    assert main(["autograde", "--quiet", "--jobs", "1", "--workspace", str(ws.root)]) == 0

    def printed(student):
        nb = json.loads((ws.root / "autograded" / student / A1 / f"{A1}.ipynb").read_text())
        return "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))

    assert "LEAK" in printed("amy")                                           # her own marker is found
    assert "clean: nothing of other students\n" in printed("zed"), printed("zed")[-500:]  # alice's is not


ONE_FORK_CHECK = textwrap.dedent('''
    import json, os, tempfile
    import nbformat
    from grader.instructor.engine import forker
    from grader.instructor.engine.execute import execute
    from grader.instructor.engine.pool import warm_up
    from grader.instructor.engine.sandbox import Sandbox

    warm_up()
    seen = []
    spawn = forker.Forker.spawn

    def watched(self, job):  # the notebook's process as its forker started it, seen from outside
        started = spawn(self, job)
        status = open(f"/proc/{started.pid}/status").read()
        seen.append({"pid": started.pid, "namespaces": [line.split()[1:] for line in status.splitlines()
                                                        if line.startswith("NSpid:")][0]})
        return started

    forker.Forker.spawn = watched
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os, subprocess\\nprint(os.getpid(), os.getuid())"),
                nbformat.v4.new_code_cell("print(subprocess.run(['sh', '-c', 'echo $$'], capture_output=True, "
                                          "text=True).stdout.strip())")]
    runs = []
    for sandbox in (Sandbox(), None, Sandbox()):
        out = execute(nbformat.from_dict(nb), cwd=tempfile.mkdtemp(), timeout=20, sandbox=sandbox)
        runs.append([c.outputs[0].get("text", c.outputs[0].get("evalue")) for c in out.cells])
    print(json.dumps({"seen": seen, "runs": runs}))
''')


def test_a_sandboxed_notebooks_process_is_forked_once_as_process_1_of_its_own_pid_namespace():
    import os

    if os.geteuid() != 0:
        pytest.skip("only root's forker makes the PID namespace (otherwise the notebook forks into one itself)")
    result, _ = run_script(ONE_FORK_CHECK)
    (boxed, plain, again), runs = result["seen"], result["runs"]
    # the process the forker started is process 1 of a namespace of its own: no second fork
    assert boxed["namespaces"] == [str(boxed["pid"]), "1"] and again["namespaces"] == [str(again["pid"]), "1"]
    # its user id is its own, from its pid outside; the processes it starts are in its namespace
    assert runs[0] == [f"1 {100000 + boxed['pid']}\n", "2\n"] and runs[2][0] == f"1 {100000 + again['pid']}\n"
    # the forker is back in its own namespace for the next notebook, which runs unconfined
    assert plain["namespaces"] == [str(plain["pid"])] and runs[1][0] == f"{plain['pid']} {os.geteuid()}\n"
