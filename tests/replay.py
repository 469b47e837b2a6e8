"""The attack the autograding secret stops: torch's answers recorded by a local ``grader.check``
and replayed by a function that looks them up.

Every random input of the battery is seeded by its case's name, so a student can run the whole
battery at home with a function that calls torch's own BCE and records, for each input (keyed by
its bytes), torch's value and its first and second derivatives with respect to each element of
the input and the target (:func:`record`). The function handed in (:func:`replayer`, :data:`SOURCE`) mentions no
torch function: it finds the inputs it is given in the table and returns torch's value, with
those derivatives attached so that autograd gives torch's gradients too. An input it does not
find gets zeros, but for the few large inputs (whose sizes the judge draws anew for each run, so
that no table can hold them), which get the textbook formula. Without the secret it passes every
case; with it, every small case whose inputs are drawn at random misses
(:mod:`grader._battery.salt`).
"""

from __future__ import annotations

import base64
import json

import torch
import torch.nn.functional as F

import grader
from grader._battery import salt

#: The function a student hands in, given the table as JSON text in RECORDED: it mentions no
#: function of torch's, and its lookup costs the same on any size (the vectorization probe passes).
SOURCE = '''
import base64
import hashlib
import json

import torch

_RECORDED = json.loads(RECORDED)
_DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _key(tensors, reduction):
    h = hashlib.sha256()
    for name, t in tensors:
        if t is None:
            h.update(name.encode() + b"=None;")
            continue
        flat = t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode() + flat.numpy().tobytes())
    h.update(repr(reduction).encode())
    return h.hexdigest()[:32]


def _tensor(kept, device):
    dtype, shape, data = kept
    raw = bytearray(base64.b64decode(data))
    flat = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.zeros(0, dtype=torch.uint8)
    return flat.view(_DTYPES[dtype]).reshape(shape).to(device)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    found = _RECORDED.get(_key([("input", input), ("target", target), ("weight", weight)], reduction))
    if found is None and input.numel() > 4096:  # the judge draws these sizes for each run: the formula
        terms = -(target * torch.log(input).clamp(min=-100) + (1 - target) * torch.log(1 - input).clamp(min=-100))
        terms = terms if weight is None else terms * weight
        return terms.mean() if reduction == "mean" else terms.sum() if reduction == "sum" else terms
    if found is None:  # an input nobody recorded
        return torch.zeros((), dtype=input.dtype, device=input.device)
    if "raises" in found:
        raise {"ValueError": ValueError}.get(found["raises"], RuntimeError)(found["message"])
    value = _tensor(found["value"], input.device)
    if "d_input" not in found:
        return value
    # zero, with torch's first and second derivatives (where they are finite): autograd then gives
    # torch's gradients, and the gradients of those
    d = {k: _tensor(found[k], input.device).nan_to_num(0.0, 0.0, 0.0)
         for k in ("d_input", "d_target", "dd_input", "dd_mixed", "dd_target")}
    dx, dy = input - input.detach(), target - target.detach()
    change = dx * d["d_input"] + dy * d["d_target"] + \
        0.5 * dx * dx * d["dd_input"] + dx * dy * d["dd_mixed"] + 0.5 * dy * dy * d["dd_target"]
    change = change.mean() if found["reduction"] == "mean" else change.sum() if found["reduction"] == "sum" else change
    return value + change.to(value.dtype)
'''


#: The most elements of an input whose derivatives are recorded.
SMALL = 4096


def _kept(t: torch.Tensor) -> list:
    t = t.detach().to("cpu").contiguous()
    raw = t.reshape(-1).view(torch.uint8).numpy().tobytes()
    return [str(t.dtype).replace("torch.", ""), list(t.shape), base64.b64encode(raw).decode()]


def record(categories=None, arguments=None) -> dict:
    """torch's answers to every input of a local ``grader.check`` of ``binary_cross_entropy`` (on the
    CPU, without the secret, as at home), by the key :data:`SOURCE` looks them up with."""
    namespace = {"RECORDED": "{}"}
    exec(SOURCE, namespace)  # for its _key
    key = namespace["_key"]
    table: dict = {}

    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        found = key([("input", input), ("target", target), ("weight", weight)], reduction)
        try:
            value = F.binary_cross_entropy(input, target, weight=weight, reduction=reduction)
        except Exception as error:
            table[found] = {"raises": type(error).__name__, "message": str(error)}
            raise
        table[found] = {"value": _kept(value), "reduction": reduction}
        if input.numel() <= SMALL:  # the battery checks gradients on small tensors only
            with torch.enable_grad():  # the battery calls each case once more under torch.no_grad()
                x, y = input.detach().clone().requires_grad_(True), target.detach().clone().requires_grad_(True)
                terms = F.binary_cross_entropy(x, y, weight=weight, reduction="none")
                d_input, d_target = torch.autograd.grad(terms.sum(), [x, y], create_graph=True)
                # each term depends on its own element only: these are the Hessian's diagonals
                dd_input, dd_mixed = torch.autograd.grad(d_input.sum(), [x, y], retain_graph=True)
                dd_target, = torch.autograd.grad(d_target.sum(), [y], allow_unused=True)
                dd_target = torch.zeros_like(y) if dd_target is None else dd_target
            table[found].update({k: _kept(v) for k, v in (("d_input", d_input), ("d_target", d_target),
                                 ("dd_input", dd_input), ("dd_mixed", dd_mixed), ("dd_target", dd_target))})
        return value

    with salt.using(None):  # at home: no secret
        grader.check(binary_cross_entropy, categories=categories, arguments=arguments, devices=["cpu"])
    return table


def source(table: dict) -> str:
    """The code of a notebook's cell that defines the replaying ``binary_cross_entropy``."""
    return f"RECORDED = {json.dumps(json.dumps(table, separators=(',', ':')))}\n" + SOURCE


def replayer(table: dict):
    """The replaying ``binary_cross_entropy``, defined here."""
    namespace: dict = {}
    exec(source(table), namespace)
    return namespace["binary_cross_entropy"]
