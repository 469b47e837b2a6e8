"""The autograding secret (grader._battery.salt): without it every random input is what it always
was; with it, every input the judge draws at random is one nobody can draw at home, so torch's
answers recorded by a local grader.check and replayed fail, and nothing else changes."""

import pytest
import torch

import grader
import implementations as impl
import mutants as m
import replay
from grader._battery import capstone, exercises, judge, references, salt
from grader._battery.cases import BCE, BCE_WITH_LOGITS, CHECKABLE, LEGACY, battery

SECRET = "a secret of the course"


@pytest.fixture(autouse=True)
def no_secret_from_the_environment(monkeypatch):
    monkeypatch.delenv(salt.VARIABLE, raising=False)
    with salt.using(None):
        yield


def _tensors(args: dict) -> dict:
    return {k: v for k, v in args.items() if isinstance(v, torch.Tensor)}


def _same(first: dict, second: dict) -> bool:
    first, second = _tensors(first), _tensors(second)
    return first.keys() == second.keys() and all(
        first[k].shape == second[k].shape and torch.equal(first[k].nan_to_num(7.0), second[k].nan_to_num(7.0))
        for k in first)


def _drawn_at_random(case) -> bool:
    """Whether the case's inputs change with the secret."""
    with salt.using(SECRET):
        salted = case.build(salt.generator(case.seed))
    return not _same(case.build(torch.Generator().manual_seed(case.seed)), salted)


def test_without_a_secret_every_seed_and_every_input_is_what_it_was():
    assert salt.secret() is None and salt.tag() == ""
    for number in (0, 3, 57, 2**32 - 1):
        assert salt.seed(number) == number
    for function in CHECKABLE:
        for case in battery(function):
            before = case.build(torch.Generator().manual_seed(case.seed))  # as the judge drew them before
            before = {k: v.to(case.dtype_of(k)) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                      for k, v in before.items()}
            assert _same(references._prepare(case, "cpu"), before), case.name


def test_a_secret_changes_every_seed_the_same_way_each_time():
    with salt.using(SECRET):
        seeds = [salt.seed(n) for n in range(50)]
        assert seeds == [salt.seed(n) for n in range(50)]  # grading again draws the same inputs
        assert salt.tag() and SECRET not in salt.tag()
    assert all(s != n and 0 <= s < 2**63 for n, s in enumerate(seeds))
    assert len(set(seeds)) == 50
    with salt.using(SECRET + "!"):
        assert all(salt.seed(n) != s for n, s in enumerate(seeds))


def test_the_environment_gives_the_secret_where_nobody_set_one(monkeypatch):
    monkeypatch.setenv(salt.VARIABLE, SECRET)
    salt.forget()
    assert salt.secret() == SECRET
    with salt.using(None):  # the judge's own word wins (the engine's workers are told it on stdin)
        assert salt.secret() is None and salt.seed(5) == 5
    monkeypatch.setenv(salt.VARIABLE, "")
    assert salt.secret() is None


def test_the_judges_random_inputs_and_upstream_gradients_change_with_the_secret_its_literal_ones_do_not():
    case = next(c for c in battery(BCE) if c.name == "gradient with respect to input and target")
    literal = next(c for c in battery(BCE) if c.name.startswith("probabilities exactly 0 and 1, reduction"))
    plain = judge.torch_reference(case, "cpu", judge.reference(BCE), "test")
    with salt.using(SECRET):
        salted = judge.torch_reference(case, "cpu", judge.reference(BCE), "test")
        assert judge.torch_reference(case, "cpu", judge.reference(BCE), "test") is salted  # kept, by secret
        assert _same(references._prepare(literal, "cpu"), literal.build(None))
    assert judge.torch_reference(case, "cpu", judge.reference(BCE), "test") is plain
    assert not _same(plain.base, salted.base)
    assert not torch.equal(plain.upstream, salted.upstream)


def test_every_case_of_the_battery_drawn_at_random_is_drawn_with_the_secret():
    random = {f: {c.name for c in battery(f) if _drawn_at_random(c)} for f in (BCE, BCE_WITH_LOGITS)}
    assert len(random[BCE]) >= 60 and len(random[BCE_WITH_LOGITS]) >= 70
    literal = {c.name for c in battery(BCE) if c.name not in random[BCE]}
    assert any(name.startswith("article ") for name in literal)
    assert any(name.startswith("probabilities exactly 0 and 1") for name in literal)


@pytest.fixture(scope="module")
def recorded():
    """torch's answers to a whole local grader.check of binary_cross_entropy, as a student records them."""
    return replay.record()


def test_a_replayed_local_check_passes_without_the_secret_and_fails_every_random_case_with_it(recorded):
    fn = replay.replayer(recorded)
    report = grader.check(fn, BCE, devices=["cpu"])
    assert report.passed, str(report)  # the attack works where the inputs are public
    with salt.using(SECRET):
        report = grader.check(fn, BCE, devices=["cpu"])
    assert not report.passed
    ran = [c for c in battery(BCE) if not c.keywords & set(LEGACY)]  # its signature takes no legacy argument
    random = {c.name for c in ran if _drawn_at_random(c) and not c.large}  # the large: replay.SOURCE's formula
    assert {f.case for f in report.failures} == random  # every random case misses; every literal one passes
    assert {"shapes", "layouts", "reductions", "weight", "dtypes", "gradients", "errors"} <= \
        set(report.failed_categories())


@pytest.mark.parametrize("fn, function", [(impl.bce_log1p, BCE), (impl.logits_stable, BCE_WITH_LOGITS),
                                          (impl.BCELossModule, BCE)])
def test_a_correct_implementation_passes_with_a_secret(fn, function):
    with salt.using(SECRET):
        report = grader.check(fn, function)
    assert report.passed, str(report)


def test_the_exercises_and_the_capstone_draw_their_random_cases_with_the_secret():
    exercises._load()
    random = {"03-logistic-gradient", "03-logistic-gradient-edges", "05-pos-weight-gradient",
              "05-pos-weight-gradient-hard"}
    assert random <= set(exercises.REFERENCES)
    for key, ref in exercises.REFERENCES.items():
        plain = ref.cases()
        with salt.using(SECRET):
            salted = ref.cases()
            assert [name for name, _ in salted] == [name for name, _ in plain]
            assert exercises.run_matches(ref.reference, key).passed, key
        changed = [name for (name, a), (_, b) in zip(plain, salted) if not _same(a, b)]
        assert bool(changed) == (key in random), key
    with salt.using(SECRET):
        salted = {g: capstone.pos_weight_cases(g) for g in ("data", "edge")}
        thresholds = capstone.threshold_cases("edge")
    for group, cases in salted.items():
        changed = {name for (name, a), (_, b) in zip(capstone.pos_weight_cases(group), cases) if not torch.equal(a, b)}
        assert changed == ({name for name, _ in cases} - {"an empty batch, shape [0, 4]"} if group == "edge" else set())
    assert all(not _same(a, b) for (_, a), (_, b) in zip(capstone.threshold_cases("edge"), thresholds))


def test_the_saturated_logits_of_notebook_03_are_large_whatever_the_draw():
    """Its edge cases say "logits from 40 (50) to several hundred in size": so they are, with any secret."""
    from grader._battery.items import n03

    for secret in (None, SECRET, "another", "and a third"):
        with salt.using(secret):
            cases = dict(n03._edge_cases())
        for name, least in (("logits from 40 to several hundred in size, where the sigmoid saturates (float32)", 40),
                            ("logits from 50 to several hundred in size (float64)", 50)):
            args = cases[name]
            assert (args["x"].double() @ args["w"].double()).abs().min() >= 0.999 * least, (secret, name)


#: Secrets whose draws found torch's own result the less exact: its float32 gradient with pos_weight near
#: sigmoid(x) = 1, and its float16 loss with logits where x is large and y near 1.
LESS_EXACT = [
    ("3d0ce85738c42956", BCE_WITH_LOGITS, "pos_weight of shape (3, 1, 1) for input (2, 3, 4, 4) (images: one weight "
                                          "per channel), reduction='none'", impl.logits_stable, 1),
    ("a908fefd0ce775e0", BCE_WITH_LOGITS, "float16, reduction='none'", m.logits_mutant("softplus"), 0),
]


@pytest.mark.parametrize("secret, function, name, fn, which", LESS_EXACT, ids=["gradient", "float16"])
def test_where_torchs_own_result_is_the_less_exact_one_a_result_closer_to_the_exact_one_passes(
        secret, function, name, fn, which):
    from grader._battery import observe
    from grader._battery.answers import compare
    from grader._battery.cases import TOLERANCES

    case = next(c for c in battery(function) if c.name == name)
    with salt.using(secret):
        judgement = judge.CaseJudgement(case, "cpu", judge.reference(function), 5.0, function, key="test")
        ref = judgement.reference
        theirs = ref.gradients[0] if which else ref.expected
        exact = ref.exact[1][0] if which else ref.exact[0]
        assert compare(theirs, exact, *TOLERANCES[case.dtype]) is not None  # torch's own is off by more than allowed
        judgement.judge(observe.answer(fn, dict(judgement.request())))
    assert judgement.failures == [], judgement.failures


def test_no_threshold_case_sits_where_rounding_decides_whatever_the_draw():
    """How many positives a recall asks for must not depend on how it is computed (exact fractions,
    float64, float32): with 10 positives, recall 0.9 asks for 10, 9 or 9. Some draws gave such counts."""
    for secret in (None, SECRET, "7f3a9c0e51d2b6a4", "another", "and a third"):
        with salt.using(secret):
            cases = capstone.threshold_cases("edge")
        for name, args in cases:
            for c in range(args["labels"].shape[1]):
                positives = int((args["labels"][:, c] > 0.5).sum())
                assert positives >= 1 and not capstone._rounding_decides(positives, args["recall"]), (secret, name, c)
        single = dict(cases)["a label with a single positive (column 1), shape [25, 2], recall 0.9"]["labels"]
        assert int(single[:, 1].sum()) == 1
