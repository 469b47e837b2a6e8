"""The profile of a worker's notebooks (benchmarks/notebook_profile.py): the processor time of a
notebook's process, measured from outside, split into its cells and its answers to the judge."""

import os
import subprocess
import sys
import textwrap

from grader.instructor.engine import execute, profiling


def test_the_process_time_of_each_cell_and_of_the_answers_is_told_apart(monkeypatch):
    monkeypatch.setattr(execute.Channel, "ask", execute.Channel.ask)  # restored after the test
    monkeypatch.setattr(execute.Channel, "next", execute.Channel.next)
    measured = profiling.ProcessTime()
    measured.install()
    # a stand-in for a notebook's process: cell 4 spins 0.3 s of processor time, its answer to the
    # judge 0.2 s, cell 6 (after the answer) 0.1 s; the time it says it spent is never read
    script = textwrap.dedent("""
        import json, sys, time

        def spin(seconds):
            start = time.thread_time()
            while time.thread_time() - start < seconds:
                pass

        def say(message):
            sys.stdout.write(json.dumps(message) + "\\n")
            sys.stdout.flush()

        spin(0.3)
        say({"index": 4, "outputs": [], "said seconds": 99})
        sys.stdin.buffer.readline()
        spin(0.2)
        say({"answer": {"value": 1}})
        spin(0.1)
        say({"index": 6, "outputs": []})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    channel = execute.Channel(os.dup(proc.stdout.fileno()), os.dup(proc.stdin.fileno()), proc.pid)
    proc.stdout.close()
    proc.stdin.close()
    try:
        assert channel.next(deadline=execute.time.monotonic() + 60).startswith(b'{"index": 4')
        assert channel.ask({"op": "call", "time_limit": 30.0}) == {"value": 1}
        assert channel.next(deadline=execute.time.monotonic() + 60).startswith(b'{"index": 6')
    finally:
        channel.close()
        proc.kill()
        proc.wait(timeout=10)
    assert measured.first == 4 and measured.requests == 1
    assert set(measured.cells) == {4, 6}
    # (a few milliseconds can move from a cell to the answer before it: the process starts the
    # cell as it sends the answer, which the judge reads a moment later)
    assert 0.29 <= measured.cells[4] < 2.0  # with the process's start (Python's own)
    assert 0.19 <= measured.answers < 0.29
    assert 0.09 <= measured.cells[6] < 0.19
    data = measured.data()
    assert data["cells"] == {"4": measured.cells[4], "6": measured.cells[6]} and data["first"] == 4
    measured.reset()
    assert measured.cells == {} and measured.answers == 0.0 and measured.first is None
