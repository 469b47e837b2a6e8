"""What the battery found, in words for students and as JSON for machines."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .cases import CATEGORIES, Case

_MAX_SHOWN = 30  # tensors with more elements are summarised, not printed


def describe_tensor(t: torch.Tensor) -> str:
    t = t.detach()
    if t.numel() <= _MAX_SHOWN:
        return repr(t)
    shape = tuple(t.shape)
    text = f"a {str(t.dtype).replace('torch.', '')} tensor of shape {shape}"
    if t.device.type != "cpu":
        text += f" on {t.device}"
    if t.is_floating_point():
        finite = t[t.isfinite()]
        if finite.numel():
            text += f", values from {finite.min().item():.4g} to {finite.max().item():.4g}"
        if t.isnan().any():
            text += f", {int(t.isnan().sum())} nan"
    return text


def describe_value(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, torch.Tensor):
        return describe_tensor(value)
    kind = type(value)
    module = kind.__module__
    name = kind.__name__ if module in ("builtins", None) else f"{module.split('.')[0]}.{kind.__name__}"
    if module.startswith("numpy"):
        return f"a NumPy {kind.__name__} ({_short(repr(value))})"
    article = "an" if name[0].lower() in "aeiou" else "a"
    return f"{article} {name} ({_short(repr(value))})"


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Failure:
    """One thing that went wrong on one case on one device."""

    category: str
    case: str
    device: str
    dtype: str
    message: str
    hint: str = ""
    inputs: dict[str, str] = field(default_factory=dict)
    expected: str | None = None
    actual: str | None = None
    difference: dict | None = None
    traceback: str = ""
    #: "not implemented" for a call that raised NotImplementedError (a blank exercise); "cause"
    #: for a result that is not a tensor, or of the wrong dtype, which explains what follows.
    kind: str = ""

    def explain(self, indent: str = "  ") -> str:
        where = f" ({self.device}, {self.dtype})" if self.device != "-" else ""
        lines = [f"{self.category}: {self.case}{where}", f"{indent}{self.message}"]
        if self.traceback:
            lines += [f"{indent}  {line}" for line in self.traceback.splitlines()]
        for key, text in self.inputs.items():
            lines.append(_field(indent, f"{key} =", text))
        if self.expected is not None:
            lines.append(_field(indent, "torch returned", self.expected))
            lines.append(_field(indent, "yours returned", self.actual or ""))
        d = self.difference
        if d and "index" in d:
            where = f" at index {d['index']}" if d["index"] else ""
            lines.append(f"{indent}largest difference{where}: torch {d['expected']!r}, yours "
                         f"{d['actual']!r} ({d['mismatched']} of {d['total']} elements differ)")
            lines.append(f"{indent}tolerance: |yours - torch| <= {d['atol']:g} + {d['rtol']:g} * |torch|")
        elif d:
            lines.append(f"{indent}{d['reason']}")
        if self.hint:
            lines.append(f"{indent}Hint: {self.hint}")
        return "\n".join(lines)


def _field(indent: str, label: str, text: str) -> str:
    pad = indent + " " * (len(label) + 1)
    body = text.replace("\n", "\n" + pad)
    return f"{indent}{label} {body}"


@dataclass
class Sweep:
    """The student's function and torch's over the range that matters, for a figure.

    ``x`` holds the points (probabilities ``p`` or logits ``z``); each series is
    ``{"label": "y = 0", "torch": [...], "yours": [...]}``, with None in ``yours`` where the
    student's function gave no number; ``rtol`` and ``atol`` are the battery's tolerance."""

    title: str
    x_label: str
    y_label: str
    x: list[float]
    series: list[dict]
    rtol: float
    atol: float


@dataclass
class CategoryResult:
    name: str
    description: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    checked: bool = False
    failures: list[Failure] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.failures:
            return "failed"
        return "passed" if self.checked else "skipped"


class Report:
    """The verdict of the battery on one function.

    ``report.passed`` is True when no case failed; ``str(report)`` is the text
    a student reads; ``report.to_dict()`` is the same as data.
    """

    def __init__(self, function: str, reference: str, torch_version: str, categories: list[str]):
        self.function = function
        self.reference = reference
        self.torch_version = torch_version
        self.categories = {c: CategoryResult(c, CATEGORIES[c]) for c in categories}
        self.failures: list[Failure] = []
        self.devices: dict[str, str | None] = {}
        self.skipped_cases: list[tuple[str, str, str]] = []
        self.notes: list[str] = []
        self.seconds = 0.0
        #: The student's function against torch's over a range, when values differed (live checks).
        self.sweep: Sweep | None = None
        self._output: dict[str, list[str]] = {"stdout": [], "stderr": [], "warnings": []}

    # --- building -------------------------------------------------------
    def record(self, checked: set[str], failures: list[Failure], call=None) -> None:
        """One case (or one check) on one device: the categories it checked,
        what failed, and what the student's call printed."""
        failed = {f.category for f in failures}
        for category in set(checked) | failed:
            result = self.categories.get(category)
            if result is None:
                continue
            result.checked = True
            if category in failed:
                result.failed += 1
            else:
                result.passed += 1
        for failure in failures:
            result = self.categories.get(failure.category)
            if result is not None:
                result.failures.append(failure)
                self.failures.append(failure)
        if call is not None:
            for stream in ("stdout", "stderr"):
                if getattr(call, stream).strip():
                    self._output[stream].append(getattr(call, stream))
            self._output["warnings"].extend(call.warnings)

    def skip_device(self, device: str, reason: str) -> None:
        self.devices[device] = reason

    def ran_device(self, device: str) -> None:
        self.devices[device] = None

    def skip_case(self, case: Case, device: str, reason: str) -> None:
        if case.category in self.categories:
            self.categories[case.category].skipped += 1
        self.skipped_cases.append((case.name, case.category, device, reason))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def note_output(self, stream: str, text: str) -> None:
        self._output[stream].append(text)

    # --- reading --------------------------------------------------------
    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def ran(self) -> bool:
        return any(reason is None for reason in self.devices.values())

    def first_failure(self) -> Failure | None:
        """The failure to explain first: a result that is not a tensor or has the wrong dtype
        (the cause of what else fails), else the first failure in report order."""
        causes = [f for f in self.failures if f.kind == "cause"]
        if causes:
            return causes[0]
        failed = self.failed_categories()
        return self.categories[failed[0]].failures[0] if failed else None

    @property
    def blank(self) -> bool:
        """Whether the function is not written yet: it raised NotImplementedError, and nothing
        else failed but its signature (a stub's parameters) and the calls that did not bind to it."""
        return any(f.kind == "not implemented" for f in self.failures) and all(
            f.kind == "not implemented" or f.category == "signature"
            or "your function raised TypeError" in f.message for f in self.failures)

    def failed_categories(self) -> list[str]:
        return [c.name for c in self.categories.values() if c.status == "failed"]

    def _output_notes(self) -> list[str]:
        notes = []
        labels = {"stdout": "printed", "stderr": "wrote to stderr", "warnings": "raised warnings"}
        for stream, texts in self._output.items():
            if texts:
                first = next((line for t in texts for line in t.splitlines() if line.strip()), "")
                notes.append(f"Your function {labels[stream]} during the checks ({len(texts)} times; "
                             f"first: {_short(first)}). The output was kept out of your notebook.")
        return notes

    def summary(self) -> str:
        """One line: the verdict."""
        if not self.categories:
            return f"{self.function}: not checked here"
        if self.blank:
            return f"{self.function}: not written yet"
        failed = self.failed_categories()
        if failed:
            return f"{self.function}: FAILED in {', '.join(failed)}"
        if not self.ran:
            return f"{self.function}: nothing was checked (no device to run on)"
        return f"{self.function}: all checks passed"

    def __str__(self) -> str:
        if not self.categories:  # a check that did not run here: what it says instead
            return "\n".join([self.summary(), *self.notes])
        if self.blank:
            return (f"{self.function} is not written yet: replace `raise NotImplementedError()` with your "
                    "own code, then run this check again.")
        lines = [f"{self.function} compared with {self.reference} (torch {self.torch_version})"]
        ran = [d for d, r in self.devices.items() if r is None]
        skipped = [f"{d} ({r})" for d, r in self.devices.items() if r is not None]
        if self.devices:
            lines.append("devices: " + (", ".join(ran) or "none")
                         + (f"; skipped: {', '.join(skipped)}" if skipped else ""))
        lines.append("")
        width = max(len(c) for c in self.categories)
        for result in self.categories.values():
            status = {"passed": "passed ", "failed": "FAILED ", "skipped": "skipped"}[result.status]
            if result.status == "failed":
                total = result.passed + result.failed
                detail = (f"{result.failed} of {total} cases: {result.failures[0].case}"
                          if total > 1 else result.failures[0].message)
            elif result.status == "passed" and result.passed > 1:
                detail = f"{result.passed} cases" + (f", {result.skipped} skipped" if result.skipped else "")
            else:
                detail = result.description
                if result.status == "skipped" and result.skipped:
                    detail = f"{result.skipped} cases skipped: {self._skip_reason(result.name)}"
            lines.append(f"  {status}  {result.name.ljust(width)}  {_short(detail, 90)}")
        lines.append("")
        if self.failures:
            first = self.first_failure()
            lines.append("First failure, " + first.explain())
            others = [c for c in self.failed_categories() if c != first.category]
            if others:
                lines.append("")
                lines.append("Also failing:")
                for name in others:
                    f = self.categories[name].failures[0]
                    lines.append(f"  {name}: {f.case}: {_short(f.message, 120)}")
            lines.append("")
        lines.extend(self.notes + self._output_notes())
        lines.append(self.summary())
        return "\n".join(lines)

    def _skip_reason(self, category: str) -> str:
        return next((f"{reason} ({device})" for _, c, device, reason in self.skipped_cases
                     if c == category), "")

    def __repr__(self) -> str:
        return f"<Report {self.summary()}>"

    def _repr_html_(self) -> str:  # JupyterLab shows the report as HTML
        from .html import render

        return render(self)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython shows the text itself
        printer.text(str(self))

    def to_dict(self) -> dict:
        return {
            "function": self.function,
            "reference": self.reference,
            "torch_version": self.torch_version,
            "passed": self.passed,
            "blank": self.blank,
            "devices": {d: ({"ran": True} if r is None else {"ran": False, "reason": r})
                        for d, r in self.devices.items()},
            "categories": [
                {"name": c.name, "description": c.description, "status": c.status,
                 "passed": c.passed, "failed": c.failed, "skipped": c.skipped}
                for c in self.categories.values()
            ],
            "first_failure": asdict(self.first_failure()) if self.failures else None,
            "failures": [asdict(f) for f in self.failures],
            "skipped_cases": [{"case": n, "category": c, "device": d, "reason": r}
                              for n, c, d, r in self.skipped_cases],
            "notes": self.notes + self._output_notes(),
            "seconds": round(self.seconds, 4),
        }
