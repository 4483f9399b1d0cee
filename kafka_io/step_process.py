"""The worker's partition cores in a child process.

The faust process moves bytes: it fetches, sends and checkpoints on its event loop.
The child owns the ``WorkerCores`` and does the computing: decoding, balances,
detectors, snapshots. Two processes use two cores, and no step holds the event
loop's GIL while aiokafka has records to fetch (docs/benchmarks.md: one process, the
core and faust's per-message machinery share one core and the worker ran at about
120k readings/s).

Messages go to the child and results come back pickled (bytes and plain dataclasses;
a step of 5,000 concentrator batches is about 20 MB). The child is started with
``spawn`` (no copy of the parent's event loop or sockets) and exits with its parent.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from detectors import DetectorSettings
from kafka_io.core import Outputs, WorkerCores
from kafka_io.schema import Origin
from kafka_io.topics import KafkaSettings
from lineloss.config import EngineConfig
from lineloss.domain import Suspicion

if TYPE_CHECKING:
    from kafka_io.worker import RegistryFollower


@dataclass
class StepResult:
    outs: dict[int, Outputs]  # per partition stepped
    # partition -> (checkpoint, its position, its next offset per topic), of every
    # partition changed since the last checkpoint, when this step checkpoints
    snapshots: dict[int, tuple[bytes, int, dict[str, int]]]
    stream_time_s: int | None  # newest event time over the owned partitions
    suspicions: list[Suspicion]  # every current suspicion of the owned partitions
    drained: set[int]  # partitions this worker saw drain, ever


@dataclass(frozen=True)
class CoresInfo:
    meters: int
    areas: int
    partitions: int


log = logging.getLogger("lineloss.worker")

_CORES: WorkerCores | None = None  # the child's state
_REGISTRY: RegistryFollower | None = None
_DIRTY: set[int] = set()  # partitions stepped since their last checkpoint
_JUST_DRAINED: set[int] = set()  # partitions that drained in the step being run


def _start(
    settings: KafkaSettings, config: EngineConfig, detector_settings: DetectorSettings | None
) -> None:
    from kafka_io.worker import start_cores

    _exit_with_parent()
    global _CORES, _REGISTRY
    _CORES, _REGISTRY = start_cores(settings, config, detector_settings)


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """End this child when its worker process is gone (a SIGKILLed worker cannot
    shut its pool down): a daemon thread watches the parent pid."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="lineloss-parent-watch", daemon=True).start()


def _info() -> CoresInfo:
    assert _CORES is not None
    return CoresInfo(_CORES.topology.n_meters, len(_CORES.topology.area_ids), _CORES.partitions)


def _balance(messages: list[tuple[Origin, bytes | None]], revoked: set[int]) -> StepResult:
    """The first half of a step: registry updates, then balances (no detectors)."""
    assert _CORES is not None and _REGISTRY is not None
    _CORES.revoke(revoked)
    updates = _REGISTRY.updates()
    if updates:
        late = _CORES.apply(updates)
        log.warning("registry: %d meters updated", len(updates))
        for p, meters in late.items():
            log.warning(
                "partition %d: %d meter changes came after windows they concern were final "
                "(those stay as they were): %s",
                p,
                len(meters),
                ", ".join(meters[:10]),
            )
    _DIRTY.difference_update(revoked)
    outs = _CORES.process(messages, detect=False)
    _DIRTY.update(outs)
    _JUST_DRAINED.clear()
    _JUST_DRAINED.update(p for p, out in outs.items() if out.drained)
    return StepResult(outs, {}, _CORES.stream_time_s, [], set(_CORES.drained))


def _detect(stepped: list[int], checkpoint: bool) -> StepResult:
    """The second half: the detectors of the stepped partitions; with ``checkpoint``
    (or when a partition drained) the snapshots of every partition changed since
    the last checkpoint. ``outs`` carry only the changed suspicions."""
    assert _CORES is not None
    found = _CORES.detect(stepped)
    outs = {p: Outputs(suspicions=sus) for p, sus in found.items()}
    snapshots: dict[int, tuple[bytes, int, dict[str, int]]] = {}
    if checkpoint or _JUST_DRAINED:
        for p in _DIRTY:
            core = _CORES.cores[p]
            snapshots[p] = (core.snapshot(), core.position, dict(core.next_offset))
        _DIRTY.clear()
    return StepResult(
        outs, snapshots, _CORES.stream_time_s, _CORES.suspicions(), set(_CORES.drained)
    )


class StepProcess:
    """A child process holding the cores; a step runs there in two calls, so the
    worker sends a step's balances before the detectors of the same step run."""

    def __init__(
        self,
        settings: KafkaSettings,
        config: EngineConfig,
        detector_settings: DetectorSettings | None = None,
    ) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(settings, config, detector_settings),
        )
        # Start now, so that a missing topology fails the worker at once.
        self.info: CoresInfo = self._pool.submit(_info).result()

    async def balance(
        self, messages: list[tuple[Origin, bytes | None]], revoked: set[int]
    ) -> StepResult:
        """A step's balances, dead letters, forwards and meter windows; call
        ``detect`` before the next ``balance``."""
        return await asyncio.wrap_future(self._pool.submit(_balance, messages, revoked))

    async def detect(self, stepped: list[int], checkpoint: bool) -> StepResult:
        """The detectors on what the step made final (changed suspicions); with
        ``checkpoint`` (or when a partition drained) also the snapshots of every
        partition changed since the last checkpoint."""
        return await asyncio.wrap_future(self._pool.submit(_detect, stepped, checkpoint))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
