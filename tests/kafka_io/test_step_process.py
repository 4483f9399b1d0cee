"""The worker's child processes, without a broker."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from kafka_io.step_process import _Child, _noop


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
