"""Shared statistics of the detectors."""

from __future__ import annotations

import numpy as np
import pytest

from detectors._stats import long_run_var, quiet_nan_spread


def testlong_run_variance_of_white_and_differenced_noise() -> None:
    rng = np.random.default_rng(7)
    white = rng.normal(0, 1, 20_000)
    assert long_run_var(white, 24) / len(white) == pytest.approx(1.0, abs=0.1)
    # Differences of rounding errors telescope: their sum barely grows.
    diffed = np.diff(white)
    assert long_run_var(diffed, 24) / len(diffed) < 0.15


def test_spread_is_the_coefficient_of_variation_over_finite_values() -> None:
    a = np.array([[1.0, 0.0, np.nan], [3.0, 0.0, np.nan], [np.nan, 0.0, np.nan]])
    spread = quiet_nan_spread(a)
    assert spread[0] == pytest.approx(0.5)  # std 1 over mean 2, the NaN skipped
    assert np.isnan(spread[1]) and np.isnan(spread[2])  # a zero mean, nothing finite
