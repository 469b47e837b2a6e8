"""Confine a process that is about to run a student's notebook, with what Linux offers.

The autograding engine forks a child per notebook from a warm process (see
:mod:`grader.instructor.engine`), so the confinement is applied from inside that child,
before any student code runs, with the kernel's own mechanisms called through
libc: the same namespaces ``unshare(1)`` and bubblewrap use, ``pivot_root``,
resource limits, and a user id of its own. Nothing here is a Python-level
sandbox: once :func:`enter` returns, student code may do anything Python can,
and the kernel is what stops it.

What the child gets (:class:`Sandbox`):

* its own mount namespace whose root is an empty tmpfs holding, read-only, the
  system directories, the Python installation, the ``grader`` package (without
  its ``course`` folder: masters and hidden tests) and the course data;
  ``/notebook`` (its own copy of the notebook's folder), ``/tmp`` and ``/dev/shm``
  are writable and share one private tmpfs of ``disk_mb`` (the notebook's whole disk
  quota); ``/dev`` holds only null, zero, full, random and urandom (and NVIDIA's
  nodes where there is a GPU): no terminal. The host's other files -- the course's masters, the gradebook, the
  other submissions -- are not in it, at any path.
* its own PID namespace, in which it is process 1: when it ends, the kernel
  kills every process it started;
* its own network namespace, whose only interface is a loopback that is down;
* a user id no other process has (``100000 +`` a process id of the notebook's, outside
  its PID namespace), no
  supplementary groups, and ``no_new_privs``, so that it can neither undo the
  above nor read what its uid may not;
* limits: address space, CPU time, processes (``RLIMIT_NPROC``, counted for its
  uid only), file size and open files;
* an environment of its own: the variables it inherited, and the bytes of the one its
  program started with (``/proc/self/environ``), are emptied; temporary files go to its
  own ``/tmp`` (``TMPDIR``, and ``tempfile``'s cached folder forgotten).

It needs root (as an autograding service or container normally has), or
unprivileged user namespaces; where neither is available :func:`enter` raises
:class:`SandboxError` and the notebook is not run.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import site
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..._battery.checks import JUDGED_ELSEWHERE

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217, "riscv64": 41}

#: Where the notebook's folder appears inside.
WORK = "/notebook"

_libc = ctypes.CDLL(None, use_errno=True)


class SandboxError(RuntimeError):
    """The sandbox could not be set up; the notebook must not run unconfined."""


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(),
                       ctypes.c_ulong(flags), data and data.encode()), f"mount {source or fstype} on {target}")


@dataclass
class Sandbox:
    """How to confine one notebook's process; the defaults are the engine's."""

    memory_mb: int | None = 4096
    cpu_seconds: int | None = 600
    processes: int = 64
    file_mb: int = 256
    open_files: int = 256
    #: MiB that /notebook, /tmp and /dev/shm hold together, and how many files
    disk_mb: int = 512
    files: int = 16384
    network: bool = False
    #: paths (besides the system's, Python's and the grader's) the notebook may read
    readable: list[str] = field(default_factory=list)
    #: paths that must not be visible even where a readable path contains them
    hidden: list[str] = field(default_factory=list)

    def readable_paths(self) -> list[str]:
        import grader

        package = Path(grader.__file__).resolve().parent
        paths = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
                 sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(), str(package)]
        try:
            from grader import datasets

            paths.append(str(Path(datasets.data_dir()).resolve()))
        except Exception:  # noqa: BLE001 - no course data here: nothing more to show
            pass
        paths += self.readable
        out = []
        for p in paths:
            p = os.path.abspath(p)
            if not os.path.lexists(p):
                continue
            for q in _links_on_the_way(p):
                if q not in out and q != "/":
                    out.append(q)
        # a path inside another that is bound is there already (the binds are recursive)
        bound = [p for p in out if not os.path.islink(p)]
        return [q for q in out if not any(q.startswith(p + "/") for p in bound)]

    def hidden_paths(self) -> list[str]:
        """Where the paths to hide really are (:meth:`readable_paths` are bound there)."""
        import grader

        return [os.path.realpath(p) for p in (Path(grader.__file__).resolve().parent / "course", *self.hidden)]


def _links_on_the_way(path: str) -> list[str]:
    """The symbolic links ``path`` passes through (a virtual environment reached through one,
    a home folder that is one), each where it really is, links in their targets included,
    then the real path itself. The sandbox binds the real path and makes each link again
    where it is, so that the path, and every name Python knows it by (``sys.prefix``,
    ``sys.path``), lead to it inside as outside. Binding through a link instead would follow
    it outside the sandbox's root."""
    found: list[str] = []
    current, parts, followed = "/", list(Path(path).parts[1:]), 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = os.path.dirname(current)  # (current is real: no link to go back through)
            continue
        candidate = os.path.join(current, part)
        if not os.path.islink(candidate):
            current = candidate
            continue
        followed += 1
        if followed > 40:  # a loop of links: what the system makes of it
            return [*found, os.path.realpath(path)]
        if candidate not in found:
            found.append(candidate)
        target = Path(os.readlink(candidate))
        if target.is_absolute():
            current, parts = "/", [*target.parts[1:], *parts]
        else:
            parts = [*target.parts, *parts]
    return [*found, current]


def available() -> str | None:
    """None if a sandbox can be made here, else why not (without making one)."""
    if not sys.platform.startswith("linux"):
        return "the sandbox needs Linux namespaces"
    if os.uname().machine not in _SYS_PIVOT_ROOT:
        return f"the sandbox does not know pivot_root on {os.uname().machine}"
    if os.geteuid() == 0:
        return None
    try:
        if Path("/proc/sys/kernel/unprivileged_userns_clone").read_text().strip() == "0":
            return "unprivileged user namespaces are disabled"
    except OSError:
        pass
    return None


def unshare(network: bool, pid: bool = True) -> None:
    """New mount, IPC and UTS namespaces (and network, unless ``network``) for this process,
    and (with ``pid``) a PID namespace for the children it forks next: in the parent of the
    notebook's process, or, without ``pid``, in a notebook's process that is already process 1
    of a PID namespace of its own (:func:`new_pid_namespace_for_children`)."""
    flags = CLONE_NEWNS | (CLONE_NEWPID if pid else 0) | CLONE_NEWIPC | CLONE_NEWUTS | (0 if network else CLONE_NEWNET)
    if os.geteuid() == 0:
        _check(_libc.unshare(flags), "unshare")
        return
    uid, gid = os.geteuid(), os.getegid()
    _check(_libc.unshare(flags | CLONE_NEWUSER), "unshare (user namespace)")
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


def new_pid_namespace_for_children() -> str | None:
    """Have the next child this process forks be process 1 of a new PID namespace (this
    process stays in its own); None if done, else why not."""
    if _libc.unshare(CLONE_NEWPID) != 0:
        return os.strerror(ctypes.get_errno())
    return None


def back_to_pid_namespace(own: int) -> None:
    """After that fork: the children forked next are in this process's own PID namespace again
    (``own``: an open ``/proc/self/ns/pid``). A process that cannot come back must not fork
    any more children, which would be born into the namespace of the first: it leaves."""
    if _libc.setns(own, CLONE_NEWPID) != 0:
        os._exit(70)


def outside_pid() -> int:
    """This process's id as its parent's PID namespace sees it (inside its own, it is 1); read
    before :func:`enter` mounts the sandbox's own ``/proc``."""
    return int(os.readlink("/proc/self"))


def enter(box: Sandbox, scratch: str, uid: int) -> None:
    """In the notebook's process (process 1 of the new PID namespace): build the
    file system view from ``scratch`` (which holds ``root/`` and ``work/``), move into it, set the limits and drop to ``uid``."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    parent = os.getppid()
    root = os.path.join(scratch, "root")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=755")
    # Everything the notebook may write -- /notebook, /tmp, /dev/shm -- shares one tmpfs of
    # box.disk_mb: a notebook that fills it fails to write ("No space left on device"), and
    # nobody else's disk is touched. It lives in this mount namespace only.
    space = os.path.join(scratch, "space")
    os.makedirs(space, exist_ok=True)
    _mount("tmpfs", space, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={box.disk_mb}m,nr_inodes={box.files},mode=755")
    for name, mode in (("notebook", 0o755), ("tmp", 0o1777), ("shm", 0o1777)):
        os.makedirs(os.path.join(space, name))
        os.chmod(os.path.join(space, name), mode)
    _copy_tree(os.path.join(scratch, "work"), os.path.join(space, "notebook"))
    # /tmp first: a readable path under /tmp (a checkout there) is bound inside it, not hidden by it
    _bind(os.path.join(space, "tmp"), root + "/tmp", read_only=False)
    for path in box.readable_paths():
        if path == WORK or path.startswith(WORK + "/"):
            raise SandboxError(f"{path} is where the sandbox puts the notebook's own files")
        target = root + path
        if os.path.islink(path):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.lexists(target):
                os.symlink(os.readlink(path), target)
            continue
        _bind(path, target, read_only=True)
    for path in box.hidden_paths():
        if os.path.isdir(root + path):
            _mount("tmpfs", root + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=755")
    _minimal_dev(root + "/dev")
    _bind(os.path.join(space, "shm"), root + "/dev/shm", read_only=False)
    os.makedirs(root + "/proc", exist_ok=True)
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if os.path.isdir("/sys"):
        _bind("/sys", root + "/sys", read_only=True)
    _bind(os.path.join(space, "notebook"), root + WORK, read_only=False)
    _chown_tree(os.path.join(space, "notebook"), uid)
    _mount(None, root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    # pivot_root(".", "."): the old root is stacked on the new one, then detached
    os.chdir(root)
    _check(_libc.syscall(_SYS_PIVOT_ROOT[os.uname().machine], b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir(WORK)
    limits = [(resource.RLIMIT_NPROC, box.processes), (resource.RLIMIT_FSIZE, box.file_mb << 20),
              (resource.RLIMIT_NOFILE, box.open_files), (resource.RLIMIT_CORE, 0)]
    if box.memory_mb:
        limits.append((resource.RLIMIT_AS, box.memory_mb << 20))
    if box.cpu_seconds:
        limits.append((resource.RLIMIT_CPU, box.cpu_seconds))
    for kind, value in limits:
        soft = min(value, resource.getrlimit(kind)[1]) if resource.getrlimit(kind)[1] != resource.RLIM_INFINITY \
            else value
        resource.setrlimit(kind, (soft, soft + 5 if kind == resource.RLIMIT_CPU else soft))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file too large fails to write instead of killing
    if os.geteuid() == 0 and not _in_user_namespace():
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    # changing the uid cleared the parent-death signal: set it again, and make sure
    # the parent did not die in between
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(137)
    _forget_the_environment()
    os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
                       "TMPDIR": "/tmp", "IPYTHONDIR": "/tmp/.ipython", "MPLCONFIGDIR": "/tmp/.matplotlib",
                       JUDGED_ELSEWHERE: "1"})
    _temporary_files_in_tmp()


def _temporary_files_in_tmp() -> None:
    """Forget the temporary folder the forker found before the fork (``tempfile`` and
    ``multiprocessing`` keep it once asked): the host's ``TMPDIR``, which does not exist in
    here, and which a notebook must not learn. Both find the sandbox's own ``/tmp`` next."""
    import tempfile

    tempfile.tempdir = None
    process = sys.modules.get("multiprocessing.process")
    if process is not None:
        process.current_process()._config.pop("tempdir", None)


def _forget_the_environment() -> None:
    """Empty this process's environment: the variables, and the bytes of the environment its
    program was started with, which the kernel keeps (``/proc/self/environ`` shows them) and
    every process forked since inherits: the instructor's environment, tokens and all, which
    a cell could otherwise print into the notebook and so into the feedback."""
    os.environ.clear()  # each unset: the C library's environment no longer points into those bytes
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # from the third field on (after the name)
        start, end = int(fields[47]), int(fields[48])  # the 50th and 51st: env_start, env_end
    except (OSError, IndexError, ValueError):
        start = end = 0
    if not 0 < start < end:
        raise SandboxError("cannot find the environment this process started with, to empty it")
    ctypes.memset(start, 0, end - start)


#: The only devices a notebook sees: no terminal, no disk, no GPU node it was not given.
DEVICES = ("null", "zero", "full", "random", "urandom")


def _minimal_dev(target: str) -> None:
    """A /dev with :data:`DEVICES` (bound from the host's), /dev/shm, and the usual links to
    /proc/self/fd; no tty, no pts, no console: nothing to type into the instructor's terminal."""
    os.makedirs(target, exist_ok=True)
    _mount("tmpfs", target, "tmpfs", MS_NOSUID, "size=64k,mode=755")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            open(os.path.join(target, name), "w").close()
            _mount(f"/dev/{name}", os.path.join(target, name), None, MS_BIND)
    for name in _gpu_devices():
        open(os.path.join(target, name), "w").close()
        _mount(f"/dev/{name}", os.path.join(target, name), None, MS_BIND)
    os.makedirs(os.path.join(target, "shm"))
    for name, link in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                       ("stderr", "/proc/self/fd/2")):
        os.symlink(link, os.path.join(target, name))


def _gpu_devices() -> list[str]:
    """NVIDIA's device nodes, so that CUDA works inside (the grader checks on every GPU present)."""
    try:
        return sorted(n for n in os.listdir("/dev") if n.startswith("nvidia") and not os.path.isdir(f"/dev/{n}"))
    except OSError:
        return []


def _copy_tree(source: str, target: str) -> None:
    """Copy the notebook's folder into its space: regular files and folders only (a link or a
    special file in a submission is not followed, and not copied)."""
    import shutil
    import stat

    for folder, dirs, files in os.walk(source, followlinks=False):
        here = os.path.join(target, os.path.relpath(folder, source))
        os.makedirs(here, exist_ok=True)
        for name in files:
            path = os.path.join(folder, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                shutil.copyfile(path, os.path.join(here, name), follow_symlinks=False)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]


def _in_user_namespace() -> bool:
    try:
        return Path("/proc/self/uid_map").read_text().split()[:3] != ["0", "0", "4294967295"]
    except OSError:
        return False


def _bind(source: str, target: str, read_only: bool) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "w").close()
    _mount(source, target, None, MS_BIND | MS_REC)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (MS_RDONLY if read_only else 0)
    _mount(None, target, None, flags)


def _chown_tree(path: str, uid: int) -> None:
    if os.geteuid() != 0 or _in_user_namespace():
        return
    for folder, dirs, files in os.walk(path):
        os.lchown(folder, uid, uid)
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), uid, uid)
