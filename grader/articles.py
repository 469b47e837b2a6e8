"""The examples of the three source articles, reproduced exactly.

The articles' fixed tensors are copied digit for digit. Where an article draws
random tensors (article 002), the draw is reproduced with a seeded generator,
in the article's order, so that ``torch.manual_seed(seed(key))`` followed by the
article's code gives the same tensors. Each example has a seed of its own, so that
no two print the same numbers, and 002-3's targets hold both classes.

Expected values are never stored here: they are computed with torch wherever
they are needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

#: The seeds that stand in for the articles' unseeded random draws, by example.
SEEDS = {"002-1": 1, "002-2": 2, "002-3": 4}

BCE = "binary_cross_entropy"
BCE_WITH_LOGITS = "binary_cross_entropy_with_logits"


@dataclass(frozen=True)
class ArticleExample:
    """One example of a source article.

    ``build()`` returns the arguments the article passes to the loss, as fresh
    CPU tensors: ``input``, ``target`` and, where the article sets them,
    ``pos_weight`` (a constructor argument of the module form).
    ``criterion()`` returns the loss object or function the article calls.
    """

    key: str
    article: str
    title: str
    function: str
    build: Callable[[], dict]
    criterion: Callable[[dict], Callable]


def seed(key: str) -> int:
    """The seed of example ``key``'s random draw: ``torch.manual_seed(seed(key))`` before
    the article's code draws its tensors."""
    if key not in SEEDS:
        raise KeyError(f"example {key!r} draws nothing at random; those that do: {', '.join(SEEDS)}")
    return SEEDS[key]


def _generator(key: str) -> torch.Generator:
    return torch.Generator().manual_seed(seed(key))


def _001_1() -> dict:
    return {
        "input": torch.tensor([0.4498, 0.9845, 0.4576, 0.3494, 0.2434]),
        "target": torch.tensor([0.2345, 0.5565, 0.3468, 0.1444, 0.3546]),
    }


def _001_2() -> dict:
    return {
        "input": torch.tensor([[0.4576, 0.6496, 0.6783],
                               [0.4895, 0.9454, 0.5443],
                               [0.9491, 0.3825, 0.7235]]),
        "target": torch.tensor([[0.2432, 0.1579, 0.0325],
                                [0.3464, 0.2442, 0.3847],
                                [0.4528, 0.0876, 0.0499]]),
    }


def _000() -> dict:
    return {
        "input": torch.tensor([[0.123, 0.984, 0.452],
                               [0.977, 0.491, 0.830],
                               [0.421, 0.382, 0.628]]),
        "target": torch.tensor([[0.289, 0.999, 0.693],
                                [0.899, 0.231, 0.384],
                                [0.452, 0.071, 0.049]]),
    }


def _draw(key: str, shape) -> dict:
    """input = torch.randn(shape); target = torch.rand(shape), in that order."""
    g = _generator(key)
    logits = torch.randn(shape, generator=g)
    return {"input": logits, "target": torch.rand(shape, generator=g)}


def _probabilities_of(draw: dict) -> dict:
    return {"input": torch.sigmoid(draw["input"]), "target": draw["target"]}


def _002_1() -> dict:
    # m = nn.Sigmoid(); input = torch.randn(2, 3); target = torch.rand(2, 3); loss(m(input), target)
    return _probabilities_of(_draw("002-1", (2, 3)))


def _002_2() -> dict:
    # input = torch.randn(3, 2); target = torch.rand(3, 2); F.binary_cross_entropy(torch.sigmoid(input), target)
    return _probabilities_of(_draw("002-2", (3, 2)))


def logits_of(key: str) -> dict:
    """For the examples that apply a sigmoid before the loss (002-1, 002-2): the
    logits the article draws, before the sigmoid, and the target."""
    shapes = {"002-1": (2, 3), "002-2": (3, 2)}
    if key not in shapes:
        raise KeyError(f"example {key!r} does not start from logits; those that do: {', '.join(shapes)}")
    return _draw(key, shapes[key])


def _002_3() -> dict:
    # input = torch.randn(3); target = torch.ones(3).random_(2)
    g = _generator("002-3")
    logits = torch.randn(3, generator=g)
    target = torch.ones(3).random_(2, generator=g)
    return {"input": logits, "target": target}


def _002_4() -> dict:
    return {
        "input": torch.full([10, 64], 1.5),
        "target": torch.ones([10, 64], dtype=torch.float32),
        "pos_weight": torch.ones([64]),
    }


EXAMPLES: tuple[ArticleExample, ...] = (
    ArticleExample("001-1", "001", "BCELoss on a 1-D tensor of 5 probabilities", BCE,
                   _001_1, lambda a: torch.nn.BCELoss()),
    ArticleExample("001-2", "001", "BCELoss on a 3x3 tensor", BCE,
                   _001_2, lambda a: torch.nn.BCELoss()),
    ArticleExample("000", "000", "BCELoss on a 3x3 tensor, then backward()", BCE,
                   _000, lambda a: torch.nn.BCELoss()),
    ArticleExample("002-1", "002", "nn.Sigmoid, then BCELoss, on a 2x3 batch", BCE,
                   _002_1, lambda a: torch.nn.BCELoss()),
    ArticleExample("002-2", "002", "F.binary_cross_entropy of torch.sigmoid(randn(3, 2))", BCE,
                   _002_2, lambda a: torch.nn.functional.binary_cross_entropy),
    ArticleExample("002-3", "002", "BCEWithLogitsLoss on 3 logits with 0/1 targets", BCE_WITH_LOGITS,
                   _002_3, lambda a: torch.nn.BCEWithLogitsLoss()),
    ArticleExample("002-4", "002", "BCEWithLogitsLoss with pos_weight on a 10x64 batch", BCE_WITH_LOGITS,
                   _002_4, lambda a: torch.nn.BCEWithLogitsLoss(pos_weight=a["pos_weight"])),
)


def example(key: str) -> ArticleExample:
    """The example with this key ("001-1", "001-2", "000", "002-1" ... "002-4")."""
    for ex in EXAMPLES:
        if ex.key == key:
            return ex
    raise KeyError(f"no source example {key!r}; the examples are {', '.join(e.key for e in EXAMPLES)}")


def torch_value(ex: ArticleExample) -> torch.Tensor:
    """What torch computes for the example, called the way the article calls it."""
    args = ex.build()
    criterion = ex.criterion(args)
    return criterion(args["input"], args["target"])
