"""nbgrader's Execute, with each notebook run by the warm engine instead of a new kernel."""

from __future__ import annotations

import os

from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, List, Unicode

from .execute import execute
from .prefix import SharedPrefix


class WarmExecute(Execute):
    """nbgrader's :class:`Execute` step, run by :func:`grader.instructor.engine.execute.execute`.

    Its options are nbgrader's (``c.Execute.timeout`` is the per-cell time limit), plus the
    engine's own, below."""

    memory_limit = Integer(4096, help="MiB of address space a notebook may use (0: no limit)").tag(config=True)
    cpu_time_limit = Integer(600, help="Seconds of CPU time a notebook may use (0: no limit)").tag(config=True)
    network = Bool(False, help="Whether student code may use the network").tag(config=True)
    sandbox = Bool(True, help="Run each notebook in its own namespaces, file system view and user id "
                              "(grader.instructor.engine.sandbox). Needs Linux, and root or unprivileged "
                              "user namespaces.").tag(config=True)
    notebook_time_limit = Integer(900, help="Seconds a whole notebook may run (0: no limit)").tag(config=True)
    process_limit = Integer(64, help="Processes and threads a sandboxed notebook may have at once").tag(config=True)
    file_size_limit = Integer(256, help="MiB the largest file a sandboxed notebook writes may have").tag(config=True)
    disk_limit = Integer(512, help="MiB a sandboxed notebook may write in all (its folder, /tmp and /dev/shm "
                                   "share them)").tag(config=True)
    readable = List(Unicode(), help="More paths a sandboxed notebook may read (data the course needs)").tag(config=True)
    share_prefix = Bool(True, help="Run the code cells every student received before their first answer once "
                                   "per worker, and fork each notebook that begins with them unchanged from "
                                   "there (grader.instructor.engine.prefix)").tag(config=True)

    def preprocess(self, nb, resources):
        from ..plugins import HideHiddenTests

        cwd = resources.get("metadata", {}).get("path") or os.getcwd()
        box = None
        if self.sandbox:
            from .sandbox import Sandbox

            box = Sandbox(memory_mb=self.memory_limit or None, cpu_seconds=self.cpu_time_limit or None,
                          processes=self.process_limit, file_mb=self.file_size_limit, disk_mb=self.disk_limit,
                          network=self.network,
                          readable=list(self.readable), hidden=_hidden_paths(self.config))
        limits = {"memory_mb": self.memory_limit or None, "cpu_seconds": self.cpu_time_limit or None,
                  "network": self.network}
        shared = _shared_prefix(self.config, resources) if self.share_prefix else None
        hide = HideHiddenTests(config=self.config).split
        nb = execute(nb, cwd=cwd, timeout=int(self.timeout or 30), limits=limits, sandbox=box,
                     notebook_timeout=self.notebook_time_limit or None, shared=shared, hide=hide)
        return nb, resources


_PREFIXES: dict = {}


def _shared_prefix(config, resources) -> SharedPrefix | None:
    """The shared prefix of the notebook nbgrader is autograding: from its released copy,
    with the source folder's files (those nbgrader copies beside the submission)."""
    info = resources.get("nbgrader", {})
    return shared_prefix(config, info.get("assignment"), info.get("notebook"))


def shared_prefix(config, assignment: str | None, notebook: str | None) -> SharedPrefix | None:
    """The shared prefix of ``notebook`` (its name, without ``.ipynb``) of ``assignment``."""
    if not assignment or not notebook:
        return None
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    released = os.path.join(coursedir.format_path(coursedir.release_directory, ".", assignment), f"{notebook}.ipynb")
    source = coursedir.format_path(coursedir.source_directory, ".", assignment)
    try:
        stamp = os.stat(released).st_mtime_ns
    except OSError:
        return None
    key = (released, source, stamp)
    if key not in _PREFIXES:
        _PREFIXES[key] = SharedPrefix.of(released, source, tuple(coursedir.ignore))
    return _PREFIXES[key]


#: The fewest notebooks of an assignment, graded in one run, for which its beginnings are run
#: once and shared: below, running each notebook whole costs no more.
SHARE_FROM = 3


def beginnings_worth_sharing(config, counts: dict[str, int]) -> list[tuple[SharedPrefix, int]]:
    """``[(prefix, cell time limit)]`` of every notebook of each assignment of which ``counts``
    says at least :data:`SHARE_FROM` submissions are to be graded (none if the configuration
    turns sharing off)."""
    from nbgrader.coursedir import CourseDirectory

    step = WarmExecute(config=config)
    if not step.share_prefix:
        return []
    coursedir = CourseDirectory(config=config)
    found = []
    for assignment, count in sorted(counts.items()):
        if count < SHARE_FROM:
            continue
        folder = coursedir.format_path(coursedir.release_directory, ".", assignment)
        try:
            names = sorted(n[:-len(".ipynb")] for n in os.listdir(folder) if n.endswith(".ipynb"))
        except OSError:
            continue
        for name in names:
            shared = shared_prefix(config, assignment, name)
            if shared is not None:
                found.append((shared, int(step.timeout or 30)))
    return found


def _hidden_paths(config) -> list[str]:
    """The course's folders and the gradebook's: never visible to a sandboxed notebook,
    even where a readable path contains them. The course folder with the masters (their
    solutions and hidden tests) is $BCE_COURSE_DIR, which autograde sets for the engine
    whatever folder the course lives in (``--course``)."""
    paths = []
    root = config.CourseDirectory.get("root") if "CourseDirectory" in config else None
    for path in (root, os.environ.get("BCE_COURSE_WORKSPACE"), os.environ.get("BCE_COURSE_DIR")):
        if path:
            paths.append(os.path.abspath(path))
    return paths
