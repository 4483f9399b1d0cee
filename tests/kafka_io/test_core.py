"""The worker step without a broker: same finals as the embedded pipeline, restart-safe."""

from __future__ import annotations

import numpy as np
import pytest
from factories import DAY0, make_topology

from kafka_io.core import WorkerCore
from kafka_io.schema import (
    END_OF_STREAM,
    Origin,
    ReadingRow,
    decode_balance,
    encode_balance,
    encode_batch,
    encode_control,
)
from lineloss.config import EngineConfig

TOPO = make_topology(
    [
        ("T1", "area", "A1", "F1", 40.0),
        ("C1", "customer", "A1", "F1", 1.0),
        ("C2", "customer", "A1", "F1", 1.0),
        ("T2", "area", "A2", "F1", 1.0),
        ("C3", "customer", "A2", "F1", 1.0),
    ]
)
AREA = {"T1": "A1", "C1": "A1", "C2": "A1", "T2": "A2", "C3": "A2"}
CONFIG = EngineConfig(window_s=6 * 3600, allowed_lateness_s=1800, revision_interval_s=0)
PARTITIONS = 2


def messages(seed: int) -> list[tuple[Origin, bytes | None]]:
    """Concentrator batches of 3 days, one area per partition, plus bad messages and
    an end-of-stream marker on each partition."""
    rng = np.random.default_rng(seed)
    regs = dict.fromkeys(AREA, 100.0)
    offsets = [0] * PARTITIONS
    out: list[tuple[Origin, bytes | None]] = []

    def put(partition: int, raw: bytes | None) -> None:
        out.append((Origin("r", partition, offsets[partition]), raw))
        offsets[partition] += 1

    for k in range(4 * 24 * 3):
        t = DAY0 + k * 900
        for area, part in (("A1", 0), ("A2", 1)):
            rows = []
            for m in (m for m, a in AREA.items() if a == area):
                regs[m] = round(regs[m] + float(rng.gamma(1.5, 0.4)), 2)
                rows.append(ReadingRow(m, t, regs[m]))
            put(part, encode_batch(area, rows))
        if k % 50 == 7:
            put(0, b"{oops")
    for p in range(PARTITIONS):
        put(p, encode_control(END_OF_STREAM))
    return out


def run(core: WorkerCore, msgs: list, step: int) -> tuple[list, list, bool]:
    balances, dead, drained = [], [], False
    for lo in range(0, len(msgs), step):
        out = core.process(msgs[lo : lo + step])
        balances += out.balances
        dead += out.dead_letters
        drained |= out.drained
    return balances, dead, drained


def finals(history: list) -> dict:
    return {(b.level, b.target_id, b.window_start): repr(b) for b in history if b.final}


def test_worker_matches_one_big_step_and_reports_bad_messages() -> None:
    msgs = messages(1)
    ref, ref_dead, _ = run(WorkerCore(TOPO, CONFIG, PARTITIONS), msgs, len(msgs))
    got, dead, drained = run(WorkerCore(TOPO, CONFIG, PARTITIONS), msgs, 37)
    assert drained
    assert finals(got) == finals(ref) and len(finals(ref)) > 10
    assert {d.reason for d in dead} == {"malformed_json"} and len(dead) == len(ref_dead) == 6
    assert all(d.topic == "r" and d.partition == 0 for d in dead)


@pytest.mark.parametrize("seed", [1, 2])
def test_restore_then_redelivery_gives_identical_finals(seed: int) -> None:
    msgs = messages(seed)
    ref, ref_dead, _ = run(WorkerCore(TOPO, CONFIG, PARTITIONS), msgs, 50)
    rng = np.random.default_rng(seed)
    cut = int(rng.integers(100, len(msgs) - 200))
    core = WorkerCore(TOPO, CONFIG, PARTITIONS)
    got, dead, _ = run(core, msgs[:cut], 50)
    saved = core.snapshot()
    more, _, _ = run(core, msgs[cut : cut + 120], 50)  # its checkpoint is lost in the crash
    restored = WorkerCore.restore(TOPO, CONFIG, saved)
    # Kafka re-delivers from the committed offset, which may be before the checkpoint.
    again, again_dead, drained = run(restored, msgs[max(cut - 60, 0) :], 50)
    assert drained
    assert finals(got + more + again) == finals(ref)
    assert len(dead + again_dead) == len(ref_dead)  # no dead letter twice


def test_suspicions_are_published_when_they_change() -> None:
    core = WorkerCore(TOPO, CONFIG, PARTITIONS)
    msgs = messages(3)
    sent = []
    for lo in range(0, len(msgs), 40):
        sent += core.process(msgs[lo : lo + 40]).suspicions
    assert len({k for k, _ in sent}) == len(core.pipeline.suspicions())


def test_balance_messages_round_trip_through_the_core() -> None:
    core = WorkerCore(TOPO, CONFIG, PARTITIONS)
    balances, _, _ = run(core, messages(4), 100)
    assert all(repr(decode_balance(encode_balance(b))) == repr(b) for b in balances)
