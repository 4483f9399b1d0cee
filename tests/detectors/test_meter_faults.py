"""Meter faults named by type: clock drift from where readings fall on the grid, wrong
multipliers, voltage and phase loss."""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import numpy as np
import pytest
from factories import DAY, area_day, clock_drifting

from detectors.meter_faults import MeterFaultDetector
from detectors.observations import AreaHistory
from lineloss.domain import MeterEvent, SuspicionCategory
from streams.registers import FLAG_ROLLOVER, FLAG_STEP_BACK

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


def _area(
    recorded: np.ndarray,
    supply: np.ndarray,
    virtual: bool = False,
    last_flags: np.ndarray | None = None,
    multiplier: np.ndarray | None = None,
) -> AreaHistory:
    """Daily windows of one area from recorded energy (days x customers) and supply;
    ``last_flags``: the register flags the engine raised in the last window;
    ``multiplier``: the customers' registry multipliers (unknown by default)."""
    n = recorded.shape[1]
    ids = tuple(f"C{i:02d}" for i in range(n))
    h = AreaHistory()
    for d in range(len(recorded)):
        flags = last_flags if last_flags is not None and d == len(recorded) - 1 else None
        h.push(
            area_day(
                d,
                ids,
                recorded[d],
                area_id="F1/unmetered" if virtual else "A1",
                supply_kwh=float(supply[d]),
                virtual=virtual,
                multiplier=multiplier,
                **({"flags": flags} if flags is not None else {}),
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


def test_a_direct_meter_recording_part_of_its_use_from_the_start_is_a_theft() -> None:
    """C05, a household on a direct meter (registry multiplier 1), has recorded 45 %
    of its use since before the history: its consumption enters the loss x1.2 from
    the first window on. No CT ratio is 2.2, so it is named a theft lead, not a wrong
    multiplier. The same quotient on a CT customer (registry 30, field about 66) may
    be a registry error and stays a fault; a direct meter at a tenth of its use (a CT
    of 50/5 the registry missed, or a bypass) stays one too."""
    true = _loads()
    true[:, 5] *= 3.0
    supply = true.sum(axis=1) * 1.03
    billed = true.copy()
    billed[:, 5] *= 0.45
    direct = np.ones(true.shape[1])
    findings = MeterFaultDetector().score_one(_area(billed, supply, multiplier=direct))
    assert [(f.target_id, f.category, f.detector) for f in findings] == [
        ("C05", SuspicionCategory.THEFT, "meter_fault:under_recording")
    ]
    assert "records about 45%" in findings[0].reason
    assert findings[0].estimated_kwh == pytest.approx(0.55 * true[:, 5].mean(), rel=0.1)
    behind_ct = direct.copy()
    behind_ct[5] = 30.0
    assert _multiplier_findings(_area(billed, supply, multiplier=behind_ct)) == {"C05"}
    billed[:, 5] = true[:, 5] / 10.0
    assert _multiplier_findings(_area(billed, supply, multiplier=direct)) == {"C05"}


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


def _voltage_area(n_days: int, lost_from: int, factor: float, event: bool) -> AreaHistory:
    """Daily windows of 12 customers with hourly voltages and profiles; customer C03
    sees ``factor`` of its voltage, and records that share of its energy, from day
    ``lost_from`` (its meter reporting the loss when ``event``)."""
    rng = np.random.default_rng(3)
    n, parts = 12, 24
    ids = tuple(f"C{i:02d}" for i in range(n))
    drop = rng.uniform(0.0, 0.05, n)[:, None]
    h = AreaHistory()
    for d in range(n_days):
        volts = 230.0 * (1.0 - drop) + rng.normal(0.0, 0.5, (n, parts))
        profile = rng.uniform(0.1, 0.8, (n, parts))
        events = np.zeros(n, np.int32)
        if d >= lost_from:
            volts[3] *= factor
            profile[3] *= factor
            if event and d == lost_from:
                events[3] = 1 << int(MeterEvent.PHASE_LOSS)
        w = area_day(
            d,
            ids,
            profile.sum(axis=1),
            voltage_v=volts.astype(np.float32),
            profile_kwh=profile.astype(np.float32),
        )
        h.push(replace(w, events=events))
    return h


@pytest.mark.parametrize("event", [False, True])
def test_a_phase_lost_from_a_normal_past_is_named_certain_with_its_event(event: bool) -> None:
    h = _voltage_area(10, lost_from=8, factor=0.66, event=event)
    found = [f for f in MeterFaultDetector().score_one(h) if "loss" in f.detector]
    assert [(f.target_id, f.detector) for f in found] == [("C03", "meter_fault:phase_loss")]
    assert found[0].score == pytest.approx(0.9 if event else 0.8)
    assert found[0].estimated_kwh > 0
    assert ("the meter reported it" in found[0].reason) == event


def test_voltages_are_not_compared_across_dedicated_customers() -> None:
    """Each dedicated customer has its own transformer (and may be metered at
    10 kV): they are nobody's peers."""
    h = _voltage_area(10, lost_from=8, factor=0.3, event=False)
    h.windows = deque(replace(w, dedicated=True, area_id="F1/dedicated") for w in h.windows)
    assert not [f for f in MeterFaultDetector().score_one(h) if "loss" in f.detector]


def test_voltage_settings_load_from_a_settings_file() -> None:
    d = MeterFaultDetector(**{"voltage": {"low_ratio": 0.7}})  # type: ignore[arg-type]
    assert d.voltage.low_ratio == 0.7
    assert d.voltage.min_peers == 3


def _jump_findings(h: AreaHistory, kind: str = "register_jump") -> dict[str, float]:
    return {
        f.target_id: f.estimated_kwh
        for f in MeterFaultDetector().score_one(h)
        if f.detector == f"meter_fault:{kind}"
    }


def _with_day(recorded: np.ndarray, supply: np.ndarray, i: int, extra_kwh: float, supplied: bool):
    rec, sup = recorded.copy(), supply.copy()
    rec[-1, i] += extra_kwh
    if supplied:
        sup[-1] += extra_kwh
    return rec, sup


def test_a_register_leaping_forward_is_named_only_when_the_area_meter_did_not_supply_it() -> None:
    rng = np.random.default_rng(2)
    recorded = _loads(12)
    supply = recorded.sum(axis=1) * 1.04 + rng.normal(0.0, 1.0, 12)
    # Billed, never supplied: a register that leapt by 300 kWh.
    rec, sup = _with_day(recorded, supply, 4, 300.0, supplied=False)
    found = _jump_findings(_area(rec, sup))
    assert list(found) == ["C04"] and found["C04"] == pytest.approx(-300.0, rel=0.05)
    # The same day used and supplied (a building site): the area meter saw it.
    assert _jump_findings(_area(*_with_day(recorded, supply, 4, 300.0, supplied=True))) == {}
    # No supply to judge against.
    assert _jump_findings(_area(rec, np.full(12, np.nan))) == {}
    # Too little history yet.
    assert _jump_findings(_area(rec[-4:], sup[-4:])) == {}


def test_a_leap_within_the_areas_loss_noise_is_not_named() -> None:
    """Days differ by a third (weather), and the area's loss by ``sd_kwh`` beyond
    its technical part (unmetered lighting, a thief's varying use)."""
    rng = np.random.default_rng(4)
    recorded = _loads(12) * rng.uniform(0.7, 1.3, 12)[:, None]
    noise = rng.normal(0.0, 1.0, 12)
    for sd_kwh, named in ((1.0, {"C04"}), (80.0, set())):
        supply = recorded.sum(axis=1) * 1.04 + sd_kwh * noise
        rec, sup = _with_day(recorded, supply, 4, 150.0, supplied=False)
        assert set(_jump_findings(_area(rec, sup))) == named, sd_kwh


def test_an_honest_big_day_in_an_area_with_a_varying_thief_is_not_a_leap() -> None:
    """A thief's varying load moves the area's supply and its loss together, so the
    loss seems to follow the supply kWh for kWh: an honest customer's big, supplied
    day then looks like a leap the area meter did not supply, unless the loss is
    judged against what the other customers billed. A real leap in the same area is
    still named."""
    rng = np.random.default_rng(6)
    recorded = _loads(12) * rng.uniform(0.7, 1.3, 12)[:, None]
    stolen = 100.0 * rng.lognormal(0.0, 0.5, 12)
    supply = recorded.sum(axis=1) * 1.04 + stolen
    assert _jump_findings(_area(*_with_day(recorded, supply, 4, 400.0, supplied=True))) == {}
    leap = _jump_findings(_area(*_with_day(recorded, supply, 4, 400.0, supplied=False)))
    assert list(leap) == ["C04"] and leap["C04"] == pytest.approx(-400.0, rel=0.05)


def test_a_rollover_the_area_meter_did_not_supply_is_a_register_fallen_to_zero() -> None:
    """A register at 9,650 kWh that falls to 0.00 reads as a wrap of a 10,000 kWh
    register (350 kWh billed); the area meter, which supplied nothing of it, says it
    was a reset, and the over-billed energy is estimated."""
    rng = np.random.default_rng(2)
    recorded = _loads(12)
    supply = recorded.sum(axis=1) * 1.04 + rng.normal(0.0, 1.0, 12)
    rec, sup = _with_day(recorded, supply, 4, 350.0, supplied=False)
    flags = np.zeros(rec.shape[1], np.int8)
    flags[4] = FLAG_ROLLOVER
    h = _area(rec, sup, last_flags=flags)
    assert _jump_findings(h) == {}
    found = _jump_findings(h, "register_reset")
    assert list(found) == ["C04"] and found["C04"] == pytest.approx(-350.0, rel=0.05)


def _meter_faults(h: AreaHistory) -> set[tuple[str, str]]:
    return {(f.target_id, f.detector.split(":")[1]) for f in MeterFaultDetector().score_one(h)}


def test_a_register_stepping_back_window_after_window_runs_backwards() -> None:
    """One step back is a fault reading; a register falling in three windows running
    is reversed current (its windows count zero), named with the use it left
    unbilled, and no longer called stuck (two windows of zero) as well."""
    recorded = _loads(12)
    supply = recorded.sum(axis=1) * 1.04
    for run, kinds in (
        (1, {"step_back"}),
        (2, {"step_back", "stuck"}),
        (3, {"reverse_energy"}),
    ):
        rec = recorded.copy()
        rec[-run:, 4] = 0.0
        h = AreaHistory()
        ids = tuple(f"C{i:02d}" for i in range(rec.shape[1]))
        for d in range(len(rec)):
            flags = np.zeros(len(ids), np.int8)
            flags[4] = FLAG_STEP_BACK if d >= len(rec) - run else 0
            h.push(area_day(d, ids, rec[d], supply_kwh=float(supply[d]), flags=flags))
        assert _meter_faults(h) == {("C04", k) for k in kinds}, run
    # The first finding carries the three windows' use, the later ones a window's.
    (found,) = MeterFaultDetector().score_one(h)
    assert found.estimated_kwh == pytest.approx(3 * np.median(recorded[:-3, 4]))
