"""The engine under a changing topology: registry updates applied while it runs."""

from __future__ import annotations

import pytest
from changing_grid import ALL, CONFIG, DAYS, STEP, TIMELINE, TOPO, batch, customer, readings
from factories import DAY, DAY0

from lineloss.domain import Balance, RejectReason
from lineloss.timeline import TopologyTimeline, always
from streams.engine import BalanceEngine
from streams.snapshot import engine_state, restore_engine


def finals(balances: list[Balance]) -> dict[tuple[str, int], tuple]:
    """The numbers of the final balances by target and window (revision numbers
    aside: how often a window was re-issued depends on when updates came)."""
    return {
        (b.target_id, b.window_start): (
            b.feeder_id,
            b.supply_kwh,
            b.billed_kwh,
            b.meters_expected,
            b.meters_reporting,
            b.status,
            b.reason,
        )
        for b in balances
        if b.final
    }


def final_balances(balances: list[Balance]) -> dict[tuple[str, int], Balance]:
    return {(b.target_id, b.window_start): b for b in balances if b.final}


def run(engine: BalanceEngine, rows: list, timeline: TopologyTimeline, chunk: int = 400) -> list:
    out = []
    for i in range(0, len(rows), chunk):
        engine.ingest(batch(rows[i : i + chunk], timeline))
        out += engine.advance().balances
    return out


def test_windows_are_balanced_with_the_version_in_effect_at_their_start() -> None:
    engine = BalanceEngine(TIMELINE, CONFIG)
    out = run(engine, readings(ALL), TIMELINE) + engine.flush().balances
    f = final_balances(out)
    day = [DAY0 + d * DAY for d in range(DAYS)]
    kwh = {m: 96 * s for m, s in STEP.items()}  # per full day
    assert f[("A1", day[0])].billed_kwh == pytest.approx(kwh["C1"] + kwh["C2"])
    assert f[("A1", day[1])].billed_kwh == pytest.approx(kwh["C1"] + kwh["C2"] + kwh["C4"])
    assert f[("A1", day[2])].billed_kwh == pytest.approx(kwh["C1"] + kwh["C4"])
    assert f[("A2", day[2])].billed_kwh == pytest.approx(kwh["C3"] + kwh["C2"])
    assert f[("A2", day[3])].billed_kwh == pytest.approx(kwh["C2"])
    assert f[("A2", day[3])].meters_expected == 1
    # The new CT from the first window starting after it: 40 on day 1, 80 on day 2.
    assert f[("A1", day[1])].supply_kwh == pytest.approx(kwh["T1"] * 40)
    assert f[("A1", day[2])].supply_kwh == pytest.approx(kwh["T1"] * 80)
    # Feeders: C2 follows its area (A2's area meter carries it on F2 from day 2).
    assert {b.target_id for b in out} == {"A1", "A2", "F1", "F2"}


def test_readings_of_a_meter_out_of_service_are_dead_lettered() -> None:
    engine = BalanceEngine(TIMELINE, CONFIG)
    late_day = DAY0 + 3 * DAY
    rejects = engine.ingest(
        batch(
            [("C3", late_day - 900, 1.0), ("C3", late_day, 2.0), ("C3", late_day + 900, 3.0)],
            TIMELINE,
        )
    )
    # The reading at the change closes the last window in service: kept.
    assert rejects.reason == (RejectReason.UNKNOWN_METER,)
    assert rejects.ts.tolist() == [late_day + 900]
    assert "not in service" in rejects.detail[0]
    early = engine.ingest(batch([("C4", DAY0 + 900, 1.0)], TIMELINE))
    assert early.reason == (RejectReason.UNKNOWN_METER,)


def test_updates_arriving_mid_stream_give_the_finals_of_updates_known_from_the_start() -> None:
    """Whenever registry updates arrive, before the windows they change are final,
    the finals are the same; windows already issued are revised."""
    rows = readings(ALL)
    ahead = BalanceEngine(TIMELINE, CONFIG)
    expected = finals(run(ahead, rows, TIMELINE) + ahead.flush().balances)

    # C1's record was wrong all along (effective from the beginning): it is in A2.
    correction = {"C1": always(customer("C1", "A2", "F2"))}
    full = TIMELINE.apply(correction)
    ahead2 = BalanceEngine(full, CONFIG)
    expected2 = finals(run(ahead2, rows, full) + ahead2.flush().balances)
    assert expected2 != expected

    engine = BalanceEngine(TOPO, CONFIG)
    half = next(i for i, r in enumerate(rows) if r[1] >= DAY0 + DAY // 2)
    cut = next(i for i, r in enumerate(rows) if r[1] > DAY0 + DAY)  # C4 reads from here
    first = run(engine, rows[:half], TIMELINE)
    assert engine.apply_timeline(TIMELINE) == []
    second = run(engine, rows[half:cut], TIMELINE)
    issued = [b for b in first + second if b.target_id == "A1" and not b.final]
    assert issued  # the window ending at DAY0 is out, provisionally
    assert engine.apply_timeline(full) == []
    third = run(engine, rows[cut:], full) + engine.flush().balances
    assert finals(first + second + third) == expected2
    # The correction re-issued what it changed: A1 without C1, as a revision.
    revised = [b for b in third if b.target_id == "A1" and b.revision > 0]
    assert revised and revised[0].meters_expected == issued[0].meters_expected - 1


def test_one_engine_equals_one_engine_per_feeder_for_a_customer_moved_across() -> None:
    """The cut at a change: with C2 moved from feeder F1 to F2, the engine of the
    whole grid and one engine per feeder (as the Kafka shards run) agree, also
    when C2 reads off the grid, so that no reading of it falls on the change."""
    rows = readings(ALL, off_grid=("C2",))
    whole = BalanceEngine(TIMELINE, CONFIG)
    expected = finals(run(whole, rows, TIMELINE) + whole.flush().balances)
    got: dict = {}
    for feeder in ("F1", "F2"):
        part = TIMELINE.restricted(lambda m, f=feeder: m.feeder_id == f)
        mine = [
            r
            for r in rows
            if (
                r[0] != "C2"
                and part.latest.index_of([r[0]])[0] >= 0
                and (r[0] != "C3" or r[1] <= DAY0 + 3 * DAY)
            )
            or (
                r[0] == "C2"
                and (r[1] <= DAY0 + 2 * DAY if feeder == "F1" else r[1] >= DAY0 + 2 * DAY)
            )
        ]
        engine = BalanceEngine(part, CONFIG)
        got.update(finals(run(engine, mine, part) + engine.flush().balances))
    assert got == expected


def test_a_change_for_windows_already_final_is_reported_and_changes_nothing() -> None:
    rows = readings(ALL)
    engine = BalanceEngine(TIMELINE, CONFIG)
    done = run(engine, rows, TIMELINE)
    assert finals(done)
    late = engine.apply_timeline(TIMELINE.apply({"C1": always(customer("C1", "A2", "F2"))}))
    assert late == ["C1"]
    again = engine.flush().balances
    assert not set(finals(again)) & set(finals(done))


def test_a_new_timeline_must_extend_the_index_space() -> None:
    engine = BalanceEngine(TIMELINE, CONFIG)
    with pytest.raises(ValueError, match="extend"):
        engine.apply_timeline(TopologyTimeline.of(TOPO))


def test_snapshot_after_updates_restores_the_timeline() -> None:
    rows = readings(ALL)
    undisturbed = BalanceEngine(TOPO, CONFIG)
    cut = next(i for i, r in enumerate(rows) if r[1] >= DAY0 + DAY)
    a = run(undisturbed, rows[:cut], TIMELINE)
    undisturbed.apply_timeline(TIMELINE)
    a += run(undisturbed, rows[cut:], TIMELINE) + undisturbed.flush().balances

    engine = BalanceEngine(TOPO, CONFIG)
    b = run(engine, rows[:cut], TIMELINE)
    engine.apply_timeline(TIMELINE)
    b += run(engine, rows[cut : cut + 1000], TIMELINE)
    restored = restore_engine(TOPO, CONFIG, engine_state(engine))
    assert restored.timeline.to_json() == TIMELINE.to_json()
    b += run(restored, rows[cut + 1000 :], TIMELINE) + restored.flush().balances
    assert finals(a) == finals(b)
