"""Invariants of the balance engine, checked on generated streams (hypothesis)."""

from __future__ import annotations

import itertools

import numpy as np
from factories import DAY, DAY0, make_batch, make_topology
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lineloss.config import EngineConfig
from lineloss.domain import BalanceLevel, ReadingBatch, RejectReason
from streams.engine import BalanceEngine

TOPO = make_topology(
    [
        ("H1", "feeder", None, "F1", 1.0),
        ("T1", "area", "A1", "F1", 40.0),
        ("C1", "customer", "A1", "F1", 1.0),
        ("C2", "customer", "A1", "F1", 1.0),
        ("C3", "customer", "A1", "F1", 5.0),
        ("T2", "area", "A2", "F1", 1.0),
        ("C4", "customer", "A2", "F1", 1.0),
        ("C5", "customer", "A2", "F1", 1.0),
    ]
)
METERS = [str(m) for m in TOPO.meter_ids]


@st.composite
def streams(draw):  # type: ignore[no-untyped-def]
    """Register readings of every meter every ``step_s`` over a few days, with gaps,
    misaligned clocks and idle meters; usage drawn from a seeded generator."""
    step_s = draw(st.sampled_from([DAY, 6 * 3600, 3600, 900]))
    days = draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    gap_rate = draw(st.sampled_from([0.0, 0.1, 0.4]))
    n_steps = days * DAY // step_s + 1
    readings = []
    for meter in METERS:
        usage = np.round(rng.gamma(1.5, 5.0, n_steps) * (rng.random() > 0.1), 2)
        keep = rng.random(n_steps) >= gap_rate
        offset = int(rng.integers(0, step_s)) if rng.random() < 0.3 else 0
        registers = np.round(round(float(rng.uniform(0, 5000)), 2) + np.cumsum(usage), 2)
        for k in range(n_steps):
            if keep[k] or k in (0, n_steps - 1):
                readings.append((meter, DAY0 + k * step_s + offset, float(registers[k])))
    return readings


def final_numbers(batches: list[ReadingBatch], config: EngineConfig) -> dict:
    eng = BalanceEngine(TOPO, config)
    out = []
    for b in batches:
        eng.ingest(b)
        out += eng.advance().balances
    out += eng.flush().balances
    return {
        (b.level.value, b.target_id, b.window_start): (
            b.supply_kwh,
            b.billed_kwh,
            b.loss_kwh,
            b.meters_reporting,
            b.status,
            b.reason,
        )
        for b in out
        if b.final
    }


def split(readings, order, cuts):  # type: ignore[no-untyped-def]
    shuffled = [readings[i] for i in order]
    edges = sorted({0, len(shuffled), *[c % (len(shuffled) + 1) for c in cuts]})
    return [make_batch(TOPO, shuffled[a:b]) for a, b in itertools.pairwise(edges)]


# A horizon longer than the data: every reading arrives inside it whatever the order.
# The clock-jump guard judges a reading against the stream it arrives in, so it is
# order-dependent by design; keep it out of the way of shuffled arrivals.
WIDE = EngineConfig(
    window_s=3600 * 6,
    recollect_horizon_s=10 * DAY,
    allowed_lateness_s=0,
    max_clock_jump_s=30 * DAY,
)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data(), readings=streams())
def test_results_do_not_depend_on_arrival_order_or_batching(data, readings):
    reference = final_numbers([make_batch(TOPO, readings)], WIDE)
    order = data.draw(st.permutations(range(len(readings))))
    cuts = data.draw(st.lists(st.integers(0, 10_000), max_size=8))
    assert final_numbers(split(readings, order, cuts), WIDE) == reference


@SETTINGS
@given(data=st.data(), readings=streams())
def test_duplicates_change_nothing_and_are_rejected(data, readings):
    reference = final_numbers([make_batch(TOPO, readings)], WIDE)
    dup_idx = data.draw(st.lists(st.integers(0, len(readings) - 1), min_size=1, max_size=20))
    with_dups = readings + [readings[i] for i in dup_idx]
    order = data.draw(st.permutations(range(len(with_dups))))
    cuts = data.draw(st.lists(st.integers(0, 10_000), max_size=5))
    batches = split(with_dups, order, cuts)
    eng = BalanceEngine(TOPO, WIDE)
    reasons = []
    for b in batches:
        reasons += list(eng.ingest(b).reason)
    assert reasons == [RejectReason.DUPLICATE] * len(dup_idx)
    assert final_numbers(batches, WIDE) == reference


@SETTINGS
@given(data=st.data(), readings=streams())
def test_loss_is_supply_minus_billed(data, readings):
    for (level, _, _), (supply, billed, loss, *_rest) in final_numbers(
        [make_batch(TOPO, readings)], WIDE
    ).items():
        assert round((supply - billed) * 1e6) == round(loss * 1e6), level


@SETTINGS
@given(data=st.data(), readings=streams())
def test_late_reading_inside_horizon_gives_the_on_time_final_balance(data, readings):
    config = EngineConfig(window_s=DAY, recollect_horizon_s=DAY, allowed_lateness_s=0)
    on_time = sorted(readings, key=lambda r: r[1])
    reference = final_numbers([make_batch(TOPO, [r]) for r in on_time], config)
    i = data.draw(st.integers(0, len(on_time) - 1))
    late = on_time[i]
    # Deliver it later, but while every window it brackets is inside the horizon. By
    # proration a reading brackets every window back to the one holding the meter's
    # previous reading; that one becomes final once stream time passes its end plus
    # the horizon.
    rest = on_time[:i] + on_time[i + 1 :]
    previous = [r[1] for r in on_time if r[0] == late[0] and r[1] < late[1]]
    anchor = max(previous) if previous else late[1]
    first_window_end = DAY0 + -(-(anchor - DAY0) // DAY) * DAY  # (start, end] holds anchor
    deadline = first_window_end + DAY
    j = max([i, *(k + 1 for k, r in enumerate(rest) if r[1] < deadline)])  # never early
    delayed = [*rest[:j], late, *rest[j:]]
    assert final_numbers([make_batch(TOPO, [r]) for r in delayed], config) == reference


def test_revisions_are_emitted_only_when_numbers_change():
    topo = make_topology([("T1", "area", "A1", None, 1.0), ("C1", "customer", "A1", None, 1.0)])
    eng = BalanceEngine(topo, EngineConfig(allowed_lateness_s=0, revision_interval_s=0))
    eng.ingest(make_batch(topo, [("T1", DAY0, 0.0), ("C1", DAY0, 0.0)]))
    eng.ingest(make_batch(topo, [("T1", DAY0 + DAY, 10.0), ("C1", DAY0 + DAY, 9.6)]))
    eng.ingest(make_batch(topo, [("T1", DAY0 + DAY + 60, 10.0), ("C1", DAY0 + DAY + 60, 9.6)]))
    first = [b for b in eng.advance().balances if b.level == BalanceLevel.AREA]
    assert {b.revision for b in first} == {0}
    # A reading that changes nothing (same register, inside the window) -> no revision.
    eng.ingest(make_batch(topo, [("C1", DAY0 + DAY // 2, 4.8)]))
    again = eng.advance().balances
    assert [b for b in again if b.window_start == DAY0 and not b.final] == []
    assert np.isfinite([b.loss_rate for b in first if b.window_start == DAY0]).all()
