"""The order in which the engine's workers take notebooks: as given, but a run's last notebooks
longest first, so that it ends with short ones."""

import pytest

from grader.instructor.engine import pool


class _Pool:
    """Runs each task as it is given (what a pool of workers would, one at a time), and says
    it took as long as ``seconds`` says of its assignment."""

    def __init__(self, seconds):
        self.seconds, self.started = seconds, []

    def apply_async(self, fn, args, callback, error_callback):
        (task,) = args
        self.started.append(task[2] + ":" + task[3])
        if task[3] == "broken":
            return error_callback(RuntimeError("a worker failed"))
        callback((task, self.seconds[task[2]], (task[3], task[2], True, "")))


def _work(names):
    return [("root", None, name.split(":")[0], name.split(":")[1]) for name in names]


def test_the_last_notebooks_are_started_longest_first():
    names = [f"{a}:s{i}" for i in range(4) for a in ("short", "long", "middle")]
    fake = _Pool({"short": 0.1, "long": 2.0, "middle": 0.5})
    results = list(pool._graded_in_turn(fake, _work(names), jobs=2))
    assert sorted(r[0] + r[1] for r in results) == sorted(n.split(":")[1] + n.split(":")[0] for n in names)
    tail = pool.TAIL_PER_WORKER * 2
    assert fake.started[:-tail] == names[:-tail]  # in the order given, up to the last four
    assert fake.started[-tail:] == ["long:s3", "middle:s2", "middle:s3", "short:s3"]


def test_an_assignment_not_graded_yet_counts_as_longest():
    waiting = _work(["a:s1", "b:s1", "c:s1"])
    assert pool._next(waiting, {"a": [3.0, 1], "c": [1.0, 1]}, tail=3) == 1
    assert pool._next(waiting, {"a": [3.0, 1], "b": [1.0, 2], "c": [1.0, 1]}, tail=3) == 0
    assert pool._next(waiting, {}, tail=2) == 0  # more than the tail left: the first


def test_a_worker_that_fails_stops_the_run_with_its_error():
    fake = _Pool({"a": 1.0})
    with pytest.raises(RuntimeError, match="a worker failed"):
        list(pool._graded_in_turn(fake, _work(["a:s1", "a:broken", "a:s2"]), jobs=1))
