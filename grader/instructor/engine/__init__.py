"""The warm autograding engine: nbgrader's Execute step, without a kernel per notebook.

======================  ==================================================================
module                  what it does
======================  ==================================================================
``pool``                the first process: warm up, start the root forker, grade in workers
``forker``              forks every notebook's process from one that never saw a submission
``prefix``              shared beginnings: the released cells before the first answer, run once
``child``               a notebook's process: confine it, keep two pipes, run its job
``session``             inside it (untrusted): IPython runs the cells and answers the judge
``sandbox``             the confinement: namespaces, a file system view, a user id, limits
``cpu``                 a notebook's share of the processors: its worker's control group and cores
``execute``             outside it (trusted): listen to the notebook, judge its test cells
``preprocessor``        :class:`WarmExecute`, the step nbgrader's autograde runs
======================  ==================================================================

The trust boundary runs between ``session`` (and everything the student's code can reach
in that process) and ``execute``: the notebook's process only ever sends cell outputs and
the outputs of the student's functions for inputs the judge chose; every verdict is
computed in the worker, by :mod:`grader.instructor.verdict` and :mod:`grader._battery`.
The judge draws its random inputs with the course's secret mixed into their seeds
(:mod:`grader._battery.salt`, kept by :mod:`grader.instructor.secret`), so that no student
can know them ahead: the engine's first process sets it after its root forker has started,
and only it and its workers ever hold it.
"""

__all__ = ["WarmExecute"]


def __getattr__(name: str):
    """``WarmExecute`` imported when first asked for (nbgrader's configuration names it): the
    engine's first process starts its root forker before it imports nbgrader, so that the
    notebooks' processes never hold nbgrader and the two warm up at once."""
    if name == "WarmExecute":
        from .preprocessor import WarmExecute

        return WarmExecute
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
