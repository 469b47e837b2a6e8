"""An explorer in a cell the autograder runs and nobody grades: nothing drawn."""

from __future__ import annotations

from typing import Any, Callable

from .controls import Control, indices, moved, values


class UndrawnExplorer:
    """An explorer in a cell whose output nobody grades, run by the autograder: the same
    parameters, checked the same way, and the same ``params``, ``update`` and ``explorer`` as
    :class:`ExplorerWidget`, but nothing is drawn (no figure, no frames, no image); its output
    is one line saying so. Feedback shows that line where the student's notebook shows the
    explorer."""

    def __init__(self, make: Callable[..., Any], controls: list[Control], params: dict, title: str):
        self._make, self._controls, self.title = make, controls, title
        self.index = indices(controls, params)

    @property
    def params(self) -> dict:
        return values(self._controls, self.index)

    @property
    def explorer(self):
        return self._make(**self.params)

    def update(self, **params) -> None:
        self.index = moved(self._controls, self.index, params)

    def _repr_mimebundle_(self, **kwargs):
        return {"text/plain": f"{self.title} (an explorer: not drawn by the autograder; run the notebook "
                              "to move its controls)"}
