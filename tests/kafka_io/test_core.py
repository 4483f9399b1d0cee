"""The worker step without a broker: partitions, forwards, checkpoints and rebalances
give exactly the embedded pipeline's results.

``Log`` plays the broker: per topic (readings "r", forwards "routed"), one list of
messages per partition, consumed from committed offsets.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import replace

import numpy as np
import pytest
from factories import DAY0, make_topology

from kafka_io.core import HOLD_ALL, InlineWorker, Outputs, PartitionCore, WorkerCores
from kafka_io.detection import (
    DetectionInput,
    WorkerDetection,
    checkpoint_bytes,
    split_checkpoint,
)
from kafka_io.schema import (
    END_OF_STREAM,
    IDLE,
    Origin,
    ReadingRow,
    control_type,
    decode_balance,
    encode_balance,
    encode_batch,
    encode_control,
    encode_reading,
    encode_suspicion,
    suspicion_key,
)
from kafka_io.shards import Shards, partition_of
from lineloss.config import EngineConfig
from lineloss.domain import Balance, Meter, MeterRole, ReadingBatch
from lineloss.timeline import BEGINNING_S, MeterHistory, MeterState, TopologyTimeline
from streams.pipeline import Pipeline

# Three readings partitions: F1 -> 0, F2 and F3 -> 1, the feeder-less area A9 -> 2.
TOPO = make_topology(
    [
        ("H1", "feeder", None, "F1", 100.0),
        ("T1", "area", "A1", "F1", 40.0),
        ("C1", "customer", "A1", "F1", 1.0),
        ("C2", "customer", "A1", "F1", 1.0),
        ("T2", "area", "A2", "F1", 1.0),
        ("C3", "customer", "A2", "F1", 1.0),
        ("T3", "area", "A3", "F2", 1.0),
        ("C4", "customer", "A3", "F2", 1.0),
        ("C5", "customer", "A3", "F2", 1.0),
        ("T4", "area", "A4", "F3", 1.0),
        ("C6", "customer", "A4", "F3", 1.0),
        ("T9", "area", "A9", None, 1.0),
        ("C9", "customer", "A9", None, 1.0),
    ]
)
AREA = {m: str(TOPO.meter(i).area_id) for i, m in enumerate(TOPO.meter_ids.tolist())}
# Partitions progress at their own pace through a backlog, so a forwarded reading can
# reach its partition days of event time after the partition's own readings: the
# re-collection horizon must cover that for "same as embedded" (docs/streaming.md).
CONFIG = EngineConfig(
    window_s=6 * 3600,
    allowed_lateness_s=1800,
    revision_interval_s=0,
    recollect_horizon_s=10 * 86400,
)
PARTITIONS = 3
SHARDS = Shards(TOPO, PARTITIONS)


TOPICS = ("r", "routed")


class Log:
    """The readings and routed topics: per partition, the messages in offset order."""

    def __init__(self) -> None:
        self.topics = {t: [[] for _ in range(PARTITIONS)] for t in TOPICS}
        self.partitions: list[list[bytes | None]] = self.topics["r"]

    def send(self, partition: int, raw: bytes | None, topic: str = "r") -> None:
        self.topics[topic][partition].append(raw)

    def send_keyed(self, key: str, raw: bytes | None) -> None:
        self.send(partition_of(key.encode(), PARTITIONS), raw)

    def read(
        self, partition: int, offset: int, n: int, topic: str = "r"
    ) -> list[tuple[Origin, bytes | None]]:
        log = self.topics[topic][partition]
        end = min(offset + n, len(log))
        return [(Origin(topic, partition, o), log[o]) for o in range(offset, end)]


def readings(seed: int, days: int = 3) -> list[ReadingRow]:
    rng = np.random.default_rng(seed)
    regs = dict.fromkeys(AREA, 100.0)
    out = []
    for k in range(4 * 24 * days):
        for m in AREA:
            regs[m] = round(regs[m] + float(rng.gamma(1.5, 0.4)), 2)
            out.append(ReadingRow(m, DAY0 + (k + 1) * 900, regs[m]))
    return out


def publish(rows: list[ReadingRow], key_by: str, *, bad_every: int = 0) -> Log:
    """Like a head-end: concentrator batches per area and quarter hour keyed by the
    shard key (``feeder``) or by the area, or single readings keyed by meter."""
    log = Log()
    by_ts: dict[tuple[int, str], list[ReadingRow]] = {}
    for r in rows:
        by_ts.setdefault((r.ts, AREA.get(r.meter_id, "A4")), []).append(r)  # C7: A4
    for n, ((_, area), group) in enumerate(sorted(by_ts.items())):
        if key_by == "meter":
            for r in group:
                log.send_keyed(r.meter_id, encode_reading(r))
        else:
            i = int(TOPO.index_of([group[0].meter_id])[0])
            log.send_keyed(
                SHARDS.key(TOPO.meter(i)) if key_by == "feeder" else area, encode_batch(area, group)
            )
        if bad_every and n % bad_every == 7:
            log.send_keyed("F1", b"{oops")
    for p in range(PARTITIONS):
        log.send(p, encode_control(END_OF_STREAM))
    return log


def as_batch(rows: list[ReadingRow], timeline: TopologyTimeline) -> ReadingBatch:
    """Register readings as one batch indexed by the timeline's newest version."""
    return ReadingBatch(
        meter_idx=timeline.latest.index_of([r.meter_id for r in rows]),
        ts=np.array([r.ts for r in rows], np.int64),
        value=np.array([r.value for r in rows]),
        is_interval=np.zeros(len(rows), np.bool_),
        event=np.zeros(len(rows), np.int16),
        voltage_v=np.full(len(rows), np.nan, np.float32),
        source_pos=np.arange(len(rows), dtype=np.int64),
    )


def embedded(
    rows: list[ReadingRow], timeline: TopologyTimeline | None = None, config: EngineConfig = CONFIG
) -> tuple[dict[tuple[object, ...], str], dict[str, bytes]]:
    """One pipeline over the whole grid: the reference."""
    timeline = timeline or TopologyTimeline.of(TOPO)
    pipe = Pipeline(timeline, config)
    history = pipe.step(as_batch(rows, timeline)).balances + pipe.flush().balances
    return finals(history), {suspicion_key(s): encode_suspicion(s) for s in pipe.suspicions()}


def finals(history: list[Balance]) -> dict[tuple[object, ...], str]:
    """Each final balance, once. (``revision`` counts re-issues, which depend on how
    readings were batched; every number, status and reason must be identical.)"""
    out: dict[tuple[object, ...], str] = {}
    for b in history:
        if b.final:
            key = (b.level, b.target_id, b.window_start)
            assert key not in out, f"final balance issued twice: {key}"
            out[key] = repr(replace(b, revision=0))
    return out


class Cluster:
    """Workers sharing the partitions of ``log``, with committed offsets and a
    checkpoint store, stepping round-robin until every partition drained."""

    def __init__(
        self,
        log: Log,
        step: int,
        workers: int = 1,
        topology: TopologyTimeline | None = None,
        *,
        config: EngineConfig = CONFIG,
        pace: dict[int, int] | None = None,
    ) -> None:
        self.log = log
        self.topology = topology or TopologyTimeline.of(TOPO)  # the registry now
        self.step = step
        self.config = config
        self.pace = pace or {}  # messages per round and topic of some partitions
        self.committed = {(t, p): 0 for t in TOPICS for p in range(PARTITIONS)}
        self.saved: dict[int, bytes] = {}
        self.workers = [self.new_worker() for _ in range(workers)]
        self.owner = {p: self.workers[p % workers] for p in range(PARTITIONS)}
        self.history: list[Balance] = []
        self.dead: list[tuple[object, ...]] = []
        self.published: dict[str, bytes] = {}  # the suspicions topic, compacted
        self.drained: set[int] = set()

    def new_worker(self) -> InlineWorker:
        return InlineWorker(
            self.topology,
            self.config,
            PARTITIONS,
            load=lambda ps: {p: self.saved[p] for p in ps if p in self.saved},
        )

    def run_round(self) -> None:
        for p in range(PARTITIONS):
            n = self.pace.get(p, self.step)
            msgs = [m for t in TOPICS for m in self.log.read(p, self.committed[t, p], n, t)]
            if not msgs:
                continue
            worker = self.owner[p]
            outs, changed = worker.process(msgs)
            out = outs[p]
            for dest, raw in out.forwards:
                self.log.send(dest, raw, "routed")
            self.history += out.balances
            self.published.update(changed[p])
            self.dead += [
                (d.reason, d.topic, d.partition, d.offset, d.index) for d in out.dead_letters
            ]
            self.saved[p] = worker.checkpoint(p)  # checkpoint, then commit
            for origin, _ in msgs:
                self.committed[origin.topic, p] = origin.offset + 1
            if out.drained:
                self.drained.add(p)

    def apply(self, updates: dict[str, MeterHistory | None]) -> None:
        """A registry update every worker reads between two steps."""
        self.topology = self.topology.apply(updates)
        for w in self.workers:
            assert w.apply(updates) == {}  # in time for every window it changes

    def move(self, partition: int, to: InlineWorker) -> None:
        """A rebalance: the partition changes owner and resumes from its checkpoint."""
        self.owner[partition].revoke([partition])
        self.owner[partition] = to

    def run(self, rounds: int = 10_000) -> None:
        for _ in range(rounds):
            if len(self.drained) == PARTITIONS:
                return
            self.run_round()
        assert len(self.drained) == PARTITIONS, "the stream did not drain"

    def suspicions(self) -> dict[str, bytes]:
        """The latest published version of every suspicion."""
        return self.published


@pytest.mark.parametrize("key_by", ["feeder", "area", "meter"])
def test_partitions_give_the_embedded_results_whatever_the_key(key_by: str) -> None:
    rows = readings(1)
    ref, ref_suspicions = embedded(rows)
    cluster = Cluster(publish(rows, key_by), step=23)
    cluster.run()
    assert finals(cluster.history) == ref and len(ref) > 30
    assert cluster.suspicions() == ref_suspicions
    forwarded = [m for log in cluster.log.topics["routed"] for m in log if b"forwarded" in m]
    assert bool(forwarded) == (key_by != "feeder")


def bad_messages(log: Log) -> set[tuple[object, ...]]:
    return {
        ("malformed_json", "r", p, o, 0)
        for p, msgs in enumerate(log.partitions)
        for o, m in enumerate(msgs)
        if m == b"{oops"
    }


def test_bad_messages_are_dead_letters_once_with_their_origin() -> None:
    rows = readings(2)
    log = publish(rows, "meter", bad_every=40)
    cluster = Cluster(log, step=37)
    cluster.run()
    bad = bad_messages(log)
    assert set(cluster.dead) == bad and len(cluster.dead) == len(bad) >= 5


@pytest.mark.parametrize("seed", [1, 2])
def test_a_crash_and_redelivery_change_nothing(seed: int) -> None:
    """A worker dies after it sent outputs and forwards but before its checkpoint:
    the partitions restart from their checkpoints, Kafka re-delivers from older
    committed offsets, the forwards arrive twice. Same finals and suspicions."""
    rows = readings(seed)
    ref, ref_suspicions = embedded(rows)
    cluster = Cluster(publish(rows, "meter", bad_every=50), step=29)
    rng = np.random.default_rng(seed)
    for _ in range(int(rng.integers(20, 60))):
        cluster.run_round()
    saved, committed = dict(cluster.saved), dict(cluster.committed)
    for _ in range(3):  # work whose checkpoints and commits are lost in the crash
        cluster.run_round()
    cluster.saved = saved
    cluster.committed = {k: max(c - int(rng.integers(0, 40)), 0) for k, c in committed.items()}
    cluster.workers = [cluster.new_worker()]
    cluster.owner = dict.fromkeys(range(PARTITIONS), cluster.workers[0])
    cluster.run()
    assert finals(cluster.history) == ref  # (finals before the crash are issued once)
    assert cluster.suspicions() == ref_suspicions
    # Outputs of the lost steps are sent again (at least once); every dead letter is
    # there, and its origin makes the repeats recognisable.
    assert set(cluster.dead) == bad_messages(cluster.log)


def test_two_workers_and_rebalances_give_the_embedded_results() -> None:
    rows = readings(3)
    ref, ref_suspicions = embedded(rows)
    cluster = Cluster(publish(rows, "area"), step=17, workers=2)
    a, b = cluster.workers
    for _ in range(30):
        cluster.run_round()
    cluster.move(0, b)  # b takes partition 0 over from a
    for _ in range(30):
        cluster.run_round()
    cluster.move(1, a)
    cluster.move(0, a)  # back to a, which must not go on from its stale state
    cluster.run()
    assert finals(cluster.history) == ref
    assert cluster.suspicions() == ref_suspicions


def reading_forwards(out: Outputs) -> list[tuple[int, bytes]]:
    """The forwarded readings among a step's messages to the routed topic."""
    return [(p, raw) for p, raw in out.forwards if control_type(raw) is None]


def test_a_resent_forward_is_not_counted_twice() -> None:
    core = PartitionCore(TOPO, CONFIG, 0, PARTITIONS, shards=SHARDS)
    row = ReadingRow("C1", DAY0 + 900, 101.5)
    sender = PartitionCore(TOPO, CONFIG, 1, PARTITIONS, shards=SHARDS)
    out = sender.process([(Origin("r", 1, 0), encode_reading(row))])
    assert out.readings == 0 and [p for p, _ in reading_forwards(out)] == [0]
    forward = reading_forwards(out)[0][1]
    assert json.loads(forward)["forwarded"] == [["r", 1, 0, 0]]
    first = core.process([(Origin("routed", 0, 1), forward)])
    again = core.process([(Origin("routed", 0, 0), forward)])
    assert (first.readings, again.readings) == (1, 0)
    assert not first.dead_letters and not again.dead_letters


def test_a_message_handed_after_the_partition_went_past_it_is_reported() -> None:
    """The consumer must hand a partition's messages in offset order: one from a
    range already jumped over cannot be told from a re-delivery by the next offset
    alone, so it is skipped, and that is what lost readings looked like
    (kafka_io.worker.FetchGenerations). It is reported; re-deliveries and jumps
    (a transaction marker takes an offset) are not."""
    core = PartitionCore(TOPO, CONFIG, 0, PARTITIONS, shards=SHARDS)

    def at(offset: int, minute: int) -> tuple[Origin, bytes]:
        row = ReadingRow("C1", DAY0 + 60 * minute, 100.0 + minute)
        return Origin("r", 0, offset), encode_reading(row)

    assert core.process([at(0, 15), at(1, 30)]).offset_warnings == []
    assert core.process([at(1, 30)]).offset_warnings == []  # re-delivered: seen
    assert core.process([at(5, 90)]).offset_warnings == []  # a jump
    (warning,) = core.process([at(3, 60)]).offset_warnings
    assert warning.startswith("r offset 3 came after the partition had jumped over it")
    assert core.process([at(6, 105)]).offset_warnings == []


def test_a_partition_drains_only_when_every_other_stopped_forwarding() -> None:
    cores = [PartitionCore(TOPO, CONFIG, p, PARTITIONS, shards=SHARDS) for p in range(PARTITIONS)]
    eos = encode_control(END_OF_STREAM)
    out0 = cores[0].process([(Origin("r", 0, 0), eos)])
    assert not out0.drained
    assert sorted(p for p, _ in out0.forwards) == [1, 2]  # "no more forwards from 0"
    out1 = cores[1].process([(Origin("r", 1, 0), eos)])
    out2 = cores[2].process([(Origin("r", 2, 0), eos)])
    to0 = [raw for out in (out1, out2) for p, raw in out.forwards if p == 0]
    assert not cores[0].process([(Origin("routed", 0, 0), to0[0])]).drained
    assert cores[0].process([(Origin("routed", 0, 1), to0[1])]).drained


# A re-collection horizon of one window: a reading forwarded by a partition days
# behind in a backlog would be too late at its owner without the alignment.
TIGHT = replace(CONFIG, recollect_horizon_s=6 * 3600)


@pytest.mark.parametrize("aligned", [True, False])
def test_a_partition_far_behind_in_a_backlog_forwards_nothing_too_late(
    aligned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partition 0 reads its backlog a hundred times faster than the others, which
    forward it readings of its meters (keyed by meter): its finals wait for their
    announced watermarks, so none of those readings is too late, and the finals are
    the embedded pipeline's. Without the hold (``aligned=False``) the same run
    refuses them: the scenario does exercise the problem."""
    if not aligned:
        monkeypatch.setattr(PartitionCore, "final_watermark_s", property(lambda _self: None))
    rows = readings(7)
    ref, _ = embedded(rows, config=TIGHT)
    cluster = Cluster(publish(rows, "meter"), step=3, config=TIGHT, pace={0: 300})
    cluster.run()
    too_late = [d for d in cluster.dead if d[0] == "too_late"]
    if aligned:
        assert too_late == [] and cluster.dead == []
        assert finals(cluster.history) == ref
    else:
        assert len(too_late) > 10


def test_an_idle_partition_stops_holding_finals_until_its_next_reading() -> None:
    cores = [PartitionCore(TOPO, TIGHT, p, PARTITIONS, shards=SHARDS) for p in range(PARTITIONS)]
    offsets = dict.fromkeys(range(PARTITIONS), 0)

    def deliver(out: Outputs) -> list[Balance]:
        """The step's messages to the routed topic, into their partitions' cores:
        the final balances of partition 0 they let through."""
        released = []
        for dest, raw in out.forwards:
            got = cores[dest].process([(Origin("routed", dest, offsets[dest]), raw)])
            released += [b for b in got.balances if b.final and dest == 0]
            offsets[dest] += 1
        return released

    deliver(cores[2].process([(Origin("r", 2, 0), encode_control(END_OF_STREAM))]))
    own = [r for r in readings(3) if AREA[r.meter_id] in ("A1", "A2")]  # F1: partition 0
    out0 = cores[0].process([(Origin("r", 0, 0), encode_batch("A1", own))])
    assert out0.readings == len(own) and not any(b.final for b in out0.balances)
    assert cores[0].final_watermark_s == HOLD_ALL  # partition 1 never spoke
    a = cores[0].alignment
    assert (a.holding_all, a.waiting_for, a.final_watermark_s, a.finals_held_s) == (
        True,
        (1,),
        None,
        None,
    )
    idle = encode_control(IDLE, partition=1, next_offset={"r": 0})
    out1 = cores[1].process([(Origin("routed", 1, offsets[1]), idle)])
    offsets[1] += 1
    (mark,) = {json.loads(raw)["watermark_s"] for _, raw in out1.forwards}
    assert mark is None and cores[1].idle
    finals0 = deliver(out1)
    wm0 = cores[0].source_watermark_s
    assert wm0 is not None and cores[0].final_watermark_s == wm0
    assert cores[0].alignment.waiting_for == (0,) and cores[0].alignment.finals_held_s == 0
    assert finals0 and max(b.window_end for b in finals0) + TIGHT.recollect_horizon_s <= wm0
    # Partition 1's next reading: it counts again, from its own watermark.
    out1 = cores[1].process([(Origin("r", 1, 0), encode_reading(ReadingRow("C4", DAY0, 7.0)))])
    assert not cores[1].idle
    assert deliver(out1) == []
    assert cores[0].final_watermark_s == DAY0 - TIGHT.allowed_lateness_s
    a = cores[0].alignment
    assert (a.holding_all, a.waiting_for, a.source_watermark_s) == (False, (1,), wm0)
    assert a.finals_held_s == wm0 - (DAY0 - TIGHT.allowed_lateness_s)
    # Partition 2 ended, but its own finals still wait for partition 0's word.
    assert cores[1].alignment.idle is False
    assert (cores[2].alignment.holding_all, cores[2].alignment.waiting_for) == (True, (0,))
    # A notice the worker sent before readings it had not seen yet is void.
    assert cores[1].process([(Origin("routed", 1, offsets[1]), idle)]).forwards == []
    assert not cores[1].idle


def test_clock_jumps_are_judged_on_the_partition_a_reading_arrived_on() -> None:
    """Partition 1 is at day 0 of its backlog; partition 0, five days on, forwards it
    readings of its meters: not clock jumps (they are not ahead of the stream they
    arrived on). A reading far ahead of partition 0's own stream, for a meter of
    partition 1, is a clock jump there, with its origin, and is not forwarded."""
    p0 = PartitionCore(TOPO, CONFIG, 0, PARTITIONS, shards=SHARDS)
    p1 = PartitionCore(TOPO, CONFIG, 1, PARTITIONS, shards=SHARDS)
    day5 = DAY0 + 5 * 86400
    ahead = [ReadingRow(m, day5 + 900 * k, 100.0 + k) for k in range(4) for m in ("C1", "C2")]
    ahead.append(ReadingRow("C4", day5 + 900, 105.0))  # partition 1's meter, on time here
    ahead.append(ReadingRow("C5", day5 + 30 * 86400, 150.0))  # a meter clock gone wrong
    out0 = p0.process([(Origin("r", 0, 0), encode_batch("A1", ahead))])
    (jump,) = out0.dead_letters
    assert (jump.reason, jump.meter_id, jump.topic, jump.offset, jump.index) == (
        "clock_jump",
        "C5",
        "r",
        0,
        9,
    )
    (forward,) = [raw for q, raw in reading_forwards(out0) if q == 1]
    assert [r["meter_id"] for r in json.loads(forward)["readings"]] == ["C4"]
    own = [ReadingRow(m, DAY0 + 900 * k, 100.0 + k) for k in range(8) for m in ("C4", "C5")]
    out1 = p1.process(
        [(Origin("r", 1, 0), encode_batch("A3", own)), (Origin("routed", 1, 0), forward)]
    )
    assert out1.readings == len(own) + 1 and out1.dead_letters == []


def test_a_broken_control_message_is_a_dead_letter() -> None:
    core = PartitionCore(TOPO, CONFIG, 0, PARTITIONS, shards=SHARDS)
    broken = encode_control("watermark", source_partition="one", watermark_s=5)
    out = core.process([(Origin("routed", 0, 0), broken)])
    (dead,) = out.dead_letters
    assert (dead.reason, dead.topic, dead.offset) == ("bad_value", "routed", 0)
    assert "watermark control message unusable" in dead.detail
    assert core.peer_watermarks == {}


def test_restore_keeps_every_position() -> None:
    core = PartitionCore(TOPO, CONFIG, 1, PARTITIONS, shards=SHARDS)
    log = publish(readings(4, days=1), "meter")
    core.process(log.read(1, 0, 200))
    again = PartitionCore.restore(TOPO, CONFIG, core.snapshot(), shards=SHARDS)
    assert (again.partition, again.next_offset, again.forwarded_upto) == (
        core.partition,
        core.next_offset,
        core.forwarded_upto,
    )
    assert again.position == core.position > 0
    assert (again.source_frontier_s, again.peer_watermarks, again.idle) == (
        core.source_frontier_s,
        core.peer_watermarks,
        core.idle,
    )
    assert again.source_frontier_s is not None


def test_balance_messages_round_trip_through_the_core() -> None:
    cluster = Cluster(publish(readings(4), "feeder"), step=100)
    cluster.run()
    assert cluster.history
    assert all(repr(decode_balance(encode_balance(b))) == repr(b) for b in cluster.history)


def test_forwarded_readings_keep_their_meter_when_an_unknown_meter_comes_first() -> None:
    core = PartitionCore(TOPO, CONFIG, 0, PARTITIONS, shards=SHARDS)
    rows = [
        ReadingRow("NOBODY", DAY0 + 900, 1.0),
        ReadingRow("C4", DAY0 + 900, 104.25),
        ReadingRow("C9", DAY0 + 900, 109.5),
    ]
    out = core.process([(Origin("r", 0, 0), encode_batch("A3", rows))])
    assert [d.reason for d in out.dead_letters] == ["unknown_meter"]
    by_partition = {p: json.loads(raw) for p, raw in reading_forwards(out)}
    assert by_partition[1]["readings"][0]["meter_id"] == "C4"
    assert by_partition[1]["readings"][0]["register_kwh"] == 104.25
    assert by_partition[1]["forwarded"] == [["r", 0, 0, 1]]
    assert by_partition[2]["readings"][0]["meter_id"] == "C9"
    assert by_partition[2]["forwarded"] == [["r", 0, 0, 2]]


def _customer(meter_id: str, area: str | None, feeder: str | None) -> Meter:
    return Meter(meter_id, MeterRole.CUSTOMER, area, feeder, 1.0)


UPDATES: dict[str, MeterHistory | None] = {
    # moved from F1 (partition 0) to F2 (partition 1) at the start of day 1
    "C2": (
        MeterState(BEGINNING_S, _customer("C2", "A1", "F1")),
        MeterState(DAY0 + 86400, _customer("C2", "A3", "F2")),
    ),
    # commissioned in the middle of a window: in service from the next one
    "C7": (MeterState(DAY0 + 86400 + 3 * 3600, _customer("C7", "A4", "F3")),),
    # a new CT on day 2
    "T3": (
        MeterState(BEGINNING_S, TOPO.meter(6)),
        MeterState(DAY0 + 2 * 86400, replace(TOPO.meter(6), multiplier=2.0)),
    ),
    # out of service from day 2 (its readings go on: dead letters)
    "C9": (MeterState(BEGINNING_S, TOPO.meter(12)), MeterState(DAY0 + 2 * 86400, None)),
}


@pytest.mark.parametrize("crash", [False, True])
def test_registry_updates_mid_stream_give_the_embedded_results(crash: bool) -> None:
    """A customer moved across partitions, a meter commissioned, a CT changed and a
    meter taken out of service, all read by the workers mid-stream (and, with
    ``crash``, a restart from checkpoints after it): the finals, suspicions and
    dead letters of one pipeline that knew the registry from the start."""
    assert TOPO.meter(6).meter_id == "T3" and TOPO.meter(12).meter_id == "C9"
    timeline = TopologyTimeline.of(TOPO).apply(UPDATES)
    rows = readings(5)
    rows += [ReadingRow("C7", DAY0 + 86400 + k * 900, 50.0 + k * 0.3) for k in range(1, 2 * 96 + 1)]
    rows.sort(key=lambda r: r.ts)
    ref, ref_suspicions = embedded(rows, timeline)
    assert any(k[1] == "A4" for k in ref)
    ref_unknown = Pipeline(timeline, CONFIG).engine.ingest(as_batch(rows, timeline))
    n_unknown = sum(r == "unknown_meter" for r in ref_unknown.reason)
    assert n_unknown > 12  # C7 before its window in service, C9 after it left

    cluster = Cluster(publish(rows, "meter"), step=41)
    for _ in range(2):
        cluster.run_round()
    assert all(
        (t := w.stream_time_s) is None or t < DAY0 + 86400 - CONFIG.allowed_lateness_s
        for w in cluster.workers
    )
    cluster.apply(UPDATES)
    if crash:
        for _ in range(25):
            cluster.run_round()
        cluster.workers = [cluster.new_worker()]  # restarts with the registry of now
        cluster.owner = dict.fromkeys(range(PARTITIONS), cluster.workers[0])
    cluster.run()
    assert finals(cluster.history) == ref
    assert cluster.suspicions() == ref_suspicions
    unknown = {d for d in cluster.dead if d[0] == "unknown_meter"}
    assert len(unknown) == n_unknown
    moved = [raw for log in cluster.log.topics["routed"] for raw in log if raw and b"C2" in raw]
    assert moved  # C2's readings went to its owner of the time


class LaggingCluster(Cluster):
    """One worker as the Kafka worker runs: each step's detection runs ``lag`` steps
    after its balances (in the other process), and a checkpoint (both halves as of
    one step) is written, and the offsets it covers committed, only once that step's
    detection is done. ``crash`` loses everything not yet checkpointed."""

    def __init__(self, log: Log, step: int, lag: int) -> None:
        super().__init__(log, step)
        self.lag = lag
        self.worker = self.workers[0]
        # (step's detection inputs, its balance halves, the offsets it covers)
        self.queue: deque[tuple[dict[int, DetectionInput], dict[int, bytes], dict]] = deque()
        self.read_to = dict(self.committed)  # fetched (not yet committed) offsets

    def run_round(self) -> None:
        msgs = [
            m
            for p in range(PARTITIONS)
            for t in TOPICS
            for m in self.log.read(p, self.read_to[t, p], self.step, t)
        ]
        if msgs:
            for origin, _ in msgs:
                self.read_to[origin.topic, origin.partition] = origin.offset + 1
            outs = self.worker.cores.process(msgs)
            for p, out in outs.items():
                for dest, raw in out.forwards:
                    self.log.send(dest, raw, "routed")
                self.history += out.balances
                self.drained |= {p} if out.drained else set()
            halves = {p: self.worker.cores.cores[p].snapshot() for p in outs}
            self.queue.append(
                ({p: o.detection for p, o in outs.items()}, halves, dict(self.read_to))
            )
        while self.queue and (len(self.queue) > self.lag or not msgs):
            self.detect_one()

    def detect_one(self) -> None:
        inputs, halves, offsets = self.queue.popleft()
        for changed in self.worker.detection.run(inputs).values():
            self.published.update(changed)
        detection = self.worker.detection.snapshots(sorted(halves))
        for p, half in halves.items():
            self.saved[p] = checkpoint_bytes(half, detection[p])
        self.committed = offsets

    def crash(self) -> None:
        self.queue.clear()
        self.worker = self.new_worker()
        self.read_to = dict(self.committed)

    def run(self, rounds: int = 10_000) -> None:
        for _ in range(rounds):
            if len(self.drained) == PARTITIONS and not self.queue:
                return
            self.run_round()
        raise AssertionError("the stream did not drain")


@pytest.mark.parametrize("lag", [0, 3, 12])
def test_detection_behind_the_balances_gives_the_embedded_results(lag: int) -> None:
    """Detection some steps behind (its own process), a crash that loses the
    checkpoints not yet written: same finals and suspicions as one pipeline."""
    rows = readings(6)
    ref, ref_suspicions = embedded(rows)
    cluster = LaggingCluster(publish(rows, "area"), step=19, lag=lag)
    for _ in range(40):
        cluster.run_round()
    assert len(cluster.queue) == lag
    cluster.crash()
    cluster.run()
    assert finals(cluster.history) == ref
    assert cluster.published == ref_suspicions and ref_suspicions


def test_a_detection_input_before_its_partition_began_is_refused() -> None:
    detection = WorkerDetection(CONFIG)
    with pytest.raises(ValueError, match="before its"):
        detection.run({0: DetectionInput()})
    with pytest.raises(ValueError, match="needs its timeline"):
        detection.run({0: DetectionInput(begin=True)})


def test_checkpoints_of_the_one_piece_format_are_read() -> None:
    """Before the halves split, a checkpoint was one npz with the detection stage
    inside: an upgraded worker resumes from it."""
    import pickle

    from streams.snapshot import dumps, loads

    worker = InlineWorker(TOPO, CONFIG, PARTITIONS)
    worker.process(publish(readings(4, days=2), "feeder").read(1, 0, 120))
    new = worker.checkpoint(1)
    balance, detection = split_checkpoint(new)
    stage, published = pickle.loads(detection)
    old_state = loads(balance)
    meta = json.loads(str(old_state["worker.meta"]))
    meta["published"] = {k: v.decode() for k, v in published.items()}
    old_state["worker.meta"] = np.array(json.dumps(meta))
    old_state["worker.detection"] = np.frombuffer(pickle.dumps(stage), dtype=np.uint8)
    old_balance, old_detection = split_checkpoint(dumps(old_state))
    assert loads(old_balance).keys() == loads(balance).keys()
    assert pickle.loads(old_detection)[1] == published
    with pytest.raises(ValueError, match="not a lineloss checkpoint"):
        split_checkpoint(b"garbage")


def test_assigned_partitions_are_restored_together_from_one_read() -> None:
    """A partition whose first message comes hours after the assignment must not
    cost a read of the checkpoint topic then (seconds with no partition stepped)."""
    cluster = Cluster(publish(readings(4, days=1), "feeder"), step=50)
    for _ in range(3):
        cluster.run_round()
    reads: list[set[int]] = []

    def load(ps: set[int]) -> dict[int, bytes]:
        reads.append(set(ps))
        return {p: cluster.saved[p] for p in ps if p in cluster.saved}

    worker = WorkerCores(TOPO, CONFIG, PARTITIONS, load=load)
    worker.prepare({0, 1, 2})
    assert reads == [{0, 1, 2}] and set(worker.cores) == {0, 1, 2}
    assert all(worker.cores[p].position > 0 for p in cluster.saved)  # restored
    for p in range(PARTITIONS):
        worker.process(cluster.log.read(p, cluster.committed["r", p], 10))
    assert reads == [{0, 1, 2}]
