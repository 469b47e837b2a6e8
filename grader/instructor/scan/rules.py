"""What the tampering scan counts as suspect, and what it leaves alone: every table it
consults, and :func:`_danger`, why reaching a qualified name is suspect.

The tables: what of the grader a notebook is given, the names the course's cells
bind, the roots whose objects must not be changed (torch, the grader, built-ins,
``sys``, IPython), the built-ins flagged wherever used or guarded from rebinding,
the built-ins the bindings follow values through, private and frame attributes,
the qualified names (modules, functions) flagged with their reason, the callables
that run a string of Python, and the IPython magics and shell commands: which are
read as Python, which are harmless, which are named.
"""

from __future__ import annotations

import re

from .syntax import _plain


# --------------------------------------------------------------------------- what counts

#: What of the grader a notebook is given; anything else of it is its internals.
STUDENT_FACING = {
    "check", "assert_passes", "CATEGORIES", "Report", "available_devices",
    "explore", "datasets", "imbalance", "articles",
    "__version__", "__doc__", "__name__", "__all__",
}

#: The names a notebook may take for granted: the course's setup cell binds them.
COURSE_NAMES = {"torch": "torch", "grader": "grader"}

#: Roots whose objects must not be changed, and why, in a teacher's words.
_PROTECTED = {
    "torch": "monkeypatching torch",
    "grader": "changing the grader",
    "builtins": "changing Python's built-ins",
    "sys": "changing the interpreter",
    "IPython": "changing IPython's machinery",
    "@type": "changing a class",
    "@module": "changing a module",
    "@import": "changing a module",
}
#: Roots whose objects must not be changed in place through a method either.
_NO_INPLACE = {"torch", "grader", "builtins", "IPython", "@type", "@module", "@import"}
_MUTATING = {"append", "extend", "insert", "remove", "pop", "popitem", "clear", "update", "setdefault",
             "discard", "__setitem__", "__delitem__", "__setattr__", "__delattr__", "__iadd__"}
#: Stores into torch that only configure it.
_ALLOWED_STORES = {"torch.backends.cudnn.deterministic", "torch.backends.cudnn.benchmark"}

#: Built-in names that are flagged wherever they are used.
_SUSPECT_BUILTINS = {
    "eval": "runs code from a string (eval)",
    "exec": "runs code from a string (exec)",
    "compile": "compiles code from a string (compile)",
    "__import__": "imports a module by name (__import__)",
    "globals": "reaches the notebook's variables as a dictionary (globals)",
    "locals": "reaches variables as a dictionary (locals)",
    "vars": "reaches an object's attributes as a dictionary (vars)",
    "__builtins__": "reaches Python's built-ins (__builtins__)",
}
#: Built-ins whose rebinding at the top level could fool a test cell.
_GUARDED_BUILTINS = {"AssertionError", "BaseException", "Exception", "isinstance", "issubclass", "getattr",
                     "hasattr", "bool", "__builtins__", "__import__", "__build_class__"}
_BUILTIN_NAMES = {"getattr", "setattr", "delattr", "hasattr", "vars", "globals", "locals", "type", "object",
                  "eval", "exec", "compile", "__import__", "open", "iter", "next", "reversed", "enumerate", "zip",
                  "list", "tuple", "set", "frozenset", "sorted", "dict", "filter", "map", "min", "max",
                  "__builtins__", "super"}
_METHOD_PASSTHROUGH = {"get", "values", "items", "keys", "copy", "pop", "setdefault", "__getitem__"}
_PASSTHROUGH = {"iter", "next", "reversed", "enumerate", "zip", "list", "tuple", "set", "frozenset", "sorted",
                "dict"}

#: Private attributes and the dunders that reach into objects.
_SUSPECT_ATTRIBUTES = re.compile(
    r"^(_[A-Za-z]\w*|__(dict|globals|code|closure|builtins|subclasses|bases|base|mro|class|getattribute|"
    r"setattr|delattr|traceback|frame|defaults|kwdefaults|wrapped|self|reduce|reduce_ex|loader|spec)__|"
    r"settrace|setprofile|excepthook|set_custom_exc)$")
_FRAME_ATTRIBUTES = {"f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next",
                     "gi_frame", "cr_frame", "ag_frame", "gi_code", "cr_code"}
_SELF = {"self", "cls"}
_HARMLESS = {"_exit"}
_FILE_ATTRIBUTES = {"__file__", "__path__", "__spec__", "__loader__", "__cached__"}

#: Qualified names (and everything under them) that are flagged, with the reason.
_DANGEROUS = {
    "inspect.stack": "walks the call stack (inspect.stack)",
    "inspect.currentframe": "walks the call stack (inspect.currentframe)",
    "inspect.getouterframes": "walks the call stack (inspect.getouterframes)",
    "inspect.getinnerframes": "walks the call stack (inspect.getinnerframes)",
    "inspect.trace": "walks the call stack (inspect.trace)",
    "inspect.getframeinfo": "walks the call stack (inspect.getframeinfo)",
    "inspect.getargvalues": "reads a frame's variables (inspect.getargvalues)",
    "inspect.getgeneratorlocals": "reads a generator's variables (inspect.getgeneratorlocals)",
    "inspect.getcoroutinelocals": "reads a coroutine's variables (inspect.getcoroutinelocals)",
    "inspect.getasyncgenlocals": "reads a generator's variables (inspect.getasyncgenlocals)",
    "inspect.getmodule": "finds an object's module (inspect.getmodule)",
    "inspect.getclosurevars": "reads a function's hidden variables (inspect.getclosurevars)",
    "inspect.unwrap": "unwraps a function (inspect.unwrap)",
    "inspect.getattr_static": "reads attributes past their guards (inspect.getattr_static)",
    "sys._getframe": "walks the call stack (sys._getframe)",
    "sys.settrace": "installs a tracer (sys.settrace)",
    "sys.setprofile": "installs a tracer (sys.setprofile)",
    "sys.monitoring": "installs a tracer (sys.monitoring)",
    "sys.call_tracing": "installs a tracer (sys.call_tracing)",
    "sys.addaudithook": "installs an audit hook (sys.addaudithook)",
    "sys.remote_exec": "runs code in another process (sys.remote_exec)",
    "sys.modules": "reaches sys.modules (every loaded module, the grader's included)",
    "sys.meta_path": "changes how modules are imported (sys.meta_path)",
    "sys.path_hooks": "changes how modules are imported (sys.path_hooks)",
    "sys.path_importer_cache": "changes how modules are imported (sys.path_importer_cache)",
    "sys.excepthook": "replaces a hook of the interpreter (sys.excepthook)",
    "sys.displayhook": "replaces a hook of the interpreter (sys.displayhook)",
    "sys.breakpointhook": "replaces a hook of the interpreter (sys.breakpointhook)",
    "sys.unraisablehook": "replaces a hook of the interpreter (sys.unraisablehook)",
    "sys.last_traceback": "reads the last traceback (sys.last_traceback)",
    "traceback.walk_stack": "walks the call stack (traceback.walk_stack)",
    "traceback.walk_tb": "walks the call stack (traceback.walk_tb)",
    "threading.settrace": "installs a tracer (threading.settrace)",
    "threading.setprofile": "installs a tracer (threading.setprofile)",
    "threading.settrace_all_threads": "installs a tracer (threading.settrace_all_threads)",
    "threading.setprofile_all_threads": "installs a tracer (threading.setprofile_all_threads)",
    "gc": "reaches the garbage collector, and through it every object (gc)",
    "fcntl": "works on file descriptors by number, the grader's pipes among them (fcntl)",
    "termios": "works on file descriptors by number, the grader's pipes among them (termios)",
    "posix": "calls the operating system under another name than os (posix)",
    "nt": "calls the operating system under another name than os (nt)",
    "ctypes": "reaches raw memory (ctypes)",
    "_ctypes": "reaches raw memory (_ctypes)",
    "cffi": "reaches raw memory (cffi)",
    "importlib": "imports modules by name (importlib)",
    "pkgutil": "imports modules by name (pkgutil)",
    "pydoc": "imports modules by name (pydoc)",
    "zipimport": "imports modules by name (zipimport)",
    "imp": "imports modules by name (imp)",
    "logging.config": "imports and calls objects by name (logging.config)",
    "builtins": "reaches Python's built-ins (builtins)",
    "pickle": "unpickles data, which can run any code (pickle)",
    "_pickle": "unpickles data, which can run any code (_pickle)",
    "cPickle": "unpickles data, which can run any code (cPickle)",
    "marshal": "loads raw code (marshal)",
    "dill": "unpickles data, which can run any code (dill)",
    "cloudpickle": "unpickles data, which can run any code (cloudpickle)",
    "shelve": "unpickles data, which can run any code (shelve)",
    "code": "runs code from a string (code)",
    "codeop": "compiles code from a string (codeop)",
    "runpy": "runs another file (runpy)",
    "doctest": "runs code from docstrings (doctest)",
    "trace": "installs a tracer (trace)",
    "bdb": "installs a tracer (bdb)",
    "signal": "handles signals, which the grader's time limit relies on (signal)",
    "subprocess": "runs a shell command (subprocess)",
    "pty": "runs a shell command (pty)",
    "os.system": "runs a shell command (os.system)",
    "os.popen": "runs a shell command (os.popen)",
    "os.kill": "sends a signal to a process (os.kill)",
    "os.killpg": "sends a signal to a process (os.killpg)",
    "unittest.mock": "patches objects by name (unittest.mock)",
    "mock": "patches objects by name (mock)",
    "ipykernel": "reaches into the Jupyter kernel (ipykernel)",
    "jupyter_client": "reaches into the Jupyter kernel (jupyter_client)",
    "zmq": "reaches into the Jupyter kernel (zmq)",
    "types.FunctionType": "builds a function from raw code (types.FunctionType)",
    "types.LambdaType": "builds a function from raw code (types.LambdaType)",
    "types.CodeType": "builds raw code (types.CodeType)",
    "operator.setitem": "changes an object through operator.setitem",
    "operator.delitem": "changes an object through operator.delitem",
    "operator.__setitem__": "changes an object through operator.__setitem__",
    "operator.__delitem__": "changes an object through operator.__delitem__",
    "torch.library": "reaches into torch's dispatch machinery (torch.library)",
    "torch.overrides": "reaches into torch's dispatch machinery (torch.overrides)",
    "torch.utils.cpp_extension": "compiles C++ into the process (torch.utils.cpp_extension)",
    "torch.ops.load_library": "loads a compiled library into torch (torch.ops.load_library)",
    "@builtin.object.__setattr__": "sets an attribute by force (object.__setattr__)",
    "@builtin.object.__delattr__": "deletes an attribute by force (object.__delattr__)",
    "@builtin.type.__setattr__": "sets an attribute of a class by force (type.__setattr__)",
    "@builtin.type.__delattr__": "deletes an attribute of a class by force (type.__delattr__)",
}
_DANGEROUS_LONGEST_FIRST = sorted(_DANGEROUS, key=len, reverse=True)
_DANGEROUS_PREFIXES = {
    "os.exec": "runs another program (os.exec...)",
    "os.spawn": "runs another program (os.spawn...)",
    "os.posix_spawn": "runs another program (os.posix_spawn...)",
}
_SAFE_IPYTHON = {"IPython.display", "IPython.core.display", "IPython.get_ipython", "IPython.core.getipython",
                 "IPython.core.getipython.get_ipython", "IPython.__version__"}
#: inspect functions that are harmless unless given the grader or torch.
_INSPECT_ON_TAINT = {
    "inspect.getmembers": "lists the members of {} (inspect.getmembers)",
    "inspect.getmembers_static": "lists the members of {} (inspect.getmembers_static)",
}
_INSPECT_FILES = {"inspect.getfile", "inspect.getsourcefile", "inspect.getabsfile"}
#: Callables that run a string of Python, and which of their arguments are code
#: (``timeit``'s may be callables instead, a lambda or a function's name).
_TAKES_CALLABLES = {"timeit.timeit", "timeit.repeat", "timeit.Timer"}
_CODE_RUNNERS = {
    "timeit.timeit": (0, "stmt", 1, "setup"),
    "timeit.repeat": (0, "stmt", 1, "setup"),
    "timeit.Timer": (0, "stmt", 1, "setup"),
    "cProfile.run": (0, "statement"),
    "cProfile.runctx": (0, "statement"),
    "profile.run": (0, "statement"),
    "profile.runctx": (0, "statement"),
    "pdb.run": (0, "statement"),
    "pdb.runeval": (0, "expression"),
    "pdb.runctx": (0, "statement"),
}

# magics
_PY_BODY_CELL_MAGICS = {"capture", "time", "timeit", "prun", "debug"}
_DISPLAY_CELL_MAGICS = {"html", "HTML", "markdown", "latex", "svg"}
_SCRIPT_CELL_MAGICS = {"bash", "sh", "script", "python", "python2", "python3", "pypy", "perl", "ruby", "system",
                       "!", "sx", "cmd", "powershell"}
_PY_LINE_MAGICS = {"time", "timeit", "prun", "debug"}
#: Options of those magics that take a value.
_MAGIC_OPTIONS_WITH_VALUE = {"timeit": "nrp", "prun": "DTls", "debug": "b", "time": ""}
_HARMLESS_LINE_MAGICS = {
    "matplotlib", "who", "whos", "who_ls", "pwd", "ls", "ll", "lf", "lk", "ldir", "lx", "cd", "lsmagic", "magic",
    "quickref", "precision", "xmode", "pinfo", "pinfo2", "psearch", "pdef", "pdoc", "psource", "pfile", "page",
    "env", "set_env", "colors", "automagic", "autosave", "tb", "pdb", "clear", "reset", "reset_selective", "xdel",
    "dhist", "dirs", "cat", "less", "more", "man", "config", "doctest_mode", "autoindent",
}
_INSTALL_LINE_MAGICS = {"pip", "conda", "mamba", "micromamba", "uv"}
_FLAGGED_LINE_MAGICS = {
    "run": "runs another file (%run)",
    "load": "loads code from a file (%load)",
    "loadpy": "loads code from a file (%loadpy)",
    "load_ext": "loads an IPython extension (%load_ext)",
    "reload_ext": "loads an IPython extension (%reload_ext)",
    "unload_ext": "unloads an IPython extension (%unload_ext)",
    "history": "reads the session's input history (%history)",
    "hist": "reads the session's input history (%hist)",
    "recall": "reads the session's input history (%recall)",
    "rerun": "reruns earlier input (%rerun)",
    "macro": "builds a macro from earlier input (%macro)",
    "edit": "runs code from an editor (%edit)",
    "save": "writes code to a file (%save)",
    "logstart": "writes the session's input to a file (%logstart)",
    "notebook": "writes the session's input to a file (%notebook)",
    "store": "restores pickled variables (%store)",
    "sx": "runs a shell command (%sx)",
    "system": "runs a shell command (%system)",
    "sc": "runs a shell command (%sc)",
    "alias": "defines a shell command (%alias)",
    "unalias": "changes a shell command (%unalias)",
    "alias_magic": "renames a magic (%alias_magic)",
    "autoreload": "reloads modules (%autoreload)",
    "aimport": "reloads modules (%aimport)",
    "pylab": "overwrites the notebook's names (%pylab)",
    "cp": "runs a shell command (%cp)",
    "mv": "runs a shell command (%mv)",
    "rm": "runs a shell command (%rm)",
    "rmdir": "runs a shell command (%rmdir)",
    "mkdir": "runs a shell command (%mkdir)",
    "ln": "runs a shell command (%ln)",
    "killbgscripts": "ends background scripts (%killbgscripts)",
}
#: Shell commands run with ``!`` that cannot reach the grader (without operators or expansions).
_HARMLESS_COMMANDS = re.compile(
    r"^\s*((pip3?|python3? -m pip)\s+(install|list|show|freeze|--version)\b|(conda|mamba)\s+(install|list)\b|"
    r"(nvidia-smi|ls|pwd|nproc|free|df|du|uname|date|whoami|lscpu|nvcc|cat|head|tail|wc|echo)(\s|$))")
_SHELL_OPERATORS = re.compile(r"[;&|`$<>(){}\n\\]")
#: IPython shell methods the input transformer produces; read where their arguments are constants.
_SHELL_ENTRY_POINTS = {"run_line_magic", "magic", "run_cell_magic", "system", "getoutput", "system_raw",
                       "system_piped", "run_cell", "ex", "ev"}


# --------------------------------------------------------------------------- why a name is suspect


def _danger(qual: str) -> str | None:
    """Why reaching ``qual`` is suspect, or None."""
    if qual.startswith("*"):
        return None  # a container holding something: only its items are used
    plain = _plain(qual)
    for name in _DANGEROUS_LONGEST_FIRST:
        if plain == name or plain.startswith(name + "."):
            return _DANGEROUS[name]
    if plain.startswith("@"):
        return None
    for prefix, why in _DANGEROUS_PREFIXES.items():
        if plain.startswith(prefix):
            return why
    parts = plain.split(".")
    if parts[0] == "grader" and len(parts) > 1:
        if parts[-1] in _FILE_ATTRIBUTES:
            return f"locates the grader's files on disk ({plain})"
        if parts[1] not in STUDENT_FACING and parts[1] != "?":
            return f"reaches grader.{parts[1]}, the grader's internals"
    if parts[0] == "IPython":
        if plain == "IPython.shell":
            return None
        if parts[1:2] == ["shell"]:
            if parts[2] == "history_manager":
                return "reads the session's input history (get_ipython().history_manager)"
            return f"reaches into IPython (get_ipython().{parts[2]})"
        if parts[1:2] == ["core"] and not any(plain == s or plain.startswith(s + ".") for s in _SAFE_IPYTHON):
            return f"reaches into IPython ({'.'.join(parts[:3])})"
    return None
