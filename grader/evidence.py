"""Verdicts that student code cannot forge.

A graded check has two halves. The *observation* runs in the student's process:
it calls the student's code and writes down what came out, as plain numbers.
The *judge* is a pure function of the observation and the check's parameters:
it recomputes everything it compares with (torch's own results, the data)
itself and returns what is wrong. In a notebook both halves run in the same
process, for the student's immediate feedback. When the autograding engine runs
a notebook, each observation is also appended to the file named by
``$BCE_GRADER_EVIDENCE``; after the notebook ends, the engine judges those
observations again in its own process, which no student code has run in, and
a test cell passes only if its checks pass there. Monkeypatching torch, the
grader or ``AssertionError`` in the notebook can change what the notebook shows,
never the grade.

An observation is JSON: numbers, strings, lists, dicts, and tensors encoded by
:func:`encode_tensor`. Nothing is unpickled and nothing from it is executed.
"""

from __future__ import annotations

import base64
import importlib
import json
import math
import os
from typing import Any, Callable

import torch

#: The environment variable naming the file the observations are appended to.
ENV = "BCE_GRADER_EVIDENCE"

Judge = Callable[[dict, dict], list[str]]
_JUDGES: dict[str, Judge] = {}
#: The modules whose import registers the course's judges. :func:`judges` and :func:`decide`
#: import them, so that whoever decides a verdict knows every check a test cell may call.
CHECK_MODULES = ("grader.checks", "grader.imbalance")

#: dtypes an encoded tensor may have; anything else is refused.
_DTYPES = {str(d).replace("torch.", ""): d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.bool)}
#: the most elements one encoded tensor may hold (a 2**20-element float64 is 8 MiB).
MAX_ELEMENTS = 1 << 21


class EvidenceError(ValueError):
    """An observation that cannot be read: the engine counts it as a failed check."""


def judge(name: str) -> Callable[[Judge], Judge]:
    """Register ``fn(params, observation) -> problems`` as the judge of check ``name``
    (the name of the public ``assert_...`` function a test cell calls)."""
    def register(fn: Judge) -> Judge:
        _JUDGES[name] = fn
        return fn

    return register


def _register_all() -> None:
    for module in CHECK_MODULES:
        importlib.import_module(module)


def judges() -> dict[str, Judge]:
    """Every judge of the course, by check name."""
    _register_all()
    return dict(_JUDGES)


def plain(params: dict) -> dict:
    """``params`` as JSON gives them back (tuples and sets become lists), so that the
    parameters a check records compare equal to those the engine reads from the cell."""
    return json.loads(json.dumps(params, default=lambda v: sorted(v) if isinstance(v, (set, frozenset)) else str(v)))


def recording() -> bool:
    """Whether the engine asked for evidence: only then is an observation worth making."""
    return bool(os.environ.get(ENV))


def record(name: str, params: dict, observation: dict) -> None:
    """Append the observation to the evidence file, if the engine asked for one."""
    if not recording():
        return
    path = os.environ[ENV]
    line = json.dumps({"check": name, "params": plain(params), "observation": observation,
                       "cell": os.environ.get("BCE_GRADER_CELL")}, allow_nan=True)
    with open(path, "a", encoding="utf-8") as file:
        file.write(line + "\n")


def decide(name: str, params: dict, observation: dict) -> list[str]:
    """The judge's problems with an observation; an unreadable one is a problem too."""
    fn = _JUDGES.get(name)
    if fn is None:
        _register_all()  # a check whose module nothing has imported yet
        fn = _JUDGES.get(name)
    if fn is None:
        return [f"the grader has no check called {name}"]
    try:
        return list(fn(plain(params), observation))
    except EvidenceError as error:
        return [f"the grader could not read the result of {name}: {error}"]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as error:
        return [f"the grader could not read the result of {name}: {type(error).__name__}: {error}"]


def verify(name: str, params: dict, observation: dict) -> list[str]:
    """Record the observation for the engine, then judge it here. Returns the problems."""
    record(name, params, observation)
    return decide(name, params, observation)


def read(path: str, limit: int = 256 << 20) -> list[dict]:
    """The records in an evidence file; lines that are not well-formed records are dropped
    (the student's process wrote them, so they prove nothing)."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return []
    if size > limit:
        return []
    records = []
    with open(path, encoding="utf-8", errors="replace") as file:
        for line in file:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if (isinstance(item, dict) and isinstance(item.get("check"), str)
                    and isinstance(item.get("params"), dict) and isinstance(item.get("observation"), dict)):
                records.append(item)
    return records


# --- tensors as JSON ------------------------------------------------------------------------

def encode_tensor(tensor: torch.Tensor) -> dict:
    """A tensor as JSON: its dtype, shape, device and raw bytes (base64)."""
    t = tensor.detach().to("cpu").contiguous()
    name = str(t.dtype).replace("torch.", "")
    if name not in _DTYPES:
        t, name = t.to(torch.float64), "float64"
    raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
    return {"tensor": name, "shape": list(t.shape), "device": str(tensor.device),
            "data": base64.b64encode(raw).decode("ascii")}


def decode_tensor(item: Any) -> torch.Tensor:
    """The tensor :func:`encode_tensor` wrote, on the CPU; :class:`EvidenceError` if it is not one."""
    import numpy as np

    if not isinstance(item, dict) or item.get("tensor") not in _DTYPES:
        raise EvidenceError("a tensor was expected")
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise EvidenceError("a tensor with a malformed shape")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise EvidenceError("a tensor too large to be a result of this check")
    dtype = _DTYPES[item["tensor"]]
    try:
        raw = base64.b64decode(item.get("data", ""), validate=True)
    except ValueError as error:
        raise EvidenceError("a tensor whose data is not base64") from error
    size = torch.empty((), dtype=dtype).element_size()
    if len(raw) != count * size:
        raise EvidenceError("a tensor whose data does not match its shape")
    if dtype == torch.bfloat16:
        array = np.frombuffer(raw, dtype=np.int16).copy()
        return torch.from_numpy(array).view(torch.bfloat16).reshape(shape)
    array = np.frombuffer(raw, dtype=torch.empty((), dtype=dtype).numpy().dtype).copy()
    return torch.from_numpy(array).reshape(shape)
