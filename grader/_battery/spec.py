"""What the battery is made of: the functions it checks, its categories and tolerances,
and :class:`Case`, one comparison with torch, with the random inputs cases are built from."""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from typing import Callable

import torch

from ..articles import BCE, BCE_WITH_LOGITS

#: The losses a student implements, with torch.nn.functional's signatures.
FUNCTIONS = (BCE, BCE_WITH_LOGITS)
#: Their gradients with respect to the input, derived by hand (reduction='mean').
GRAD_BCE = BCE + "_grad"
GRAD_BCE_WITH_LOGITS = BCE_WITH_LOGITS + "_grad"
GRADIENTS = (GRAD_BCE, GRAD_BCE_WITH_LOGITS)
#: Every function the battery can check.
CHECKABLE = FUNCTIONS + GRADIENTS
#: The optional arguments of each, with torch's defaults.
PARAMETERS = {
    BCE: {"weight": None, "reduction": "mean"},
    BCE_WITH_LOGITS: {"weight": None, "pos_weight": None, "reduction": "mean"},
    GRAD_BCE: {},
    GRAD_BCE_WITH_LOGITS: {},
}
#: torch's deprecated arguments: cases pass them only to a function whose signature has them.
LEGACY = ("size_average", "reduce")


def takes_logits(function: str) -> bool:
    return BCE_WITH_LOGITS in function


def base_loss(function: str) -> str:
    """The loss a function is, or is the gradient of."""
    return function.removesuffix("_grad")


#: Every category, in the order a report lists them, with what passing it means.
CATEGORIES: dict[str, str] = {
    "signature": "takes torch's arguments, with torch's defaults",
    "article examples": "the examples of the source articles",
    "shapes": "0-d, 1-d, 2-d, 3-d, empty and large tensors",
    "layouts": "transposed, sliced, expanded and channels-last tensors, not only fresh contiguous ones",
    "reductions": "reduction='mean', 'sum' and 'none' (and the legacy size_average and reduce, if taken)",
    "weight": "a weight of every shape that broadcasts to the input, by keyword and by position (a module keeps it as a buffer)",
    "pos_weight": "pos_weight on 1-d to 4-d inputs: per class on the last dimension, [C, 1, 1], [N, 1]",
    "edge values": "probabilities of exactly 0 and 1 and below e^-100, extreme logits, soft targets",
    "dtypes": "float64, float16 and bfloat16 (at the edges and in large sums), and mixed with weights",
    "gradients": "the gradients with respect to the input and the target",
    "repeated calls": ("gives torch's result on every call: nothing kept from one call to the next, a module's "
                       "weight and reduction as they are at the call"),
    "errors": "raises the errors torch raises, of torch's type",
    "output": "returns a tensor with torch's shape, dtype and device",
    "inputs unchanged": "leaves its arguments as it found them",
    "own work": "computes the loss itself instead of calling torch's BCE",
    "vectorized": "works on whole tensors, not element by element",
}

#: Categories that are not groups of cases but checks made on every case.
PER_CALL_CATEGORIES = ("output", "inputs unchanged", "own work")

#: The categories that do not apply to a hand-derived gradient, and to each function.
_NOT_FOR_GRADIENTS = {"reductions", "weight", "pos_weight", "errors", "gradients"}
NOT_FOR = {BCE: {"pos_weight"}, BCE_WITH_LOGITS: set(),
           GRAD_BCE: _NOT_FOR_GRADIENTS, GRAD_BCE_WITH_LOGITS: _NOT_FOR_GRADIENTS}

#: (rtol, atol) for values and gradients, by dtype, in the manner of torch.testing.assert_close
#: but wider: a student's formula differs from torch's kernel by a few roundings per element.
TOLERANCES = {
    torch.float64: (1e-7, 1e-9),
    torch.float32: (1e-5, 1e-6),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (5e-2, 1e-2),
}

LARGE_SHAPE = (512, 1024)

#: How a case lays out an argument, applied where the student's function is called and
#: where torch's is: the argument is built with the ``base`` shape, then viewed.
LAYOUTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "transposed": lambda t: t.transpose(-2, -1),
    "sliced": lambda t: t[..., 1::2],  # from an odd width: a view that .view(-1) refuses
    "expanded": lambda t: t.expand(4, *t.shape[1:]),
    "channels last": lambda t: t.contiguous(memory_format=torch.channels_last),
}


@dataclass(frozen=True)
class Case:
    """One comparison with torch.

    ``build(generator)`` returns the arguments as CPU tensors: ``input`` and
    ``target``, and any of ``weight``, ``pos_weight`` (tensors) and
    ``reduction`` (a string). Floating tensors are cast to ``dtype`` (or to their own
    dtype in ``dtypes``), laid out as ``layout`` says, and moved to the device under
    test before the call; the names in ``positional`` are passed by position.
    """

    name: str
    category: str
    build: Callable[[torch.Generator], dict]
    dtype: torch.dtype = torch.float32
    grad_input: bool = True
    grad_target: bool = False
    expect_error: bool = False
    cpu_only: bool = False
    large: bool = False
    loss_only: bool = False  # not a case of the hand-derived gradients
    second_order: bool = False  # the gradient of the gradient is compared too
    hint: str = ""
    reference: Callable[..., torch.Tensor] | None = None
    reference_name: str | None = None
    dtypes: tuple[tuple[str, torch.dtype], ...] = ()
    layout: tuple[tuple[str, str], ...] = ()
    positional: tuple[str, ...] = ("input", "target")

    @property
    def seed(self) -> int:
        return zlib.crc32(self.name.encode())

    @functools.cached_property
    def keywords(self) -> frozenset[str]:
        """The optional arguments this case passes, by keyword or by position."""
        return frozenset(self.build(torch.Generator().manual_seed(self.seed))) - {"input", "target"}

    def dtype_of(self, key: str) -> torch.dtype:
        return dict(self.dtypes).get(key, self.dtype)


# --- random inputs ---------------------------------------------------------

def probabilities(g, shape):
    # Away from 0 and 1, where torch's backward formula and autograd through
    # the logs legitimately differ; the edge cases test 0 and 1 themselves.
    return 0.02 + 0.96 * torch.rand(shape, generator=g, dtype=torch.float64)


def logits(g, shape):
    return 3 * torch.randn(shape, generator=g, dtype=torch.float64)


def soft_targets(g, shape):
    return torch.rand(shape, generator=g, dtype=torch.float64)


def hard_targets(g, shape):
    return torch.randint(0, 2, shape, generator=g).to(torch.float64)


def positive(g, shape, low, high):
    return low + (high - low) * torch.rand(shape, generator=g, dtype=torch.float64)


def maker(function, shape, *, hard=False, weight=None, pos_weight=None, reduction=None, **extra):
    """A ``build`` function for random inputs of ``shape`` (soft targets unless ``hard``)."""

    def build(g):
        inputs = logits if takes_logits(function) else probabilities
        args = {
            "input": inputs(g, shape),
            "target": (hard_targets if hard else soft_targets)(g, shape),
        }
        if weight is not None:
            args["weight"] = positive(g, weight, 0.2, 2.0)
        if pos_weight is not None:
            args["pos_weight"] = positive(g, pos_weight, 0.5, 4.0)
        if reduction is not None:
            args["reduction"] = reduction
        args.update(extra)
        return args

    return build


def fixed(input, target, **extra):
    """A ``build`` function for the given values (strings and None are passed as they are)."""

    def build(g):
        args = {"input": torch.tensor(input, dtype=torch.float64),
                "target": torch.tensor(target, dtype=torch.float64)}
        for key, value in extra.items():
            args[key] = value if value is None or isinstance(value, (str, bool)) else \
                torch.tensor(value, dtype=torch.float64)
        return args

    return build


def shape_text(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
