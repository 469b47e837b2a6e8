"""Plain data, and tensors, as JSON: what crosses between the student's process and the judge.

Everything the judge receives from a process that ran student code is read with
:func:`loads` and :func:`decode`: JSON (numbers, strings, lists, dicts) in which a tensor
is ``{"tensor": dtype, "shape": [...], "device": ..., "data": base64}``. Nothing is
unpickled and nothing from it is executed; sizes are bounded, and anything malformed
raises :class:`Unreadable`, which the judge counts as a failed check.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import torch

#: dtypes an encoded tensor may have; anything else is refused.
DTYPES = {str(d).replace("torch.", ""): d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8,
    torch.bool)}
#: The most elements one encoded tensor may hold (a 2**21-element float64 is 16 MiB).
MAX_ELEMENTS = 1 << 21
#: The most nested lists and dicts one message may have.
MAX_DEPTH = 16


class Unreadable(ValueError):
    """Data from the student's process that is not what the judge asked for."""


def encode_tensor(tensor: torch.Tensor) -> dict:
    """A tensor as JSON: its dtype, shape, device and raw bytes (base64)."""
    t = tensor.detach().to("cpu").contiguous()
    name = str(t.dtype).replace("torch.", "")
    if name not in DTYPES:
        t, name = t.to(torch.float64), "float64"
    raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
    return {"tensor": name, "shape": list(t.shape), "device": str(tensor.device),
            "data": base64.b64encode(raw).decode("ascii")}


def decode_tensor(item: Any) -> torch.Tensor:
    """The tensor :func:`encode_tensor` wrote, on the CPU."""
    import numpy as np

    if not isinstance(item, dict) or item.get("tensor") not in DTYPES:
        raise Unreadable("a tensor was expected")
    shape = item.get("shape")
    if not isinstance(shape, list) or len(shape) > 16 or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_ELEMENTS for n in shape):
        raise Unreadable("a tensor with a malformed shape")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise Unreadable("a tensor too large to be a result of this check")
    dtype = DTYPES[item["tensor"]]
    data = item.get("data", "")
    if not isinstance(data, str):
        raise Unreadable("a tensor whose data is not text")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError as error:
        raise Unreadable("a tensor whose data is not base64") from error
    size = torch.empty((), dtype=dtype).element_size()
    if len(raw) != count * size:
        raise Unreadable("a tensor whose data does not match its shape")
    if dtype == torch.bfloat16:
        array = np.frombuffer(raw, dtype=np.int16).copy()
        return torch.from_numpy(array).view(torch.bfloat16).reshape(shape)
    array = np.frombuffer(raw, dtype=torch.empty((), dtype=dtype).numpy().dtype).copy()
    return torch.from_numpy(array).reshape(shape)


def encode(value: Any) -> Any:
    """``value`` (plain data that may hold tensors) as JSON-ready data."""
    if isinstance(value, torch.Tensor):
        return encode_tensor(value)
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def decode(value: Any, depth: int = 0) -> Any:
    """What :func:`encode` made, tensors back as CPU tensors; :class:`Unreadable` if malformed."""
    if depth > MAX_DEPTH:
        raise Unreadable("data nested too deeply")
    if isinstance(value, dict):
        if "tensor" in value and "data" in value:
            return decode_tensor(value)
        return {k: decode(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, depth + 1) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise Unreadable(f"unexpected data of type {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """One message: ``value`` encoded, as a JSON line."""
    return json.dumps(encode(value), allow_nan=True).encode() + b"\n"


def loads(line: bytes | str) -> Any:
    """The message :func:`dumps` wrote; :class:`Unreadable` if it is not one."""
    try:
        return decode(json.loads(line))
    except (ValueError, RecursionError) as error:
        if isinstance(error, Unreadable):
            raise
        raise Unreadable(f"not a message: {error}") from error


def text(value: Any, limit: int = 2000) -> str:
    """A string from the student's process, as a bounded string."""
    return str(value)[:limit] if value is not None else ""
