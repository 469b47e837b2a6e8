"""Each newer case of the battery earns its place: for each, a wrong implementation (a
mutant of a correct one, tests/mutants.py) that the case catches and that every other
case lets through. A mutant's failures must be exactly the cases named for it."""

import pytest

import grader
import implementations as impl
import mutants as m
from grader._battery.cases import BCE, BCE_WITH_LOGITS, GRAD_BCE, battery

LARGER = "for an input of shape (3, 4) (it broadcasts into a larger shape)"
SAME_RANK = "for an input of shape (1, 4) (it broadcasts into a larger shape of as many dimensions)"
SUBNORMAL = "subnormal probabilities (1e-40, 1e-39), whose logs torch does not clamp"
FLOAT64_TINY = "float64 probabilities of 1e-40 and 1e-300"
LARGE_MEAN = "a mean over more than 2^19 elements (their number drawn for each run)"
HALF_MEAN = "float16 mean of more than 2^19 small losses (each divided by their number is below float16's smallest number)"
MODULE_CALLS = "a module built once, called several times"
FUNCTION_CALLS = "the same tensors, changed in place between two calls"
LEGACY_WINS = {"the legacy size_average=False, reduction='none' (the legacy argument wins)",
               "the legacy reduce=False, reduction='sum' (the legacy argument wins)"}

#: (mutant, function, the cases that must fail, and only those)
MUTANTS = [
    (m.bce_mutant("view"), BCE, {
        "a transposed input and target of shape (4, 5)", "a transposed input and target, reduction='none'",
        "a sliced input (every other column) of shape (4, 5)",
        "an expanded target (one row repeated) of shape (4, 5)"}),
    (m.bce_mutant("weight view"), BCE, {"a transposed weight of shape (4, 5), reduction='sum'"}),
    (m.bce_mutant("target range > 1 only"), BCE, {"a target below 0", "a target that is nan",
                                                   "a target just below 0 (-1e-7)"}),
    (m.bce_mutant("range tolerance"), BCE, {
        "an input just above 1 (the float32 after 1)", "an input just below 0 (-1e-7)",
        "a target just above 1 (the float32 after 1)", "a target just below 0 (-1e-7)"}),
    (m.bce_mutant("target range misses nan"), BCE, {"a target that is nan"}),
    (m.bce_mutant("weight larger"), BCE, {f"a weight of shape (1, 3, 4) {LARGER}",
                                          f"a weight of shape (2, 3, 4) {LARGER}",
                                          f"a weight of shape (2, 4) {SAME_RANK}"}),
    (m.bce_mutant("weight rank"), BCE, {f"a weight of shape (2, 4) {SAME_RANK}"}),
    (m.bce_mutant("last dim only"), BCE, {
        "a target of shape (1, 4) for an input of shape (3, 4) (the two would broadcast)",
        "a target of shape (4,) for an input of shape (3, 4)"}),
    (m.bce_mutant("reduction lower"), BCE, {"reduction='MEAN'", "reduction='Mean'"}),
    (m.bce_mutant("reduction strip"), BCE, {"reduction='sum '"}),
    (m.bce_mutant("reduction falsy"), BCE, {"reduction=''", "reduction=None"}),
    (m.bce_mutant("weight promotes"), BCE, {"a float16 input with a float32 weight",
                                            "a float32 input with a float64 weight"}),
    (m.bce_mutant("weight dtype"), BCE, {
        "a float16 input with a float32 weight", "a float32 input with a float64 weight",
        "a float64 input with a float32 weight", f"a weight of shape (1, 3, 4) {LARGER}",
        f"a weight of shape (2, 3, 4) {LARGER}", f"a weight of shape (2, 4) {SAME_RANK}"}),
    (m.bce_mutant("sum over n"), BCE, {"float16 mean of 65536 confident mistakes (their sum is beyond float16's "
                                       "range)"}),
    (m.bce_mutant("nan_to_num"), BCE, {"probabilities below e^-100 (1e-45, 1e-44), whose logs torch clamps, averaged",
                                       f"{FLOAT64_TINY}, reduction='none'"}),
    (m.bce_mutant("subnormal as zero"), BCE, {f"{SUBNORMAL}, reduction='none'", f"{FLOAT64_TINY}, reduction='none'"}),
    (m.bce_legacy("legacy ignored"), BCE, {"the legacy reduce=False", "the legacy size_average=False",
                                           "the legacy size_average=False, reduce=False", *LEGACY_WINS}),
    (m.bce_legacy("legacy yields"), BCE, LEGACY_WINS),
    (m.bce_legacy("reduce sums"), BCE, {"the legacy reduce=True", "the legacy size_average=True, reduce=True"}),
    (m.bce_legacy("no elementwise_mean"), BCE, {"the legacy reduction='elementwise_mean'"}),
    (m.bce_reduction_before_weight, BCE, {"weight passed by position: f(input, target, weight)"}),
    (impl.BCELossPlainAttribute, BCE, {"the module keeps weight as buffers (register_buffer)", MODULE_CALLS}),
    (m.BCELossClonesWeight, BCE, {MODULE_CALLS}),
    (m.BCELossCachesResult, BCE, {MODULE_CALLS}),
    (m.BCELossKeepsFirstShape, BCE, {MODULE_CALLS}),
    (m.BCELossNotPersistent, BCE, {MODULE_CALLS}),
    (m.BCELossFixedReduction, BCE, {MODULE_CALLS}),
    (m.BCELossTorchAfterTheFirstCall, BCE, {MODULE_CALLS}),
    (m.BCEWithLogitsLossClonesPosWeight, BCE_WITH_LOGITS, {MODULE_CALLS}),
    (m.logits_pos_weight_by_id, BCE_WITH_LOGITS, {FUNCTION_CALLS}),
    (m.bce_remembers_last_call, BCE, {FUNCTION_CALLS}),
    (m.bce_once_differentiable, BCE, {"second derivatives: the gradient of the gradient (what a Hessian takes)"}),
    (m.logits_once_differentiable, BCE_WITH_LOGITS, {
        "second derivatives: the gradient of the gradient (what a Hessian takes)"}),
    (m.bce_mutant("chunked mean"), BCE, {LARGE_MEAN}),
    (m.logits_mutant("chunked mean"), BCE_WITH_LOGITS, {LARGE_MEAN}),
    (m.bce_mutant("divide first"), BCE, {HALF_MEAN}),
    (m.logits_mutant("divide first"), BCE_WITH_LOGITS, {HALF_MEAN}),
    (m.logits_mutant("view rows"), BCE_WITH_LOGITS, {
        "a channels-last image batch (2, 3, 4, 4) with pos_weight (3, 1, 1)"}),
    (m.logits_mutant("pos_weight larger"), BCE_WITH_LOGITS, {
        "a pos_weight of shape (2, 3, 4) for an input of shape (3, 4) (it broadcasts into a larger shape)",
        f"a pos_weight of shape (2, 1) {SAME_RANK}"}),
    (m.logits_mutant("pos_weight rank"), BCE_WITH_LOGITS, {f"a pos_weight of shape (2, 1) {SAME_RANK}"}),
    (m.logits_mutant("weight rank"), BCE_WITH_LOGITS, {f"a weight of shape (2, 4) {SAME_RANK}"}),
    (m.logits_mutant("softplus"), BCE_WITH_LOGITS, {"logits of +-inf, reduction='none'"}),
    (m.logits_mutant("zero weight masks"), BCE_WITH_LOGITS, {
        "a weight of 0 on a logit that is nan or inf, reduction='none'"}),
    (m.logits_mutant("pos_weight max form"), BCE_WITH_LOGITS, {
        "logits of exactly 0 with pos_weight, reduction='none'"}),
    (m.logits_mutant("target cast"), BCE_WITH_LOGITS, {"a float32 input with a float64 target (the result is float64)"}),
    (m.logits_mutant("pos_weight promotes"), BCE_WITH_LOGITS, {"a float32 input with a float64 pos_weight"}),
    (m.grad_without_floor, GRAD_BCE, {
        "probabilities exactly 0 and 1", "tiny probabilities (1e-30, 1e-20, 1e-10) and 1 - 6e-8",
        "probabilities below e^-100 (1e-45, 1e-44), whose logs torch clamps",
        "bfloat16 probabilities 0, 1, 6e-8 and 1e-4", SUBNORMAL, FLOAT64_TINY}),
    (m.grad_cancelling_floor, GRAD_BCE, {"probabilities near 0 and 1 (5e-5, 1e-4, 0.9999, 0.99995)"}),
]


def _failed_cases(fn, function) -> set[str]:
    return {f.case for f in grader.check(fn, function, devices=["cpu"]).failures}


@pytest.mark.parametrize("fn, function, cases", MUTANTS, ids=[f"{i}-{m[1]}" for i, m in enumerate(MUTANTS)])
def test_a_mutant_fails_exactly_its_cases(fn, function, cases):
    assert _failed_cases(fn, function) == cases


def test_soft_targets_catch_pos_weight_applied_only_where_the_target_is_1():
    failed = _failed_cases(m.logits_mutant("pos_weight where"), BCE_WITH_LOGITS)
    soft = {c.name for c in battery(BCE_WITH_LOGITS) if c.category == "pos_weight" and "soft targets" in c.name}
    assert len(soft) >= 8 and soft <= failed
    # hard 0/1 targets give the right values: only the gradient with respect to the target differs there
    # (the repeated calls pass pos_weight with soft targets too)
    assert all("pos_weight" in case or "gradient" in case or case == FUNCTION_CALLS for case in failed)


@pytest.mark.parametrize("fn, function", [(m.bce_shortcut_without_grad, BCE),
                                          (m.logits_shortcut_without_grad, BCE_WITH_LOGITS)])
def test_a_shortcut_taken_only_under_no_grad_is_caught(fn, function):
    """The judge calls each case once more under torch.no_grad(): a function that computes the loss
    another way there (as in evaluation) fails where that way differs from torch's, and only there."""
    failures = grader.check(fn, function, devices=["cpu"]).failures
    assert failures
    assert all("torch.no_grad()" in f.message for f in failures), [f.message for f in failures]


def test_the_large_means_sizes_are_drawn_just_above_2_19_and_are_no_multiple_of_1024():
    from grader._battery import families
    assert all((1 << 19) < n < 3 << 18 and n % 1024 for n in families.BEYOND)
    assert {c.large for c in battery(BCE) if c.name in (LARGE_MEAN, HALF_MEAN)} == {True}
    assert not any(c.name in (LARGE_MEAN, HALF_MEAN) for c in battery(GRAD_BCE))


@pytest.mark.parametrize("fn, function", [(m.bce_mutant(), BCE), (m.bce_legacy(), BCE),
                                          (m.logits_mutant(), BCE_WITH_LOGITS), (m.grad_with_floor, GRAD_BCE),
                                          (impl.BCELossModule, BCE), (impl.logits_stable, BCE_WITH_LOGITS)])
def test_the_mutants_own_correct_form_passes_everything(fn, function):
    report = grader.check(fn, function)
    assert report.passed, str(report)


def test_every_newer_case_catches_a_mutant():
    """The cases added for the checker's thoroughness: the layouts, the legacy arguments, the
    errors of targets, reductions and weights, dtype promotion and float16 sums, the floor of
    the hand-derived gradient, keeping weight as a buffer, and the edges found by reviewing the
    battery (ranges without tolerance, weights of the input's rank that broadcast larger,
    subnormal and float64 probabilities, infinite logits, a zero weight on nan, pos_weight at 0)."""
    caught = set().union(*(cases for _, _, cases in MUTANTS))
    newer = {c.name for f in (BCE, BCE_WITH_LOGITS) for c in battery(f) if c.category == "layouts"
             or "legacy" in c.name or "by position" in c.name or "larger shape" in c.name
             or c.name.startswith(("a target below", "a target that is nan", "reduction='M", "reduction=''",
                                   "reduction=None", "reduction='sum '"))
             or " input with a " in c.name or "probabilities below e^-100" in c.name
             or "confident mistakes" in c.name or " just " in c.name or c.name.startswith((SUBNORMAL, FLOAT64_TINY))
             or "+-inf" in c.name or "exactly 0 with pos_weight" in c.name or "weight of 0" in c.name
             or "2^19" in c.name or c.second_order}
    assert len(newer) >= 41
    missing = newer - caught
    assert not missing, missing
