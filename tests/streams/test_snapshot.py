"""Engine snapshots: restore and continue gives exactly the undisturbed results."""

from __future__ import annotations

import numpy as np
import pytest
from factories import DAY, DAY0, make_batch, make_topology

from lineloss.config import EngineConfig
from streams.engine import BalanceEngine
from streams.snapshot import dumps, engine_state, loads, restore_engine

TOPO = make_topology(
    [
        ("T1", "area", "A1", "F1", 40.0),
        ("C1", "customer", "A1", "F1", 1.0),
        ("C2", "customer", "A1", "F1", 1.0),
        ("T2", "area", "A2", "F1", 1.0),
        ("C3", "customer", "A2", "F1", 1.0),
    ]
)
CONFIG = EngineConfig(window_s=6 * 3600, allowed_lateness_s=1800, revision_interval_s=0)


def batches(seed: int) -> list:
    rng = np.random.default_rng(seed)
    rows = []
    regs = dict.fromkeys(("T1", "C1", "C2", "T2", "C3"), 100.0)
    for k in range(4 * 24 * 3):  # 3 days of 15-minute readings
        t = DAY0 + k * 900
        for m in regs:
            regs[m] = round(regs[m] + float(rng.gamma(1.5, 0.4)), 2)
            rows.append((m, t, regs[m]))
    # Late re-collection: move 5 % of readings 3 hours later in arrival order.
    arrival = np.array([r[1] for r in rows], dtype=float)
    late = rng.random(len(rows)) < 0.05
    arrival[late] += 3 * 3600
    rows = [rows[i] for i in np.argsort(arrival, kind="stable")]
    rows += rows[:7]  # duplicates at the end
    return [make_batch(TOPO, rows[i : i + 97], first_pos=i) for i in range(0, len(rows), 97)]


def finals(history: list) -> dict:
    # repr: NaN loss rates of incomputable windows compare equal as text
    return {(b.level, b.target_id, b.window_start): repr(b) for b in history if b.final}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_crash_restore_and_reconsume_gives_identical_finals(seed: int) -> None:
    bs = batches(seed)
    ref_engine = BalanceEngine(TOPO, CONFIG)
    ref: list = []
    for b in bs:
        ref_engine.ingest(b)
        ref += ref_engine.advance().balances
    ref += ref_engine.flush().balances

    rng = np.random.default_rng(seed)
    checkpoint = int(rng.integers(1, len(bs) - 3))
    crash = checkpoint + int(rng.integers(1, 3))
    engine = BalanceEngine(TOPO, CONFIG)
    out: list = []
    saved = b""
    for k, b in enumerate(bs[:crash]):
        engine.ingest(b)
        out += engine.advance().balances
        if k == checkpoint:
            saved = dumps(engine_state(engine))
    # The worker dies; a new one restores the checkpoint and re-consumes from there,
    # seeing again the batches it had already processed after the checkpoint.
    engine = restore_engine(TOPO, CONFIG, loads(saved))
    for b in bs[checkpoint + 1 :]:
        engine.ingest(b)
        out += engine.advance().balances
    out += engine.flush().balances
    assert finals(out) == finals(ref)
    assert len(finals(ref)) > 10


def test_restore_keeps_the_snapshots_own_topology() -> None:
    """The snapshot fixes the index space of its arrays: a different registry given
    at restore must not re-interpret them (updates are applied on top instead)."""
    engine = BalanceEngine(TOPO, CONFIG)
    engine.ingest(make_batch(TOPO, [("C1", DAY0, 1.0), ("C1", DAY0 + DAY, 2.0)]))
    other = make_topology([("C1", "customer", "A1", None, 1.0)])
    restored = restore_engine(other, CONFIG, engine_state(engine))
    assert list(restored.topology.meter_ids) == list(TOPO.meter_ids)
    assert restored.timeline.to_json() == engine.timeline.to_json()


def test_restore_refuses_a_state_without_its_topology() -> None:
    engine = BalanceEngine(TOPO, CONFIG)
    engine.ingest(make_batch(TOPO, [("C1", DAY0, 1.0), ("C1", DAY0 + DAY, 2.0)]))
    state = engine_state(engine)
    del state["timeline"]  # as written before snapshots carried their timeline
    other = make_topology([("C1", "customer", "A1", None, 1.0)])
    with pytest.raises(ValueError, match="meters"):
        restore_engine(other, CONFIG, state)
