"""Plain data, and tensors, as JSON: what crosses between the student's process and the judge.

Everything the judge receives from a process that ran student code is read with
:func:`loads` and :func:`decode`: JSON (numbers, strings, lists, dicts) in which a tensor
is ``{"tensor": dtype, "shape": [...], "device": ..., "data": base64}``. Nothing is
unpickled and nothing from it is executed; sizes are bounded, and anything malformed
raises :class:`Unreadable`, which the judge counts as a failed check.

What the judge sends the other way (the inputs it chose) is framed with :func:`frame`: the same
JSON, but each tensor's bytes follow the line raw, where the notebook's process reads them
(:func:`unframe`) without decoding base64. The judge never reads a frame.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any, Callable

import torch

#: dtypes an encoded tensor may have; anything else is refused.
DTYPES = {str(d).replace("torch.", ""): d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8,
    torch.bool)}
#: Each dtype's element size in bytes, and its NumPy dtype (bfloat16 has none: read as int16).
_SIZES = {name: torch.empty((), dtype=d).element_size() for name, d in DTYPES.items()}
_NUMPY = {name: torch.empty((), dtype=d if d != torch.bfloat16 else torch.int16).numpy().dtype
          for name, d in DTYPES.items()}
#: The types JSON's scalars are read as (exactly these: json.loads makes no subclass of them).
_SCALARS = frozenset({str, int, float, bool, type(None)})
#: The most elements one encoded tensor may hold (a 2**21-element float64 is 16 MiB).
MAX_ELEMENTS = 1 << 21
#: The most nested lists and dicts one message may have.
MAX_DEPTH = 16
#: The most lists and dicts, and items, one message may hold in all: an answer holds a few (a
#: value, its gradients as base64 text, counts), and parsing millions of them would cost the
#: judge gigabytes.
MAX_CONTAINERS = 10_000
MAX_ITEMS = 100_000


class Unreadable(ValueError):
    """Data from the student's process that is not what the judge asked for."""


def encode_tensor(tensor: torch.Tensor, raw: bool = False) -> dict:
    """A tensor as JSON: its dtype, shape, device and raw bytes (base64; the bytes themselves
    with ``raw``)."""
    t = tensor.detach().to("cpu").contiguous()
    name = str(t.dtype).replace("torch.", "")
    if name not in DTYPES:
        t, name = t.to(torch.float64), "float64"
    data = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
    return {"tensor": name, "shape": list(t.shape), "device": str(tensor.device),
            "data": data if raw else base64.b64encode(data).decode("ascii")}


def decode_tensor(item: Any) -> torch.Tensor:
    """The tensor :func:`encode_tensor` wrote, on the CPU."""
    if not isinstance(item, dict) or item.get("tensor") not in DTYPES:
        raise Unreadable("a tensor was expected")
    data = item.get("data", "")
    if not isinstance(data, str):
        raise Unreadable("a tensor whose data is not text")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError as error:
        raise Unreadable("a tensor whose data is not base64") from error
    return _tensor(item, raw)


def _tensor(item: Any, raw: bytes | torch.Tensor) -> torch.Tensor:
    """The tensor ``item`` describes (dtype, shape), from its ``raw`` bytes (copied), or from
    a one-dimensional ``uint8`` tensor of them (taken as its memory), on the CPU."""
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
    name = item["tensor"]
    dtype, size = DTYPES[name], _SIZES[name]
    if isinstance(raw, torch.Tensor):  # the bytes, read straight into memory of their own: no copy
        if raw.dtype != torch.uint8 or raw.dim() != 1 or raw.numel() != count * size:
            raise Unreadable("a tensor whose data does not match its shape")
        return raw.view(dtype).reshape(shape)
    if len(raw) != count * size:
        raise Unreadable("a tensor whose data does not match its shape")
    tensor = torch.from_numpy(np.frombuffer(raw, dtype=_NUMPY[name]).copy())
    return (tensor.view(torch.bfloat16) if dtype == torch.bfloat16 else tensor).reshape(shape)


def encode(value: Any, raws: list[bytes] | None = None) -> Any:
    """``value`` (plain data that may hold tensors) as JSON-ready data. Given ``raws`` (a
    list), each tensor's bytes are appended to it instead, and the tensor written with their
    count, ``"raw"`` (:func:`frame`)."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, torch.Tensor):
        if raws is None:
            return encode_tensor(value)
        encoded = encode_tensor(value, raw=True)
        raws.append(encoded.pop("data"))
        return {**encoded, "raw": len(raws[-1])}
    if isinstance(value, dict):
        return {str(k): encode(v, raws) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v, raws) for v in value]
    return value


def decode(value: Any, depth: int = 0, take: Callable[[int], bytes] | None = None) -> Any:
    """What :func:`encode` made, tensors back as CPU tensors; :class:`Unreadable` if malformed.
    Given ``take`` (``take(n)``: the next ``n`` bytes after the message), tensors written with
    ``"raw"`` are read from there (:func:`unframe`)."""
    if type(value) in _SCALARS:
        return value
    if depth > MAX_DEPTH:
        raise Unreadable("data nested too deeply")
    if isinstance(value, dict):
        if "tensor" in value and "data" in value:
            return decode_tensor(value)
        if take is not None and "tensor" in value and "raw" in value:
            count = value["raw"]
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise Unreadable("a tensor with a malformed size")
            return _tensor(value, take(count))
        return {k: decode(v, depth + 1, take) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, depth + 1, take) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise Unreadable(f"unexpected data of type {type(value).__name__}")


class Kept(dict):
    """A request whose framing is written once and kept in ``cache`` under ``key``: a case's
    request, whose arguments are the same for every notebook (:func:`frame`). Change nothing
    in it after it is first written."""

    def __init__(self, value: dict, cache: dict, key: Any):
        super().__init__(value)
        self.cache, self.key = cache, key


def dumps(value: Any) -> bytes:
    """One message: ``value`` encoded, as a JSON line (what a notebook's process answers)."""
    return json.dumps(encode(value), allow_nan=True).encode() + b"\n"


def frame(value: dict, **extra: Any) -> bytes:
    """One request from the judge to a notebook's process, with the fields ``extra`` added: a
    JSON line in which each tensor is ``{"tensor": dtype, "shape": [...], "device": ...,
    "raw": byte count}``, then the tensors' raw bytes, in the order they appear in the line
    (:func:`unframe` reads it). No base64: a large case's inputs are megabytes, which the
    notebook's process would otherwise decode for every student. A :class:`Kept` request is
    framed once; ``extra`` is written beside it."""
    if isinstance(value, Kept) and value and not extra.keys() & value.keys():
        kept = value.cache.get(value.key)
        if kept is None:
            kept = value.cache[value.key] = _frame(dict(value))
        if not extra:
            return kept
        return json.dumps(encode(extra), allow_nan=True).encode()[:-1] + b", " + kept[1:]
    return _frame({**value, **extra} if extra else value)


def _frame(value: dict) -> bytes:
    raws: list[bytes] = []
    line = json.dumps(encode(value, raws), allow_nan=True).encode()
    return b"".join([line, b"\n", *raws])


def unframe(line: bytes, take: Callable[[int], bytes]) -> Any:
    """The request :func:`frame` wrote, from its first ``line`` and ``take(n)``, which returns
    the next ``n`` bytes that follow it (bytes, or a ``uint8`` tensor that each tensor of the
    request then takes as its memory); tensors on the CPU. :class:`Unreadable` if malformed."""
    try:
        return decode(json.loads(line), take=take)
    except (ValueError, RecursionError) as error:
        if isinstance(error, Unreadable):
            raise
        raise Unreadable(f"not a request: {error}") from error


def loads(line: bytes | str) -> Any:
    """The message :func:`dumps` wrote; :class:`Unreadable` if it is not one."""
    if isinstance(line, str):
        line = line.encode()
    if line.count(b"[") + line.count(b"{") > MAX_CONTAINERS or line.count(b",") > MAX_ITEMS:
        raise Unreadable("a message of more lists, dicts or items than an answer has")  # counted at memchr's pace
    try:
        return decode(json.loads(line))
    except (ValueError, RecursionError) as error:
        if isinstance(error, Unreadable):
            raise
        raise Unreadable(f"not a message: {error}") from error


def text(value: Any, limit: int = 2000) -> str:
    """A string from the student's process, as a bounded string."""
    return str(value)[:limit] if value is not None else ""
