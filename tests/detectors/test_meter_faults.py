"""Meter faults named by type: clock drift from where readings fall on the grid."""

from __future__ import annotations

import numpy as np
import pytest
from factories import DAY, area_day, clock_drifting

from detectors.meter_faults import MeterFaultDetector
from detectors.observations import AreaHistory

GRID_S = 900


def _phase(times: np.ndarray) -> float:
    """The circular mean of the reading times against the 15-minute grid [s], as the
    engine computes it (streams.profile.reading_phase)."""
    angle = 2 * np.pi * (times % GRID_S) / GRID_S
    return float(np.arctan2(np.sin(angle).sum(), np.cos(angle).sum()) / (2 * np.pi) * GRID_S)


def _history(drift_s_per_day: list[float], n_days: int = 20, start_day: int = 8) -> AreaHistory:
    """One area, one customer per entry of ``drift_s_per_day``: its clock drifts by
    that much a day from ``start_day`` (0: a healthy meter). Every reading carries a
    few seconds of jitter; customer 0 of a rate 0 reads at a constant :07 offset."""
    rng = np.random.default_rng(1)
    n = len(drift_s_per_day)
    ids = tuple(f"C{i:02d}" for i in range(n))
    h = AreaHistory()
    for d in range(n_days):
        t = d * DAY + np.arange(96) * GRID_S + GRID_S  # reading ends within the day
        phases = []
        for i, rate in enumerate(drift_s_per_day):
            elapsed = np.maximum(t - start_day * DAY, 0) / DAY
            offset = 420.0 if i == 0 and rate == 0 else 0.0
            phases.append(_phase(t + offset + rate * elapsed + rng.normal(0, 3.0, len(t))))
        h.push(area_day(d, ids, np.full(n, 5.0), phase_s=np.array(phases, np.float32)))
    return h


@pytest.mark.parametrize(
    "rate_s_per_day",
    [
        -120.0,  # 2 minutes a day
        70.0,  # 70 s a day: was under 4 windows' 240 s in all
        600.0,  # 10 minutes a day: wraps around the 15-minute grid
        30.0,  # a slow drift, seen over 8 windows
        14.5 * 60,  # almost the grid a day: looks like -30 s a day
    ],
)
def test_a_drifting_clock_is_named_and_healthy_meters_are_not(rate_s_per_day: float) -> None:
    """(Closer still to 15 minutes a day, the readings of one day cover the whole
    grid, their circular mean is mostly jitter and the daily phase cannot show the
    drift: 14.8 minutes a day is not found here.)"""
    h = _history([0.0, rate_s_per_day, 0.0, 0.0])
    assert clock_drifting(h) == {"C01"}


def test_no_drift_before_it_started_and_not_from_jitter_or_a_constant_offset() -> None:
    assert clock_drifting(_history([0.0, 0.0, 0.0], n_days=20)) == set()
    # A drift that started two windows ago is not a steady trend yet.
    assert clock_drifting(_history([0.0, 120.0, 0.0], n_days=10, start_day=8)) == set()


def _area(recorded: np.ndarray, supply: np.ndarray, virtual: bool = False) -> AreaHistory:
    """Daily windows of one area from recorded energy (days x customers) and supply."""
    n = recorded.shape[1]
    ids = tuple(f"C{i:02d}" for i in range(n))
    h = AreaHistory()
    for d in range(len(recorded)):
        h.push(
            area_day(
                d,
                ids,
                recorded[d],
                area_id="F1/unmetered" if virtual else "A1",
                supply_kwh=float(supply[d]),
                virtual=virtual,
            )
        )
    return h


def _loads(n_days: int = 20, n: int = 12) -> np.ndarray:
    rng = np.random.default_rng(2)
    level = rng.uniform(5.0, 20.0, n)
    return level[None, :] * rng.lognormal(0.0, 0.2, (n_days, n))


def _multiplier_findings(h: AreaHistory) -> set[str]:
    return {
        f.target_id
        for f in MeterFaultDetector().score_one(h)
        if f.detector == "meter_fault:wrong_multiplier"
    }


def test_a_wrong_multiplier_in_the_feeders_unmetered_part_is_named() -> None:
    """C03, a dedicated customer (no area meter of its own), is registered with half
    its field multiplier: the feeder's unmetered part is the only balance that sees
    it, and there its recorded energy is half what the head meter supplied to it."""
    true = _loads()
    true[:, 3] *= 10.0
    supply = true.sum(axis=1) * 1.03
    rec = true.copy()
    rec[:, 3] *= 0.5
    assert _multiplier_findings(_area(rec, supply, virtual=True)) == {"C03"}


def test_a_large_customers_theft_from_mid_history_is_not_a_wrong_multiplier() -> None:
    """A dedicated customer of a development grid (seed 5) bypasses most of its meter
    from day 10 (as if alone in an area): over the whole history the loss tracks its
    recording with a factor of about 0.2, but in the first windows it did not (a
    wrong registry entry holds from the start), so it stays a theft lead."""
    recorded = np.array(
        [
            *(9015, 9345, 8760, 7620, 9255, 6990, 5520, 8205, 9765, 6975, 1425, 1290, 1035),
            *(1170, 1365, 1245, 1050, 1080, 1515, 825, 810, 1125, 1395, 1215, 1125, 945, 735),
        ],
        dtype=np.float64,
    )
    excess = np.array(
        [
            *(262, 247, 263, 192, 325, 190, 94, 217, 244, 946, 8132, 7302, 5863, 6659, 7778),
            *(7105, 5949, 6138, 8645, 4633, 4573, 6466, 7960, 6907, 6451, 5364, 4257),
        ],
        dtype=np.float64,
    )
    supply = (recorded + excess) / 0.97  # excess = loss - 3 % of the supply
    assert _multiplier_findings(_area(recorded[:, None], supply)) == set()
    # The same customer registered at five times its field multiplier from the start.
    true = recorded[:10].mean() * np.random.default_rng(3).lognormal(0, 0.15, len(recorded))
    assert _multiplier_findings(_area(5 * true[:, None], true * 1.03)) == {"C00"}


def test_a_ct_customer_filed_with_a_fifth_of_its_ratio_is_named() -> None:
    """A shop behind a 150/5 CT (30) filed with 30/5 (6): it bills a fifth of its use,
    a quotient outside the usual list of doubled or halved ratios."""
    true = _loads()
    true[:, 5] *= 6.0
    supply = true.sum(axis=1) * 1.03
    billed = true.copy()
    billed[:, 5] /= 5.0
    findings = [
        f
        for f in MeterFaultDetector().score_one(_area(billed, supply))
        if f.detector == "meter_fault:wrong_multiplier"
    ]
    assert [f.target_id for f in findings] == ["C05"]
    assert "5 x the registry's" in findings[0].reason


def test_a_customer_absent_from_the_balance_is_left_to_the_topology_detectors() -> None:
    """Billed here, supplied elsewhere: the loss tracks its consumption with -1, as a
    direct meter filed with a CT's ratio of 30 would (-0.97). The far more common
    wrong area is the topology detectors' to pair; the fault detector stays out."""
    true = _loads()
    supply = np.delete(true, 5, axis=1).sum(axis=1) * 1.03
    assert _multiplier_findings(_area(true, supply)) == set()


def test_a_multiplier_near_one_is_not_a_registry_error() -> None:
    """A customer whose consumption enters the loss at 1.1 of itself is within what
    the technical loss and the meters' accuracy make of a large load."""
    true = _loads()
    true[:, 2] *= 8.0
    supply = true.sum(axis=1) * 1.03
    billed = true.copy()
    billed[:, 2] *= 1 / 1.1
    assert _multiplier_findings(_area(billed, supply)) == set()
