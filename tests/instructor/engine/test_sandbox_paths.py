"""What a sandboxed notebook can read when a readable path is reached through a symbolic link
(a virtual environment that is a link, a home folder that is one): the same files as outside,
under the same names, and still nothing of what is hidden."""

import os
import textwrap

from grader.instructor.engine.sandbox import Sandbox, _links_on_the_way
from helpers import run_script


def _linked(tmp_path):
    real = tmp_path / "real"
    (real / "lib" / "mine").mkdir(parents=True)
    (real / "lib" / "mine" / "__init__.py").write_text("WORD = 'found'\n")
    (real / "lib" / "secret").mkdir()
    (real / "lib" / "secret" / "answers.txt").write_text("hidden\n")
    (tmp_path / "home").mkdir()
    os.symlink(real, tmp_path / "home" / "env")  # an absolute link
    os.symlink("env/lib", tmp_path / "home" / "lib")  # a relative one, through the first
    return real


def test_each_link_on_the_way_is_named_where_it_really_is_then_the_real_path(tmp_path):
    real = _linked(tmp_path)
    home = tmp_path / "home"
    assert _links_on_the_way(str(home / "lib" / "mine")) == [str(home / "lib"), str(home / "env"),
                                                              str(real / "lib" / "mine")]
    assert _links_on_the_way(str(real / "lib")) == [str(real / "lib")]
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    assert _links_on_the_way(str(tmp_path / "a" / "x"))[-1] == os.path.realpath(tmp_path / "a" / "x")  # a loop ends


def test_readable_paths_bind_real_paths_once_and_hidden_paths_are_real(tmp_path):
    real = _linked(tmp_path)
    home = tmp_path / "home"
    box = Sandbox(readable=[str(home / "lib" / "mine"), str(real / "lib"), str(real / "lib" / "mine")],
                  hidden=[str(home / "lib" / "secret")])
    paths = box.readable_paths()
    assert str(home / "lib") in paths and str(home / "env") in paths and str(real / "lib") in paths
    assert str(real / "lib" / "mine") not in paths  # inside real/lib, bound already
    assert str(real / "lib" / "secret") in box.hidden_paths()
    assert not any(os.path.islink(p) and p.startswith(str(real)) for p in paths)


LINKED_CHECK = textwrap.dedent('''
    import json, tempfile
    import nbformat
    from grader.instructor.engine.execute import execute
    from grader.instructor.engine.sandbox import Sandbox

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import os, sys\\nsys.path.insert(0, {lib!r})\\nimport mine\\nprint(mine.WORD, os.path.realpath(mine.__file__))"),
                nbformat.v4.new_code_cell("print(open({secret!r}).read())")]
    box = Sandbox(readable=[{lib!r}], hidden=[{secret_dir!r}])
    out = execute(nb, cwd=tempfile.mkdtemp(), timeout=20, sandbox=box)
    print(json.dumps([[o.get("text") or o.get("ename") for o in c.outputs] for c in out.cells]))
''')


def test_a_notebook_imports_from_a_path_reached_through_links_and_cannot_read_what_is_hidden(tmp_path):
    real = _linked(tmp_path)
    lib = str(tmp_path / "home" / "lib")
    script = LINKED_CHECK.format(lib=lib, secret=f"{lib}/secret/answers.txt",
                                 secret_dir=f"{lib}/secret")
    (imported, hidden), _ = run_script(script, timeout=120)
    assert imported == [f"found {real}/lib/mine/__init__.py\n"]
    assert hidden == ["FileNotFoundError"]
