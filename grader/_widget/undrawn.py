"""An explorer in a cell the autograder runs and nobody grades: nothing drawn."""

from __future__ import annotations

from typing import Any, Callable

from .controls import Control


class UndrawnExplorer:
    """An explorer in a cell whose output nobody grades, run by the autograder: the same
    parameters, checked the same way, and the same ``params``, ``update`` and ``explorer`` as
    :class:`ExplorerWidget`, but nothing is drawn (no figure, no frames, no image); its output
    is one line saying so. Feedback shows that line where the student's notebook shows the
    explorer."""

    def __init__(self, make: Callable[..., Any], controls: list[Control], params: dict, title: str):
        names = [c.name for c in controls]
        missing = set(names) ^ set(params)
        if missing:
            raise TypeError(f"the controls and the parameters differ in {', '.join(sorted(missing))}")
        self._make, self._controls, self.title = make, controls, title
        self.index = {c.name: c.index(params[c.name]) for c in controls}

    @property
    def params(self) -> dict:
        return {c.name: c.options[self.index[c.name]][1] for c in self._controls}

    @property
    def explorer(self):
        return self._make(**self.params)

    def update(self, **params) -> None:
        unknown = set(params) - {c.name for c in self._controls}
        if unknown:
            raise TypeError(f"this explorer has no control {', '.join(sorted(unknown))}; its controls are "
                            f"{', '.join(c.name for c in self._controls)}")
        index = dict(self.index)
        for control in self._controls:
            if control.name in params:
                index[control.name] = control.index(params[control.name])
        self.index = index

    def _repr_mimebundle_(self, **kwargs):
        return {"text/plain": f"{self.title} (an explorer: not drawn by the autograder; run the notebook "
                              "to move its controls)"}
