"""The controls of an explorer: what each sets, the values it offers, how the view shows it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Control:
    """One control of an explorer: the parameter ``name`` it sets, the ``label`` beside it,
    its ``options`` as ``(shown text, value)`` pairs, and its ``kind`` ("slider" or "menu").
    A ``kernel`` control asks the kernel for new frames when it changes; ``busy`` is what
    the view says meanwhile."""

    name: str
    label: str
    options: tuple
    kind: str = "slider"
    kernel: bool = False
    busy: str = "working..."

    def index(self, value: Any) -> int:
        for i, (_, option) in enumerate(self.options):
            if option == value or (isinstance(value, (int, float)) and isinstance(option, (int, float))
                                   and math.isclose(option, value, rel_tol=1e-9, abs_tol=1e-12)):
                return i
        shown = ", ".join(text for text, _ in self.options[:12]) + (", ..." if len(self.options) > 12 else "")
        raise ValueError(f"{self.name} must be one of the explorer's values ({shown}), not {value!r}")

    def describe(self) -> dict:
        return {"name": self.name, "label": self.label, "kind": self.kind, "kernel": self.kernel,
                "busy": self.busy, "options": [text for text, _ in self.options]}


def slider(name: str, label: str, values, fmt: str = "{:.2f}") -> Control:
    return Control(name, label, tuple((fmt.format(v), v) for v in values))


def menu(name: str, label: str, values, kernel: bool = False, busy: str = "working...") -> Control:
    """A menu of ``values``; a dict's values are what the menu shows for its keys."""
    shown = values if isinstance(values, dict) and all(isinstance(v, str) for v in values.values()) else {}
    return Control(name, label, tuple((shown.get(v, str(v)), v) for v in values), "menu", kernel, busy)


# -- the explorer's state: one index per control ------------------------------------------------
def indices(controls: list[Control], params: dict) -> dict:
    """Each control's index for ``params``, which must name every control and nothing else."""
    missing = {c.name for c in controls} ^ set(params)
    if missing:
        raise TypeError(f"the controls and the parameters differ in {', '.join(sorted(missing))}")
    return {c.name: c.index(params[c.name]) for c in controls}


def moved(controls: list[Control], index: dict, params: dict) -> dict:
    """``index`` with the controls ``params`` names moved to their values."""
    unknown = set(params) - {c.name for c in controls}
    if unknown:
        raise TypeError(f"this explorer has no control {', '.join(sorted(unknown))}; its controls are "
                        f"{', '.join(c.name for c in controls)}")
    return {**index, **{c.name: c.index(params[c.name]) for c in controls if c.name in params}}


def values(controls: list[Control], index: dict) -> dict:
    """The value each control shows at ``index``."""
    return {c.name: c.options[index[c.name]][1] for c in controls}

