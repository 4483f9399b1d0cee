"""The balance engine on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from factories import DAY, DAY0, make_batch, make_topology

from lineloss.config import BalanceConfig, EngineConfig, LossBand
from lineloss.domain import Balance, BalanceLevel, BalanceStatus, RejectReason
from streams.engine import BalanceEngine
from streams.registers import FLAG_RESET, FLAG_ROLLOVER, FLAG_STEP_BACK

AREA = [
    ("T1", "area", "A1", "F1", 1.0),
    ("C1", "customer", "A1", "F1", 1.0),
    ("C2", "customer", "A1", "F1", 1.0),
]


def run(topo, batches, config=None):
    eng = BalanceEngine(topo, config or EngineConfig())
    history: list[Balance] = []
    rejects = []
    meter_windows = []
    for b in batches:
        rejects.append(eng.ingest(b))
        em = eng.advance()
        history += em.balances
        meter_windows += em.final_meter_windows
    em = eng.flush()
    history += em.balances
    meter_windows += em.final_meter_windows
    return history, rejects, meter_windows


def finals(history, level=BalanceLevel.AREA):
    return {(b.target_id, b.window_start): b for b in history if b.final and b.level == level}


def daily(meter, start_value, per_day, days, *, first_day=0):
    return [(meter, DAY0 + (first_day + d) * DAY, start_value + per_day * d) for d in range(days)]


def test_seed_example_10kv_is_12_02_percent_high_loss():
    # DOMAIN.md: 226.45 x 10^4 kWh supplied, 199.24 x 10^4 kWh sold at 10 kV.
    topo = make_topology(AREA)
    readings = [
        ("T1", DAY0, 0.0),
        ("T1", DAY0 + DAY, 2_264_500.0),
        ("C1", DAY0, 0.0),
        ("C1", DAY0 + DAY, 1_000_000.0),
        ("C2", DAY0, 0.0),
        ("C2", DAY0 + DAY, 992_400.0),
    ]
    hist, _, _ = run(topo, [make_batch(topo, readings)])
    b = finals(hist)[("A1", DAY0)]
    assert b.supply_kwh == 2_264_500.0
    assert b.billed_kwh == 1_992_400.0
    assert b.loss_kwh == 272_100.0
    assert round(b.loss_rate * 100, 2) == 12.02
    assert b.status == BalanceStatus.HIGH_LOSS
    assert "12.02%" in b.reason


def test_seed_example_400v_against_its_own_target():
    topo = make_topology(AREA)
    readings = [
        ("T1", DAY0, 0.0),
        ("T1", DAY0 + DAY, 2_147_300.0),
        ("C1", DAY0, 0.0),
        ("C1", DAY0 + DAY, 1_000_000.0),
        ("C2", DAY0, 0.0),
        ("C2", DAY0 + DAY, 912_000.0),
    ]
    config = EngineConfig(balance=BalanceConfig(area_bands={"A1": LossBand(-0.01, 0.093)}))
    b = finals(run(topo, [make_batch(topo, readings)], config)[0])[("A1", DAY0)]
    assert round(b.loss_rate * 100, 2) == 10.96
    assert b.status == BalanceStatus.HIGH_LOSS


def test_multiplier_scales_register_deltas():
    topo = make_topology([("T1", "area", "A1", None, 80.0), ("C1", "customer", "A1", None, 1.0)])
    readings = [*daily("T1", 100.0, 1.25, 3), *daily("C1", 5.0, 97.0, 3)]
    fin = finals(run(topo, [make_batch(topo, readings)])[0])
    b = fin[("A1", DAY0)]
    assert b.supply_kwh == 100.0  # 1.25 register kWh x CT/PT ratio 80
    assert b.billed_kwh == 97.0
    assert b.loss_rate == pytest.approx(0.03)
    assert b.status == BalanceStatus.NORMAL


def test_negative_loss_and_reason():
    topo = make_topology(AREA)
    readings = [*daily("T1", 0, 100, 2), *daily("C1", 0, 60, 2), *daily("C2", 0, 45, 2)]
    b = finals(run(topo, [make_batch(topo, readings)])[0])[("A1", DAY0)]
    assert b.loss_kwh == -5.0
    assert b.status == BalanceStatus.NEGATIVE_LOSS
    assert "below -1.00%" in b.reason


def test_area_without_area_meter_is_incomputable_with_reason():
    topo = make_topology([("C1", "customer", "A9", None, 1.0)])
    b = finals(run(topo, [make_batch(topo, daily("C1", 0, 10, 3))])[0])[("A9", DAY0)]
    assert b.status == BalanceStatus.INCOMPUTABLE
    assert b.reason == "no area meter in the topology"
    assert b.billed_kwh == 10.0


def test_low_coverage_is_incomputable():
    topo = make_topology(AREA)
    readings = [*daily("T1", 0, 100, 2), *daily("C1", 0, 60, 2)]  # C2 never reports
    b = finals(run(topo, [make_batch(topo, readings)])[0])[("A1", DAY0)]
    assert b.status == BalanceStatus.INCOMPUTABLE
    assert b.coverage == 0.5
    assert "coverage 50.0% (1/2 meters) below 90%" in b.reason


def test_zero_supply_is_incomputable():
    topo = make_topology(AREA)
    readings = [*daily("T1", 7, 0, 2), *daily("C1", 0, 1, 2), *daily("C2", 0, 1, 2)]
    b = finals(run(topo, [make_batch(topo, readings)])[0])[("A1", DAY0)]
    assert b.status == BalanceStatus.INCOMPUTABLE
    assert b.reason.startswith("supply is zero or negative")


def test_first_window_without_a_previous_reading_is_incomputable():
    topo = make_topology(AREA)
    readings = [*daily("T1", 0, 100, 2), *daily("C1", 0, 50, 2), *daily("C2", 0, 45, 2)]
    fin = finals(run(topo, [make_batch(topo, readings)])[0])
    # The reading at DAY0 00:00 closes the window that ends then; its start is unknown.
    assert fin[("A1", DAY0 - DAY)].status == BalanceStatus.INCOMPUTABLE
    assert fin[("A1", DAY0)].status == BalanceStatus.NORMAL


def test_fifteen_minute_registers_with_hour_windows():
    topo = make_topology(AREA)
    q = 900
    readings = []
    for k in range(4 * 3 + 1):  # 00:00 .. 03:00
        t = DAY0 + k * q
        readings += [("T1", t, 10.0 * k), ("C1", t, 5.0 * k), ("C2", t, 4.5 * k)]
    config = EngineConfig(window_s=3600)
    fin = finals(run(topo, [make_batch(topo, readings)], config)[0])
    for h in range(3):
        b = fin[("A1", DAY0 + h * 3600)]
        assert (b.supply_kwh, b.billed_kwh) == (40.0, 38.0)
        assert b.loss_rate == pytest.approx(0.05)


def test_misaligned_readings_are_prorated_by_time_and_conserve_energy():
    topo = make_topology([("T1", "area", "A1", None, 1.0), ("C1", "customer", "A1", None, 1.0)])
    # Readings at 18:00 each day: each 24 h interval crosses midnight 3/4 of the way.
    readings = [("T1", DAY0 + d * DAY + 18 * 3600, 24.0 * (d + 1)) for d in range(-1, 4)]
    readings += [("C1", DAY0 + d * DAY + 18 * 3600, 20.0 * (d + 1)) for d in range(-1, 4)]
    readings[1] = ("T1", DAY0 + 18 * 3600, 30.0)  # day 0 ran hotter: 30 kWh, then 18
    fin = finals(run(topo, [make_batch(topo, readings)])[0])
    # Day 0 gets 18/24 of the 30 kWh interval ending 18:00 and 6/24 of the next (18).
    assert fin[("A1", DAY0)].supply_kwh == 30.0 * 18 / 24 + 18.0 * 6 / 24
    assert fin[("A1", DAY0 + DAY)].supply_kwh == 18.0 * 18 / 24 + 24.0 * 6 / 24
    # The edge windows lack a reading on one side: not invented, not determined.
    assert fin[("A1", DAY0 - DAY)].status == BalanceStatus.INCOMPUTABLE
    assert fin[("A1", DAY0 - DAY)].supply_kwh == 0.0
    determined = [b for b in fin.values() if b.window_start in (DAY0, DAY0 + DAY, DAY0 + 2 * DAY)]
    # The three inner days hold exactly the register advance between the day-0 06:00
    # point and the day-3 ... edges; check conservation across the shared edges:
    assert sum(b.supply_kwh for b in determined) == pytest.approx(
        30.0 * 18 / 24 + 18.0 + 24.0 + 24.0 * 6 / 24
    )


def test_interval_readings_count_like_a_virtual_register():
    topo = make_topology(AREA)
    readings = []
    for d in range(3):
        t = DAY0 + d * DAY
        readings += [("T1", t, 100.0, True), ("C1", t, 50.0, True), ("C2", t, 46.0, True)]
    b = finals(run(topo, [make_batch(topo, readings)])[0])[("A1", DAY0)]
    assert (b.supply_kwh, b.billed_kwh, b.status) == (100.0, 96.0, BalanceStatus.NORMAL)


def test_feeder_balance_against_area_meters_and_dedicated_customers():
    topo = make_topology(
        [
            ("H1", "feeder", None, "F1", 1.0),
            ("T1", "area", "A1", "F1", 1.0),
            ("C1", "customer", "A1", "F1", 1.0),
            ("T2", "area", "A2", "F1", 1.0),
            ("C2", "customer", "A2", "F1", 1.0),
            ("D1", "customer", None, "F1", 1.0),  # dedicated transformer customer (专变)
            ("C3", "customer", "A3", "F1", 1.0),  # area A3 has no area meter
        ]
    )
    readings = [
        *daily("H1", 0, 1000, 2),
        *daily("T1", 0, 400, 2),
        *daily("C1", 0, 380, 2),
        *daily("T2", 0, 300, 2),
        *daily("C2", 0, 290, 2),
        *daily("D1", 0, 200, 2),
        *daily("C3", 0, 40, 2),
    ]
    hist = run(topo, [make_batch(topo, readings)])[0]
    f = finals(hist, BalanceLevel.FEEDER)[("F1", DAY0)]
    assert f.supply_kwh == 1000.0
    assert f.billed_kwh == 400.0 + 300.0 + 200.0 + 40.0
    assert f.loss_rate == pytest.approx(0.06)
    assert f.meters_expected == 4
    assert f.status == BalanceStatus.NORMAL


@pytest.mark.parametrize(
    ("prev", "cur", "flag", "energy"),
    [
        (99_990.0, 10.0, FLAG_ROLLOVER, 20.0),  # wrapped at 100000
        (12_345.0, 3.0, FLAG_RESET, 3.0),  # replaced meter counts from zero
        (500.0, 480.0, FLAG_STEP_BACK, 0.0),  # fault: flagged, never negative
    ],
)
def test_register_anomalies_never_become_negative_consumption(prev, cur, flag, energy):
    topo = make_topology([("T1", "area", "A1", None, 1.0), ("C1", "customer", "A1", None, 1.0)])
    readings = [
        ("T1", DAY0, 0.0),
        ("T1", DAY0 + DAY, 100.0),
        ("T1", DAY0 + 2 * DAY, 200.0),
        ("C1", DAY0, prev),
        ("C1", DAY0 + DAY, cur),
        ("C1", DAY0 + 2 * DAY, cur + 1.0),
    ]
    hist, _, mw = run(topo, [make_batch(topo, readings)])
    fin = finals(hist)
    assert fin[("A1", DAY0)].billed_kwh == energy
    assert fin[("A1", DAY0 + DAY)].billed_kwh == 1.0
    day0 = next(r for r in mw if r.window_start == DAY0)
    c1 = int(topo.index_of(["C1"])[0])
    assert day0.flags[c1] & flag
    assert day0.energy_kwh[c1] == energy


def test_rejects_each_bad_input_with_its_reason():
    topo = make_topology(AREA)
    good = [*daily("T1", 0, 100, 3), *daily("C1", 0, 50, 3), *daily("C2", 0, 45, 3)]
    bad = [
        ("NOPE", DAY0, 1.0),  # unknown meter
        ("C1", DAY0 + DAY, float("nan")),  # malformed value
        ("C1", DAY0 + DAY, -5.0, True),  # negative interval energy
        ("C2", DAY0 + 400 * DAY, 1e6),  # clock jump into next year
        ("C1", DAY0 + DAY, 50.0),  # exact duplicate of a good reading
        ("C2", DAY0 + DAY, 99.0),  # same meter and time, different value
        ("T1", -DAY, 1.0),  # before 2000: malformed timestamp
    ]
    eng = BalanceEngine(topo, EngineConfig())
    assert len(eng.ingest(make_batch(topo, good))) == 0
    rej = eng.ingest(make_batch(topo, bad, first_pos=100))
    got = dict(zip(rej.source_pos.tolist(), rej.reason, strict=True))
    assert got == {
        100: RejectReason.UNKNOWN_METER,
        101: RejectReason.MALFORMED,
        102: RejectReason.NEGATIVE_ENERGY,
        103: RejectReason.CLOCK_JUMP,
        104: RejectReason.DUPLICATE,
        105: RejectReason.CONFLICTING_DUPLICATE,
        106: RejectReason.MALFORMED,
    }
    detail = dict(zip(rej.source_pos.tolist(), rej.detail, strict=True))
    assert detail[105] == "kept 45.0, got 99.0"
    assert "ahead of the rest of the stream" in detail[103]
    # The engine kept going: the balances are those of the good readings.
    fin = finals(eng.flush().balances)
    assert fin[("A1", DAY0)].billed_kwh == 95.0


def test_duplicates_inside_one_batch_are_rejected_once():
    topo = make_topology(AREA)
    readings = [*daily("T1", 0, 100, 2), *daily("C1", 0, 50, 2), *daily("C2", 0, 45, 2)]
    eng = BalanceEngine(topo, EngineConfig())
    rej = eng.ingest(make_batch(topo, readings + readings[:2]))
    assert list(rej.reason) == [RejectReason.DUPLICATE] * 2
    assert sorted(rej.source_pos.tolist()) == [6, 7]


def test_late_reading_revises_then_final_and_too_late_after_horizon():
    topo = make_topology(AREA)
    on_time = [*daily("T1", 0, 100, 2), *daily("C1", 0, 50, 2), ("C2", DAY0, 0.0)]
    eng = BalanceEngine(
        topo, EngineConfig(allowed_lateness_s=0, recollect_horizon_s=DAY, revision_interval_s=0)
    )
    eng.ingest(make_batch(topo, on_time))
    first = [b for b in eng.advance().balances if b.level == BalanceLevel.AREA]
    prov = {b.window_start: b for b in first}[DAY0]
    assert (prov.revision, prov.final, prov.status) == (0, False, BalanceStatus.INCOMPUTABLE)

    eng.ingest(make_batch(topo, [("C2", DAY0 + DAY, 45.0)]))  # re-collected (补采)
    revised = [b for b in eng.advance().balances if b.level == BalanceLevel.AREA]
    rev = {b.window_start: b for b in revised}[DAY0]
    assert (rev.revision, rev.final, rev.status) == (1, False, BalanceStatus.NORMAL)
    assert rev.billed_kwh == 95.0

    # Stream time moves two days on: the window becomes final, and then too late.
    more = [*daily("T1", 200, 100, 2, first_day=2), *daily("C1", 100, 50, 2, first_day=2)]
    eng.ingest(make_batch(topo, more))
    fin = [b for b in eng.advance().balances if b.window_start == DAY0 and b.final]
    assert fin and fin[0].revision == 1
    rej = eng.ingest(make_batch(topo, [("C2", DAY0 + DAY - 3600, 40.0)]))
    assert list(rej.reason) == [RejectReason.TOO_LATE]


def test_window_with_no_readings_still_gets_a_balance():
    topo = make_topology(AREA)
    readings = [*daily("T1", 0, 100, 2), *daily("T1", 500, 100, 2, first_day=5)]
    fin = finals(run(topo, [make_batch(topo, readings)])[0])
    starts = sorted(s for (_, s) in fin)
    assert starts == [DAY0 + k * DAY for k in range(-1, 6)]
    hole = fin[("A1", DAY0 + 2 * DAY)]
    assert hole.status == BalanceStatus.INCOMPUTABLE
    # T1 is interpolated across the 4-day gap: 400 kWh spread over 4 days.
    assert hole.supply_kwh == 100.0


def test_long_gap_counts_energy_but_not_coverage():
    topo = make_topology(AREA)
    readings = [*daily("T1", 0, 100, 8), *daily("C1", 0, 50, 8)]
    readings += [("C2", DAY0, 0.0), ("C2", DAY0 + 7 * DAY, 7 * 45.0)]
    fin = finals(run(topo, [make_batch(topo, readings)])[0])
    b = fin[("A1", DAY0 + 3 * DAY)]
    assert b.billed_kwh == 95.0
    assert b.meters_reporting == 1  # a 7-day interpolation is not a reading
    assert b.status == BalanceStatus.INCOMPUTABLE


def test_loss_is_supply_minus_billed_exactly():
    topo = make_topology(AREA)
    readings = [*daily("T1", 0.01, 100.07, 3), *daily("C1", 0.02, 50.03, 3)]
    readings += daily("C2", 0.05, 45.01, 3)
    for b in finals(run(topo, [make_batch(topo, readings)])[0]).values():
        if not math.isnan(b.loss_rate):
            assert b.loss_kwh == pytest.approx(b.supply_kwh - b.billed_kwh, abs=1e-6)
            assert b.supply_kwh * 1_000_000 == pytest.approx(
                round(b.supply_kwh * 1_000_000), abs=1e-3
            )


def test_day_windows_follow_local_midnight_in_the_configured_zone():
    topo = make_topology(AREA)
    # Midnights in Berlin, across the spring DST change on 2026-03-29 (a 23 h day).
    import pandas as pd

    days = pd.date_range("2026-03-27", "2026-03-31", freq="D").tz_localize("Europe/Berlin")
    ts = days.as_unit("s").asi8.tolist()
    readings = []
    for k, t in enumerate(ts):
        readings += [("T1", t, 100.0 * k), ("C1", t, 50.0 * k), ("C2", t, 45.0 * k)]
    config = EngineConfig(tz="Europe/Berlin")
    fin = finals(run(topo, [make_batch(topo, readings)], config)[0])
    windows = sorted((b.window_start, b.window_end) for b in fin.values())
    spans = {e - s for s, e in windows}
    assert spans == {DAY, DAY - 3600}
    assert all(b.supply_kwh == 100.0 for b in fin.values() if b.window_start >= ts[0])


def test_meter_windows_give_per_meter_energy_for_detectors():
    topo = make_topology(AREA)
    readings = [*daily("T1", 0, 100, 3), *daily("C1", 0, 50, 3), *daily("C2", 0, 45, 3)]
    _, _, mw = run(topo, [make_batch(topo, readings)])
    by_start = {r.window_start: r for r in mw}
    r = by_start[DAY0]
    assert np.array_equal(r.energy_kwh, [100.0, 50.0, 45.0])
    assert r.reporting.all()
    assert np.isnan(by_start[DAY0 - DAY].energy_kwh).all()


def test_final_windows_carry_hourly_profiles_that_add_up_to_the_window():
    topo = make_topology(AREA)
    q = 900
    readings = []
    rng = np.random.default_rng(3)
    regs = {"T1": 0.0, "C1": 0.0, "C2": 0.0}
    for k in range(96 * 2 + 1):
        t = DAY0 + k * q
        for mid in regs:
            readings.append((mid, t, round(regs[mid], 2)))
            regs[mid] += float(rng.uniform(0, 2))
    _, _, mw = run(topo, [make_batch(topo, readings)])
    day0 = next(r for r in mw if r.window_start == DAY0)
    assert day0.profile_kwh is not None
    assert day0.profile_kwh.shape == (3, 24)
    np.testing.assert_allclose(day0.profile_kwh.sum(axis=1), day0.energy_kwh, atol=1e-5)
    # Hour 0 of C1 is the register advance from 00:00 to 01:00.
    c1 = [v for (m, t, v) in readings if m == "C1"]
    assert day0.profile_kwh[1, 0] == pytest.approx(c1[4] - c1[0], abs=1e-6)


def test_final_windows_carry_each_meters_largest_quarter_hours():
    """The peaks are the day's largest quarter-hour advances, largest first; a
    missing reading leaves its two quarters prorated, the hours exactly as without
    peaks (an hour is its quarters' sum in whole micro-kWh)."""
    topo = make_topology(AREA)
    rng = np.random.default_rng(5)
    regs = {"T1": 0.0, "C1": 0.0, "C2": 0.0}
    readings = []
    for k in range(96 * 2 + 1):
        t = DAY0 + k * 900
        for mid in regs:
            if not (mid == "C2" and k == 40):  # one lost reading
                readings.append((mid, t, round(regs[mid], 2)))
            regs[mid] += float(rng.integers(0, 60)) / 100
    with_peaks = run(topo, [make_batch(topo, readings)])[2]
    without = run(topo, [make_batch(topo, readings)], EngineConfig(peak_part_s=0))[2]
    day0 = next(r for r in with_peaks if r.window_start == DAY0)
    assert day0.peak_kwh is not None and day0.peak_kwh.shape == (3, 16)
    c1 = np.array([v for (m, t, v) in readings if m == "C1" and DAY0 <= t <= DAY0 + DAY])
    np.testing.assert_allclose(day0.peak_kwh[1], np.sort(np.diff(c1))[::-1][:16], atol=1e-6)
    assert np.all(np.diff(day0.peak_kwh, axis=1) <= 0)
    assert next(r for r in without if r.window_start == DAY0).peak_kwh is None
    for a, b in zip(with_peaks, without, strict=True):
        np.testing.assert_array_equal(a.profile_kwh, b.profile_kwh)
    few = run(topo, [make_batch(topo, readings)], EngineConfig(peak_parts=200))[2]
    day0 = next(r for r in few if r.window_start == DAY0)
    assert day0.peak_kwh.shape == (3, 200)
    assert np.isnan(day0.peak_kwh[:, 96:]).all() and not np.isnan(day0.peak_kwh[:, :96]).any()


@pytest.mark.parametrize(
    ("first_day", "skipped"),
    [("2026-03-27", True), ("2026-10-23", False)],  # spring forward, fall back
)
def test_profiles_keep_24_local_hours_across_daylight_saving(first_day: str, skipped: bool):
    """A 23- or 25-hour day still has the 24 parts of the local clock: the skipped
    hour is unknown (not zero), the repeated one lies in one part of two hours."""
    import pandas as pd

    topo = make_topology(AREA)
    tz = "Europe/Berlin"
    start = int(pd.Timestamp(first_day, tz=tz).timestamp())
    end = int((pd.Timestamp(first_day, tz=tz) + pd.Timedelta(days=5)).timestamp())
    readings = []
    for k, t in enumerate(range(start, end + 1, 900)):
        # 1 kWh per 15 minutes for C1, wherever the wall clock stands.
        readings += [("T1", t, 2.0 * k), ("C1", t, 1.0 * k), ("C2", t, 0.5 * k)]
    _, _, mw = run(topo, [make_batch(topo, readings)], EngineConfig(tz=tz))
    final = sorted((r for r in mw if r.profile_kwh is not None), key=lambda r: r.window_start)
    odd = [r for r in final if r.window_end - r.window_start != DAY]
    assert len(odd) == 1
    day = odd[0]
    assert {r.profile_kwh.shape for r in final} == {(3, 24)}
    hour2 = day.profile_kwh[1, 2]
    if skipped:
        assert np.isnan(hour2)
        assert np.nansum(day.profile_kwh[1]) == pytest.approx(23 * 4.0)
    else:
        assert hour2 == pytest.approx(8.0)
        assert day.profile_kwh[1].sum() == pytest.approx(25 * 4.0)
    others = np.delete(day.profile_kwh[1], 2)
    np.testing.assert_allclose(others, 4.0)
    np.testing.assert_allclose(np.nansum(day.profile_kwh, axis=1), day.energy_kwh, atol=1e-4)


def test_a_meter_read_once_a_day_has_no_profile_only_its_days_energy():
    """Prorating a daily frozen reading over its hours draws a flat day the meter
    never recorded; the shape detectors would read it as one. The day's energy is
    exact all the same."""
    topo = make_topology([("T1", "area", "A1", None, 1.0), ("C1", "customer", "A1", None, 1.0)])
    readings = [*daily("T1", 0, 48, 3), *daily("C1", 0, 24, 3)]
    _, _, mw = run(topo, [make_batch(topo, readings)])
    day0 = next(r for r in mw if r.window_start == DAY0)
    np.testing.assert_array_equal(day0.energy_kwh, [48.0, 24.0])
    assert np.isnan(day0.profile_kwh).all()
    assert np.isnan(day0.peak_kwh).all()


def test_hourly_readings_give_hours_but_no_quarter_hours_and_lost_readings_are_prorated():
    """Parts are determined where a meter reads at least about as often as the part
    lasts (``profile_max_interval_ratio``): an hourly meter has hours and no quarter
    hours; a 15-minute meter that lost a reading still has both, the lost one's two
    quarters prorated across the gap."""
    topo = make_topology(AREA)
    readings = []
    for k in range(96 * 2 + 1):
        t = DAY0 + k * 900
        readings.append(("C1", t, 0.25 * k))  # 15-minute, 1 kWh an hour
        if k != 41:
            readings.append(("C2", t, 0.5 * k))  # 15-minute, one reading lost
        if k % 4 == 0:
            readings.append(("T1", t, 1.0 * k))  # hourly, 4 kWh an hour
    _, _, mw = run(topo, [make_batch(topo, readings)])
    day0 = next(r for r in mw if r.window_start == DAY0)
    np.testing.assert_allclose(day0.profile_kwh[0], np.full(24, 4.0), atol=1e-6)
    np.testing.assert_allclose(day0.profile_kwh[1], np.full(24, 1.0), atol=1e-6)
    np.testing.assert_allclose(day0.profile_kwh[2], np.full(24, 2.0), atol=1e-6)
    assert np.isnan(day0.peak_kwh[0]).all()
    np.testing.assert_allclose(day0.peak_kwh[1], np.full(16, 0.25), atol=1e-6)
    np.testing.assert_allclose(day0.peak_kwh[2], np.full(16, 0.5), atol=1e-6)


def test_a_final_watermark_holds_finals_back_not_provisional_windows():
    """A Kafka partition passes the slowest watermark of the partitions that may
    still forward to it: windows close and revise on the engine's own watermark,
    but become final only once that one too is past their end plus the horizon."""
    topo = make_topology(AREA)
    cfg = EngineConfig(allowed_lateness_s=0, recollect_horizon_s=DAY, revision_interval_s=0)
    eng = BalanceEngine(topo, cfg)
    eng.ingest(make_batch(topo, [*daily("T1", 0, 100, 4), *daily("C1", 0, 50, 4)]))
    held = eng.advance(final_watermark_s=DAY0 + DAY - 1)  # no window end + DAY
    assert held.balances and not any(b.final for b in held.balances)
    assert not held.final_meter_windows
    # The late reading is still taken: its window is not final.
    rej = eng.ingest(make_batch(topo, [("C2", DAY0, 0.0), ("C2", DAY0 + DAY, 45.0)]))
    assert len(rej.reason) == 0
    released = eng.advance(final_watermark_s=DAY0 + 3 * DAY)
    fin = {b.window_start for b in released.balances if b.final and b.level == BalanceLevel.AREA}
    assert fin == {DAY0 - DAY, DAY0, DAY0 + DAY}  # end + horizon <= day 3
    assert {w.window_start for w in released.final_meter_windows} == fin
    by_key = {(b.target_id, b.window_start): b for b in released.balances if b.final}
    assert by_key["A1", DAY0].billed_kwh == 95.0
    assert not any(b.final for b in eng.advance().balances if b.window_start > DAY0 + DAY)


def test_readings_whose_clock_was_judged_elsewhere_are_not_clock_jumps_here():
    topo = make_topology(AREA)
    eng = BalanceEngine(topo, EngineConfig(max_clock_jump_s=2 * DAY))
    eng.ingest(make_batch(topo, [*daily("T1", 0, 100, 2), *daily("C1", 0, 50, 2)]))
    far = [
        ("C2", DAY0 + 9 * DAY, 10.0),
        ("T1", DAY0 + 2 * DAY, 200.0),
        ("C1", DAY0 + 2 * DAY, 100.0),
    ]
    judged = np.array([True, False, False])
    assert len(eng.ingest(make_batch(topo, far), clock_judged=judged).reason) == 0
    eng2 = BalanceEngine(topo, EngineConfig(max_clock_jump_s=2 * DAY))
    eng2.ingest(make_batch(topo, [*daily("T1", 0, 100, 2), *daily("C1", 0, 50, 2)]))
    assert list(eng2.ingest(make_batch(topo, far)).reason) == [RejectReason.CLOCK_JUMP]
