"""Shared statistics of the detectors."""

from __future__ import annotations

import numpy as np
import pytest

from detectors._stats import long_run_var


def testlong_run_variance_of_white_and_differenced_noise() -> None:
    rng = np.random.default_rng(7)
    white = rng.normal(0, 1, 20_000)
    assert long_run_var(white, 24) / len(white) == pytest.approx(1.0, abs=0.1)
    # Differences of rounding errors telescope: their sum barely grows.
    diffed = np.diff(white)
    assert long_run_var(diffed, 24) / len(diffed) < 0.15
