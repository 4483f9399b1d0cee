"""Runs of readings (streams.slots)."""

from __future__ import annotations

import numpy as np
import pytest

from streams.slots import Run


def test_runs_of_readings_are_read_only() -> None:
    """A run never changes once made (incremental checkpoints rely on it)."""
    one = Run(
        np.array([1]),
        np.array([2.0]),
        np.array([False]),
        np.array([0], np.int16),
        np.array([230.0], np.float32),
    )
    run = Run.merge([one, Run.empty()])
    for a in (run.key, run.value, run.is_interval, run.event, run.voltage_v):
        with pytest.raises(ValueError):
            a[:1] = a[:1]
    assert run.take(np.array([0])).value.flags.writeable is False
