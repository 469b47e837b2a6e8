"""Checks of what a student's code keeps from one call to the next, which no single case sees:
each case calls the student's function once, on fresh tensors, and builds a fresh module.

Here the student's code is called several times on shared tensors (:func:`observe.steps`), and
torch's function or module is run through the same steps by the judge: a result cached from an
earlier call, or looked up by ``id()``, a weight cloned when a module is built (torch's module
keeps the caller's tensor), a module that ignores ``module.reduction`` set after it was built,
or buffers kept out of the ``state_dict``, give other results than torch's.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

from . import cases as _cases
from . import salt
from .spec import positive
from .answers import compare
from .cases import HINTS, TOLERANCES
from .observe import steps as run_steps
from .report import Failure, describe_tensor
from .wire import text

Ask = Callable[[dict], dict]

#: The category of these checks.
CATEGORY = "repeated calls"
#: The shape of the inputs, then of the second input a module is called on; a function's are 1-d (an
#: exercise's function may take vectors only).
_SHAPES = ((4, 5), (3, 5))
_VECTOR = (6,)


def _tensor(name: str) -> dict:
    return {"ref": name}


def _tensors(function: str, keys: list[str], module: bool) -> dict:
    g = salt.generator(5)  # with the course's secret when autograding, as every draw of the judge
    made = {}
    shapes = (_SHAPES[0], _SHAPES[0], _SHAPES[1]) if module else (_VECTOR, _VECTOR)
    for suffix, shape in zip(("", "2", "3"), shapes):
        args = _cases.maker(function, shape)(g)
        made["input" + suffix], made["target" + suffix] = args["input"].float(), args["target"].float()
    for key in keys:  # the first, what it is changed to in place, and what load_state_dict loads
        for suffix in ("", "2", "3"):
            made[key + suffix] = positive(g, (shapes[0][-1],), 0.5, 2.0).float()
    return made


def _call(input: str, target: str, **kwargs) -> dict:
    return {"call": {"input": _tensor(input), "target": _tensor(target), **kwargs}}


def _module_steps(keys: list[str]) -> list[tuple[str, dict]]:
    """(what the step is, the step) for a module built with ``keys``."""
    changed = " and ".join(keys) + " it was built with"
    return [
        ("the first call", _call("input", "target")),
        *[(f"changing {k} in place", {"copy": k, "from": k + "2"}) for k in keys],
        (f"a second call, after the {changed} changed in place (torch's module keeps the caller's tensor, "
         "not a copy)" if keys else "a second call on the same input", _call("input", "target")),
        ("a third call, on an input of another shape", _call("input3", "target3")),
        ("setting module.reduction = 'sum'", {"set": "reduction", "value": "sum"}),
        ("a call after module.reduction = 'sum' (torch uses the reduction the module has now)",
         _call("input3", "target3")),
        ("the state_dict", {"state_dict": True}),
        *([("module.load_state_dict() with new " + " and ".join(keys), {"load": {k: _tensor(k + "3") for k in keys}}),
           ("a call after load_state_dict", _call("input", "target"))] if keys else []),
    ]


def _function_steps(keys: list[str]) -> list[tuple[str, dict]]:
    args = {k: _tensor(k) for k in keys}
    return [
        ("the first call", _call("input", "target", **args)),
        *[(f"changing {k} in place", {"copy": k, "from": k + "2"}) for k in ("input", "target", *keys)],
        ("a second call on the same tensors, changed in place (a result kept from the first call, or looked "
         "up by id(), is out of date)", _call("input", "target", **args)),
    ]


def _torch_subject(function: str, module: bool):
    if module:
        return torch.nn.BCELoss if function == _cases.BCE else torch.nn.BCEWithLogitsLoss
    from .references import reference
    return reference(function)


def repeated_calls(ask: Ask, function: str, module: bool, needed: set[str],
                   time_limit: float) -> list[Failure] | None:
    """The student's function, or module, called several times on shared tensors, against
    torch's through the same steps; None when its first call already differs from torch's."""
    keys = [k for k in ("weight", "pos_weight") if k in _cases.PARAMETERS[function] and k in needed]
    named = (_module_steps if module else _function_steps)(keys)
    tensors = _tensors(function, keys, module)
    request = {"op": "sequence", "time_limit": time_limit, "tensors": tensors,
               "build": {k: _tensor(k) for k in keys} if module else None, "steps": [s for _, s in named]}
    case = ("a module built once, called several times" if module else
            "the same tensors, changed in place between two calls")

    def failure(message: str, hint: str = HINTS["repeated calls"], **detail) -> Failure:
        return Failure(category=CATEGORY, case=case, device="cpu", dtype="float32", message=message, hint=hint,
                       **detail)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = run_steps(_torch_subject(function, module), request,
                             {k: v.clone() for k, v in tensors.items()})
    answer = ask(request)
    if not isinstance(answer, dict) or "refused" in answer:
        return [failure("the grader could not call your code several times in a row")]
    if answer.get("error") is not None:
        error = answer["error"] if isinstance(answer["error"], dict) else {}
        return [failure(f"calling your code several times in a row: {text(error.get('text'), 300)}")]
    if answer.get("forbidden"):  # torch's own loss in a later call, where no single case looks
        used = ", ".join(text(op, 100) for op in list(answer["forbidden"])[:3]) if isinstance(
            answer["forbidden"], list) else "it"
        return [Failure(category="own work", case=case, device="cpu", dtype="float32", hint=HINTS["own work"],
                        message=f"called several times, your code called torch's own binary cross-entropy ({used}) "
                                "instead of computing it")]
    results = answer.get("results")
    if not isinstance(results, list) or len(results) != len(named):
        return [failure("the grader has no usable results of your repeated calls")]
    rtol, atol = TOLERANCES[torch.float32]
    first = True  # what the first call gets wrong, a single call gets wrong too: the cases report it, and
    # nothing is decided here (None: the category is not checked)
    for (what, step), ours, theirs in zip(named, results, expected):
        if not isinstance(ours, dict):
            return [failure("the grader has no usable results of your repeated calls")]
        if "keys" in theirs:
            listed = ours.get("keys") if isinstance(ours.get("keys"), list) else []
            missing = [k for k in keys if k not in listed]
            if missing:
                return [failure(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in your "
                                "module's state_dict(): register the buffer without persistent=False, as "
                                "torch's module does", hint=HINTS["buffer"])]
            continue
        value = ours.get("value")
        if "value" in theirs and first:
            first = False
            if not isinstance(value, torch.Tensor) or value.shape != theirs["value"].shape or compare(
                    value, theirs["value"], rtol, atol) is not None:
                return None
            continue
        if ours.get("error") is not None and theirs.get("error") is None:
            error = ours["error"] if isinstance(ours["error"], dict) else {}
            return [failure(f"{what}: your code raised {text(error.get('text'), 300)}")]
        if "value" not in theirs:
            continue
        if not isinstance(value, torch.Tensor):
            return [failure(f"{what}: your code returned {text(ours.get('not a tensor'), 300) or 'no tensor'}")]
        diff = compare(value, theirs["value"], rtol, atol)
        if diff is not None or value.shape != theirs["value"].shape:
            return [failure(f"{what}: your result differs from torch's", difference=diff)]
    return []


def without_grad(other: object, expected: torch.Tensor, dtype: torch.dtype,
                 exact: torch.Tensor | None = None) -> dict | None:
    """What is wrong with the result of a case's call made again under ``torch.no_grad()``
    (:func:`observe._without_grad`), as a failure's message and details, or None. A result as
    close to ``exact`` (torch's computed in float64, :func:`recompute.exact`) passes too."""
    called = "called under torch.no_grad() (as when a model is evaluated), your function"
    if not isinstance(other, dict):
        return {"message": "the grader has no usable result of your function under torch.no_grad()"}
    if other.get("error") is not None:
        error = other["error"] if isinstance(other["error"], dict) else {}
        return {"message": f"{called} raised {text(error.get('text'), 300) or 'an exception'}"}
    value = other.get("value")
    if not isinstance(value, torch.Tensor):
        return {"message": f"{called} returned {text(other.get('not a tensor'), 300) or 'no tensor'}"}
    rtol, atol = TOLERANCES[dtype]
    diff = compare(value, expected, rtol, atol, exact)
    if diff is None and value.dtype == expected.dtype:
        return None
    return {"message": f"{called} gives another result than torch's (with gradients on it gives torch's)",
            "expected": describe_tensor(expected), "actual": describe_tensor(value), "difference": diff}


def second_order(first: tuple, upstream: torch.Tensor, inputs: list) -> tuple[tuple, tuple]:
    """The gradients ``first`` (made with ``create_graph``), detached, and the gradient of
    ``sum((g * upstream).sum() for g in first)`` with respect to ``inputs``: second derivatives, as
    the observer computes them through the student's function (:func:`observe._gradients`)."""
    total = sum((g * upstream).sum() for g in first if g is not None)
    second = torch.autograd.grad(total, inputs, allow_unused=True) if isinstance(total, torch.Tensor) and \
        total.requires_grad else tuple(None for _ in inputs)
    return tuple(None if g is None else g.detach() for g in first), second


def second_problem(got: dict, expected: tuple, rtol: float, atol: float) -> dict | None:
    """What is wrong with the second derivatives through the student's function, or None."""
    if got.get("second problem"):
        return {"message": f"differentiating your gradient once more {text(got['second problem'], 300)}"}
    values = got.get("second")
    if not isinstance(values, list) or len(values) != len(expected) or not all(
            v is None or isinstance(v, torch.Tensor) for v in values):
        return {"message": "the grader has no usable second derivative of your function"}
    for r, g in zip(expected, values):
        if r is None:
            continue
        if g is None:
            return {"message": "your gradient cannot be differentiated again: it is not connected to the input "
                               "(a backward of your own marked @once_differentiable, or computed outside autograd)"}
        diff = compare(g, r, rtol, atol)
        if diff is not None:
            return {"message": "the gradient of your gradient (a second derivative) differs from torch's",
                    "expected": describe_tensor(r), "actual": describe_tensor(g),
                    "difference": diff}
    return None
