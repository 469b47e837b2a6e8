"""The scan names a file descriptor reached by number (the engine's pipes are among a notebook's
process's descriptors: a proxy could answer the judge's requests in the student's function's
stead), and leaves alone the descriptors a student's code opened itself and the standard streams."""

from __future__ import annotations

import pytest

from grader.instructor import scan
from helpers import scanned_notebook as notebook

#: Each: the student's cell, and a word of what must be named.
BY_NUMBER = {
    "dup2_a_literal": ("import os\nos.dup2(5, 7)", "os.dup2"),
    "read_a_literal": ("import os\nos.read(4, 100)", "os.read"),
    "fstat_in_a_loop": ("import os\nfor fd in range(3, 64):\n    try:\n        os.fstat(fd)\n"
                        "    except OSError:\n        pass", "os.fstat"),
    "arithmetic_on_an_own_descriptor": ("import os\nfd = os.dup(2) + 3\nos.write(fd, b'x')", "os.write"),
    "augmented_own_descriptor": ("import os\nfd = os.dup(2)\nfd += 2\nos.write(fd, b'x')", "os.write"),
    "a_name_bound_twice": ("import os\nfd = os.open(os.devnull, os.O_WRONLY)\nfd = 5\nos.write(fd, b'x')",
                           "os.write"),
    "a_parameter": ("import os\ndef send(fd, data):\n    os.write(fd, data)\nsend(4, b'x')", "os.write"),
    "open_a_number": ("f = open(5, 'wb')", "by number (open)"),
    "open_a_name_bound_to_a_number": ("n = 6\nf = open(n, 'rb')", "by number (open)"),
    "open_arithmetic": ("import os\nr, w = os.pipe()\nf = open(w + 2, 'wb')", "by number (open)"),
    "fdopen": ("import os\nf = os.fdopen(3)", "os.fdopen"),
    "socket_fileno": ("import socket\ns = socket.socket(fileno=4)", "socket.socket"),
    "socket_fromfd": ("import socket\ns = socket.fromfd(4, 1, 1)", "socket.fromfd"),
    "file_io": ("import io\nf = io.FileIO(4, 'w')", "io.FileIO"),
    "mmap": ("import mmap\nm = mmap.mmap(4, 10)", "mmap.mmap"),
    "from_os_import": ("from os import write\nwrite(5, b'x')", "os.write"),
    "fcntl": ("import fcntl", "(fcntl)"),
    "posix": ("import posix\nposix.write(4, b'x')", "(posix)"),
    "proc_fd": ("import os\nprint(os.listdir('/proc/self/fd'))", "/proc/self/fd"),
    "dev_fd": ("import os\nprint(os.listdir('/dev/fd'))", "/dev/fd"),
}

OWN = [
    # silencing torch's C++ messages on descriptor 2
    "import os\nnull = os.open(os.devnull, os.O_WRONLY)\nsaved = os.dup(2)\nos.dup2(null, 2)\n"
    "os.write(2, b'quiet')\nos.dup2(saved, 2)",
    "import os, sys\nnull = os.open(os.devnull, os.O_WRONLY)\nos.dup2(null, sys.stderr.fileno())",
    "import os\nr, w = os.pipe()\nos.write(w, b'x')\nprint(os.read(r, 1))\nos.close(r)\nos.close(w)",
    "import os, tempfile\nfd, path = tempfile.mkstemp()\nos.write(fd, b'x')\nos.close(fd)",
    "import os\nos.write(1, b'hello')",
    "from pathlib import Path\nDATA = Path('data')\nwith open(DATA / 'x.csv') as f:\n    f.read()\n"
    "for name in ['a', 'b']:\n    open(name + '.txt', 'w').close()\npath = 'x.csv'\npath += '.bak'\n"
    "open(path, 'w').close()\nopen('%s.txt' % 'c', 'w').close()\nprint(os.listdir('.'))",
]


@pytest.mark.parametrize("case", sorted(BY_NUMBER))
def test_a_descriptor_reached_by_number_is_named(case):
    source, word = BY_NUMBER[case]
    found = scan.suspicious(notebook(source))
    assert any(word in f for f in found), found


@pytest.mark.parametrize("source", OWN, ids=range(len(OWN)))
def test_descriptors_the_code_opened_and_the_standard_streams_are_not_named(source):
    assert scan.suspicious(notebook(source)) == []


def test_where_the_descriptor_was_opened_is_read_across_cells():
    assert scan.suspicious(notebook("import os\nnull = os.open(os.devnull, os.O_WRONLY)", "os.dup2(null, 2)")) == []
    assert scan.suspicious(notebook("import os\nnull = 7", "os.dup2(null, 2)"))


def test_a_cell_kept_by_the_scan_is_scanned_again_when_a_descriptor_means_something_else():
    """A kept cell's findings are reused only where the bindings answer alike: here the same
    cell, ``os.write(fd, ...)``, follows a cell that opened ``fd`` and one that numbered it."""
    cell = "os.write(fd, b'x')"
    assert scan.suspicious(notebook("import os\nfd = os.open(os.devnull, os.O_WRONLY)", cell)) == []
    assert scan.suspicious(notebook("import os\nfd = 9", cell))
