"""The detection half of a partition, apart from its balances.

A worker's balances must not wait for its detectors: when a day closes, the meter
detectors refit their models over the areas' histories (the theft localiser: one
joint model per area over its whole history), which grows to seconds per partition,
while the balances of the next steps are due within the second. So the worker runs them in two
processes (kafka_io.step_process): the balance side (``PartitionCore``) hands each
step's final results to the detection side (``PartitionDetection``) as a
``DetectionInput``, in step order, and goes on; the detection side runs every
detector on them exactly as ``streams.pipeline.Pipeline`` does in one process, so
the suspicions are the embedded replay's.

A checkpoint holds both halves as of the same step: ``checkpoint_bytes`` frames the
balance side's snapshot and the detection side's, taken after the same input.
Pure: no Kafka client, no clock.
"""

from __future__ import annotations

import json
import pickle
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from detectors import DetectorSettings
from kafka_io.schema import encode_suspicion, suspicion_key
from lineloss.config import EngineConfig
from lineloss.domain import Suspicion
from lineloss.timeline import TopologyTimeline
from streams.engine import Emission
from streams.pipeline import DetectionStage
from streams.snapshot import dumps, loads


@dataclass
class DetectionInput:
    """What one balance step hands to one partition's detection, in step order."""

    emissions: list[Emission] = field(default_factory=list)  # final results only
    # The partition's part of the registry, when it changed since the last input
    # (and always with ``begin``).
    timeline: TopologyTimeline | None = None
    # (Re)start the partition's detection: from ``saved`` (the detection half of its
    # checkpoint) or, when None, fresh. Set on the first input after the balance
    # side created or restored the partition.
    begin: bool = False
    saved: bytes | None = None
    # digests of the pieces ``saved`` was assembled from (kafka_io.pieces): the
    # partition's next checkpoint need not send them again
    saved_pieces: frozenset[str] = frozenset()


class PartitionDetection:
    """Every detector of one partition, and what it last published."""

    def __init__(
        self,
        timeline: TopologyTimeline,
        config: EngineConfig,
        detector_settings: DetectorSettings | None = None,
    ) -> None:
        self.stage = DetectionStage(timeline, config, detector_settings or {})
        self.published: dict[str, bytes] = {}  # suspicion key -> its last message

    def step(self, emissions: Iterable[Emission]) -> list[tuple[str, bytes]]:
        """Run the detectors on the final results, in order; returns the suspicions
        new or changed since last published (key, message)."""
        for emission in emissions:
            self.stage.process(emission)
        out = []
        for s in self.stage.book.suspicions():
            key, msg = suspicion_key(s), encode_suspicion(s)
            if self.published.get(key) != msg:
                self.published[key] = msg
                out.append((key, msg))
        return out

    def suspicions(self) -> list[Suspicion]:
        return self.stage.book.suspicions()

    def snapshot(self) -> bytes:
        # Plain Python objects (histories, book, detector state): pickled. Only
        # restore snapshots of your own checkpoint topic.
        return pickle.dumps((self.stage, self.published), protocol=5)

    @classmethod
    def restore(cls, data: bytes, timeline: TopologyTimeline) -> PartitionDetection:
        """The state ``snapshot`` captured, cutting later windows with ``timeline``
        (the registry now, which may be newer than the checkpoint's)."""
        stage, published = pickle.loads(data)
        out = cls.__new__(cls)
        out.stage, out.published = stage, published
        out.stage.set_timeline(timeline)
        return out


class WorkerDetection:
    """The detection halves of the partitions one worker owns."""

    def __init__(
        self, config: EngineConfig, detector_settings: DetectorSettings | None = None
    ) -> None:
        self.config = config
        self.detector_settings = detector_settings
        self.parts: dict[int, PartitionDetection] = {}

    def run(self, inputs: dict[int, DetectionInput]) -> dict[int, list[tuple[str, bytes]]]:
        """One balance step's inputs, partition by partition: changed suspicions."""
        out = {}
        for p in sorted(inputs):
            given = inputs[p]
            if given.begin:
                if given.timeline is None:
                    raise ValueError(f"partition {p}: a (re)start needs its timeline")
                self.parts[p] = (
                    PartitionDetection.restore(given.saved, given.timeline)
                    if given.saved is not None
                    else PartitionDetection(given.timeline, self.config, self.detector_settings)
                )
            elif p not in self.parts:
                raise ValueError(f"partition {p}: input before its (re)start")
            elif given.timeline is not None:
                self.parts[p].stage.set_timeline(given.timeline)
            out[p] = self.parts[p].step(given.emissions)
        return out

    def revoke(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.parts.pop(p, None)

    def snapshots(self, partitions: Iterable[int]) -> dict[int, bytes]:
        return {p: self.parts[p].snapshot() for p in partitions}

    def suspicions(self) -> list[Suspicion]:
        return [s for p in sorted(self.parts) for s in self.parts[p].suspicions()]


_MAGIC = b"LLCP1\n"  # a checkpoint of both halves (kafka_io.detection)
_ZIP = b"PK\x03\x04"  # an npz: a checkpoint of a worker before the halves split


def checkpoint_bytes(balance: bytes, detection: bytes) -> bytes:
    """One checkpoint message from the two halves taken after the same step."""
    return _MAGIC + struct.pack(">Q", len(balance)) + balance + detection


def split_checkpoint(data: bytes) -> tuple[bytes, bytes]:
    """(balance half, detection half) of a checkpoint message. Also reads the
    one-piece checkpoints of earlier workers (engine and detection stage in one npz),
    so an upgraded worker resumes from them."""
    if data.startswith(_MAGIC):
        at = len(_MAGIC) + 8
        (n,) = struct.unpack(">Q", data[len(_MAGIC) : at])
        return data[at : at + n], data[at + n :]
    if data.startswith(_ZIP):
        state = loads(data)
        stage = pickle.loads(state.pop("worker.detection").tobytes())
        meta = json.loads(str(state["worker.meta"]))
        published = {k: v.encode() for k, v in meta.pop("published", {}).items()}
        state["worker.meta"] = np.array(json.dumps(meta))
        return dumps(state), pickle.dumps((stage, published), protocol=5)
    raise ValueError("not a lineloss checkpoint")
