"""The worker's step for one readings partition, free of any Kafka client:
messages in, messages out, snapshots.

Each partition owns the meters of its shard (kafka_io.shards: whole feeders), with
its own pipeline, watermark and checkpoint, so a rebalance moves self-contained
states between workers. ``PartitionCore.process`` turns one ``take`` batch of the
partition's messages into one ``Pipeline.step``; the faust agent (kafka_io.worker)
only moves bytes.

Readings of another partition's meters (a publisher that keys by meter or by area)
are forwarded to their partition of the routed topic, each with its original origin.
(A separate topic, read alongside: appended to the readings topic, forwards would
queue behind its whole backlog and arrive too late for their windows.) The receiver
keeps the position (source partition, offset, index) it has taken forwarded readings
up to, so a forward re-sent after a crash is recognised and not counted twice. At
its end of stream a partition tells every other one it forwards no more; a partition
drains (flushes its engine) once it has its own end of stream and that word from all.

Everything a restarted worker needs is in ``snapshot()``: the engine
(streams.snapshot), the detection stage, the next offset, the forward positions and
what was already published. Messages below the next offset are skipped, so
re-delivery after a crash neither counts a reading twice nor repeats its dead letters.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from detectors import DetectorSettings
from kafka_io.schema import (
    END_OF_FORWARDS,
    END_OF_STREAM,
    DeadLetter,
    Decoded,
    MessageError,
    Origin,
    ReadingColumns,
    ReadingRow,
    control_type,
    decode_rows,
    encode_control,
    encode_forwarded,
    encode_suspicion,
    forwarded_origins,
    suspicion_key,
)
from kafka_io.shards import Shards
from lineloss.config import EngineConfig
from lineloss.domain import Balance, Suspicion, Topology
from streams.pipeline import Pipeline, StepOutput
from streams.snapshot import dumps, engine_state, loads, restore_engine

FORWARD_MAX_READINGS = 2000  # per forwarded message: well under Kafka's 1 MB default


@dataclass
class Outputs:
    balances: list[Balance] = field(default_factory=list)
    suspicions: list[tuple[str, bytes]] = field(default_factory=list)  # key, message
    dead_letters: list[DeadLetter] = field(default_factory=list)
    forwards: list[tuple[int, bytes]] = field(default_factory=list)  # partition, message
    drained: bool = False  # this partition reached its end of stream and flushed
    readings: int = 0  # decoded readings fed to the pipeline in this step
    position: int = 0  # PartitionCore.position after the step


class PartitionCore:
    """One pipeline over the meters of one readings partition."""

    def __init__(
        self,
        topology: Topology,
        config: EngineConfig,
        partition: int,
        partitions: int,
        detector_settings: DetectorSettings | None = None,
        *,
        shards: Shards | None = None,
    ) -> None:
        self.full_topology = topology
        self.shards = shards if shards is not None else Shards(topology, partitions)
        if self.shards.partitions != partitions or not 0 <= partition < partitions:
            raise ValueError(f"partition {partition} of {partitions} does not fit the shards")
        self.partition = partition
        self.partitions = partitions
        self.topology = self.shards.topology_of(partition)
        self.config = config
        self.pipeline = Pipeline(self.topology, config, detector_settings=detector_settings)
        self.next_offset: dict[str, int] = {}  # per topic (readings, routed)
        self.end_of_stream = False
        self.forwards_done: set[int] = set()
        self.forwarded_upto: dict[int, tuple[int, int]] = {}  # source partition -> (offset, index)
        self.published: dict[str, bytes] = {}
        self.flushed = False

    def process(self, messages: Sequence[tuple[Origin, bytes | None]]) -> Outputs:
        cols = ReadingColumns()
        ended = False
        for origin, raw in messages:
            if origin.partition != self.partition:
                raise ValueError(f"partition {self.partition}'s core got {origin}")
            if origin.offset < self.next_offset.get(origin.topic, 0):
                continue  # already in the snapshot this worker restored
            self.next_offset[origin.topic] = origin.offset + 1
            kind = control_type(raw)
            if kind == END_OF_STREAM:
                ended = not self.end_of_stream
                self.end_of_stream = True
            elif kind == END_OF_FORWARDS:
                assert raw is not None
                self.forwards_done.add(int(json.loads(raw)["source_partition"]))
            elif kind is None:
                sources = forwarded_origins(raw)
                if sources is None:
                    cols.add_message(origin, raw)
                else:
                    self._take_forwarded(origin, raw, sources, cols)
        decoded = cols.decoded(self.full_topology)
        out = Outputs(dead_letters=decoded.dead_letters)
        home = self.shards.meter_partition[decoded.batch.meter_idx]
        mine = home == self.partition
        out.forwards = self._forwards(decoded, home, mine)
        if ended:
            end = encode_control(END_OF_FORWARDS, source_partition=self.partition)
            out.forwards += [(p, end) for p in range(self.partitions) if p != self.partition]
        batch = decoded.batch.take(mine)
        batch = replace(batch, meter_idx=self.shards.local_index(self.partition)[batch.meter_idx])
        out.readings = len(batch)
        if len(batch):
            step = self.pipeline.step(batch)
            out.balances.extend(step.balances)
            out.dead_letters.extend(self._rejected(step, decoded))
        if not self.flushed and self.drainable:
            out.balances.extend(self.pipeline.flush().balances)
            self.flushed = out.drained = True
        out.suspicions = self._changed_suspicions()
        out.position = self.position
        return out

    @property
    def position(self) -> int:
        """How far this partition has read, over both its topics: grows with every
        step, so of two checkpoints the further one has the larger position."""
        return sum(self.next_offset.values())

    @property
    def drainable(self) -> bool:
        """Own end of stream seen, and every other partition forwards no more."""
        others = set(range(self.partitions)) - {self.partition}
        return self.end_of_stream and others <= self.forwards_done

    def _take_forwarded(
        self, origin: Origin, raw: bytes | None, sources: list[Origin], cols: ReadingColumns
    ) -> None:
        """Readings another partition passed on, minus any it passed on before."""
        rows: list[ReadingRow | MessageError] = []
        origins: list[Origin] = []
        for item, src in zip(decode_rows(raw), sources, strict=True):
            at = (src.offset, src.index)
            if at <= self.forwarded_upto.get(src.partition, (-1, -1)):
                continue  # re-sent after the forwarding worker restarted
            self.forwarded_upto[src.partition] = at
            rows.append(item)
            origins.append(src)
        cols.add_rows(origin, rows, raw, origins=origins)

    def _forwards(
        self, decoded: Decoded, home: np.ndarray, mine: np.ndarray
    ) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        away = np.flatnonzero(~mine)
        for p in sorted(set(home[away].tolist())):
            pos = away[home[away] == p].tolist()  # in arrival order: positions only grow
            for lo in range(0, len(pos), FORWARD_MAX_READINGS):
                chunk = pos[lo : lo + FORWARD_MAX_READINGS]
                src = decoded.batch.source_pos[chunk].tolist()
                msg = encode_forwarded(
                    [decoded.row(k) for k in chunk], [decoded.origin(k) for k in src]
                )
                out.append((p, msg))
        return out

    def _rejected(self, step: StepOutput, decoded: Decoded) -> list[DeadLetter]:
        r = step.rejects
        out = []
        for pos, reason, detail in zip(r.source_pos.tolist(), r.reason, r.detail, strict=True):
            o = decoded.origin(pos)
            out.append(
                DeadLetter(
                    reason.value,
                    detail,
                    o.topic,
                    o.partition,
                    o.offset,
                    decoded.meter_ids[pos],
                    index=o.index,
                )
            )
        return out

    def _changed_suspicions(self) -> list[tuple[str, bytes]]:
        out = []
        for s in self.pipeline.suspicions():
            key, msg = suspicion_key(s), encode_suspicion(s)
            if self.published.get(key) != msg:
                self.published[key] = msg
                out.append((key, msg))
        return out

    def snapshot(self) -> bytes:
        state = engine_state(self.pipeline.engine)
        # The detection stage is plain Python objects (histories, book, detector
        # state); it travels pickled inside the npz, which itself loads without pickle.
        state["worker.detection"] = np.frombuffer(
            pickle.dumps(self.pipeline.detection, protocol=5), dtype=np.uint8
        )
        state["worker.meta"] = np.array(
            json.dumps(
                {
                    "partition": self.partition,
                    "partitions": self.partitions,
                    "next_offset": self.next_offset,
                    "end_of_stream": self.end_of_stream,
                    "forwards_done": sorted(self.forwards_done),
                    "forwarded_upto": {str(p): list(at) for p, at in self.forwarded_upto.items()},
                    "published": {k: v.decode() for k, v in self.published.items()},
                    "flushed": self.flushed,
                }
            )
        )
        return dumps(state)

    @classmethod
    def restore(
        cls,
        topology: Topology,
        config: EngineConfig,
        data: bytes,
        detector_settings: DetectorSettings | None = None,
        *,
        shards: Shards | None = None,
    ) -> PartitionCore:
        """A partition in exactly the state ``snapshot`` captured. Only load snapshots
        of your own checkpoint topic: the detection stage is unpickled."""
        state = loads(data)
        meta = json.loads(str(state.pop("worker.meta")))
        detection = pickle.loads(state.pop("worker.detection").tobytes())
        core = cls(
            topology,
            config,
            int(meta["partition"]),
            int(meta["partitions"]),
            detector_settings,
            shards=shards,
        )
        core.pipeline.engine = restore_engine(core.topology, config, state)
        core.pipeline.detection = detection
        core.next_offset = {t: int(o) for t, o in meta["next_offset"].items()}
        core.end_of_stream = bool(meta["end_of_stream"])
        core.forwards_done = set(meta["forwards_done"])
        core.forwarded_upto = {
            int(p): (int(o), int(i)) for p, (o, i) in meta["forwarded_upto"].items()
        }
        core.published = {k: v.encode() for k, v in meta["published"].items()}
        core.flushed = bool(meta["flushed"])
        return core


class WorkerCores:
    """The partitions one worker owns right now, each with its own ``PartitionCore``.

    A core is created on the first message of its partition after an assignment:
    restored from the partition's checkpoint (``load`` gets the saved states of a
    set of partitions, all at once: one read of the checkpoint topic), or fresh. ``revoke`` drops
    the cores of partitions taken away, so a later assignment restores the state the
    next owner checkpointed instead of going on from a stale one.
    """

    def __init__(
        self,
        topology: Topology,
        config: EngineConfig,
        partitions: int,
        detector_settings: DetectorSettings | None = None,
        *,
        load: Callable[[set[int]], dict[int, bytes]] = lambda _ps: {},
    ) -> None:
        self.topology = topology
        self.config = config
        self.partitions = partitions
        self.detector_settings = detector_settings
        self.shards = Shards(topology, partitions)
        self.load = load
        self.cores: dict[int, PartitionCore] = {}
        self.drained: set[int] = set()  # partitions this worker saw drain

    def _ensure(self, partitions: set[int]) -> None:
        missing = partitions - set(self.cores)
        if not missing:
            return
        saved = self.load(missing)
        for p in sorted(missing):
            self.cores[p] = (
                PartitionCore.restore(
                    self.topology, self.config, saved[p], self.detector_settings, shards=self.shards
                )
                if p in saved
                else PartitionCore(
                    self.topology,
                    self.config,
                    p,
                    self.partitions,
                    self.detector_settings,
                    shards=self.shards,
                )
            )

    def process(self, messages: Sequence[tuple[Origin, bytes | None]]) -> dict[int, Outputs]:
        """One step: each partition's messages through its core, in partition order."""
        by_partition: dict[int, list[tuple[Origin, bytes | None]]] = {}
        for m in messages:
            by_partition.setdefault(m[0].partition, []).append(m)
        self._ensure(set(by_partition))
        outs = {p: self.cores[p].process(by_partition[p]) for p in sorted(by_partition)}
        self.drained.update(p for p, out in outs.items() if out.drained)
        return outs

    def revoke(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.cores.pop(p, None)

    @property
    def stream_time_s(self) -> int | None:
        """The newest event time any owned partition has reached; None before any."""
        times = [t for c in self.cores.values() if (t := c.pipeline.stream_time_s) is not None]
        return max(times) if times else None

    def suspicions(self) -> list[Suspicion]:
        return [s for p in sorted(self.cores) for s in self.cores[p].pipeline.suspicions()]
