"""A meter's voltage lagging its peers': the whole record lags, so the clock."""

from __future__ import annotations

import numpy as np
from factories import area_voltages_v, household_days

from detectors.voltage_lag import (
    VoltageLag,
    VoltageLagParams,
    day_curve_lag,
    voltage_lag_series,
    voltage_lags,
)

PARTS = 24
N_DAYS = 24
N_CUSTOMERS = 30
DRIFT_START_DAY = 8
DRIFT_H_PER_DAY = 0.2  # 12 minutes a day
FAST = 3


def _loads(rng: np.random.Generator) -> np.ndarray:
    """Days x customers x hours of household use [kWh]."""
    shape = household_days(rng, N_CUSTOMERS, np.arange(PARTS, dtype=np.float64))
    level = rng.uniform(0.3, 0.9, N_CUSTOMERS)[:, None]
    return (level * shape)[None] * rng.lognormal(0.0, 0.35, (N_DAYS, N_CUSTOMERS, PARTS))


def _lag_h(drifting: list[int]) -> np.ndarray:
    """Hours x customers: how far behind true time each meter samples."""
    days = np.arange(N_DAYS * PARTS, dtype=np.float64) / PARTS
    lag = np.zeros((len(days), N_CUSTOMERS))
    for c in drifting:
        lag[:, c] = DRIFT_H_PER_DAY * np.maximum(0.0, days - DRIFT_START_DAY)
    return lag


def voltage_lag(
    volts: np.ndarray, loads: np.ndarray, customer: int, ref_windows: int, params: VoltageLagParams
) -> VoltageLag | None:
    """One customer's lags out of every customer's."""
    lags = voltage_lags(volts, loads, ref_windows, params)
    return None if lags is None else lags.of(customer)


def _area(seed: int = 1, drifting: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(customers x hours voltages, days x customers x hours profiles)."""
    rng = np.random.default_rng(seed)
    loads = _loads(rng)
    flat = loads.transpose(0, 2, 1).reshape(-1, N_CUSTOMERS)  # hours x customers
    volts = area_voltages_v(rng, flat, _lag_h([FAST] if drifting is None else drifting))
    return volts, loads


def test_a_fast_clocks_voltage_lags_its_peers_by_its_drift() -> None:
    volts, loads = _area()
    vl = voltage_lag(volts, loads, FAST, 7, VoltageLagParams())
    assert vl is not None and vl.peers >= 3
    # The last three days are centred 14.5 days after the drift began.
    want = DRIFT_H_PER_DAY * (N_DAYS - 1.5 - DRIFT_START_DAY)
    assert vl.last.clear(1.2)
    assert abs(vl.last.lag_parts - want) <= 0.5
    assert abs(vl.first.lag_parts) <= 0.25 or not vl.first.clear(1.2)


def test_window_by_window_a_fast_clocks_lag_grows_from_zero_and_an_honest_ones_stays() -> None:
    volts, loads = _area()
    honest = 7
    series = voltage_lag_series(
        volts, loads.astype(np.float64), 7, VoltageLagParams(), np.array([FAST, honest])
    )
    assert series.shape == (N_DAYS, 2)
    assert np.isnan(series[:2]).all()  # no block of three windows yet
    # A block's lag is read at its centre, a window before its end.
    centre_days = np.arange(N_DAYS) - 1.0
    want = DRIFT_H_PER_DAY * np.maximum(0.0, centre_days + 0.5 - DRIFT_START_DAY)
    np.testing.assert_allclose(series[2:, 0], want[2:], atol=0.5)
    assert series[-1, 0] > 2.0
    np.testing.assert_array_equal(series[2:, 1], 0.0)


def test_honest_meters_show_no_lag_even_beside_a_fast_clock() -> None:
    """The reference is the median of the closest peers: one lagging peer cannot
    drag it. Only a clear lag now is looked at in the first windows."""
    volts, loads = _area()
    lags = voltage_lags(volts, loads, 7, VoltageLagParams())
    assert lags is not None
    honest = np.arange(N_CUSTOMERS) != FAST
    assert (lags.peers[honest] >= 3).all()
    assert ((np.abs(lags.last_lag) <= 0.25) | (lags.last_gain < 1.2))[honest].all()
    assert np.isfinite(lags.first_gain[FAST])
    assert np.isnan(lags.first_gain[lags.last_gain < 1.2]).all()


def test_a_voltage_with_nothing_in_common_with_its_peers_says_nothing() -> None:
    """A meter recording noise only (a broken voltage channel): no lag is clear, and
    no peers follow it."""
    volts, loads = _area()
    volts[FAST] = 230.0 + np.random.default_rng(9).normal(0.0, 2.0, volts.shape[1])
    vl = voltage_lag(volts, loads, FAST, 7, VoltageLagParams())
    assert vl is None or not vl.last.clear(1.2)


def test_without_peers_there_is_no_answer() -> None:
    volts, loads = _area()
    alone = np.full_like(volts, np.nan)
    alone[FAST] = volts[FAST]
    assert voltage_lag(alone, loads, FAST, 7, VoltageLagParams()) is None
    # Too short a history for a first and a last block apart.
    assert voltage_lag(volts[:, : 5 * PARTS], loads[:5], FAST, 7, VoltageLagParams()) is None


def test_a_reference_of_fewer_peers_than_asked_is_no_answer() -> None:
    """Four neighbours with voltages and the fast clock: its lag is read against four
    peers only when the reference may be that thin (seed 24 of the independent
    grids: a false fast clock against 3 peers, session 21)."""
    volts, loads = _area()
    few = np.full_like(volts, np.nan)
    keep = [FAST, 0, 1, 2, 4]
    few[keep] = volts[keep]
    assert voltage_lag(few, loads, FAST, 7, VoltageLagParams()) is None
    thin = voltage_lag(few, loads, FAST, 7, VoltageLagParams(min_peers=4))
    assert thin is not None and thin.peers == 4 and thin.last.clear(1.3)


def test_a_fast_clocks_mean_day_of_voltage_follows_its_areas_later_and_later() -> None:
    volts, _ = _area()
    dl = day_curve_lag(volts, FAST, PARTS, 5, 3, 8)
    assert dl is not None
    assert abs(dl.first_lag_parts) <= 0.5 and dl.first_corr > 0.9
    want = DRIFT_H_PER_DAY * (N_DAYS - 1.5 - DRIFT_START_DAY)
    assert abs(dl.last_lag_parts - want) <= 0.5
    assert dl.last_corr > 0.9 and dl.last_corr_on_time < 0.5
    honest = day_curve_lag(volts, FAST + 1, PARTS, 5, 3, 8)
    assert honest is not None
    assert abs(honest.last_lag_parts) <= 0.5 and abs(honest.first_lag_parts) <= 0.5
    assert honest.last_corr - honest.last_corr_on_time < 0.05


def test_a_mean_day_with_an_unknown_part_or_too_short_a_history_gives_no_lag() -> None:
    volts, _ = _area()
    gappy = volts.copy()
    gappy[FAST, -PARTS:] = np.nan  # the last window unknown: its mean day has no part
    gappy[FAST, -3 * PARTS : -2 * PARTS] = np.nan
    gappy[FAST, -2 * PARTS : -PARTS] = np.nan
    assert day_curve_lag(gappy, FAST, PARTS, 5, 3, 8) is None
    assert day_curve_lag(volts[:, : 7 * PARTS], FAST, PARTS, 5, 3, 8) is None
