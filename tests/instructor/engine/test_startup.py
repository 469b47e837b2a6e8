"""How the engine starts: its root forker warms up what notebooks use in a process of its
own, while the first process imports what the judge uses; and no instructor's process builds
jsonschema's RFC 3987 grammar, which nothing there checks."""

import textwrap

import pytest

from helpers import run_script


@pytest.fixture(autouse=True)
def own_temporary_folder(tmp_path, monkeypatch):
    """What the scripts start keeps its temporary folders in the test's own."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))

START = textwrap.dedent('''
    import json, sys, tempfile
    from grader.instructor import skip_iri_grammar

    skip_iri_grammar()
    import nbformat
    from grader.instructor.engine import forker, pool

    before = sorted(m for m in ("nbgrader", "matplotlib", "lark") if m in sys.modules)
    forker.start_root(warm=pool.import_what_notebooks_use)
    pool.import_what_the_judge_uses()
    from grader.instructor.engine.execute import execute

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import sys\\nprint(sorted(m for m in ('nbgrader', 'matplotlib.pyplot', 'lark') if m in sys.modules))")]
    done = execute(nb, cwd=tempfile.mkdtemp(), timeout=60)
    print(json.dumps({"before": before, "notebook": "".join(o.get("text", "") for o in done.cells[0].outputs),
                      "judge": sorted(m for m in ("nbgrader", "matplotlib.pyplot", "lark") if m in sys.modules)}))
''')


def test_the_root_forker_warms_up_for_notebooks_while_the_first_process_imports_nbgrader():
    found, _ = run_script(START)
    assert found["before"] == []  # nothing heavy is imported before the root forker forks
    assert found["notebook"] == "['matplotlib.pyplot']\n"  # warmed up by the root forker; no nbgrader there
    assert found["judge"] == ["nbgrader"]  # the judge's process imports nbgrader, and leaves matplotlib out


IRI = textwrap.dedent('''
    import json, sys
    from grader.instructor import skip_iri_grammar

    skip_iri_grammar()
    import nbformat

    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nbformat.validate(good)
    bad = nbformat.from_dict({**good, "cells": [{"cell_type": "code", "source": 1}]})
    try:
        nbformat.validate(bad)
        refused = None
    except nbformat.ValidationError as error:
        refused = str(error).splitlines()[0]
    print(json.dumps({"lark": "lark" in sys.modules, "refused": refused}))
''')


def test_nbformat_still_validates_without_the_iri_grammar():
    found, _ = run_script(IRI)
    assert found["lark"] is False
    assert found["refused"]  # an invalid notebook is still refused


ENGINE = textwrap.dedent('''
    import json, runpy, subprocess, sys
    # the engine's own entry point, given nothing to grade: it returns after warming up
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "grader.instructor.engine"],
                          input="", capture_output=True, text=True, timeout=240)
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    print(json.dumps({"code": done.returncode, "nbgrader": "nbgrader" in imported,
                      "grammar": "rfc3987_syntax.syntax_helpers" in imported}))
''')


def test_the_engines_process_skips_the_grammar():
    found, _ = run_script(ENGINE)
    assert found == {"code": 0, "nbgrader": True, "grammar": False}


MORE = textwrap.dedent('''
    import json, sys, tempfile
    from pathlib import Path
    from grader.instructor import skip_iri_grammar

    skip_iri_grammar()
    import nbformat
    from grader.instructor.engine import forker, pool

    released = Path(tempfile.mkdtemp()) / "released.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch\\nimport grader.imbalance")]),
                   released)
    forker.start_root(warm=pool.import_what_notebooks_use, more=pool.import_what_many_notebooks_use)
    if MANY:
        assert forker.root().ask({"op": "more", "released": [str(released)]}, []) == {"more": True}
    from grader.instructor.engine.execute import execute

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import sys, grader.imbalance as m\\n"
        "print('torch._dynamo' in sys.modules, m.trained.cache_info().currsize == len(m.MODELS))")]
    done = execute(nb, cwd=tempfile.mkdtemp(), timeout=120)
    print(json.dumps({"notebook": "".join(o.get("text", "") for o in done.cells[0].outputs)}))
''')


def test_told_that_many_notebooks_come_the_root_forker_warms_up_what_they_will_use():
    many, _ = run_script("MANY = True\n" + MORE)
    assert many["notebook"] == "True True\n"  # torch's compiler imported, the capstone's first models trained
    alone, _ = run_script("MANY = False\n" + MORE)
    assert alone["notebook"] == "False False\n"  # a notebook graded alone does not wait for either


def test_the_engine_reads_what_comes_ahead_of_the_job():
    from grader.instructor.engine.pool import _ahead

    assert _ahead('{"notebooks": 12, "released": ["a.ipynb", 3]}\n') == {"notebooks": 12, "released": ["a.ipynb"]}
    for unreadable in ("12\n", "{", '{"notebooks": "12"}', "[]", ""):
        assert _ahead(unreadable) == {"notebooks": None}


def test_the_engine_reads_the_count_first_when_it_has_come_already():
    """The first line is read before the judge's imports only when it is there: the engine
    never waits for it before importing."""
    import os

    from grader.instructor.engine.pool import _readable

    read, write = os.pipe()
    with os.fdopen(read) as stream:
        assert not _readable(stream)
        os.write(write, b'{"notebooks": 3}\n')
        assert _readable(stream)
        assert stream.readline() == '{"notebooks": 3}\n'
    os.close(write)


TRANSFORMED_AHEAD = textwrap.dedent('''
    import json, sys
    from grader.instructor.engine import session

    session.transform_ahead(["x = 1\\n", "%time y = 2\\n"])
    magic = session._TRANSFORMED["%time y = 2\\n"]
    session._TRANSFORMED["x = 1\\n"] = "x = 2\\n"  # marks where the shell takes what was transformed ahead
    shell = session.Session().shell
    seen = {"magic": magic}
    shell.run_cell("x = 1\\n"); seen["ahead"] = shell.user_ns["x"]
    shell.run_cell("%time y = 2\\n"); seen["magic ran"] = shell.user_ns["y"]
    shell.run_cell("x = 5\\n"); seen["not ahead"] = shell.user_ns["x"]
    # a cell adds a transformation of its own: every later cell is transformed anew, with it
    shell.run_cell("get_ipython().input_transformer_manager.line_transforms.append("
                   "lambda lines: [l.replace('1', '3') for l in lines])")
    shell.run_cell("x = 1\\n"); seen["own"] = shell.user_ns["x"]
    sys.__stdout__.write(json.dumps(seen) + "\\n")
''')


def test_cells_transformed_ahead_are_taken_while_the_transformations_are_ipythons():
    seen, _ = run_script(TRANSFORMED_AHEAD)
    assert "run_line_magic('time', 'y = 2')" in seen["magic"]  # IPython's own transformation
    assert seen["ahead"] == 2 and seen["magic ran"] == 2 and seen["not ahead"] == 5
    assert seen["own"] == 3


ASYNC_AHEAD = textwrap.dedent('''
    import json, sys
    import IPython.core.interactiveshell as interactiveshell
    from grader.instructor.engine import session

    released = ["x = 1\\n", "import asyncio\\nawait asyncio.sleep(0)\\nz = 4\\n"]
    session.transform_ahead(released)
    asked = []
    found = interactiveshell._should_be_async
    interactiveshell._should_be_async = lambda cell: asked.append(cell) or found(cell)
    shell = session.Session().shell
    for cell in released:
        shell.run_cell(cell)
    released_asked = list(asked)
    shell.run_cell("w = 6\\n")
    seen = {"ahead": list(session._ASYNC.values()), "released asked": released_asked, "asked": asked,
            "ran": [shell.user_ns.get(k) for k in ("x", "z", "w")]}
    sys.__stdout__.write(json.dumps(seen) + "\\n")
''')


def test_whether_a_released_cell_awaits_is_found_ahead_and_a_new_cell_is_asked_as_ipython_asks():
    seen, _ = run_script(ASYNC_AHEAD)
    assert seen["ahead"] == [False, True]               # IPython's own answers, found ahead
    assert seen["released asked"] == []                 # the released cells' answers were taken
    assert seen["asked"] == ["w = 6\n"] and seen["ran"] == [1, 4, 6]  # a new cell: IPython asks


COMPILED_AHEAD = textwrap.dedent('''
    import builtins, json, sys, traceback
    from grader.instructor.engine import session

    released = ["def f(x):\\n    return [1 / v for v in x]\\ny = 2\\ny * 3\\n", "x = 1\\nreturn x\\n"]
    session.transform_ahead(released)
    compiled = []
    found = builtins.compile
    cells = lambda name: name == "<>" or "ipython-input" in str(name)  # what compiles a cell, not a module
    builtins.compile = lambda *a, **k: (cells(a[1]) and compiled.append(a[1])) or found(*a, **k)
    shell = session.Session().shell
    seen = {}
    shell.run_cell(released[0]); seen["released"] = list(compiled)
    # a released cell that parses but does not compile is compiled where it runs, and fails there
    seen["ahead"] = [len(session._PARSED), len(session._CODE)]
    failed = shell.run_cell(released[1])
    seen["fails"] = [type(failed.error_before_exec or failed.error_in_exec).__name__, bool(compiled)]
    seen["ran"] = [shell.user_ns["y"], shell.user_ns["_"]]
    try:
        shell.user_ns["f"]([0])
    except ZeroDivisionError as error:  # the function's frames name the cell it was defined in
        seen["frames"] = [frame.filename for frame in traceback.extract_tb(error.__traceback__)][1:]
    seen["cell"] = shell.compile.get_code_name(released[0], released[0], 1)
    # a cell that changes cells' statements (an AST transformer): every cell compiled as IPython does
    shell.run_cell("import ast\\nclass Ten(ast.NodeTransformer):\\n    def visit_Constant(self, node):\\n"
                   "        return ast.Constant(10) if node.value == 2 else node\\n"
                   "get_ipython().ast_transformers.append(Ten())")
    del compiled[:]
    shell.run_cell(released[0]); seen["transformed"] = [shell.user_ns["y"], bool(compiled)]
    sys.__stdout__.write(json.dumps(seen) + "\\n")
''')


def test_a_released_cell_is_compiled_ahead_and_its_code_named_after_the_cell_that_runs_it():
    seen, _ = run_script(COMPILED_AHEAD)
    assert seen["released"] == []                              # nothing compiled as the cell ran
    assert seen["ran"] == [2, 6]                               # and it ran, its last value shown
    assert seen["ahead"] == [1, 3] and seen["fails"] == ["SyntaxError", True]  # nothing kept of that cell
    assert seen["frames"] == [seen["cell"], seen["cell"]]      # the function and its comprehension
    assert seen["transformed"] == [10, True]                   # the shell's own transformer applies


AHEAD = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    from grader._battery import capstone, salt
    from grader.instructor.engine import pool

    salt.use("a course's secret")
    released = {n: str(Path("notebooks") / f"{n}.ipynb") for n in ("01-bce-vector", "06-class-imbalance")}
    trained = lambda: capstone._trained_logits.cache_info().currsize
    seen = {}
    pool.compute_ahead(2, [released["06-class-imbalance"]])  # two notebooks: each judge computes its own
    seen["few"] = [trained(), "grader.imbalance" in sys.modules]
    pool.compute_ahead(10, [released["01-bce-vector"]])  # no capstone check in this notebook
    seen["other"] = [trained(), "grader.imbalance" in sys.modules]
    pool.compute_ahead(10, [released["06-class-imbalance"]])
    seen["capstone"] = [trained(), "grader.imbalance" in sys.modules]
    print(json.dumps(seen))
''')


def test_told_that_many_notebooks_come_the_judge_computes_ahead_what_their_checks_share():
    """The capstone's judges train two models and read the course's data, the same for every
    student: for a run of many notebooks, the engine's first process does it once, before its
    workers fork, where each worker would do it again."""
    seen, _ = run_script(AHEAD)
    assert seen == {"few": [0, False], "other": [0, False], "capstone": [2, True]}
