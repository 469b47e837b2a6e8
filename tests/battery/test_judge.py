"""The judge on its own: it chooses the inputs, computes torch's results and decides, from
answers that may be forged, missing, malformed or huge. Whatever an answer holds, the
verdict is the live battery's for a real function, and never a pass for anything else."""

import json

import pytest
import torch

from grader._battery import checks, observe, wire
from grader._battery.cases import BCE, BCE_WITH_LOGITS, GRADIENTS
from grader._battery.judge import battery

from implementations import CORRECT_BCE, CORRECT_LOGITS, MISTAKES, BCELossModule


def over_the_wire(subject):
    """An ``ask`` that answers as a notebook's process does: through JSON text."""
    def ask(request):
        request = wire.loads(wire.dumps(request))
        return wire.loads(wire.dumps(observe.answer(subject, request)))

    return ask


IMPLEMENTATIONS = ([(fn, BCE) for fn in CORRECT_BCE] + [(fn, BCE_WITH_LOGITS) for fn in CORRECT_LOGITS]
                   + [(BCELossModule, BCE)] + [(fn, function) for fn, function, _ in MISTAKES])


@pytest.mark.parametrize("fn, function", IMPLEMENTATIONS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_judging_over_the_wire_agrees_with_the_live_battery(fn, function):
    live = battery(checks.local(fn), function, devices=["cpu"])
    remote = battery(over_the_wire(fn), function, devices=["cpu"])
    assert remote.failed_categories() == live.failed_categories()
    assert [(f.category, f.case) for f in remote.failures] == [(f.category, f.case) for f in live.failures]


def test_a_gradient_is_judged_over_the_wire():
    def binary_cross_entropy_grad(input, target):
        return (input - target) / torch.clamp(input * (1 - input), min=1e-12) / input.numel()

    def wrong_grad(input, target):  # forgets the mean's 1/N
        return (input - target) / torch.clamp(input * (1 - input), min=1e-12)

    function = next(g for g in GRADIENTS if g.startswith("binary_cross_entropy_grad"))
    for fn, passes in ((binary_cross_entropy_grad, True), (wrong_grad, False)):
        assert battery(over_the_wire(fn), function, devices=["cpu"]).passed is passes


def tampered(mangle, fn=CORRECT_BCE[0]):
    """A correct function's answers, changed by ``mangle(request, answer)`` on their way back."""
    honest = checks.local(fn)

    def ask(request):
        return mangle(request, honest(request))

    return ask


def first_value_only(change):
    """Apply ``change`` to the first answer that carries a value tensor."""
    done = []

    def mangle(request, answer):
        if not done and isinstance(answer, dict) and isinstance(answer.get("value"), torch.Tensor) \
                and not request.get("count"):
            done.append(True)
            return change(answer)
        return answer

    return mangle


def judged(ask, function=BCE):
    return checks.decide("assert_passes", {"devices": ["cpu"]}, function, ask)


def test_an_honest_answer_passes():
    assert judged(checks.local(CORRECT_BCE[0])) == []


@pytest.mark.parametrize("change", [
    lambda a: {**a, "value": a["value"] + 1},                        # a forged value
    lambda a: {**a, "value": a["value"].double()},                   # the wrong dtype
    lambda a: {**a, "value": a["value"].reshape(-1)[:0]},            # the wrong shape
    lambda a: {**a, "value": torch.full((5000, 64), 0.5)},           # huge, and the wrong shape
    lambda a: {**a, "value": "tensor(0.6931)"},                       # a string, not a tensor
    lambda a: {**a, "value": None},
    lambda a: {k: v for k, v in a.items() if k != "value"},          # missing
    lambda a: {"refused": "the process stopped answering"},
    lambda a: "not a record",
    lambda a: None,
    lambda a: {**a, "error": "not a record"},
    lambda a: {**a, "forbidden": ["aten::binary_cross_entropy"]},   # it says it called torch's loss
    lambda a: {**a, "value device": "cuda:7"},
    lambda a: {**a, "changed": ["input"]},
], ids=["forged", "dtype", "shape", "huge", "string", "none", "missing", "refused", "text", "null",
        "error-text", "forbidden", "device", "changed"])
def test_a_mangled_answer_never_passes_and_never_crashes(change):
    problems = judged(tampered(first_value_only(change)))
    assert problems and isinstance(problems[0], str)


@pytest.mark.parametrize("describe", [
    {"callable": False, "shown": "None"},
    "garbage",
    {"callable": True, "name": BCE, "parameters": [{"name": "input", "kind": "positional"}]},
    {"callable": True, "name": BCE, "parameters": [{"name": "input", "kind": 1}]},
])
def test_a_mangled_description_never_passes(describe):
    honest = checks.local(CORRECT_BCE[0])

    def ask(request):
        return describe if request["op"] == "describe" else honest(request)

    assert judged(ask)


def test_a_process_that_answers_nothing_fails_every_case():
    report = battery(lambda request: {"refused": "gone"}, BCE, devices=["cpu"])
    assert not report.passed
    assert all("no usable" in f.message or "should be a function" in f.message or "not run" in f.message
               or "could not check" in f.message or "no usable" in f.message for f in report.failures)


def test_an_answer_for_another_function_does_not_pass():
    """Answers are compared with torch's results for the inputs the judge chose: the easier
    with-logits loss's answers do not pass a check of binary_cross_entropy."""
    logits = CORRECT_LOGITS[0]
    assert judged(checks.local(logits), BCE)


def test_the_judge_chooses_the_inputs_and_computes_torchs_results_itself():
    """Whatever the answers, the requests hold only inputs: never torch's results."""
    seen = []

    def ask(request):
        seen.append(request)
        return checks.local(CORRECT_BCE[0])(request)

    assert judged(ask) == []
    calls = [r for r in seen if r["op"] == "call"]
    assert calls and all(set(r["args"]) <= {"input", "target", "weight", "pos_weight", "reduction"} for r in calls)
    assert all(set(r) <= {"op", "device", "time_limit", "args", "grad", "upstream", "count", "layout", "positional",
                          "without grad", "second"} for r in calls)
    # several calls on shared tensors: inputs, their names, and what to do between the calls
    sequences = [r for r in seen if r["op"] == "sequence"]
    assert sequences and all(set(r) == {"op", "time_limit", "tensors", "build", "steps"} for r in sequences)
    # what the layout and positional fields hold is names, never values
    assert all(all(isinstance(v, str) for v in r.get("layout", {}).values()) for r in calls)
    assert all(all(isinstance(v, str) for v in r.get("positional", [])) for r in calls)


def test_hiding_a_call_to_torch_is_not_enough():
    """An answer may hide that it called torch's loss; its values must still be right, and
    a wrong function whose process claims a clean trace still fails."""
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        return torch.nn.functional.binary_cross_entropy(input, target, weight=weight, reduction=reduction)

    assert "own work" in battery(checks.local(binary_cross_entropy), BCE, devices=["cpu"]).failed_categories()
    wrong = MISTAKES[0][0]
    clean = tampered(lambda request, answer: {**answer, "forbidden": []} if isinstance(answer, dict) else answer,
                     fn=wrong)
    assert judged(clean, MISTAKES[0][1])


@pytest.mark.parametrize("message", [
    b"not json",
    b'{"tensor": "object", "shape": [1], "data": ""}',
    b'{"tensor": "float32", "shape": [-1], "data": ""}',
    b'{"tensor": "float32", "shape": [1000000000], "data": ""}',
    b'{"tensor": "float32", "shape": [2], "data": "!!not base64!!"}',
    b'{"tensor": "float32", "shape": [2], "data": "AAAA"}',
    b"[" * 100000 + b"]" * 100000,
    b"[" * (wire.MAX_DEPTH + 2) + b"1" + b"]" * (wire.MAX_DEPTH + 2),
    b'{"a": ' * (wire.MAX_DEPTH + 2) + b"null" + b"}" * (wire.MAX_DEPTH + 2),
])
def test_malformed_messages_are_refused_as_unreadable(message):
    with pytest.raises(wire.Unreadable):
        wire.loads(message)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
                                   torch.bool])
def test_tensors_survive_the_round_trip(dtype):
    t = (torch.randn(3, 4, generator=torch.Generator().manual_seed(0)) * 100).to(dtype)
    back = wire.loads(wire.dumps({"t": t}))["t"]
    assert back.dtype == dtype and torch.equal(back, t)


def test_a_described_signature_is_judged_like_the_real_one():
    def binary_cross_entropy(input, target, weight=None, reduction="sum"):  # the wrong default
        return CORRECT_BCE[0](input, target, weight=weight, reduction=reduction)

    described = json.loads(json.dumps(observe.describe(binary_cross_entropy)))
    report = battery(lambda r: described if r["op"] == "describe" else checks.local(binary_cross_entropy)(r),
                     BCE, devices=["cpu"])
    assert "signature" in report.failed_categories()
    assert "the default of reduction should be 'mean'" in str(report)


def test_where_the_autograder_judges_the_checks_run_nothing(monkeypatch):
    """In a notebook's process being autograded, the judge runs the test cells' checks from
    outside: the student's function is not called there, and a check cell says why."""
    import grader

    called = []

    def binary_cross_entropy(input, target):
        called.append(True)
        return torch.zeros(())

    monkeypatch.setenv(checks.JUDGED_ELSEWHERE, "1")
    assert grader.assert_passes(binary_cross_entropy) is None
    report = grader.check(binary_cross_entropy)
    assert "the autograder checks your function" in str(report) and called == []
    monkeypatch.setenv(checks.JUDGED_ELSEWHERE, "0")
    with pytest.raises(AssertionError):
        grader.assert_passes(binary_cross_entropy, categories=["article examples"] if "article examples"
                             in grader.CATEGORIES else ["seed examples"], devices=["cpu"])
    assert called


def test_torchs_references_are_computed_once_and_never_reach_the_students_code(monkeypatch):
    """The judge keeps torch's result for each case (its inputs are seeded, so it never changes);
    a function that changes its arguments in place changes only copies of them."""
    from grader._battery import references

    def vandal(input, target, weight=None, reduction="mean"):
        input.data.zero_()
        target.data.fill_(0.5)
        return CORRECT_BCE[0](input, target, weight, reduction)

    assert "inputs unchanged" in battery(checks.local(vandal), BCE, devices=["cpu"]).failed_categories()
    built = []
    monkeypatch.setattr(references, "_prepare", lambda *a: built.append(a) or pytest.fail("recomputed"))
    assert battery(checks.local(CORRECT_BCE[0]), BCE, devices=["cpu"]).passed
    assert built == []


@pytest.mark.parametrize("actual", [1.0, 65504.0, -float("inf"), float("nan")])
def test_only_torchs_own_infinity_matches_an_infinite_result(actual):
    """A float16 sum beyond 65504 is inf in torch: a finite answer, or the other infinity,
    differs from it whatever the tolerance."""
    from grader._battery.answers import compare

    expected = torch.tensor([2.0, float("inf")])
    assert compare(torch.tensor([2.0, float("inf")]), expected, 1e-2, 1e-3) is None
    found = compare(torch.tensor([2.0, actual]), expected, 1e-2, 1e-3)
    assert found is not None and found["index"] == (1,)


def test_every_request_of_the_battery_reads_back_the_same_from_its_framing():
    """What the engine sends a notebook's process (raw bytes after a JSON line) carries the
    same request as the JSON text of the wire, tensors bit for bit."""
    from grader._battery import judge
    from grader._battery.cases import CHECKABLE, battery as cases_of

    def same(a, b):
        if isinstance(a, torch.Tensor):
            return (isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
                    and wire.encode_tensor(a, raw=True)["data"] == wire.encode_tensor(b, raw=True)["data"])
        if isinstance(a, dict):
            return isinstance(b, dict) and set(a) == set(b) and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list):
            return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
        return a == b or (a != a and b != b)

    count = 0
    for function in CHECKABLE:
        torch_function = judge.reference(function, module=False)
        for case in cases_of(function):
            request = judge.CaseJudgement(case, "cpu", torch_function, 5.0, function).request()
            framed = wire.frame(request, subject="fn")
            line, _, rest = framed.partition(b"\n")
            left = memoryview(rest)

            def take(n):
                nonlocal left
                taken, left = bytes(left[:n]), left[n:]
                return taken

            got = wire.unframe(line, take)
            assert len(left) == 0
            assert same(got, wire.loads(wire.dumps({**request, "subject": "fn"}))), (function, case.name)
            count += 1
    assert count == sum(len(list(cases_of(f))) for f in CHECKABLE) > 0  # every case of every function


@pytest.mark.parametrize("line", [b"not json", b'{"x": {"tensor": "float32", "shape": [2], "raw": -1}}',
                                  b'{"x": {"tensor": "float32", "shape": [3], "raw": 8}}',
                                  b'{"x": {"tensor": "complex", "shape": [1], "raw": 8}}'])
def test_a_malformed_framing_is_unreadable(line):
    with pytest.raises(wire.Unreadable):
        wire.unframe(line, lambda n: b"\0" * n)


def test_values_match_exactly_where_they_are_close_by_the_tolerance():
    """compare's verdict on every pair of edge values (nan, infinities, zeros, subnormals,
    the largest float) and tolerances, zero ones included: a match exactly where both are nan,
    or equal, or finitely within atol + rtol * |expected|."""
    import itertools
    import math

    from grader._battery.answers import compare

    edges = [0.0, -0.0, 1.0, -1.0, 1e-8, 5e-324, 1e308, 1.7976931348623157e308, float("inf"), float("-inf"),
             float("nan"), 0.5, 0.5000001, 100.0, 100.001]
    for rtol, atol in [(1e-5, 1e-8), (0.0, 0.0), (1e-3, 0.0), (0.0, 1e-6)]:
        for a, e in itertools.product(edges, edges):
            close = (math.isnan(a) and math.isnan(e)) or a == e or (
                math.isfinite(a - e) and abs(a - e) <= atol + rtol * abs(e))
            got = compare(torch.tensor([a], dtype=torch.float64), torch.tensor([e], dtype=torch.float64), rtol, atol)
            assert (got is None) == close, (a, e, rtol, atol, got)


def test_what_the_judge_read_in_the_source_fails_own_work_with_its_place():
    """The engine adds to each answer what it read in the student's source
    (grader.instructor.scan.reach): an honest function whose source reaches torch's loss fails
    "own work", naming the place, and passes every other category."""
    from grader._battery.answers import IN_THE_SOURCE

    where = ["cell 5, line 3: F.binary_cross_entropy"]
    read = tampered(lambda request, answer: {**answer, IN_THE_SOURCE: where}
                    if isinstance(answer, dict) and request.get("op") == "call" else answer)
    report = battery(read, BCE, devices=["cpu"])
    assert report.failed_categories() == ["own work"]
    assert "cell 5, line 3: F.binary_cross_entropy" in str(report)
    assert battery(tampered(lambda request, answer: answer), BCE, devices=["cpu"]).passed


def test_torchs_result_in_a_failures_words_is_written_once_and_kept_with_its_answer(monkeypatch):
    """What a failure says torch gives is the same for every student: written on the first failure
    of the case, then read from torch's answer, where the student's own result is written each time."""
    from grader._battery import judge, references
    from implementations import bce_ignores_reduction

    first = battery(checks.local(bce_ignores_reduction), BCE, categories=["reductions"], devices=["cpu"])
    failed = [f for f in first.failures if f.expected]
    assert failed
    kept = {r.described.get("result") for r in references._REFERENCES.values()}
    assert {f.expected for f in failed} <= kept
    described = []
    monkeypatch.setattr(judge, "describe_tensor", lambda t: described.append(t) or "")
    again = battery(checks.local(bce_ignores_reduction), BCE, categories=["reductions"], devices=["cpu"])
    assert [f.expected for f in again.failures if f.expected] == [f.expected for f in failed]
    torchs = [r.expected for r in references._REFERENCES.values() if r.expected is not None]
    assert described and not any(t is e for t in described for e in torchs)  # the student's results only
