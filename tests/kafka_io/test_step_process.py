"""The worker's child processes, without a broker."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from kafka_io.step_process import ChildHung, _Child, _exit_with_parent, _noop


def test_a_dead_child_is_noticed_without_a_step() -> None:
    """A child killed while the stream is quiet fails the next check (the worker's
    idle timer), so the worker stops instead of beating its heartbeat without a
    process to step in."""
    child = _Child(_noop, ())  # (the child must import it: not from tests/)
    try:
        pid = child.wait(os.getpid)
        child.check()  # alive: no error
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        with pytest.raises(BrokenProcessPool):
            while time.monotonic() < deadline:
                child.check()
                time.sleep(0.05)
    finally:
        child.close()


def test_a_child_stuck_in_one_call_is_noticed() -> None:
    """A child alive but stuck (a deadlock, a runaway computation) fails the check
    once one call has run longer than the limit; calls queued behind a running one
    are not counted as running."""
    now = [0.0]
    child = _Child(_noop, (), clock=lambda: now[0])
    try:
        child.check(limit_s=60)  # idle
        running = child.submit(time.sleep, 1.0)
        child.submit(_noop)  # queued behind it
        now[0] = 30.0
        child.check(limit_s=60)
        now[0] = 61.0
        with pytest.raises(ChildHung, match="one call for 61 s"):
            child.check(limit_s=60)
        running.result()
        time.sleep(0.2)  # the queued no-op ends too
        child.check(limit_s=60)  # idle again: nothing runs
        assert child.busy_s() == 0.0
    finally:
        child.close()


def test_a_child_whose_worker_is_gone_before_it_started_ends() -> None:
    """A worker killed while its children were still starting: each child is told
    its worker's pid and ends at once when its parent is another process."""
    gone = _Child(_exit_with_parent, (os.getpid() + 1,))  # not the parent it has
    try:
        with pytest.raises(BrokenProcessPool):
            gone.wait(os.getpid)
    finally:
        gone.close()
    child = _Child(_exit_with_parent, (os.getpid(),))
    try:
        assert child.wait(os.getppid) == os.getpid()
    finally:
        child.close()
