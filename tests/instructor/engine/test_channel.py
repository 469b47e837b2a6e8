"""The judge's side of the pipes to a notebook's process: whatever that process writes (too
much, too late, junk, nothing), the judge gets a refusal it can count as a failed case, and
the process is stopped; the judge never blocks and never crashes."""

import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from grader._battery import wire
from grader.instructor.engine import execute


def process(body: str):
    """A stand-in for a notebook's process: reads requests on stdin, runs ``body`` for each."""
    script = textwrap.dedent("""
        import sys, json
        for line in sys.stdin.buffer:
            request = json.loads(line)
    """) + textwrap.indent(textwrap.dedent(body), "    ")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    channel = execute.Channel(os.dup(proc.stdout.fileno()), os.dup(proc.stdin.fileno()), proc.pid)
    proc.stdout.close()
    proc.stdin.close()
    return proc, channel


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(execute, "ANSWER_GRACE_S", 1.0)
    monkeypatch.setattr(execute, "ANSWER_LIMIT", 1 << 16)


def finish(proc, channel):
    channel.close()
    proc.kill()
    proc.wait(timeout=10)


def test_a_well_formed_answer_comes_through_with_its_tensors():
    proc, channel = process("""
        out = {"answer": {"value": {"tensor": "float32", "shape": [2], "device": "cpu",
                                    "data": "AACAPwAAAEA="}, "echo": request["op"]}}
        sys.stdout.write(json.dumps(out) + "\\n"); sys.stdout.flush()
    """)
    got = channel.ask({"op": "call", "time_limit": 1.0})
    assert got["echo"] == "call" and torch.equal(got["value"], torch.tensor([1.0, 2.0]))
    assert channel.dead is None
    finish(proc, channel)


@pytest.mark.parametrize("body, why", [
    ("sys.stdout.write('x' * (1 << 17)); sys.stdout.flush()", "more than"),
    ("sys.stdout.write('x' * (1 << 17) + '\\n'); sys.stdout.flush()", "more than"),
    ("sys.stdout.write('not json\\n'); sys.stdout.flush()", "not an answer"),
    ("sys.stdout.write('[1, 2]\\n'); sys.stdout.flush()", "not an answer"),
    ("sys.stdout.write(json.dumps({'answer': {'value': {'tensor': 'float32', 'shape': [9], 'data': ''}}}) + '\\n')"
     "; sys.stdout.flush()", "not an answer"),
    ("sys.exit(0)", "ended"),
    ("import time; time.sleep(60)", "timeout"),
    ("sys.stdout.write('{\"answer\": [' + '[],' * 20000 + '[]]}\\n'); sys.stdout.flush()", "not an answer"),
], ids=["endless-line", "huge-line", "junk", "not-a-record", "bad-tensor", "exits", "silent", "many-lists"])
def test_a_misbehaving_process_is_refused_and_stopped(body, why):
    proc, channel = process(body)
    started = time.monotonic()
    got = channel.ask({"op": "call", "time_limit": 0.2})
    assert "refused" in got and why in got["refused"], got
    assert time.monotonic() - started < 10
    assert proc.wait(timeout=10) is not None                        # stopped (or gone)
    started = time.monotonic()
    assert "refused" in channel.ask({"op": "call", "time_limit": 0.2})  # and not asked again
    assert time.monotonic() - started < 0.5
    finish(proc, channel)


def test_an_answer_of_millions_of_items_is_refused_before_it_is_parsed():
    """Parsing 16 MiB of tiny JSON items costs gigabytes: the wire counts them first."""
    for line in (b'{"answer": [' + b"[]," * 20000 + b"[]]}", b'{"answer": [' + b"1," * 200000 + b"1]}"):
        with pytest.raises(wire.Unreadable, match="more lists, dicts or items"):
            wire.loads(line)
    assert torch.equal(wire.loads(wire.dumps({"answer": torch.ones(1 << 16)}))["answer"], torch.ones(1 << 16))


def test_the_judges_requests_count_against_the_notebooks_time_limit():
    """A process that answers every request slowly, each within its own limit, is stopped
    when the notebook's time limit passes, not after as many requests as the judge has."""
    proc, channel = process("""
        import time; time.sleep(0.4)
        sys.stdout.write(json.dumps({"answer": {"echo": request["op"]}}) + "\\n"); sys.stdout.flush()
    """)
    channel.deadline = time.monotonic() + 1.0
    started = time.monotonic()
    answers = [channel.ask({"op": "call", "time_limit": 5.0}) for _ in range(10)]
    assert time.monotonic() - started < 2.5
    assert answers[0] == {"echo": "call"} and "time limit" in answers[-1]["refused"], answers
    finish(proc, channel)


def test_a_process_that_stops_reading_does_not_block_the_judge(monkeypatch):
    proc, channel = process("import time; time.sleep(60)")
    os.kill(proc.pid, 19)  # SIGSTOP: it reads nothing, the pipe fills
    big = {"op": "call", "time_limit": 0.2, "args": {"input": torch.zeros(1 << 20)}}
    monkeypatch.setattr(execute.select, "select", _short_select(execute.select.select))
    started = time.monotonic()
    got = channel.ask(big)
    assert "refused" in got and time.monotonic() - started < 20
    finish(proc, channel)


def _short_select(select):
    def quicker(r, w, x, timeout=None):
        return select(r, w, x, min(timeout, 0.5) if timeout is not None else 0.5)

    return quicker


def test_listen_stops_a_process_that_floods_one_message(monkeypatch):
    monkeypatch.setattr(execute, "MESSAGE_LIMIT", 1 << 16)
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdout.write('x' * (1 << 20)); "
                             "sys.stdout.flush(); import time; time.sleep(60)"], stdout=subprocess.PIPE)
    seen = []
    stopped = execute.listen(os.dup(proc.stdout.fileno()), proc.pid, 30, None, lambda m, c: seen.append(m))
    proc.stdout.close()
    assert seen == [] and "more than" in stopped
    assert proc.wait(timeout=10) is not None
    assert wire.Unreadable  # the answers' reader is the wire's


def test_a_cases_request_is_framed_once_and_sent_with_each_notebooks_subject():
    # a stand-in that reads framed requests as a notebook's process does, and sends each back
    script = textwrap.dedent("""
        import json, sys
        from grader._battery import wire
        stream = sys.stdin.buffer
        for line in iter(stream.readline, b""):
            request = wire.unframe(line[:-1], stream.read)
            sys.stdout.write(json.dumps({"answer": wire.encode(request)}) + "\\n")
            sys.stdout.flush()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    channel = execute.Channel(os.dup(proc.stdout.fileno()), os.dup(proc.stdin.fileno()), proc.pid)
    proc.stdout.close()
    proc.stdin.close()
    try:
        cache = {}
        request = {"op": "call", "time_limit": 5.0, "args": {"input": torch.tensor([0.25, 0.5])}}
        first = channel.ask(wire.Kept(request, cache, 5.0), subject="binary_cross_entropy")
        assert first["args"]["input"].tolist() == [0.25, 0.5]
        assert {k: v for k, v in first.items() if k != "args"} == {
            "op": "call", "time_limit": 5.0, "subject": "binary_cross_entropy"}
        assert list(cache) == [5.0]
        # the next notebook is sent the kept bytes: changed here, they show in what arrives
        cache[5.0] = cache[5.0].replace(b'"call"', b'"kept"')
        second = channel.ask(wire.Kept(request, cache, 5.0), subject="bce")
        assert (second["op"], second["subject"]) == ("kept", "bce")
        # a field of the request's own is never written twice: the request is encoded whole
        third = channel.ask(wire.Kept(request, cache, 5.0), op="describe")
        assert third["op"] == "describe" and "args" in third
    finally:
        finish(proc, channel)


def test_a_notebooks_process_reads_each_requests_tensors_into_memory_of_their_own():
    import threading

    from grader.instructor.engine import session

    large = torch.rand(700, 300, dtype=torch.float64)  # 1.6 MiB: many reads of the pipe
    half = torch.tensor([1.5, -2.0], dtype=torch.bfloat16)
    requests = [{"op": "call", "args": {"input": large, "target": half, "empty": torch.zeros(0, 3)}},
                {"op": "continue", "after": "a line that follows the bytes of the last"}]
    read, write = os.pipe()
    writer = threading.Thread(target=lambda: [os.write(write, wire.frame(r)) for r in requests] and os.close(write))
    writer.start()
    try:
        got = session._Requests(read)
        first = wire.unframe(got.line(), got.take)
        second = wire.unframe(got.line(), got.take)
        got.close()
    finally:
        writer.join()
        os.close(read)
    args = first["args"]
    assert torch.equal(args["input"], large) and args["input"].dtype == torch.float64
    assert torch.equal(args["target"], half) and args["empty"].shape == (0, 3)
    assert second == requests[1]
    # each tensor is the request's own (the student's function may change it in place)
    args["input"].add_(1)
    assert not torch.equal(args["input"], large) and torch.equal(args["target"], half)
    with pytest.raises(wire.Unreadable):  # a tensor whose bytes do not match its shape
        wire.unframe(b'{"x": {"tensor": "float32", "shape": [3], "raw": 8}}', lambda n: torch.zeros(n, dtype=torch.uint8))


def test_a_failed_test_cell_shows_its_values_but_nbgrader_scores_only_the_judges_error():
    """nbgrader scores a test cell by its first error or execute_result: a value the student's
    code made the cell show must not come before the judge's failure and earn the points."""
    import nbformat
    from nbgrader.utils import determine_grade

    from grader.instructor import verdict

    cell = nbformat.v4.new_code_cell("grader.assert_passes(binary_cross_entropy)", metadata={
        "nbgrader": {"grade": True, "solution": False, "grade_id": "t", "points": 3}})
    cell.outputs = [nbformat.from_dict({"output_type": "execute_result", "execution_count": 1, "metadata": {},
                                        "data": {"text/plain": "'all checks passed'"}}),
                    nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": "hi\n"})]
    assert determine_grade(cell)[0] == 3
    verdict.fail(cell, "your function returned 0 where torch gives 0.69")
    assert determine_grade(cell)[0] == 0
    assert [o.output_type for o in cell.outputs] == ["display_data", "stream", "error"]
    assert cell.outputs[0].data["text/plain"] == "'all checks passed'"  # still shown in the feedback


@pytest.mark.parametrize("junk", [b"[" * 100000, b"\xff\xfe", b"1e999999", b'{"index": 10 ** 400}', b"[]"])
def test_listen_stops_a_process_that_sends_junk_and_never_raises(junk):
    """Whatever a notebook's process writes as a cell's message, ``listen`` returns why it
    stopped it; nothing it sends raises out of the engine and stops the batch."""
    script = f"import sys, time; sys.stdout.buffer.write({junk!r} + b'\\n'); sys.stdout.flush(); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    fd = os.dup(proc.stdout.fileno())
    proc.stdout.close()
    seen = []
    start = time.monotonic()
    stopped = execute.listen(fd, proc.pid, 5, None, lambda message, channel: seen.append(message))
    proc.wait(timeout=10)
    assert time.monotonic() - start < 5 and seen == []
    assert stopped == "the notebook's process was stopped: it sent something that is not a message", stopped


def test_listen_stops_a_process_whose_message_breaks_the_judge():
    """An error of the grader's own on a message (here, one ``answer`` raises) stops that
    notebook's process and is returned, not raised."""
    proc = subprocess.Popen([sys.executable, "-c", "print('{\"index\": 1}'); import time; time.sleep(30)"],
                            stdout=subprocess.PIPE)
    fd = os.dup(proc.stdout.fileno())
    proc.stdout.close()

    def answer(message, channel):
        raise OverflowError("int too large to convert to float")

    stopped = execute.listen(fd, proc.pid, 5, None, answer)
    proc.wait(timeout=10)
    assert "could not use what it sent (OverflowError)" in stopped
