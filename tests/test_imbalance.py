"""The capstone (notebook 06): its data, the checks of its exercises and its explorer.

Every expected number is recomputed here: from the CSV files with the csv module,
from the digits' definitions, or with torch.
"""

import csv
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from grader import datasets, imbalance
from grader._battery import checks

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
IPYWIDGETS7 = ROOT / ".venv" / "ipywidgets7"


def read_csv(name):
    with (DATA / name).open(newline="") as file:
        header, *rows = list(csv.reader(file))
    return header, rows


# --- the data files and the loader ------------------------------------------------------------------

def test_breast_cancer_is_the_csv_file():
    header, rows = read_csv("breast_cancer.csv")
    features, labels = datasets.breast_cancer()
    assert header[0] == "diagnosis" and tuple(header[1:]) == datasets.CANCER_FEATURES
    assert features.shape == (len(rows), len(header) - 1) and labels.shape == (len(rows),)
    assert features.dtype == labels.dtype == torch.float32
    expected = torch.tensor([[float(v) for v in row[1:]] for row in rows], dtype=torch.float32)
    assert torch.equal(features, expected)
    assert torch.equal(labels, torch.tensor([1.0 if row[0] == "M" else 0.0 for row in rows]))
    assert int(labels.sum()) == sum(row[0] == "M" for row in rows) > 0
    assert {row[0] for row in rows} == {"M", "B"}


def test_digits_are_the_csv_file():
    header, rows = read_csv("digits.csv")
    pixels, digits = datasets.digits()
    assert tuple(header[:-1]) == datasets.DIGIT_PIXELS and header[-1] == "digit"
    assert pixels.shape == (len(rows), len(header) - 1) and digits.shape == (len(rows),)
    assert pixels.dtype == torch.float32 and digits.dtype == torch.int64
    assert torch.equal(pixels, torch.tensor([[float(v) for v in row[:-1]] for row in rows]))
    assert digits.tolist() == [int(row[-1]) for row in rows]
    assert sorted(set(digits.tolist())) == list(range(10))
    assert 0 <= pixels.min() and pixels.max() <= 16


def test_loaded_tensors_are_fresh_copies():
    features, _ = datasets.breast_cancer()
    features.zero_()
    assert datasets.breast_cancer()[0].abs().sum() > 0


def is_prime(n):
    return n > 1 and all(n % k for k in range(2, n))


DEFINITIONS = {"even": lambda d: d % 2 == 0, "at least 5": lambda d: d >= 5, "prime": is_prime,
               "zero": lambda d: d == 0, "eight": lambda d: d == 8}


def test_digit_properties_follow_their_definitions():
    assert set(datasets.PROPERTIES) == set(DEFINITIONS)
    digits = torch.arange(10)
    labels = datasets.digit_properties(digits)
    assert labels.shape == (10, len(datasets.PROPERTIES)) and labels.dtype == torch.float32
    for j, name in enumerate(datasets.PROPERTIES):
        assert labels[:, j].tolist() == [float(DEFINITIONS[name](d)) for d in range(10)], name
    # on the real digits the labels' positive rates differ widely: the point of the task
    rates = datasets.digit_properties(datasets.digits()[1]).mean(dim=0)
    assert rates.max() > 4 * rates.min()


@pytest.mark.parametrize("bad, error", [(torch.tensor([0.0, 1.0]), TypeError), (torch.tensor([[1, 2]]), TypeError),
                                        (torch.tensor([3, 10]), ValueError), (torch.tensor([-1]), ValueError)])
def test_digit_properties_refuse_what_is_not_digits(bad, error):
    with pytest.raises(error, match="digit"):
        datasets.digit_properties(bad)


@pytest.mark.parametrize("make", [datasets.breast_cancer_split, datasets.digits_split])
def test_splits_are_disjoint_stratified_seeded_and_scaled_with_training_statistics(make):
    split = make()
    raw, groups = (datasets.breast_cancer() if make is datasets.breast_cancer_split else datasets.digits())
    train, test = datasets.stratified_split(groups)
    assert sorted(torch.cat([train, test]).tolist()) == list(range(len(groups)))  # every row once
    for value in groups.unique():
        count = int((groups == value).sum())
        assert int((groups[test] == value).sum()) == round(datasets.HELD_OUT * count)
    assert torch.equal(split.x_train, (raw[train] - split.mean) / split.scale)
    assert torch.equal(split.x_test, (raw[test] - split.mean) / split.scale)
    if make is datasets.breast_cancer_split:
        torch.testing.assert_close(split.mean, raw[train].mean(dim=0))
        torch.testing.assert_close(split.scale, raw[train].std(dim=0))
        assert torch.equal(split.y_train, groups[train]) and torch.equal(split.y_test, groups[test])
    else:
        assert torch.equal(split.scale, torch.full((raw.shape[1],), 16.0)) and not split.mean.any()
        assert torch.equal(split.y_train, datasets.digit_properties(groups[train]))
    again = make()
    assert torch.equal(again.x_test, split.x_test) and torch.equal(again.y_test, split.y_test)


def test_the_data_is_small_and_matches_its_readme():
    readme = (DATA / "README.md").read_text()
    total = 0
    for name in datasets.FILES:
        content = (DATA / name).read_bytes()
        total += len(content)
        line = re.search(rf"^{re.escape(name)}: (\d+) bytes, sha256 ([0-9a-f]{{64}})$", readme, re.M)
        assert line, f"data/README.md does not list {name}'s size and SHA-256"
        assert int(line[1]) == len(content) and line[2] == hashlib.sha256(content).hexdigest(), name
    assert total < 1_000_000
    for needle in ("10.24432/C5DW2B", "10.24432/C50P49", "CC BY 4.0", "make_datasets.py"):
        assert needle in readme


def test_a_checkout_reads_its_data_folder():
    assert datasets.data_dir() == DATA
    assert datasets.DATA_DIR == DATA


def test_a_checkout_seen_only_in_part_still_reads_its_data_folder(tmp_path):
    """The autograder's sandbox shows a notebook only the checkout's grader/ and data/ folders."""
    shutil.copytree(ROOT / "grader", tmp_path / "grader", ignore=shutil.ignore_patterns("course", "__pycache__"))
    shutil.copytree(DATA, tmp_path / "data")
    done = run_installed(tmp_path, "import grader.datasets as d; print(d.data_dir()); d.digits()")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(tmp_path / "data")


def test_a_missing_file_is_named_with_how_to_restore_it(tmp_path):
    with pytest.raises(datasets.DataError, match=r"breast_cancer.csv is missing .*git checkout data/"):
        datasets.breast_cancer(tmp_path)
    with pytest.raises(datasets.DataError, match=r"digits.csv is missing"):
        datasets.digits(tmp_path)


def write_rows(path, header, rows):
    with path.open("w", newline="") as file:
        csv.writer(file, lineterminator="\n").writerows([header, *rows])


def damaged(tmp_path, name, change):
    """A copy of a data file with ``change(header, rows)`` applied; returns the folder."""
    header, rows = read_csv(name)
    rows = [list(r) for r in rows]
    header, rows = change(list(header), rows)
    write_rows(tmp_path / name, header, rows)
    return tmp_path


def set_value(row, column, value):
    def change(header, rows):
        rows[row][header.index(column)] = value
        return header, rows
    return change


def drop_last_value(row):
    def change(header, rows):
        rows[row] = rows[row][:-1]
        return header, rows
    return change


CANCER_DAMAGE = [
    # (what is done, the change, the words the error must contain); line = row index + 2 (header is line 1)
    ("a word for a number", set_value(16, "mean texture", "abc"),
     r"line 18, column 'mean texture': 'abc' is not a number"),
    ("nan", set_value(3, "worst area", "nan"), r"line 5, column 'worst area': 'nan' is not a finite"),
    ("a negative size", set_value(40, "mean radius", "-1.5"), r"line 42, column 'mean radius': '-1.5'"),
    ("an unknown diagnosis", set_value(7, "diagnosis", "X"), r"line 9, column 'diagnosis': 'X' is not M"),
    ("a value too few", drop_last_value(99), r"line 101: 30 columns where 31 are expected"),
    ("rows cut off", lambda h, r: (h, r[:300]), r"300 data rows where 569 are expected"),
    ("a renamed column", lambda h, r: (h[:2] + ["texture"] + h[3:], r),
     r"line 1 \(the header\), column 3: expected 'mean texture', found 'texture'"),
]


@pytest.mark.parametrize("what, change, message", CANCER_DAMAGE, ids=[c[0] for c in CANCER_DAMAGE])
def test_a_malformed_breast_cancer_file_says_where(tmp_path, what, change, message):
    folder = damaged(tmp_path, "breast_cancer.csv", change)
    with pytest.raises(datasets.DataError, match=message) as error:
        datasets.breast_cancer(folder)
    assert str(folder / "breast_cancer.csv") in str(error.value) and "git checkout data/" in str(error.value)


DIGIT_DAMAGE = [
    ("a pixel above 16", set_value(1000, "pixel_3_4", "17"),
     r"line 1002, column 'pixel_3_4': '17' is not a whole number from 0 to 16"),
    ("a fractional pixel", set_value(5, "pixel_0_0", "2.5"), r"line 7, column 'pixel_0_0': '2.5'"),
    ("a digit 10", set_value(0, "digit", "10"), r"line 2, column 'digit': '10' is not a whole number from 0 to 9"),
    ("an extra value", lambda h, r: (h, r[:3] + [r[3] + ["0"]] + r[4:]), r"line 5: 66 columns where 65"),
]


@pytest.mark.parametrize("what, change, message", DIGIT_DAMAGE, ids=[c[0] for c in DIGIT_DAMAGE])
def test_a_malformed_digits_file_says_where(tmp_path, what, change, message):
    with pytest.raises(datasets.DataError, match=message):
        datasets.digits(damaged(tmp_path, "digits.csv", change))


def test_an_empty_or_unreadable_file_is_named(tmp_path):
    (tmp_path / "digits.csv").write_text("")
    with pytest.raises(datasets.DataError, match=r"digits.csv is empty"):
        datasets.digits(tmp_path)
    (tmp_path / "breast_cancer.csv").write_bytes(b"diagnosis,\xff\xfe\n")
    with pytest.raises(datasets.DataError, match=r"breast_cancer.csv cannot be read"):
        datasets.breast_cancer(tmp_path)


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory):
    """The package as a wheel installs it: built from this checkout and unpacked (a pure-Python
    wheel is a zip of the installed files) into a folder that is not a checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp.glob("*.whl")
    target = tmp / "site"
    zipfile.ZipFile(wheel).extractall(target)
    return wheel, target


def run_installed(target, code):
    env = dict(os.environ, PYTHONPATH=str(target))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, cwd=target, timeout=300)


def test_the_wheel_carries_the_data(wheel_install):
    wheel, _ = wheel_install
    with zipfile.ZipFile(wheel) as archive:
        for name in (*datasets.FILES, "README.md"):
            assert archive.read(f"grader/_data/{name}") == (DATA / name).read_bytes(), name
        assert not [n for n in archive.namelist() if n.endswith("make_datasets.py")]


def test_an_installed_package_reads_its_own_copy(wheel_install):
    _, target = wheel_install
    done = run_installed(target, """
        import json, grader.datasets as d
        features, labels = d.breast_cancer()
        pixels, digits = d.digits()
        print(json.dumps({"module": d.__file__, "dir": str(d.data_dir()), "cancer": list(features.shape),
                          "malignant": int(labels.sum()), "digits": list(pixels.shape), "sum": int(digits.sum())}))
    """)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["module"].startswith(str(target)) and seen["dir"] == str(target / "grader" / "_data")
    features, labels = datasets.breast_cancer()
    pixels, digits = datasets.digits()
    assert seen["cancer"] == list(features.shape) and seen["malignant"] == int(labels.sum())
    assert seen["digits"] == list(pixels.shape) and seen["sum"] == int(digits.sum())


def test_an_installed_package_with_a_missing_file_says_reinstall(wheel_install, tmp_path):
    _, target = wheel_install
    copy = tmp_path / "site"
    shutil.copytree(target, copy)
    (copy / "grader" / "_data" / "digits.csv").unlink()
    done = run_installed(copy, """
        import grader.datasets as d
        try:
            d.digits()
        except d.DataError as error:
            print("DataError:", error)
    """)
    assert "DataError: the data file digits.csv is missing" in done.stdout, done.stdout + done.stderr
    assert "reinstall the course package" in done.stdout and "git checkout" not in done.stdout


# --- exercise 1: pos_weight from a label matrix -------------------------------------------------------

def reference(labels):
    """Negatives over positives per column, 1 for a column without positives: recomputed here
    one column at a time, with Python's numbers."""
    def ratio(column):
        positives = sum(1 for v in column if v == 1)
        return (len(column) - positives) / positives if positives else 1.0

    rows = labels.tolist()
    if labels.dim() == 1:
        return torch.tensor(ratio(rows), dtype=labels.dtype)
    return torch.tensor([ratio([row[j] for row in rows]) for j in range(labels.shape[1])], dtype=labels.dtype)


def correct(labels):
    positives = labels.sum(dim=0)
    return torch.where(positives > 0, (labels.shape[0] - positives) / positives, torch.ones_like(positives))


def test_the_cases_expect_what_a_loop_computes():
    for group in ("data", "edge"):
        for name, labels in imbalance.pos_weight_cases(group):
            torch.testing.assert_close(imbalance._balance(labels), reference(labels), msg=name)
            torch.testing.assert_close(correct(labels), reference(labels), msg=name)


def test_the_edge_cases_hold_the_edges():
    cases = dict(imbalance.pos_weight_cases("edge"))
    shapes = [tuple(labels.shape) for labels in cases.values()]
    assert any(s[0] == 0 for s in shapes)  # an empty batch
    assert any(labels.shape[0] and (labels.sum(dim=0) == 0).any() for labels in cases.values())
    assert any(labels.shape[0] and (labels.sum(dim=0) == labels.shape[0]).any() for labels in cases.values())
    assert any(labels.dtype == torch.float64 for labels in cases.values())


def test_a_correct_function_passes():
    for cases in (None, "data", "edge"):
        imbalance.assert_pos_weight(correct, **({} if cases is None else {"cases": cases}))
    report = imbalance.check_pos_weight(correct)
    assert report.passed and f"all {len(report.lines)} cases pass" in str(report)
    assert all(ok for ok, _ in report.lines)


def inverse(labels):
    positives = labels.sum(dim=0)
    return torch.where(positives > 0, positives / (labels.shape[0] - positives), torch.ones_like(positives))


def positive_counts(labels):
    return labels.sum(dim=0)


def per_row(labels):
    positives = labels.sum(dim=-1)
    return (labels.shape[-1] - positives) / positives


def unguarded(labels):
    positives = labels.sum(dim=0)
    return (labels.shape[0] - positives) / positives


def clamped(labels):
    positives = labels.sum(dim=0)
    return (labels.shape[0] - positives) / positives.clamp(min=1)


def always_float32(labels):
    return correct(labels).float()


def in_place(labels):
    result = correct(labels)
    labels.fill_(0)
    return result


def not_implemented(labels):
    raise NotImplementedError()


def a_list(labels):
    return correct(labels).tolist()


def hard_coded_for_the_digits():
    """A function that returns the right vector for the digits' training labels, whatever it is given."""
    frozen = correct(datasets.digits_split(validation=True).y_train)
    return lambda labels: frozen.clone()


WRONG = [
    (inverse, "upside down"),
    (positive_counts, "the number of positives, a count"),
    (per_row, "one value per row: count down each column"),
    (unguarded, "a label with no positive gets negatives / 0: inf"),
    (clamped, "a label with no positive should get pos_weight 1"),
    (always_float32, "it should have the labels' dtype, torch.float64"),
    (in_place, "changed the labels it was given, in place"),
    (not_implemented, "your function raised NotImplementedError"),
    (a_list, "your function returned a list (["),  # a glimpse of the values, then "), not a tensor"
]


@pytest.mark.parametrize("fn, message", WRONG, ids=[w[0].__name__ for w in WRONG])
def test_a_wrong_function_fails_with_a_reason(fn, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        imbalance.assert_pos_weight(fn)
    report = imbalance.check_pos_weight(fn)
    assert not report.passed and "First failure" in str(report) and message in str(report)


def test_a_hard_coded_vector_passes_only_the_case_it_was_copied_from():
    fn = hard_coded_for_the_digits()
    report = imbalance.check_pos_weight(fn)
    verdicts = dict((name, ok) for ok, name in report.lines)
    digits_case = next(name for name in verdicts if name.startswith("the digits' training labels"))
    assert verdicts.pop(digits_case) and not any(verdicts.values())
    with pytest.raises(AssertionError):
        imbalance.assert_pos_weight(fn, cases="data")
    with pytest.raises(AssertionError, match="one value per label"):
        imbalance.assert_pos_weight(fn, cases="edge")


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="cases must be one of 'data', 'edge'"):
        imbalance.assert_pos_weight(correct, cases="all")
    with pytest.raises(ValueError, match="takes no argument colour"):
        imbalance.assert_pos_weight(correct, colour="red")
    ask = answering(right)
    assert checks.decide("assert_pos_weight", {"cases": "some"}, None, ask) == [
        "cases must be one of 'data', 'edge', not 'some'"]
    assert checks.decide("assert_pos_weight", {"colour": "red"}, None, ask) == [
        "assert_pos_weight takes no argument colour"]
    assert ask.sent == []  # refused before the student's function is asked anything


# --- the judge of exercise 1, given hand-built answers ---------------------------------------------------
# The judge chooses the labels, asks the student's function for its pos_weight of them (in the notebook
# through checks.local, in the autograder through the notebook's sandboxed process) and decides from the
# answers alone. Here the answers are built by hand, as a hostile or broken notebook process could send them.

def answering(make):
    """An ``ask`` that answers each of the judge's calls with ``make(labels)`` for the labels it chose,
    keeping the requests it was sent in ``ask.sent``."""
    def ask(request):
        ask.sent.append(request)
        return make(request["args"]["labels"])

    ask.sent = []
    return ask


def right(labels):
    """What the observer answers for a correct function: negatives over positives, counted here."""
    return {"value": reference(labels), "changed": [], "timed_out": False, "error": None}


def wrong_on(fn, cases):
    """The names of the cases where ``fn`` differs from the loop's reference."""
    return [name for name, labels in cases if not torch.allclose(fn(labels), reference(labels), equal_nan=True)]


def failing(problems, cases):
    """The names of the cases some problem is about."""
    return [name for name, _ in cases if any(p.startswith(f"{name}: ") for p in problems)]


def all_cases(*groups):
    return [case for group in groups or ("data", "edge") for case in imbalance.pos_weight_cases(group)]


@pytest.mark.parametrize("params", [{}, {"cases": "data"}, {"cases": "edge"}])
def test_the_judge_passes_a_right_answer_to_every_case_it_asks(params):
    ask = answering(right)
    assert checks.decide("assert_pos_weight", params, None, ask) == []
    # the engine names the student's function the cell passed; the judge takes it
    assert checks.decide("assert_pos_weight", params, "pos_weight_from_labels", answering(right)) == []
    cases = all_cases(*([params["cases"]] if params else []))
    assert len(ask.sent) == len(cases)
    for request, (name, labels) in zip(ask.sent, cases):
        assert request["op"] == "call" and request["positional"] == ["labels"], name
        assert torch.equal(request["args"]["labels"], labels), name
    # the same judge, calling the functions in this process
    assert checks.decide("assert_pos_weight", params, None, checks.local(correct)) == []
    problems = checks.decide("assert_pos_weight", params, None, checks.local(inverse))
    assert failing(problems, cases) == wrong_on(inverse, cases) and all("upside down" in p for p in problems)


#: The shape of the digits' training labels in the three-way split, the first case of exercise 2.
DIGITS_TRAIN = tuple(datasets.digits_split(validation=True).y_train.shape)


def test_the_judge_recomputes_instead_of_trusting_the_answers():
    name, _ = all_cases()[0]
    # a claim beside the value changes nothing; the value does
    forged = answering(lambda labels: dict(right(labels), passed=True, problems=[],
                                           value=reference(labels) * (1.01 if labels.shape == DIGITS_TRAIN else 1)))
    assert name.startswith(f"the digits' training labels, shape {list(DIGITS_TRAIN)}")
    problems = checks.decide("assert_pos_weight", {}, None, forged)
    assert len(problems) == 1 and problems[0].startswith(f"{name}: your values differ"), problems
    # a case left unanswered is a problem of that case
    missing = answering(lambda labels: {} if labels.shape == DIGITS_TRAIN else right(labels))
    assert checks.decide("assert_pos_weight", {}, None, missing) == [
        f"{name}: your function gave the grader nothing it can read"]


NOTHING = "your function gave the grader nothing it can read"
MALFORMED_ANSWERS = [
    # (what the notebook's process sent, what the judge must say of each case)
    ("no answer", lambda labels: None, NOTHING),
    ("an empty answer", lambda labels: {}, NOTHING),
    ("a refusal", lambda labels: {"refused": "not callable"}, NOTHING),
    ("a refusal beside a right value", lambda labels: dict(right(labels), refused="no"), NOTHING),
    ("a string for an answer", lambda labels: "all passed", NOTHING),
    ("a string for a value", lambda labels: {"value": "1.0"}, NOTHING),
    ("a list for a value", lambda labels: {"value": reference(labels).tolist()}, NOTHING),
    ("a dict for a value", lambda labels: {"value": {"tensor": "float32"}}, NOTHING),
    ("not a tensor", lambda labels: {"not a tensor": "a list"}, "your function returned a list, not a tensor"),
    ("an exception", lambda labels: {"error": {"types": ["ZeroDivisionError"], "message": "division by zero"}},
     "your function raised ZeroDivisionError: division by zero"),
    ("an exception that is a string", lambda labels: {"error": "boom"}, "your function raised an exception"),
    ("a timeout", lambda labels: {"timed_out": True}, "your function took longer than 10 s"),
    ("labels changed", lambda labels: dict(right(labels), changed=["labels"]),
     "your function changed the labels it was given, in place"),
    ("an integer tensor", lambda labels: {"value": reference(labels).long()}, "it should be a floating-point tensor"),
    ("a bool tensor", lambda labels: {"value": reference(labels).bool()}, "it should be a floating-point tensor"),
    ("a complex tensor", lambda labels: {"value": reference(labels).to(torch.complex64)},
     "it should be a floating-point tensor"),
    ("another float dtype", lambda labels: {"value": reference(labels).double()},
     "it should have the labels' dtype, torch.float32"),
    ("nan", lambda labels: {"value": torch.full_like(reference(labels), math.nan)},
     "your values differ from negatives / positives"),
    ("one value per row", lambda labels: {"value": torch.ones(labels.shape[0])}, "it should have shape"),
    ("a huge tensor", lambda labels: {"value": torch.ones(5000, 64)},
     "your pos_weight has shape [5000, 64]; it should have shape"),
]


@pytest.mark.filterwarnings("ignore:Casting complex values to real")
@pytest.mark.parametrize("make, message", [m[1:] for m in MALFORMED_ANSWERS], ids=[m[0] for m in MALFORMED_ANSWERS])
def test_the_judge_fails_every_case_of_a_malformed_answer(make, message):
    problems = checks.decide("assert_pos_weight", {"cases": "data"}, "pos_weight_from_labels", answering(make))
    names = [name for name, _ in all_cases("data")]
    assert len(problems) == len(names), problems
    for problem, name in zip(problems, names):
        assert isinstance(problem, str) and problem.startswith(f"{name}: ") and message in problem, problem


@pytest.mark.parametrize("make", [
    lambda labels: {"value": reference(labels).to("meta")},  # a tensor that holds no numbers
    lambda labels: dict(right(labels), changed=5),
], ids=["a meta tensor", "a number for the changed arguments"])
def test_an_answer_the_judge_cannot_read_is_a_problem_not_an_error(make):
    problems = checks.decide("assert_pos_weight", {"cases": "data"}, None, answering(make))
    assert len(problems) == 1 and problems[0].startswith("the grader could not read the result of assert_pos_weight")


SCRIPT_FUNCTIONS = '''
import torch

def correct(labels):
    positives = labels.sum(dim=0)
    return torch.where(positives > 0, (labels.shape[0] - positives) / positives, torch.ones_like(positives))

def inverse(labels):
    positives = labels.sum(dim=0)
    return torch.where(positives > 0, positives / (labels.shape[0] - positives), torch.ones_like(positives))

def weighted(x, y):
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], y.shape[1]).to(x.device)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=correct(y))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    return model

def untrained(x, y):
    torch.manual_seed(0)
    return torch.nn.Linear(x.shape[1], y.shape[1])

def largest_positive(logits, labels, recall):
    return torch.where(labels > 0.5, logits, torch.full_like(logits, -float("inf"))).max(dim=0).values
'''


def run_fresh(script, tmp_path, *args):
    """``script`` in a fresh Python process at the checkout's root; its last line of output, as JSON."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    env.pop(checks.JUDGED_ELSEWHERE, None)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_fresh_judge_knows_and_judges_both_capstone_checks(tmp_path):
    """The engine's judge runs in a process where no notebook ran: it must know the capstone's checks
    from grader._battery.checks alone, without grader.imbalance having been imported first."""
    script = SCRIPT_FUNCTIONS + '''
import json, sys
from grader._battery import checks
assert "grader.imbalance" not in sys.modules
known = checks.judges()

def judge(name, params, fn):
    return checks.decide(name, params, None, checks.local(fn))

print(json.dumps({"known": sorted(known), "verdicts": {
    "correct": judge("assert_pos_weight", {}, correct),
    "inverse": judge("assert_pos_weight", {"cases": "data"}, inverse),
    "weighted": judge("assert_trained", {"recall": 0.75, "balanced_accuracy": 0.8}, weighted),
    "untrained": judge("assert_trained", {}, untrained),
    "largest positive": judge("assert_thresholds", {"cases": "edge"}, largest_positive),
}}))
'''
    seen = run_fresh(script, tmp_path)
    assert {"assert_pos_weight", "assert_thresholds", "assert_trained"} <= set(seen["known"])
    verdicts = seen["verdicts"]
    assert verdicts["largest positive"] and all("too strict" in p for p in verdicts["largest positive"])
    assert verdicts["correct"] == [] and verdicts["weighted"] == []
    assert failing(verdicts["inverse"], all_cases("data")) == [name for name, _ in all_cases("data")]
    assert all("upside down" in p for p in verdicts["inverse"])
    assert verdicts["untrained"] and all(p.startswith("label ") for p in verdicts["untrained"])


def test_the_engine_reads_the_masters_test_cells():
    """The judge runs the checks a test cell calls, with its literal arguments, on the function it names."""
    import nbformat

    from grader.instructor import release, scan, verdict

    nb = nbformat.read(release.master_path("06-class-imbalance"), as_version=4)
    calls = [call for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code"
             for call in verdict.checks_in(cell.source) or []]
    assert ("assert_pos_weight", {"cases": "data"}, "pos_weight_from_labels") in calls
    assert ("assert_pos_weight", {"cases": "edge"}, "pos_weight_from_labels") in calls
    assert ("assert_thresholds", {"cases": "data"}, "recall_thresholds") in calls
    assert ("assert_thresholds", {"cases": "edge"}, "recall_thresholds") in calls
    assert scan.suspicious(nb) == []


def test_a_process_that_never_imported_the_capstone_still_judges_its_cells(tmp_path):
    """The engine's judge reads the master's test cells with grader.instructor.verdict alone: the capstone's
    checks must be known there, or their calls would not be found and the cells would pass unjudged."""
    script = SCRIPT_FUNCTIONS + '''
import json, sys
import nbformat
from grader._battery import checks
from grader.instructor import verdict
assert "grader.imbalance" not in sys.modules
nb = nbformat.read(sys.argv[1], as_version=4)
cells = [verdict.checks_in(cell.source) for cell in nb.cells if verdict.is_test_cell(cell)]
asked = []

def judged(calls, fn):
    def ask_about(subject, check):
        asked.append(subject)
        return checks.local(fn)
    return verdict.judge_test_cell(calls, ask_about)

pos_weight = [calls for calls in cells if calls and {c[0] for c in calls} == {"assert_pos_weight"}]
thresholds = [calls for calls in cells if calls and {c[0] for c in calls} == {"assert_thresholds"}]
print(json.dumps({"cells": cells,
                  "correct": [judged(calls, correct) for calls in pos_weight],
                  "inverse": [judged(calls, inverse) for calls in pos_weight],
                  "thresholds": [judged(calls, largest_positive) for calls in thresholds],
                  "subjects": asked}))
'''
    from grader.instructor import release

    seen = run_fresh(script, tmp_path, release.master_path("06-class-imbalance"))
    assert [[c[0] for c in calls] for calls in seen["cells"]] == [
        ["assert_prediction"] * 2, ["assert_pos_weight"] * 2, ["assert_thresholds"] * 2]
    assert [c[1] for c in seen["cells"][1]] == [{"cases": "data"}, {"cases": "edge"}]
    assert [c[1] for c in seen["cells"][2]] == [{"cases": "data"}, {"cases": "edge"}]
    assert seen["subjects"] == ["pos_weight_from_labels"] * 4 + ["recall_thresholds"] * 2
    assert seen["correct"] == [[]]
    (upside_down,) = seen["inverse"]
    assert failing(upside_down, all_cases()) == wrong_on(inverse, all_cases())
    assert all("upside down" in p for p in upside_down)
    (too_strict,) = seen["thresholds"]  # the largest positive logit: too strict wherever recall needs more
    assert too_strict and all("too strict" in p for p in too_strict)


@pytest.mark.parametrize("source", [
    "import grader.imbalance\ngrader.imbalance.assert_trained = lambda *args, **kwargs: None",
    "from grader import imbalance as im\nim.assert_pos_weight = print",
    "from grader.imbalance import TRAINED_DEFAULTS\nTRAINED_DEFAULTS['recall'] = 0.0",
    "import grader.datasets as d\nd.PROPERTIES = ('zero',)",
    "import grader\ndel grader.imbalance.assert_trained",
    "import grader\ngrader.check.__defaults__ = None",
    "import grader\ngrader._battery.checks.JUDGES.clear()",
])
def test_assigning_to_any_part_of_the_grader_is_tampering(source):
    import nbformat

    from grader.instructor import scan

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    found = scan.suspicious(nb)
    assert found and found[0].startswith("cell 1, line 2:"), found


def test_using_the_grader_is_not_tampering():
    import nbformat

    from grader.instructor import scan

    source = ("import grader.imbalance\nfrom grader.datasets import digits_split\nsplit = digits_split()\n"
              "counts = grader.imbalance.confusion(split.y_test, split.y_test)\nsplit_copy = split.to('cpu')\n"
              "digits = {}\ndigits['x'] = 1")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    assert scan.suspicious(nb) == []


# --- exercise 2: training with pos_weight ----------------------------------------------------------------

def fit(model, x, y, pos_weight=None, steps=300, lr=0.05):
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    return model


def linear(x, y):
    torch.manual_seed(0)
    return nn.Linear(x.shape[1], y.shape[1]).to(x.device)


def weighted(x, y):
    return fit(linear(x, y), x, y, pos_weight=correct(y))


def unweighted(x, y):
    return fit(linear(x, y), x, y)


def untrained(x, y):
    return linear(x, y)


def always_positive(x, y):
    model = linear(x, y)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.fill_(10.0)
    return model


def recomputed(model):
    """Recall and balanced accuracy of each label on the held-out digits, by plain torch."""
    data = datasets.digits_split()
    with torch.no_grad():
        said = torch.sigmoid(model.cpu()(data.x_test).double()) >= 0.5
    truth = data.y_test > 0.5
    tp, fn = (said & truth).sum(0), (~said & truth).sum(0)
    tn, fp = (~said & ~truth).sum(0), (said & ~truth).sum(0)
    recall = tp / (tp + fn)
    return recall, (recall + tn / (tn + fp)) / 2


def test_a_model_trained_with_pos_weight_passes():
    imbalance.assert_trained(weighted, recall=0.75, balanced_accuracy=0.8)
    report = imbalance.check_trained(weighted)
    assert report.passed and len(report.lines) == len(datasets.PROPERTIES)
    data = datasets.digits_split()
    recall, accuracy = recomputed(weighted(data.x_train, data.y_train))
    for (ok, line), r, a, name in zip(report.lines, recall.tolist(), accuracy.tolist(), datasets.PROPERTIES):
        assert ok and line == f"{name}: recall {r:.3f}, balanced accuracy {a:.3f}"
        assert r >= 0.75 and a >= 0.8


def test_without_pos_weight_the_rare_digits_are_missed():
    """What the exercise says: the unweighted logistic regression misses too many eights."""
    data = datasets.digits_split()
    recall, _ = recomputed(unweighted(data.x_train, data.y_train))
    eight = datasets.PROPERTIES.index("eight")
    assert recall[eight] < 0.75
    with pytest.raises(AssertionError, match=rf"label 'eight': recall {recall[eight]:.3f}"):
        imbalance.assert_trained(unweighted, recall=0.75, balanced_accuracy=0.8)


def test_an_untrained_model_fails():
    with pytest.raises(AssertionError, match="recall"):
        imbalance.assert_trained(untrained, recall=0.75, balanced_accuracy=0.8)


def test_calling_everything_positive_fails_on_balanced_accuracy():
    data = datasets.digits_split()
    recall, accuracy = recomputed(always_positive(data.x_train, data.y_train))
    assert (recall == 1).all() and torch.allclose(accuracy, torch.full_like(accuracy, 0.5))
    with pytest.raises(AssertionError, match="balanced accuracy 0.500") as error:
        imbalance.assert_trained(always_positive, recall=0.75, balanced_accuracy=0.8)
    assert "found), below" not in str(error.value)  # every positive was found: no recall problem


@pytest.mark.parametrize("fn, message", [
    (lambda x, y: nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 5)), "not a logistic regression"),
    (lambda x, y: nn.Linear(64, 3), r"weight has shape \[3, 64\]"),
    (lambda x, y: nn.Linear(64, 5, bias=False), "without a bias"),
    (lambda x, y: "a model", "returned a str"),
    (lambda x, y: not_implemented(y), "your training function raised NotImplementedError"),
    (lambda x: nn.Linear(64, 5), "your training function raised TypeError"),
])
def test_what_is_not_a_trained_logistic_regression_is_named(fn, message):
    with pytest.raises(AssertionError, match=message):
        imbalance.assert_trained(fn)


@pytest.mark.cuda
def test_the_check_trains_on_the_gpu_when_there_is_one():
    seen = {}

    def on_the_gpu(x, y):
        seen["device"] = x.device.type
        return weighted(x, y)

    imbalance.assert_trained(on_the_gpu, recall=0.75, balanced_accuracy=0.8)
    assert seen["device"] == "cuda"


def test_a_linear_inside_a_sequential_counts():
    imbalance.assert_trained(lambda x, y: nn.Sequential(weighted(x, y)))


# --- the judge of exercise 2, given hand-built answers ---------------------------------------------------

@pytest.fixture(scope="module")
def good_model():
    """The weight and bias of a logistic regression trained with pos_weight, as the observer sends them."""
    data = datasets.digits_split()
    model = weighted(data.x_train, data.y_train)
    return model.weight.detach().cpu(), model.bias.detach().cpu()


def sending(answer):
    """An ``ask`` that answers the judge's request with ``answer``, keeping the requests in ``ask.sent``."""
    def ask(request):
        ask.sent.append(request)
        return answer

    ask.sent = []
    return ask


def model_answer(weight, bias, **extra):
    return {"value": {"weight": weight, "bias": bias}, "timed_out": False, "error": None, "changed": [], **extra}


def test_the_training_judge_passes_a_good_model_and_asks_for_one_training(good_model):
    ask = sending(model_answer(*good_model))
    assert checks.decide("assert_trained", {}, None, ask) == []
    assert checks.decide("assert_trained", {"recall": 0.75, "balanced_accuracy": 0.8}, "train_digits_model",
                         ask) == []
    data = datasets.digits_split()
    assert len(ask.sent) == 2
    for request in ask.sent:
        assert request["op"] == "call" and request["extract"] == "linear" and request["positional"] == ["x", "y"]
        assert torch.equal(request["args"]["x"], data.x_train) and torch.equal(request["args"]["y"], data.y_train)
        assert request["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
        assert request["time_limit"] == imbalance.TRAINING_TIME_LIMIT


def test_the_training_judge_recomputes_from_the_weights(good_model):
    weight, bias = good_model
    # a claim in the answer changes nothing; the weights do
    forged = model_answer(torch.zeros_like(weight), bias, recall=1.0, passed=True, problems=[])
    problems = checks.decide("assert_trained", {"recall": 0.75}, None, sending(forged))
    assert problems and all(p.startswith("label ") for p in problems)
    for nan in (model_answer(torch.full_like(weight, math.nan), bias),
                model_answer(weight, torch.full_like(bias, math.inf))):
        assert checks.decide("assert_trained", {}, None, sending(nan)) == [
            "the model's weight or bias holds nan or inf: the training diverged (a label with pos_weight inf?)"]


TRAINED_NOTHING = "your training function gave the grader nothing it can read"
MALFORMED_MODELS = [
    # (what the notebook's process sent, what the judge must say)
    ("no answer", lambda w, b: None, TRAINED_NOTHING),
    ("an empty answer", lambda w, b: {}, TRAINED_NOTHING),
    ("a refusal", lambda w, b: {"refused": "not callable"}, TRAINED_NOTHING),
    ("a refusal beside good weights", lambda w, b: dict(model_answer(w, b), refused="no"), TRAINED_NOTHING),
    ("a string for an answer", lambda w, b: "weights", TRAINED_NOTHING),
    ("a string for a value", lambda w, b: {"value": "weights"}, TRAINED_NOTHING),
    ("no weight", lambda w, b: {"value": {"bias": b}}, TRAINED_NOTHING),
    ("a list for a weight", lambda w, b: model_answer(w.tolist(), b), TRAINED_NOTHING),
    ("a string for a bias", lambda w, b: model_answer(w, "b"), TRAINED_NOTHING),
    ("no bias", lambda w, b: {"value": {"weight": w}}, "an nn.Linear without a bias"),
    ("not an nn.Linear", lambda w, b: {"value": {"not linear": "a str"}},
     "your training function returned a str, not a logistic regression (an nn.Linear)"),
    ("an exception", lambda w, b: {"error": {"types": ["RuntimeError"], "message": "CUDA out of memory"}},
     "your training function raised RuntimeError: CUDA out of memory"),
    ("a timeout", lambda w, b: {"timed_out": True}, "your training function took longer than 120 s"),
    ("fewer labels", lambda w, b: model_answer(w[:3], b[:3]), "the model's weight has shape [3, 64] and its bias [3]"),
    ("a huge weight", lambda w, b: model_answer(w.repeat(1000, 1), b),
     "the model's weight has shape [5000, 64] and its bias [5]"),
    ("a 0-d weight", lambda w, b: model_answer(w[0, 0], b[0]), "the model's weight has shape [] and its bias []"),
    ("a meta tensor", lambda w, b: model_answer(w.to("meta"), b.to("meta")),
     "the grader could not read the result of assert_trained"),
]


@pytest.mark.parametrize("make, message", [m[1:] for m in MALFORMED_MODELS], ids=[m[0] for m in MALFORMED_MODELS])
def test_the_training_judge_fails_a_malformed_answer(good_model, make, message):
    problems = checks.decide("assert_trained", {}, "train_digits_model", sending(make(*good_model)))
    assert len(problems) == 1 and isinstance(problems[0], str) and message in problems[0], problems


@pytest.mark.filterwarnings("ignore:Casting complex values to real")
@pytest.mark.parametrize("dtype", [torch.complex64, torch.int64], ids=str)
def test_the_training_judge_fails_weights_that_are_not_real_floats(good_model, dtype):
    """A logistic regression's weight and bias are real floating-point numbers: a complex one (whose
    imaginary part a cast to float64 throws away) or an integer one (here the good model scaled by 1000,
    which predicts exactly as it does) is not one, whatever its real values would score."""
    weight, bias = good_model
    scale = 1000 if not dtype.is_complex else 1
    problems = checks.decide("assert_trained", {}, None, sending(model_answer((weight * scale).to(dtype),
                                                                              (bias * scale).to(dtype))))
    assert problems, f"a {dtype} model passed"


def test_the_training_judge_asks_for_what_the_cell_says(good_model):
    scores = imbalance.held_out_scores(*good_model)
    lowest = scores["recall"].min().item()
    assert checks.decide("assert_trained", {"recall": lowest}, None, sending(model_answer(*good_model))) == []
    assert checks.decide("assert_trained", {"recall": min(1.0, lowest + 1e-3)}, None,
                         sending(model_answer(*good_model)))
    for bad in ({"recall": 1.5}, {"recall": 0}, {"balanced_accuracy": "high"}, {"recall": True}):
        ask = sending(model_answer(*good_model))
        (problem,) = checks.decide("assert_trained", bad, None, ask)
        assert "must be a number in (0, 1]" in problem and ask.sent == []  # refused before any training
    assert "takes no argument precision" in checks.decide("assert_trained", {"precision": 0.9}, None,
                                                          sending(model_answer(*good_model)))[0]
    with pytest.raises(ValueError, match="recall must be a number"):
        imbalance.assert_trained(weighted, recall=2)


def test_held_out_scores_are_torch_metrics_of_the_weights():
    model = weighted(*(lambda d: (d.x_train, d.y_train))(datasets.digits_split()))
    scores = imbalance.held_out_scores(model.weight.detach(), model.bias.detach())
    recall, accuracy = recomputed(model)
    torch.testing.assert_close(scores["recall"], recall.double())
    torch.testing.assert_close(scores["balanced_accuracy"], accuracy.double())


# --- metrics -------------------------------------------------------------------------------------------

def brute_force(logits, labels, threshold):
    """tp, fp, fn, tn of a 1-D problem, one sample at a time."""
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for z, y in zip(logits.tolist(), labels.tolist()):
        said = 1 / (1 + math.exp(-z)) >= threshold
        counts[("t" if said == (y == 1) else "f") + ("p" if said else "n")] += 1
    return counts


def test_confusion_and_rates_match_counting_one_by_one():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(200, 3, generator=g) * 3
    labels = (torch.rand(200, 3, generator=g) < torch.tensor([0.1, 0.5, 0.0])).float()
    for threshold in (0.05, 0.5, 0.93):
        counts = imbalance.confusion(logits, labels, threshold)
        rates = imbalance.rates(counts)
        for j in range(3):
            want = brute_force(logits[:, j], labels[:, j], threshold)
            assert {k: int(v[j]) for k, v in counts.items()} == want
            tp, fp, fn, tn = want["tp"], want["fp"], want["fn"], want["tn"]
            for key, num, den in (("precision", tp, tp + fp), ("recall", tp, tp + fn), ("specificity", tn, tn + fp)):
                value = rates[key][j].item()
                assert (math.isnan(value) and den == 0) or value == pytest.approx(num / den)
    with pytest.raises(ValueError, match="threshold must lie in"):
        imbalance.confusion(logits, labels, 1.5)
    with pytest.raises(ValueError, match="same shape"):
        imbalance.confusion(logits, labels[:, 0])


def test_the_precision_recall_curve_is_every_threshold():
    g = torch.Generator().manual_seed(6)
    logits = torch.round(torch.randn(120, generator=g) * 4) / 2  # ties on purpose
    labels = (torch.rand(120, generator=g) < 0.3).float()
    curve = imbalance.precision_recall_curve(logits, labels)
    distinct = sorted(set(logits.tolist()), reverse=True)
    assert len(curve["threshold"]) == len(distinct)
    for k, z in enumerate(distinct):
        counts = brute_force(logits, labels, 1 / (1 + math.exp(-z)))
        assert curve["threshold"][k].item() == pytest.approx(1 / (1 + math.exp(-z)))
        assert curve["precision"][k].item() == pytest.approx(counts["tp"] / (counts["tp"] + counts["fp"]))
        assert curve["recall"][k].item() == pytest.approx(counts["tp"] / (counts["tp"] + counts["fn"]))


# --- the explorer --------------------------------------------------------------------------------------

def xy(line):
    return np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)


def pixels(png):
    return np.asarray(PIL.Image.open(io.BytesIO(png)).convert("RGBA"))


@pytest.mark.parametrize("task, model, pos_weight, threshold", [
    ("digits: eight", "logistic regression", 8.0, 0.5),
    ("breast cancer: malignant", "logistic regression", 1.0, 0.2),
    ("digits: zero", "MLP", 0.25, 0.85),
])
def test_every_plotted_number_is_recomputed_from_the_models_logits(task, model, pos_weight, threshold):
    e = imbalance.ImbalanceExplorer(task, model, pos_weight, threshold)
    grid = imbalance.trained(task, model)
    column = imbalance.GRID.index(pos_weight)
    logits, labels = grid.logits[:, column], grid.labels
    # the confusion matrix, cell by cell
    counts = brute_force(logits, labels, threshold)
    shown = {t.get_text().split("\n")[0]: int(t.get_text().split("\n")[1]) for row in e.cells for t in row}
    assert shown == {k.upper(): v for k, v in counts.items()}
    # the operating point
    (recall,), (precision,) = e.point.get_data()
    assert recall == pytest.approx(counts["tp"] / (counts["tp"] + counts["fn"]))
    if counts["tp"] + counts["fp"]:
        assert precision == pytest.approx(counts["tp"] / (counts["tp"] + counts["fp"]))
    # the curve: precision and recall at every distinct logit as threshold
    r, p = xy(e.pr)
    for k, z in enumerate(sorted(set(logits.tolist()), reverse=True)):
        c = brute_force(logits, labels, 1 / (1 + math.exp(-z)))
        assert r[k] == pytest.approx(c["tp"] / (c["tp"] + c["fn"]))
        assert p[k] == pytest.approx(c["tp"] / (c["tp"] + c["fp"]))
    # the sweep over pos_weight: recall, precision, and the unweighted held-out loss from torch
    x, grid_recall = xy(e.recall_line)
    assert list(x) == list(imbalance.GRID)
    _, grid_loss = xy(e.loss_line)
    for g in range(len(imbalance.GRID)):
        c = brute_force(grid.logits[:, g], labels, threshold)
        assert grid_recall[g] == pytest.approx(c["tp"] / (c["tp"] + c["fn"]))
        loss = F.binary_cross_entropy_with_logits(grid.logits[:, g], labels)
        assert grid_loss[g] == pytest.approx(loss.item(), rel=1e-5)
    # the dotted line: negatives over positives of the training labels
    data = imbalance._task_data(task)
    positives = data.y_train.sum().item()
    assert e.balance_line.get_xdata()[0] == pytest.approx((len(data.y_train) - positives) / positives)
    assert f"recall {counts['tp'] / (counts['tp'] + counts['fn']):.3f}" in e.headline.get_text()


def test_the_grid_trains_the_models_bce_with_logits_loss_would_train_one_by_one():
    """One BCEWithLogitsLoss whose pos_weight is the grid, on [N, G] logits, trains G independent
    models: each column equals an nn.Linear trained alone with nn.BCEWithLogitsLoss(pos_weight=p)
    from the same start."""
    data = imbalance._task_data("digits: eight")
    grid = imbalance.train_grid(data.x_train, data.y_train, imbalance.GRID, steps=60)
    start = imbalance.GridModels("logistic regression", data.x_train.shape[1], len(imbalance.GRID))
    for g in (0, imbalance.GRID.index(1.0), len(imbalance.GRID) - 1):
        single = nn.Linear(data.x_train.shape[1], 1)
        with torch.no_grad():
            single.weight.copy_(start.weight[g:g + 1])
            single.bias.copy_(start.bias[g:g + 1])
        fit(single, data.x_train, data.y_train[:, None], pos_weight=torch.tensor([imbalance.GRID[g]]), steps=60)
        with torch.no_grad():
            torch.testing.assert_close(grid(data.x_test)[:, g], single(data.x_test)[:, 0], atol=1e-4, rtol=1e-4)


def test_updates_change_the_figure_in_place_and_match_a_fresh_one():
    e = imbalance.ImbalanceExplorer()
    figure, axes, first = e.figure, list(e.figure.axes), pixels(e.png())
    for change in ({"pos_weight": 8.0}, {"threshold": 0.2}, {"model": "MLP"}, {"task": "breast cancer: malignant"}):
        e.update(**change)
        drawn = pixels(e.png())
        assert e.figure is figure and list(e.figure.axes) == axes
        np.testing.assert_array_equal(drawn, pixels(imbalance.ImbalanceExplorer(**e.params).png()))
    assert not np.array_equal(first, drawn)


def test_bad_explorer_settings_say_what_is_allowed():
    with pytest.raises(ValueError, match="task must be one of"):
        imbalance.ImbalanceExplorer(task="mnist")
    with pytest.raises(ValueError, match="model must be one of"):
        imbalance.ImbalanceExplorer(model="forest")
    with pytest.raises(ValueError, match="pos_weight must be one of the trained values"):
        imbalance.ImbalanceExplorer(pos_weight=3.0)
    with pytest.raises(ValueError, match="threshold must lie in"):
        imbalance.ImbalanceExplorer(threshold=1.2)
    from matplotlib.figure import Figure

    assert isinstance(imbalance.imbalance_figure(), Figure)


def run_widget_check(extra_path=None):
    """tests/widget_check.py on the imbalance explorer: what a browser's view asks of it."""
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = str(extra_path) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "widget_check.py"), "imbalance"], capture_output=True,
                          text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    widget = result["imbalance"]
    assert "image/png" in widget["mime"] and widget["png"]
    moves = widget["moves"]
    assert {name: (m["kind"], m["kernel"]) for name, m in moves.items()} == {
        "task": ("menu", True), "model": ("menu", True), "pos_weight": ("slider", False),
        "threshold": ("slider", False)}
    assert all(m["index_changed"] and m["params_follow"] for m in moves.values()), moves
    # the task and the model need the kernel (other models); pos_weight and the threshold do not
    assert [m["new_payload"] for m in moves.values()] == [True, True, False, False]
    assert moves["pos_weight"]["options"] == [f"{g:g}" for g in imbalance.GRID]
    assert widget["frames"] == widget["expected_frames"] == len(imbalance.GRID) * len(moves["threshold"]["options"])
    return result


def test_the_widget_under_ipywidgets_8():
    assert run_widget_check()["version"].startswith("8.")


def test_the_widget_under_ipywidgets_7_7_as_in_colab():
    assert (IPYWIDGETS7 / "ipywidgets").is_dir(), "run `make test`, which installs ipywidgets 7.7 for this test"
    assert run_widget_check(IPYWIDGETS7)["version"].startswith("7.7.")


def test_the_other_choices_are_computed_ahead_once_the_explorer_is_shown():
    widget = imbalance.imbalance_explorer(task="digits: zero")
    widget._message(widget, {"event": "view"}, [])
    widget._prefetching.join(timeout=240)
    assert not widget._prefetching.is_alive()
    assert len(widget._cache) == len(imbalance.TASKS) * len(imbalance.MODELS)
    cached = widget._cache["task=breast cancer: malignant|model=MLP"]
    widget.update(task="breast cancer: malignant", model="MLP")
    assert widget.payload is cached  # a new choice is only a message away


def test_the_checks_do_not_run_while_grader_check_loads_a_notebook(monkeypatch):
    """`python -m grader check` runs a notebook's cells to find its functions; the capstone's
    checks must not train models meanwhile."""
    from grader._battery import loading

    calls = []
    monkeypatch.setattr(loading, "_checks_suppressed", True)
    imbalance.assert_pos_weight(lambda labels: calls.append(labels))
    imbalance.assert_trained(lambda x, y: calls.append(x))
    assert "not run" in str(imbalance.check_pos_weight(lambda labels: calls.append(labels)))
    assert "not run" in str(imbalance.check_trained(lambda x, y: calls.append(x)))
    assert calls == []
    monkeypatch.setattr(loading, "_checks_suppressed", False)
    with pytest.raises(AssertionError):
        imbalance.assert_pos_weight(lambda labels: calls.append(labels), cases="data")
    assert calls


def test_the_checks_do_not_run_in_a_notebook_the_autograder_judges(monkeypatch):
    """In a notebook being autograded the engine's judge drives the student's functions from outside;
    the checks its cells call must do nothing there."""
    calls = []
    monkeypatch.setenv("BCE_GRADER_JUDGED", "1")
    assert checks.judged_elsewhere()
    imbalance.assert_pos_weight(lambda labels: calls.append(labels))
    imbalance.assert_pos_weight(lambda labels: calls.append(labels), cases="edge")
    imbalance.assert_trained(lambda x, y: calls.append(x), recall=0.9, balanced_accuracy=0.9)
    for report in (imbalance.check_pos_weight(lambda labels: calls.append(labels)),
                   imbalance.check_trained(lambda x, y: calls.append(x))):
        assert not report.run and "checked by the autograder" in str(report), str(report)
    assert calls == []
    monkeypatch.setenv("BCE_GRADER_JUDGED", "0")
    with pytest.raises(AssertionError):
        imbalance.assert_pos_weight(lambda labels: calls.append(labels), cases="data")
    assert calls


# --- exercise 3: thresholds that reach a target recall --------------------------------------------------

def threshold_loop(logits, labels, recall):
    """The largest threshold reaching ``recall``, per column, by trying every logit as a threshold."""
    out = []
    for c in range(logits.shape[1]):
        column, truth = logits[:, c].tolist(), (labels[:, c] > 0.5).tolist()
        positives = sum(truth)
        best = None
        for t in column:
            found = sum(1 for z, y in zip(column, truth) if y and z >= t)
            if found / positives >= recall and (best is None or t > best):
                best = t
        out.append(best)
    return torch.tensor(out, dtype=logits.dtype)


def threshold_sorted(logits, labels, recall):
    """What a student might write: a loop over the labels, the positives sorted, ceil(recall * P)."""
    out = []
    for c in range(logits.shape[1]):
        positives = logits[labels[:, c] > 0.5, c].sort(descending=True).values
        out.append(positives[math.ceil(recall * len(positives)) - 1])
    return torch.stack(out)


def threshold_vectorised(logits, labels, recall):
    positive = labels > 0.5
    ranked = torch.where(positive, logits, torch.full_like(logits, -math.inf)).sort(dim=0, descending=True).values
    rank = torch.arange(1, logits.shape[0] + 1, dtype=torch.float32)[:, None]  # float32 on purpose
    short = (rank / positive.sum(dim=0) < recall).sum(dim=0)
    return ranked.gather(0, short[None]).squeeze(0)


def all_threshold_cases():
    return [case for group in ("data", "edge") for case in imbalance.threshold_cases(group)]


def test_the_threshold_cases_expect_what_trying_every_logit_finds():
    from fractions import Fraction

    from grader._battery.capstone import needed, recall_threshold

    for name, args in all_threshold_cases():
        logits, labels, recall = args["logits"], args["labels"], args["recall"]
        torch.testing.assert_close(recall_threshold(logits, labels, recall), threshold_loop(logits, labels, recall),
                                   msg=name)
        for c in range(labels.shape[1]):
            positives = int((labels[:, c] > 0.5).sum())
            assert positives >= 1, name  # every label has a positive, as the exercise says
            k = needed(positives, recall)
            # no case sits where float rounding decides: exact fractions, ceil and float32 all agree
            assert k == math.ceil(Fraction(recall) * positives) == math.ceil(recall * positives), name
            assert k == next(j for j in range(1, positives + 1)
                             if torch.tensor(j / positives, dtype=torch.float32) >= recall), name


def test_the_edge_threshold_cases_hold_the_edges():
    cases = dict(imbalance.threshold_cases("edge"))
    ties = cases["tied logits (steps of 0.5), shape [80, 3], recall 0.8"]["logits"]
    assert len(ties.unique()) < len(ties.flatten()) / 4
    assert any(args["recall"] == 1.0 for args in cases.values())
    assert any(args["recall"] * int(args["labels"][:, 0].sum()) <= 1 for args in cases.values())
    assert any(int(args["labels"][:, c].sum()) == 1 for args in cases.values() for c in range(args["labels"].shape[1]))
    backwards = cases["a label ranked backwards (column 0), shape [30, 2], recall 0.5"]
    z, y = backwards["logits"][:, 0], backwards["labels"][:, 0] > 0.5
    assert z[y].max() < z[~y].min()
    assert any(args["logits"].dtype == torch.float64 for args in cases.values())
    for name, args in imbalance.threshold_cases("data"):
        assert args["logits"].shape == args["labels"].shape and args["logits"].dtype == torch.float32, name
    digits_val = datasets.digits_split(validation=True).y_val
    assert torch.equal(imbalance.threshold_cases("data")[0][1]["labels"], digits_val)


@pytest.mark.parametrize("fn", [threshold_loop, threshold_sorted, threshold_vectorised,
                                lambda z, y, r: threshold_sorted(z, y, r) - 1e-6])
def test_a_right_threshold_function_passes(fn):
    imbalance.assert_thresholds(fn)
    report = imbalance.check_thresholds(fn)
    assert report.passed and len(report.lines) == len(all_threshold_cases())


def probabilities(logits, labels, recall):
    return torch.sigmoid(threshold_sorted(logits, labels, recall))


def smallest_positive(logits, labels, recall):
    return torch.where(labels > 0.5, logits, torch.full_like(logits, math.inf)).min(dim=0).values


def largest_positive(logits, labels, recall):
    return torch.where(labels > 0.5, logits, torch.full_like(logits, -math.inf)).max(dim=0).values


def one_per_row(logits, labels, recall):
    return logits.max(dim=1).values


def float32_always(logits, labels, recall):
    return threshold_sorted(logits, labels, recall).float()


def sorts_in_place(logits, labels, recall):
    result = threshold_sorted(logits, labels, recall)
    logits.zero_()
    return result


def not_written(logits, labels, recall):
    raise NotImplementedError()


def nan_thresholds(logits, labels, recall):
    return torch.full((logits.shape[1],), math.nan, dtype=logits.dtype)


WRONG_THRESHOLDS = [
    (probabilities, "it looks like a probability"),
    (smallest_positive, "more rows than needed"),
    (largest_positive, "it is too strict"),
    (one_per_row, "one per row: work down each column"),
    (float32_always, "they should have the logits' dtype, torch.float64"),
    (sorts_in_place, "changed its arguments in place"),
    (not_written, "your function raised NotImplementedError"),
    (nan_thresholds, "your threshold is nan"),
]


@pytest.mark.parametrize("fn, message", WRONG_THRESHOLDS, ids=[w[0].__name__ for w in WRONG_THRESHOLDS])
def test_a_wrong_threshold_function_fails_with_a_reason(fn, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        imbalance.assert_thresholds(fn)
    report = imbalance.check_thresholds(fn)
    assert not report.passed and "First failure" in str(report) and message in str(report)


def test_the_threshold_judge_asks_for_outputs_on_its_own_inputs_and_recomputes():
    sent = []

    def ask(request):
        sent.append(request)
        return {"value": threshold_loop(**{k: request["args"][k] for k in ("logits", "labels", "recall")}),
                "changed": [], "timed_out": False, "error": None}

    assert checks.decide("assert_thresholds", {}, "recall_thresholds", ask) == []
    cases = all_threshold_cases()
    assert len(sent) == len(cases)
    for request, (name, args) in zip(sent, cases):
        assert request["op"] == "call" and request["positional"] == ["logits", "labels", "recall"], name
        assert torch.equal(request["args"]["logits"], args["logits"]) and request["args"]["recall"] == args["recall"]
        assert request["args"]["logits"] is not args["logits"]  # a copy: the student's code cannot change the case

    # a claim beside a value changes nothing; a value off by one positive does
    def forged(request):
        z, y, r = (request["args"][k] for k in ("logits", "labels", "recall"))
        return {"value": threshold_loop(z, y, min(1.0, r + 0.05)), "passed": True, "problems": []}

    problems = checks.decide("assert_thresholds", {"cases": "data"}, None, forged)
    assert len(problems) == 3 and all("more rows than needed" in p for p in problems)


@pytest.mark.parametrize("answer, message", [
    (None, "your function gave the grader nothing it can read"),
    ({"refused": "not callable"}, "your function gave the grader nothing it can read"),
    ({"value": "0.5"}, "your function gave the grader nothing it can read"),
    ({"not a tensor": "a list"}, "your function returned a list, not a tensor"),
    ({"timed_out": True}, "your function took longer than 10 s"),
    ({"value": torch.zeros(2, 2)}, "your thresholds have shape [2, 2]"),
    ({"value": torch.zeros(5, dtype=torch.int64)}, "they should have the logits' dtype"),
])
def test_the_threshold_judge_fails_a_malformed_answer(answer, message):
    problems = checks.decide("assert_thresholds", {"cases": "data"}, None, lambda request: answer)
    assert problems and message in problems[0], problems


def test_bad_threshold_arguments_are_refused_before_asking():
    asked = []
    assert checks.decide("assert_thresholds", {"cases": "all"}, None, asked.append) == [
        "cases must be one of 'data', 'edge', not 'all'"]
    assert checks.decide("assert_thresholds", {"recall": 0.9}, None, asked.append) == [
        "assert_thresholds takes no argument recall"]
    assert asked == []
    with pytest.raises(ValueError, match="takes no argument"):
        imbalance.assert_thresholds(threshold_loop, recall=0.5)


def test_the_explorer_trains_on_the_training_rows_and_keeps_the_test_logits():
    grid = imbalance.trained("digits: eight", "logistic regression")
    data = imbalance._task_data("digits: eight")
    assert torch.equal(grid.labels, data.y_val) and torch.equal(grid.test_labels, data.y_test)
    model = imbalance.train_grid(data.x_train, data.y_train, imbalance.GRID)
    with torch.no_grad():
        torch.testing.assert_close(grid.logits, model(data.x_val))
        torch.testing.assert_close(grid.test_logits, model(data.x_test))
    positives = data.y_train.sum().item()
    assert grid.balance == pytest.approx((len(data.y_train) - positives) / positives)
