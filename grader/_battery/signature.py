"""The signature of the student's function, judged from its description.

The student's process describes the function's parameters as plain data
(:func:`grader._battery.observe.describe`); the judge rebuilds an ``inspect.Signature``
from it and checks that torch's arguments bind, with torch's defaults.
"""

from __future__ import annotations

import inspect
from typing import Any

from .cases import BCE, PARAMETERS
from .wire import text


class _Shown:
    """A default value the student's process described by its repr."""

    def __init__(self, text_: str):
        self.text = text_

    def __repr__(self) -> str:
        return self.text


class _Unreadable:
    """A description of parameters the judge cannot read."""


def _signature(parameters: Any) -> "inspect.Signature | _Unreadable | None":
    if parameters is None:
        return None
    if not isinstance(parameters, list):
        return _Unreadable()
    made = []
    try:
        for p in parameters[:50]:
            default = p.get("default", inspect.Parameter.empty)
            if isinstance(default, dict):
                default = _Shown(text(default.get("repr"), 200))
            made.append(inspect.Parameter(str(p["name"]), inspect._ParameterKind(int(p["kind"])), default=default))
        return inspect.Signature(made)
    except (KeyError, TypeError, ValueError, AttributeError):
        return _Unreadable()


def signature_problem(described: dict, function: str, needed: set[str]) -> str | None:
    """Why the student's subject cannot be called like torch's ``function``, or None.
    Only torch's current arguments are required; the legacy ones are run where a signature has them."""
    needed = {k for k in needed if k in PARAMETERS[function]}
    sig = _signature(described.get("parameters"))
    name = text(described.get("name"), 100) or function
    if isinstance(sig, _Unreadable):
        return f"the grader could not read the parameters of {name}"
    if described.get("module"):
        module = "nn.BCELoss" if function == BCE else "nn.BCEWithLogitsLoss"
        if sig is None:
            return None
        try:
            sig.bind(**{k: PARAMETERS[function][k] for k in needed})
        except TypeError:
            wanted = ", ".join(f"{k}={PARAMETERS[function][k]!r}" for k in PARAMETERS[function])
            return f"{name}(...) must accept ({wanted}) like {module}: {sig}"
        return None
    if not described.get("callable"):
        return (f"{function} should be a function, but it is {text(described.get('shown'), 200)}. "
                f"Define it with def {function}(input, target, ...):")
    if sig is None:
        return None  # a builtin or C function: nothing to inspect, let the cases decide
    wanted = "input, target" + "".join(f", {k}={v!r}" for k, v in PARAMETERS[function].items())
    try:
        sig.bind(None, None, **{k: PARAMETERS[function][k] for k in needed})
    except TypeError:
        return f"{function} must accept ({wanted}) like torch.nn.functional.{function}; yours takes {sig}"
    for key in needed:
        param, expected = sig.parameters.get(key), PARAMETERS[function][key]
        if param is None or param.default is inspect.Parameter.empty:
            continue
        if not (param.default is expected or (isinstance(param.default, str) and param.default == expected)):
            return (f"the default of {key} should be {PARAMETERS[function][key]!r} as in torch, "
                    f"not {param.default!r}: {function}({wanted})")
    return None
