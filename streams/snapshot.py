"""Save and restore the balance engine's state as a flat dict of numpy arrays.

A streaming worker checkpoints its engine at commit points (issue 3: into a
changelogged table or a compacted topic) and, after a crash, restores it and
re-consumes from the committed offset. Because the engine rejects duplicates
idempotently, at-least-once delivery then gives exactly-once balances.

The config is not part of the state: the worker loads it the same way on restart.
The topology timeline is (lineloss.timeline): its index space fixes what the
per-meter arrays mean, and updates applied live may be newer than the registry the
restarted worker reads (it applies that on top, as an update).
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from lineloss.config import EngineConfig
from lineloss.domain import Balance, BalanceLevel, BalanceStatus, Topology
from lineloss.timeline import TopologyTimeline
from streams.energy import MeterWindowEnergy, ReadingRef
from streams.engine import BalanceEngine, _WindowState
from streams.slots import Run, Slot, SlotSummary

State = dict[str, npt.NDArray[Any]]
_RUN_FIELDS = [f.name for f in fields(Run)]
_SUMMARY_FIELDS = [f.name for f in fields(SlotSummary)]
_REF_FIELDS = [f.name for f in fields(ReadingRef)]
_ENERGY_FIELDS = [f.name for f in fields(MeterWindowEnergy)]


def _balance_to_json(b: Balance) -> dict[str, Any]:
    d = asdict(b)
    d["level"], d["status"] = b.level.value, b.status.value
    return d


def _balance_from_json(d: dict[str, Any]) -> Balance:
    return Balance(**{**d, "level": BalanceLevel(d["level"]), "status": BalanceStatus(d["status"])})


def engine_state(engine: BalanceEngine) -> State:
    """Everything the engine knows, as arrays (metadata as one JSON string)."""
    out: State = {"last_ts": engine._last_ts.copy()}
    for name in _REF_FIELDS:
        out[f"evicted_carry.{name}"] = getattr(engine._evicted_carry, name).copy()
    meta: dict[str, Any] = {
        "frontier_s": engine._frontier_s,
        "first_start_s": engine._first_start_s,
        "evicted_before_s": engine._evicted_before_s,
        "slots": {},
        "windows": [],
        "n_meters": engine.topology.n_meters,
    }
    for start, slot in engine._slots.items():
        meta["slots"][str(start)] = {
            "end_s": slot.end_s,
            "runs": len(slot.runs),
            "any_stale": slot._any_stale,
        }
        for k, run in enumerate(slot.runs):
            for name in _RUN_FIELDS:
                out[f"slot.{start}.run.{k}.{name}"] = getattr(run, name)
        for name in _SUMMARY_FIELDS:
            out[f"slot.{start}.summary.{name}"] = getattr(slot.summary, name).copy()
        out[f"slot.{start}.stale"] = slot._stale.copy()
    for start, w in engine._windows.items():
        meta["windows"].append(
            {
                "start_s": w.start_s,
                "end_s": w.end_s,
                "emitted": w.emitted,
                "computed_at_s": w.computed_at_s,
                "final": w.final,
                "dirty": w.dirty,
                "has_energy": w.energy is not None,
                "balances": [_balance_to_json(b) for b in w.balances.values()],
            }
        )
        if w.energy is not None:
            for name in _ENERGY_FIELDS:
                out[f"window.{start}.energy.{name}"] = getattr(w.energy, name).copy()
    out["meta"] = np.array(json.dumps(meta))
    out["timeline"] = np.frombuffer(engine.timeline.json_bytes, dtype=np.uint8)
    return out


def restore_engine(
    topology: Topology | TopologyTimeline, config: EngineConfig, state: State
) -> BalanceEngine:
    """A new engine in exactly the state ``engine_state`` captured, with the topology
    timeline it had (``topology`` only for snapshots without one)."""
    meta = json.loads(str(state["meta"]))
    if "timeline" in state:
        topology = TopologyTimeline.from_json(json.loads(state["timeline"].tobytes()))
    if meta["n_meters"] != topology.n_meters:
        raise ValueError(
            f"snapshot has {meta['n_meters']} meters, topology {topology.n_meters}: "
            "restore with the topology the snapshot was taken with"
        )
    engine = BalanceEngine(topology, config)
    engine._last_ts = state["last_ts"].copy()
    engine._frontier_s = meta["frontier_s"]
    engine._first_start_s = meta["first_start_s"]
    engine._evicted_before_s = meta["evicted_before_s"]
    engine._evicted_carry = ReadingRef(
        **{name: state[f"evicted_carry.{name}"].copy() for name in _REF_FIELDS}
    )
    for start_text, info in meta["slots"].items():
        start = int(start_text)
        slot = Slot(start, info["end_s"], engine.timeline.at(start).multiplier)
        slot.runs = [
            Run(**{name: state[f"slot.{start}.run.{k}.{name}"].copy() for name in _RUN_FIELDS})
            for k in range(info["runs"])
        ]
        slot.summary = SlotSummary(
            **{name: state[f"slot.{start}.summary.{name}"].copy() for name in _SUMMARY_FIELDS}
        )
        slot._stale = state[f"slot.{start}.stale"].copy()
        slot._any_stale = info["any_stale"]
        engine._slots[start] = slot
    for w in meta["windows"]:
        start = w["start_s"]
        energy = None
        if w["has_energy"]:
            energy = MeterWindowEnergy(
                **{name: state[f"window.{start}.energy.{name}"].copy() for name in _ENERGY_FIELDS}
            )
        balances = [_balance_from_json(b) for b in w["balances"]]
        engine._windows[start] = _WindowState(
            start_s=start,
            end_s=w["end_s"],
            emitted=w["emitted"],
            computed_at_s=w["computed_at_s"],
            final=w["final"],
            dirty=w["dirty"],
            energy=energy,
            balances={(b.level.value, b.target_id): b for b in balances},
        )
    return engine


def dumps(state: State) -> bytes:
    """Bytes (``.npz``) of a state, e.g. for a Kafka message or a file. Not
    compressed: zlib takes about 0.3 s for a 4 MB partition state, paid on every
    checkpoint, where the plain write takes 5 ms (docs/benchmarks.md)."""
    buf = io.BytesIO()
    np.savez(buf, **state)  # type: ignore[arg-type]
    return buf.getvalue()


def loads(data: bytes) -> State:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
