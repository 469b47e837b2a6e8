"""The tampering scan: a static look at the code a student wrote in a notebook.

What it reads
    The code cells the student wrote: solution cells, and cells without the
    course's nbgrader metadata (cells the student added). A cell that starts
    with a cell magic is read the way IPython runs it: the body of ``%%capture``,
    ``%%time``, ``%%timeit``, ``%%prun`` and ``%%debug`` is Python and is read as
    such (with the line numbers of the cell), line magics and shell escapes
    (``%time stmt``, ``!cmd``, ``x = !cmd``, ``obj?``) are turned into the calls
    IPython makes of them (with IPython's own input transformer), the statement of
    ``%time``/``%timeit``/``%prun``/``%debug`` is read as Python, and so are the
    ``{expr}`` and ``$name`` that IPython evaluates in the arguments of other
    magics. The instructor's cells are read too, but only to learn what their
    names stand for (``torch``, ``grader``, ``sys`` ...): nothing in them is named.

What it names (each as ``cell N, line L: what``, for the instructor)
    * Changes to torch, to the grader, to Python's built-ins, to ``sys`` or to
      IPython: any assignment, augmented assignment or ``del`` whose target hangs
      from a name bound to one of them (``torch.Tensor.any = ...``,
      ``F.binary_cross_entropy = ...`` after ``import torch.nn.functional as F``,
      ``m.FORBIDDEN_OPS = ()`` after ``m = inspect.getmodule(grader.check)``,
      ``get_ipython().showtraceback = ...``); in-place changes of the grader's or
      torch's objects (``grader.X.append(...)``); ``setattr``/``delattr``
      (except on ``self``/``cls``), ``object.__setattr__``, ``vars``,
      ``globals``, ``locals``, ``__dict__``, ``type(grader)``,
      ``operator.setitem``, ``getattr`` or ``attrgetter`` with a computed name,
      ``unittest.mock``; rebinding at the top level a name the course's cells use
      (``torch = ...``, ``import numpy as torch``, ``del grader``) or the
      built-ins an assertion relies on (``AssertionError = ...``). What a name
      stands for is followed through imports (``import x as y``,
      ``from x import y as z``), assignments, tuple unpacking, containers,
      for-loops, comprehensions, ``with ... as``, the walrus, default
      arguments, the arguments and return values of the student's own
      functions (those given to ``map`` and ``filter`` too, lambdas included),
      ``map``, ``filter``, ``min``, ``max``, ``getattr``, ``vars``, ``type``,
      ``inspect.getmodule``, ``importlib.import_module``, ``__import__`` and
      ``sys.modules[...]``: a
      small taint analysis over all the notebook's cells, in cell order and then
      again until nothing changes. Names are kept by scope (a function's
      parameters and variables are its own) but not by order: a name bound
      anywhere in its scope to torch stands for torch throughout that scope. A
      container holding torch is not torch (``cfg = {"dtype": torch.float32};
      cfg["lr"] = 0.1`` is fine), its items are (``mods = [torch];
      mods[0].allclose = ...`` is not).
    * The grader's internals: anything of ``grader`` beyond what a notebook is
      given (``check``, ``assert_passes``, ``CATEGORIES``, ``Report``,
      ``available_devices``, ``explore``, ``datasets``, ``imbalance``,
      ``articles``), and where its files are (``grader.__file__``,
      ``inspect.getfile(grader...)``).
    * Private attributes (``torch._C``, ``x._version``; not on ``self``/``cls``,
      and ``os._exit`` is allowed) and the dunders that reach into objects
      (``__dict__``, ``__globals__``, ``__code__``, ``__closure__``,
      ``__defaults__``, ``__wrapped__``, ``__self__``, ``__subclasses__``,
      ``__class__``, ``__setattr__`` ...), also through a constant ``getattr``.
    * Frames, tracebacks and tracers: ``inspect.stack``/``currentframe``/
      ``getouterframes``/``trace``/``getargvalues``/``getgeneratorlocals``/
      ``getmodule``/``getclosurevars``/``unwrap``, ``traceback.walk_stack``/
      ``walk_tb``,
      ``inspect.getmembers`` of torch or the grader, ``sys._getframe``,
      ``.f_back``/``.f_globals``/``.f_locals``/``.tb_frame``/``.gi_frame``...,
      ``sys.settrace``/``setprofile``/``monitoring``/``addaudithook``,
      ``threading.settrace``, ``sys.modules``, the import machinery
      (``sys.meta_path``...), the interpreter's hooks (``sys.excepthook``...),
      ``gc``, ``ctypes``, ``signal`` (the grader's time limit is an alarm),
      definitions of ``__torch_function__``/``__torch_dispatch__``,
      ``torch.library``, ``torch.overrides``, ``torch.utils.cpp_extension``;
      reading ``/proc/...`` or ``/dev/fd`` (the process's own memory and descriptors).
    * File descriptors reached by number (:mod:`.descriptors`): ``os.read``,
      ``os.write``, ``os.dup2``, ``os.fdopen``, ``os.fstat``, ``mmap``,
      ``socket.fromfd``... given a descriptor that is neither 0, 1, 2 nor one the
      code opened itself (every binding of its name from ``os.open``, ``os.dup``,
      ``os.pipe``, ``tempfile.mkstemp``...), ``open``/``io.FileIO``/``os.stat``
      given a number, ``fcntl``, ``termios`` and ``posix``: the engine's pipes
      are among a notebook's descriptors, and code on them could answer the
      judge in the graded function's stead.
    * Code run from strings, files or other processes: ``eval``, ``exec``,
      ``compile``, ``__import__``, ``importlib``, ``pkgutil``, ``pydoc``,
      ``zipimport``, ``logging.config`` (all of which import by name),
      ``runpy``, ``code``,
      ``doctest``, ``pickle`` and its kin, ``types.FunctionType``/``CodeType``,
      ``torch.load(..., weights_only=False)``, writing a ``.py`` file; the
      strings given to ``timeit``, ``cProfile``/``profile`` and ``pdb`` are read
      as Python when they are constants and named when they are not;
      ``subprocess``, ``os.system`` and kin, shell escapes (``!python x.py``,
      except a few harmless commands: ``!pip install``, ``!ls``,
      ``!nvidia-smi``... without shell operators or expansions), script and
      file-writing cell magics (``%%bash``, ``%%sh``, ``%%script``,
      ``%%python``, ``%%writefile``, ``%%javascript``), ``%run``, ``%load``,
      ``%load_ext``, ``%save``, ``%store``, ``%macro``, ``%rerun``, ``%edit``,
      ``%config`` with anything but a literal, any magic the scan does not know,
      and IPython's own entry points (``get_ipython().run_cell``, ``.ex``,
      ``.events``, ``.ast_transformers``, ``.user_ns``...; ``ipykernel``).
    * The session's input history: the ``%history`` magic and
      ``get_ipython().history_manager``.

What it leaves alone, on purpose
    Ordinary code: torch's functions and modules used (not assigned), tensors
    and the student's own objects changed in any way (``x.grad = None``,
    ``model.weight.data.fill_(...)``, ``self.x = ...``, ``opt.param_groups[0]
    ["lr"] = ...``), ``nn.Module`` subclasses, ``import inspect`` with
    ``inspect.signature``/``getsource``, ``sys.path.append``, ``sys.version``,
    ``plt.rcParams[...] = ...``, ``torch.backends.cudnn.deterministic``/
    ``benchmark``, ``%matplotlib``, ``%pip``, ``%time``/``%timeit`` (their
    statement is read), ``%%capture``, ``%who``, ``%config X.y = <literal>``,
    display magics (``%%html``, ``%%markdown``, ``%%latex``, ``%%svg``), and
    reading ``In``, ``Out``, ``_ih``, ``_oh``, ``_i3``: the hidden tests never
    enter the student's process, so the history holds nothing to find (only
    the magic and ``history_manager``, which reach into the session itself,
    are named). Stores into modules other than torch, the grader, ``builtins``,
    ``sys`` and IPython are left alone (``plt.rcParams``, ``np.x``), and so are
    threads, process pools, ``breakpoint()``, ``os.fork`` and the file
    descriptors the code opened itself or the standard streams (``os.dup2(null,
    2)`` with ``null = os.open(os.devnull, ...)``; see :mod:`.descriptors`):
    ordinary Python, whose effects (torch computed where a recorder does not
    look, which the judge reads in the source with :mod:`.reach`; a process that
    hangs or multiplies) are the judge's and the sandbox's to see.

What it cannot see
    It reads code; it does not run it. Whatever builds its code or its names at
    run time, through a route not named above, goes unseen: a module or
    attribute name assembled from strings and used through something not
    flagged, base64 or any other encoding decoded into code and handed to an
    unflagged runner, a ``.py`` file written under a computed name (or by a
    route other than ``open``/``write_text``/``%%writefile``) and then
    imported, torch or the grader reached through values the taint analysis
    does not follow (attributes of the student's objects other than
    ``self.x``/``Class.x`` written as such, functions it does not know such as
    a callback or ``functools.reduce`` of two arguments, values round-tripped
    through files or other processes), C extensions or packages installed
    with ``%pip`` and imported, names from a star import of torch or the grader, and code in a cell that
    does not parse (which cannot run either, when the kernel's Python is the
    scan's), a descriptor number made by a computation the scan does not follow
    and given to a function that also takes a path (``open(fd, closefd=False)``).
    A cell nested too deeply for the scan to read is named as such.
    The scan is one layer, behind the sandbox and behind the judge, which
    decides every check outside the student's process: it names suspects for
    a human, it does not make the grading safe.

The package, module by module
    ``rules``    what counts: every table the scan consults (what of the grader
                 a notebook is given, what must not be changed, the suspect
                 built-ins, attributes, modules and functions, the magics and
                 shell commands) and :func:`rules._danger`, why reaching a
                 qualified name is suspect.
    ``cells``    reading a cell: IPython's input transformer (or a stand-in),
                 the map back to the cell's lines, magics and shell escapes,
                 the bodies of cell magics, the strings IPython runs; the
                 readings kept, by source, from one notebook to the next.
    ``syntax``   small helpers over the syntax tree shared by the others:
                 qualified names, scopes, walking a tree with each node's
                 scope, the names a function or a statement binds.
    ``bindings`` :class:`Bindings`, the taint analysis: what each name of the
                 notebook stands for, across cells and scopes; what it needs of
                 each tree, found once.
    ``checks``   the visitor that walks one piece of a student's cell and names
                 what it does that is suspect.
    ``reach``    what a graded name reaches in the student's cells, and each use
                 of torch's own BCE there: the judge's "own work" verdict.
    This module  the public API: :func:`suspicious`, :func:`scan_source`,
                 :func:`torch_losses`, :class:`Notebook` (a notebook read once, for
                 both), :func:`written_by_the_student` and :class:`Bindings`; what each
                 kept cell was found to do, with the bindings it was found with.

This package must not import nbgrader (nor the grader's battery): it reads a
notebook as nbformat's dicts (``nb.cells``, each with ``cell_type``,
``source`` and ``metadata``), and imports IPython only to transform cells.
"""

from __future__ import annotations

from .bindings import Bindings, _Noting
from .cells import _Cache, _read, _Reading
from .checks import _Scan
from .reach import Reach, is_torch_loss

__all__ = ["Bindings", "Notebook", "is_torch_loss", "scan_source", "suspicious", "torch_losses",
           "written_by_the_student"]


def written_by_the_student(cell) -> bool:
    """Every code cell but the course's locked ones: solution cells, cells the student added,
    and explanation cells (which a student can edit).

    A locked cell with a ``grade_id`` is the instructor's: when nbgrader autogrades, it
    restores such a cell's source from its gradebook, and removes the ``grade_id`` of a cell
    it does not know, so nbgrader metadata a student writes into a cell of their own does
    not hide that cell from the scan."""
    if not isinstance(cell, dict) or cell.get("cell_type") != "code":
        return False
    meta = cell.get("metadata", {}).get("nbgrader")
    if not isinstance(meta, dict):
        return True
    return bool(meta.get("solution")) or not (meta.get("grade_id") and meta.get("locked"))


def scan_source(source: str, bindings: Bindings | None = None) -> list[tuple[int, str]]:
    """What one cell does that is suspect: ``(line, what)``, the line as the student sees
    it in the cell (magic bodies included), in order and without repeats.

    ``bindings`` tells what the notebook's names stand for (:func:`suspicious` learns
    them from every cell of the notebook); without it, from this cell alone.

    What a kept cell (see ``cells._read``) was found to do is kept too, by its source,
    with the reads of the bindings the scan made (:class:`bindings._Noting`): a later
    scan of the same source whose bindings answer those reads alike would find the same.
    """
    if bindings is None:
        bindings = Bindings()
        bindings.learn(source)
        bindings.settle()
    reading = _read(source)
    if reading.kept and type(bindings) is Bindings:
        seen = _SCANS.get(source) or ()
        for reads, known in seen:
            if bindings.agrees(reads):
                return list(known)
        noted: dict = {}
        found = _scanned(reading, _Noting(bindings, noted))
        if found is not None:
            _SCANS.put(source, ((tuple(noted.items()), tuple(found)),) + seen[:_SCANS_PER_SOURCE - 1])
            return found
    found = list(reading.found)
    for piece in reading.pieces:
        try:
            _Scan(bindings, piece, found).visit(piece.tree)
        except RecursionError:
            found.append((piece.line(1), "is nested too deeply for the scan to read"))
    return sorted(dict.fromkeys(found), key=lambda item: item[0])


#: What kept cells were found to do, by their source: for each of the last few bindings
#: that answered differently, the reads of the bindings made and what was found.
_SCANS: _Cache[str, tuple] = _Cache(2048)
_SCANS_PER_SOURCE = 4


def _scanned(reading: _Reading, bindings: Bindings) -> list[tuple[int, str]] | None:
    """What :func:`scan_source` finds, or None when the scan ran out of stack (which depends
    on where it runs: such a cell is scanned as it always was, and nothing of it is kept)."""
    found = list(reading.found)
    for piece in reading.pieces:
        try:
            _Scan(bindings, piece, found).visit(piece.tree)
        except RecursionError:
            return None
    return sorted(dict.fromkeys(found), key=lambda item: item[0])


class Notebook:
    """One notebook, read once: what its names stand for (:class:`Bindings`, learned from every
    code cell), the tampering its student's cells do (:meth:`suspicious`) and what a graded
    name reaches of torch's own loss (:meth:`torch_losses`)."""

    def __init__(self, nb, latest: bool = False) -> None:
        #: Whether a later cell that binds a top-level name replaces what earlier ones bound
        #: (a kernel's history, where a cell run again comes again), for :meth:`torch_losses`.
        self.latest = latest
        self.bindings = Bindings()
        self.cells = [(index, cell) for index, cell in enumerate(nb.cells) if cell.get("cell_type") == "code"]
        for _, cell in self.cells:
            self.bindings.learn(_source(cell), by_the_course=not written_by_the_student(cell))
        self.bindings.settle()
        self._reach: Reach | None = None

    def suspicious(self) -> list[str]:
        """Where the student's cells use constructs that can tamper with the grader or
        torch: ``cell N, line L: what`` (N counts every cell of the notebook from 1)."""
        found = []
        for index, cell in self.cells:
            if written_by_the_student(cell):
                found += [f"cell {index + 1}, line {line}: {what}"
                          for line, what in scan_source(_source(cell), self.bindings)]
        return list(dict.fromkeys(found))

    def torch_losses(self, subject: str) -> list[str]:
        """Each use of torch's own BCE in the student's code that ``subject`` (the name a test
        cell passes to a check) reaches: ``cell N, line L: what`` (see :mod:`.reach`)."""
        if self._reach is None:
            pieces = [(index, piece) for index, cell in self.cells if written_by_the_student(cell)
                      for piece in _read(_source(cell)).pieces]
            self._reach = Reach(self.bindings, pieces, self.latest)
        return self._reach.torch_losses(subject)


def suspicious(nb) -> list[str]:
    """Where the student's cells use constructs that can tamper with the grader or
    torch: ``cell N, line L: what`` (N counts every cell of the notebook from 1)."""
    return Notebook(nb).suspicious()


def torch_losses(nb, subject: str) -> list[str]:
    """Each use of torch's own BCE in the student's code that ``subject`` reaches (see :mod:`.reach`)."""
    return Notebook(nb).torch_losses(subject)


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source
