"""The instructor's side: everything that runs student notebooks or imports nbgrader."""

import sys


def skip_iri_grammar() -> None:
    """Keep jsonschema from building its RFC 3987 grammar in this process.

    nbformat imports jsonschema, and jsonschema, when ``rfc3987-syntax`` is installed (it comes
    with Jupyter's ``jsonschema[format-nongpl]``), compiles an Earley grammar at import to check
    the ``iri`` formats: about a second of every instructor command's start, and of the engine's.
    Neither nbformat nor nbgrader checks formats, so in the processes of the instructor's
    commands the module is marked missing before anything imports jsonschema; jsonschema then
    leaves those two formats unchecked. JupyterLab and the students' kernels are other processes
    and keep it. Call it first thing in a command's process."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type] - None: import raises ImportError
