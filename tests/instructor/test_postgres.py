"""The gradebook on PostgreSQL (--db-url postgresql://...): the URL an instructor writes works with
the instructor extra's driver, a class graded there gets exactly SQLite's grades, and a missing
driver, a connection that fails or a database release never ran against is said in one line.

The server is Debian's PostgreSQL (`make test` installs it where it can), started for this module
in a temporary folder on a free port, as an unprivileged user when the tests run as root (it
refuses to run as root), and stopped afterwards; where it cannot start, those tests are skipped
with the reason."""

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader.instructor import release
from grader.instructor.cli import main
from grader.instructor.workspace import Workspace

from helpers import A1, Class, cell_scores, free_port, solutions

USER, PASSWORD = "instructor", "s3cret-" + "pw"
EXPECTED = {"alice": 9, "bob": 0, "carol": 5}  # all right; handed in unchanged; only the loss written
VARIABLES = ("BCE_COURSE_WORKSPACE", "BCE_COURSE_DB_URL", "BCE_COURSE_DIR")


def one_notebook_course(folder: Path) -> Path:
    """A course folder of the first notebook alone: the course's configuration and its master."""
    (folder / "source").mkdir(parents=True)
    shutil.copy(release.COURSE_DIR / "nbgrader_config.py", folder)
    shutil.copytree(release.SOURCE_DIR / A1, folder / "source" / A1)
    return folder


def run(*argv, capsys=None):
    """``python -m grader ARGV`` in this process: its exit status (and its stderr, with ``capsys``)."""
    code = main([str(a) for a in argv])
    return (code, capsys.readouterr().err) if capsys else code


def assert_one_line_error(code: int, err: str, *words: str):
    assert code == 2, err
    assert err.startswith("error: ") and err.strip().count("\n") == 0, err
    assert "Traceback" not in err and PASSWORD not in err, err
    for word in words:
        assert word in err, (word, err)


@pytest.fixture(autouse=True)
def no_course_variables(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


# --- without a server ---------------------------------------------------------------------------

def test_the_url_an_instructor_writes_has_its_driver():
    """SQLAlchemy 2 reads postgresql:// as psycopg 3, which the instructor extra installs."""
    from sqlalchemy import create_engine

    engine = create_engine(f"postgresql://{USER}@127.0.0.1:5432/course")  # loads the driver, connects to nothing
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


@pytest.fixture
def prepared(tmp_path):
    """A workspace with its configuration (release's first step), enough to open a gradebook."""
    workspace = Workspace.at(tmp_path / "workspace", course=one_notebook_course(tmp_path / "course"))
    workspace.prepare()
    return workspace


@pytest.mark.parametrize("url, words", [
    ("mysql://{u}:{p}@127.0.0.1/course", ["needs the database driver MySQLdb", "pip install mysqlclient"]),
    ("postgresql+psycopg2://{u}:{p}@127.0.0.1/course", ["needs the database driver psycopg2",
                                                         "pip install psycopg2-binary", "postgresql://"]),
    ("postgresql+nodriver://{u}:{p}@127.0.0.1/course", ["names a database or driver SQLAlchemy does not know",
                                                         "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"]),
    ("not a url", ["is not a database URL", "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"]),
    ("postgresql://{u}:{p}@127.0.0.1:{port}/course", ["cannot open the gradebook", "Connection refused",
                                                       "check the host, port, user, password and database"]),
])
def test_a_missing_driver_or_a_refused_connection_is_one_line(prepared, capsys, url, words):
    if "psycopg2" in url:
        try:
            import psycopg2  # noqa: F401
            pytest.skip("psycopg2 is installed here")
        except ImportError:
            pass
    # a port bound and never listened on: connections to it are refused, and no other process
    # (pytest-xdist's other worker starting a server) can take it meanwhile
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = url.format(u=USER, p=PASSWORD, port=closed.getsockname()[1])
        for command in ("export", "release"):
            code, err = run(command, "--workspace", prepared.root, "--db-url", url, capsys=capsys)
            assert_one_line_error(code, err, *words)
    assert prepared.recorded("db_url") is None  # release recorded no URL it could not open


def test_an_unreachable_course_is_one_line_that_says_how_to_give_it(prepared, tmp_path, capsys):
    code, err = run("export", "--workspace", prepared.root, "--course", tmp_path / "nowhere", capsys=capsys)
    assert_one_line_error(code, err, f"the course folder {tmp_path / 'nowhere'} does not exist")
    shutil.rmtree(tmp_path / "course")  # the course the workspace was prepared with, moved away
    code, err = run("export", "--workspace", prepared.root, capsys=capsys)
    assert_one_line_error(code, err, f"the course folder {tmp_path / 'course'}", "does not exist",
                          "--course DIR or $BCE_COURSE_DIR")


# --- a real server ------------------------------------------------------------------------------

@dataclass
class Server:
    port: int

    def url(self, database: str, password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create(self, database: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        return self.url(database)


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's initdb and pg_ctl: on PATH, else Debian's, newest first."""
    found = [Path(p).parent for p in (shutil.which("initdb"),) if p]
    found += sorted((Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
                    key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)], reverse=True)
    return next((d for d in found if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)


@pytest.fixture(scope="module")
def server():
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL's server is not installed (Debian: apt-get install postgresql; `make test` "
                    "installs it when run as root)")
    as_user, owner = [], None
    if os.geteuid() == 0:  # postgres refuses to run as root
        users = [u for u in ("postgres", "nobody") if _uid(u) is not None]
        if not users or not shutil.which("runuser"):
            pytest.skip("PostgreSQL refuses to run as root, and there is no user postgres or nobody to run it as "
                        "with runuser")
        as_user, owner = [shutil.which("runuser"), "-u", users[0], "--"], _uid(users[0])
    base = Path(tempfile.mkdtemp(prefix="bce-postgres-"))  # under $TMPDIR
    try:
        (base / "password").write_text(PASSWORD + "\n")
        if owner is not None:
            for path in (base, base / "password"):
                os.chown(path, owner, -1)
        env = {**os.environ, "TMPDIR": str(base), "LC_ALL": "C"}

        def pg(*argv):
            return subprocess.run([*as_user, *map(str, argv)], cwd=base, env=env, capture_output=True, text=True,
                                  timeout=180)

        done = pg(bindir / "initdb", "-D", base / "data", "-U", USER, f"--pwfile={base / 'password'}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--no-sync")
        if done.returncode:
            pytest.skip(f"PostgreSQL's initdb cannot run here: {_last_line(done.stderr)}")
        # a free port can be taken before the server binds it (by another process, or by pytest-xdist's
        # other worker): the server is then started on another, rather than the tests skipped
        for _ in range(3):
            port = free_port()
            options = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base} -c fsync=off "
                       "-c full_page_writes=off")
            log_file = base / f"server-{port}.log"
            done = pg(bindir / "pg_ctl", "-D", base / "data", "-l", log_file, "-w", "-t", "120", "-o", options,
                      "start")
            log = log_file.read_text(errors="replace") if log_file.exists() else done.stderr
            if not done.returncode or "Address already in use" not in log:
                break
        if done.returncode:
            pytest.skip(f"the PostgreSQL server does not start here: {_last_line(log)}")
        try:
            yield Server(port)
        finally:
            pg(bindir / "pg_ctl", "-D", base / "data", "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _uid(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "(nothing said)"


@pytest.fixture(scope="module")
def graded(server, tmp_path_factory):
    """The same class of three, released, collected and autograded once into a PostgreSQL gradebook
    and once into SQLite: (the PostgreSQL workspace, the SQLite one)."""
    tmp = tmp_path_factory.mktemp("postgres")
    course = one_notebook_course(tmp / "course")
    url = server.create("course")
    with pytest.MonkeyPatch.context() as patch:
        for name in VARIABLES:
            patch.delenv(name, raising=False)
        (tmp / "tmp").mkdir()
        patch.setenv("TMPDIR", str(tmp / "tmp"))  # for the engine and the notebooks
        assert run("release", "--course", course, "--workspace", tmp / "sqlite") == 0
        assert run("release", "--course", course, "--workspace", tmp / "postgresql", "--db-url", url) == 0
        build, s1 = Class(Workspace.at(tmp / "sqlite")), solutions(A1)
        downloads = tmp / "downloads"
        downloads.mkdir()
        (downloads / f"alice_{A1}.ipynb").write_text(build.notebook(A1, s1))
        (downloads / f"bob_{A1}.ipynb").write_text(build.notebook(A1))
        (downloads / f"carol_{A1}.ipynb").write_text(build.notebook(A1, {"bce_vector_solution":
                                                                          s1["bce_vector_solution"]}))
        for name in ("sqlite", "postgresql"):  # no --db-url: the workspace remembers its gradebook
            assert run("collect", downloads, "--workspace", tmp / name) == 0
            assert run("autograde", "--quiet", "--workspace", tmp / name) == 0
    return Workspace.at(tmp / "postgresql"), Workspace.at(tmp / "sqlite")


def scores(workspace: Workspace) -> dict[str, float]:
    with workspace.gradebook() as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(A1)}


@pytest.mark.slow
def test_a_class_graded_on_postgresql_gets_sqlites_grades(graded, server):
    postgresql, sqlite = graded
    assert postgresql.db_url == server.url("course")  # remembered from release
    assert sqlite.db_url is None
    assert not (postgresql.root / "gradebook.db").exists()  # nothing went to SQLite
    assert scores(postgresql) == scores(sqlite) == EXPECTED
    by_cell = cell_scores(postgresql)
    assert by_cell == cell_scores(sqlite)
    assert len(by_cell) >= 3 * 4  # every test cell of every student's notebook
    import psycopg

    with psycopg.connect(server.url("course")) as connection:  # the server itself holds them
        stored = dict(connection.execute("SELECT s.student_id, SUM(g.auto_score) FROM grade g "
                                         "JOIN submitted_notebook n ON g.notebook_id = n.id "
                                         "JOIN submitted_assignment s ON n.assignment_id = s.id "
                                         "GROUP BY s.student_id").fetchall())
    assert {k: float(v) for k, v in stored.items()} == EXPECTED


@pytest.mark.slow
def test_a_database_where_release_never_ran_is_an_error(graded, server, capsys):
    postgresql, _ = graded
    empty = server.create("empty")
    for command in ("autograde", "feedback", "export", "report"):
        code, err = run(command, "--workspace", postgresql.root, "--db-url", empty, capsys=capsys)
        assert_one_line_error(code, err, "knows no assignment", "release never ran against it",
                              "run `python -m grader release`")
    assert scores(postgresql) == EXPECTED  # the class's gradebook untouched


@pytest.mark.slow
@pytest.mark.parametrize("problem, words", [
    ("password", ["password authentication failed", "check the host, port, user, password and database"]),
    ("database", ['database "nowhere" does not exist', "createdb"]),
])
def test_a_connection_that_fails_is_one_line(graded, server, capsys, problem, words):
    postgresql, _ = graded
    url = server.url("course", password="wrong") if problem == "password" else server.url("nowhere")
    for command in ("autograde", "export", "release"):
        code, err = run(command, "--workspace", postgresql.root, "--db-url", url, capsys=capsys)
        assert_one_line_error(code, err, *words)
