"""The course's real data, as tensors: two small UCI data sets and their held-out splits.

- :func:`breast_cancer`: the Wisconsin diagnostic breast cancer data, 569 tumours
  described by 30 features of their cell nuclei; the label is 1 for malignant
  (212 of them) and 0 for benign. A binary task.
- :func:`digits`: 1797 handwritten digits as 8 x 8 images of pixel counts 0..16,
  and the digit each shows. :func:`digit_properties` turns the digits into
  labels of a multi-label task: one column per property in :data:`PROPERTIES`
  (even, at least 5, prime, zero, eight), whose positive rates run from about
  one half down to about one tenth.

:func:`breast_cancer_split` and :func:`digits_split` hold out a fixed,
stratified fifth of each data set (the test split) and scale the features with
statistics of the training part only; the course's checks judge a model on
exactly these held-out rows. With ``validation=True`` they also set aside a
stratified quarter of the remaining rows (another fifth of the data set) as a
validation split, for choosing ``pos_weight`` and a decision threshold: the
test rows are the same either way, and the scaling then uses the remaining
three fifths only.

The files are ``breast_cancer.csv`` and ``digits.csv`` in :func:`data_dir`:
the checkout's ``data/`` folder when this package runs from a checkout (an
editable install), else the copy the wheel carries in ``grader/_data/``.
``data/README.md`` says where they come from, under which licence, and how
they were made.
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent

#: The data files the course reads, by name.
FILES = ("breast_cancer.csv", "digits.csv")

#: The properties of a digit that :func:`digit_properties` turns into labels, in column order.
PROPERTIES = ("even", "at least 5", "prime", "zero", "eight")
_PROPERTY_DIGITS = {
    "even": {0, 2, 4, 6, 8},
    "at least 5": {5, 6, 7, 8, 9},
    "prime": {2, 3, 5, 7},
    "zero": {0},
    "eight": {8},
}

#: The share of each data set held out from training, and the seed of the split.
HELD_OUT = 0.2
SPLIT_SEED = 0
#: With ``validation=True``: the share of the training rows set aside for validation (a quarter
#: of four fifths, so train / validation / test = 60 / 20 / 20 %), and the seed of that split.
VALIDATION = 0.25
VALIDATION_SEED = 1

# What each file must hold: the rows the UCI record lists, and the allowed values.
_CANCER_ROWS = 569
_DIGITS_ROWS = 1797
_CANCER_FEATURES = (
    "radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
    "concave points", "symmetry", "fractal dimension")
CANCER_FEATURES = (tuple(f"mean {f}" for f in _CANCER_FEATURES) + tuple(f"{f} error" for f in _CANCER_FEATURES)
                   + tuple(f"worst {f}" for f in _CANCER_FEATURES))
DIGIT_PIXELS = tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8))


class DataError(Exception):
    """A data file that is missing or malformed; the message says which and how to get it back."""


def _in_checkout() -> bool:
    """Whether this package sits in a checkout of the course's repository, beside its ``data/``
    folder (recognised by the script that made the files; a sandbox may show only ``grader/``
    and ``data/`` of the checkout)."""
    return (_CHECKOUT / "data" / "make_datasets.py").is_file()


def data_dir() -> Path:
    """The folder the data files are read from: the checkout's ``data/`` when this package
    runs from a checkout, else the package's own copy, ``grader/_data/``."""
    return _CHECKOUT / "data" if _in_checkout() else _PACKAGE / "_data"


#: The data folder, as :func:`data_dir` finds it when the package is imported (for a sandbox
#: that must let notebooks read it).
DATA_DIR = data_dir()


def _restore_hint() -> str:
    if _in_checkout():
        return "restore it with `git checkout data/` from the repository's root"
    return ("reinstall the course package: `pip install --force-reinstall --no-deps` with the source you "
            "installed it from (in Colab: Runtime > Disconnect and delete runtime, then run the notebook's "
            "setup cell again)")


def _read_rows(path: Path, header: tuple[str, ...], rows: int) -> list[list[str]]:
    """The data rows of a CSV file whose first line is ``header``, checked for shape."""
    try:
        with path.open(newline="", encoding="ascii") as file:
            lines = list(csv.reader(file))
    except FileNotFoundError:
        raise DataError(f"the data file {path.name} is missing (looked in {path.parent}); "
                        f"{_restore_hint()}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"the data file {path} cannot be read ({type(error).__name__}: {error}); "
                        f"{_restore_hint()}") from None
    if not lines:
        raise DataError(f"the data file {path} is empty; {_restore_hint()}")
    if tuple(lines[0]) != header:
        got = lines[0]
        where = next((i for i, (a, b) in enumerate(zip(got, header)) if a != b), min(len(got), len(header)))
        wanted = header[where] if where < len(header) else "nothing"
        found = repr(got[where]) if where < len(got) else "nothing"
        raise DataError(f"{path}, line 1 (the header), column {where + 1}: expected {wanted!r}, found {found} "
                        f"({len(got)} columns where {len(header)} are expected); {_restore_hint()}")
    body = lines[1:]
    for number, line in enumerate(body, start=2):
        if len(line) != len(header):
            raise DataError(f"{path}, line {number}: {len(line)} columns where {len(header)} are expected; "
                            f"{_restore_hint()}")
    if len(body) != rows:
        raise DataError(f"{path} has {len(body)} data rows where {rows} are expected (is it truncated?); "
                        f"{_restore_hint()}")
    return body


def _bad(path: Path, line: int, column: str, value: str, wanted: str) -> DataError:
    return DataError(f"{path}, line {line}, column {column!r}: {value!r} is not {wanted}; {_restore_hint()}")


@functools.lru_cache(maxsize=None)
def _breast_cancer(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    header = ("diagnosis", *CANCER_FEATURES)
    features, labels = [], []
    for line, row in enumerate(_read_rows(path, header, _CANCER_ROWS), start=2):
        if row[0] not in ("M", "B"):
            raise _bad(path, line, "diagnosis", row[0], "M (malignant) or B (benign)")
        labels.append(1.0 if row[0] == "M" else 0.0)
        values = []
        for name, text in zip(CANCER_FEATURES, row[1:]):
            try:
                value = float(text)
            except ValueError:
                raise _bad(path, line, name, text, "a number") from None
            if not math.isfinite(value) or value < 0:
                raise _bad(path, line, name, text, "a finite, non-negative number")
            values.append(value)
        features.append(values)
    return torch.tensor(features, dtype=torch.float32), torch.tensor(labels, dtype=torch.float32)


@functools.lru_cache(maxsize=None)
def _digits(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    header = (*DIGIT_PIXELS, "digit")
    pixels, digits = [], []
    for line, row in enumerate(_read_rows(path, header, _DIGITS_ROWS), start=2):
        values = []
        for name, text in zip(header, row):
            top = 9 if name == "digit" else 16
            if not (text.isascii() and text.isdigit()) or int(text) > top:
                raise _bad(path, line, name, text, f"a whole number from 0 to {top}")
            values.append(int(text))
        pixels.append(values[:-1])
        digits.append(values[-1])
    return torch.tensor(pixels, dtype=torch.float32), torch.tensor(digits, dtype=torch.int64)


def breast_cancer(folder: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The Wisconsin diagnostic breast cancer data: ``(features, labels)``.

    features: float32 ``[569, 30]``, in the order of :data:`CANCER_FEATURES` (the mean,
    standard error and worst value of ten measurements of the cell nuclei).
    labels: float32 ``[569]``, 1.0 for malignant and 0.0 for benign.
    ``folder`` overrides :func:`data_dir`. Raises :class:`DataError` when the file is missing
    or malformed.
    """
    features, labels = _breast_cancer(Path(folder or data_dir()) / "breast_cancer.csv")
    return features.clone(), labels.clone()


def digits(folder: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8 x 8 handwritten digits: ``(pixels, digits)``.

    pixels: float32 ``[1797, 64]``, counts from 0 to 16, row by row (:data:`DIGIT_PIXELS`);
    ``pixels[i].view(8, 8)`` is the image. digits: int64 ``[1797]``, from 0 to 9.
    ``folder`` overrides :func:`data_dir`. Raises :class:`DataError` when the file is missing
    or malformed.
    """
    pixels, labels = _digits(Path(folder or data_dir()) / "digits.csv")
    return pixels.clone(), labels.clone()


def digit_properties(digits: torch.Tensor) -> torch.Tensor:
    """Multi-label targets from digits: float32 ``[N, len(PROPERTIES)]``, column ``j`` is 1.0
    where the digit has property ``PROPERTIES[j]`` (even, at least 5, prime, zero, eight)."""
    if not isinstance(digits, torch.Tensor) or digits.dim() != 1 or digits.dtype.is_floating_point:
        raise TypeError("digit_properties takes a 1-D integer tensor of digits")
    if digits.numel() and (digits.min() < 0 or digits.max() > 9):
        raise ValueError("digits must lie between 0 and 9")
    columns = [torch.isin(digits, torch.tensor(sorted(_PROPERTY_DIGITS[p]), device=digits.device))
               for p in PROPERTIES]
    return torch.stack(columns, dim=1).to(torch.float32)


def stratified_split(groups: torch.Tensor, held_out: float = HELD_OUT,
                     seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices ``(train, held_out)``: within each value of ``groups`` (a class, a digit),
    a seeded shuffle and the last ``round(held_out * count)`` rows held out. Sorted."""
    generator = torch.Generator().manual_seed(seed)
    train, test = [], []
    for value in torch.unique(groups):
        rows = torch.nonzero(groups == value).flatten()
        rows = rows[torch.randperm(len(rows), generator=generator)]
        cut = len(rows) - round(held_out * len(rows))
        train.append(rows[:cut])
        test.append(rows[cut:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


@dataclass(frozen=True)
class Split:
    """Features and labels, split into a training part, a held-out (test) part and, when
    asked for, a validation part (``x_val`` / ``y_val``, else None).

    Every part is scaled with statistics of the training rows only; ``mean`` and ``scale``
    are those statistics (``x = (raw - mean) / scale``).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor
    features: tuple[str, ...]
    labels: tuple[str, ...]
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    def to(self, device) -> "Split":
        """The same split with its tensors on ``device``."""
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return Split(**moved)


def split_rows(groups: torch.Tensor,
               validation: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Row indices ``(train, test, val)`` of the course's splits, each stratified by ``groups``:
    the test rows of :func:`stratified_split`; with ``validation``, a quarter of the other rows
    (:data:`VALIDATION`, seed :data:`VALIDATION_SEED`) as ``val``, else ``val`` is None. Sorted."""
    train, test = stratified_split(groups)
    if not validation:
        return train, test, None
    keep, val = stratified_split(groups[train], VALIDATION, VALIDATION_SEED)
    return train[keep], test, train[val]


def breast_cancer_split(folder: str | Path | None = None, validation: bool = False) -> Split:
    """The breast cancer data with a fifth of the tumours held out (stratified by diagnosis),
    each feature standardized with the training rows' mean and standard deviation. With
    ``validation``, another fifth is set aside as ``x_val`` / ``y_val`` (see :func:`split_rows`)."""
    features, labels = breast_cancer(folder)
    train, test, val = split_rows(labels, validation)
    mean, scale = features[train].mean(dim=0), features[train].std(dim=0)
    extra = () if val is None else ((features[val] - mean) / scale, labels[val])
    return Split((features[train] - mean) / scale, labels[train], (features[test] - mean) / scale, labels[test],
                 mean, scale, CANCER_FEATURES, ("malignant",), *extra)


def digits_split(folder: str | Path | None = None, validation: bool = False) -> Split:
    """The digits with a fifth of them held out (stratified by digit), pixels scaled to [0, 1]
    (divided by 16; a standard deviation would be 0 for the pixels that are always blank),
    and the labels of :func:`digit_properties`. With ``validation``, another fifth is set aside
    as ``x_val`` / ``y_val`` (see :func:`split_rows`)."""
    pixels, labels = digits(folder)
    train, test, val = split_rows(labels, validation)
    targets = digit_properties(labels)
    mean, scale = torch.zeros(pixels.shape[1]), torch.full((pixels.shape[1],), 16.0)
    extra = () if val is None else (pixels[val] / 16, targets[val])
    return Split(pixels[train] / 16, targets[train], pixels[test] / 16, targets[test], mean, scale,
                 DIGIT_PIXELS, PROPERTIES, *extra)
