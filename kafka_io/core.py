"""The worker's step, free of any Kafka client: messages in, messages out, snapshots.

``WorkerCore.process`` turns one ``take`` batch of messages into one
``Pipeline.step``; the faust agent (kafka_io.worker) only moves bytes. Everything a
restarted worker needs is in ``snapshot()``: the engine (streams.snapshot), the
detection stage, the next offset of every partition and what was already published.
Messages below a partition's next offset are skipped, so re-delivery after a crash
neither counts a reading twice nor repeats its dead letters.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detectors import DetectorSettings
from kafka_io.schema import (
    END_OF_STREAM,
    DeadLetter,
    Origin,
    control_type,
    decode_messages,
    encode_suspicion,
    suspicion_key,
)
from lineloss.config import EngineConfig
from lineloss.domain import Balance, Topology
from streams.pipeline import Pipeline, StepOutput
from streams.snapshot import dumps, engine_state, loads, restore_engine


@dataclass
class Outputs:
    balances: list[Balance] = field(default_factory=list)
    suspicions: list[tuple[str, bytes]] = field(default_factory=list)  # key, message
    dead_letters: list[DeadLetter] = field(default_factory=list)
    drained: bool = False  # every partition reached end of stream and the engine flushed
    readings: int = 0  # decoded readings fed to the pipeline in this step


class WorkerCore:
    """One pipeline over the areas of the partitions this worker owns."""

    def __init__(
        self,
        topology: Topology,
        config: EngineConfig,
        partitions: int,
        detector_settings: DetectorSettings | None = None,
    ) -> None:
        self.topology = topology
        self.config = config
        self.partitions = partitions
        self.pipeline = Pipeline(topology, config, detector_settings=detector_settings)
        self.next_offset: dict[int, int] = {}
        self.end_of_stream: set[int] = set()
        self.published: dict[str, bytes] = {}
        self.flushed = False

    def process(self, messages: Sequence[tuple[Origin, bytes | None]]) -> Outputs:
        fresh: list[tuple[Origin, bytes | None]] = []
        for origin, raw in messages:
            if origin.offset < self.next_offset.get(origin.partition, 0):
                continue  # already in the snapshot this worker restored
            self.next_offset[origin.partition] = origin.offset + 1
            kind = control_type(raw)
            if kind == END_OF_STREAM:
                self.end_of_stream.add(origin.partition)
            elif kind is None:
                fresh.append((origin, raw))
        out = Outputs()
        decoded = decode_messages(fresh, self.topology)
        out.dead_letters.extend(decoded.dead_letters)
        out.readings = len(decoded.batch)
        if len(decoded.batch):
            step = self.pipeline.step(decoded.batch)
            out.balances.extend(step.balances)
            out.dead_letters.extend(self._rejected(step, decoded.origins, decoded.meter_ids))
        if not self.flushed and len(self.end_of_stream) >= self.partitions:
            out.balances.extend(self.pipeline.flush().balances)
            self.flushed = out.drained = True
        out.suspicions = self._changed_suspicions()
        return out

    def _rejected(
        self, step: StepOutput, origins: list[Origin], meter_ids: list[str]
    ) -> list[DeadLetter]:
        r = step.rejects
        return [
            DeadLetter(
                reason.value,
                detail,
                origins[pos].topic,
                origins[pos].partition,
                origins[pos].offset,
                meter_ids[pos],
                index=origins[pos].index,
            )
            for pos, reason, detail in zip(r.source_pos.tolist(), r.reason, r.detail, strict=True)
        ]

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
                    "next_offset": {str(p): o for p, o in self.next_offset.items()},
                    "end_of_stream": sorted(self.end_of_stream),
                    "published": {k: v.decode() for k, v in self.published.items()},
                    "flushed": self.flushed,
                    "partitions": self.partitions,
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
    ) -> WorkerCore:
        """A worker in exactly the state ``snapshot`` captured. Only load snapshots of
        your own checkpoint topic: the detection stage is unpickled."""
        state = loads(data)
        meta = json.loads(str(state.pop("worker.meta")))
        detection = pickle.loads(state.pop("worker.detection").tobytes())
        core = cls(topology, config, int(meta["partitions"]), detector_settings)
        core.pipeline.engine = restore_engine(topology, config, state)
        core.pipeline.detection = detection
        core.next_offset = {int(p): int(o) for p, o in meta["next_offset"].items()}
        core.end_of_stream = set(meta["end_of_stream"])
        core.published = {k: v.encode() for k, v in meta["published"].items()}
        core.flushed = bool(meta["flushed"])
        return core
