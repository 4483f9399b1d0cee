"""The worker's computing, in two child processes: balances in one, detection in the
other.

The faust process moves bytes: it fetches, sends and checkpoints on its event loop.
The balance child owns the ``WorkerCores`` (decoding, routing, balances, the balance
half of each checkpoint); the detection child owns the ``WorkerDetection`` (every
detector, the detection half). A step's final results go from one to the other
through the faust process, in step order, and the faust process does not wait for
detection before the next step: at a day's close the detectors may take seconds
(they refit over the areas' histories), and the balances closing meanwhile are due
within the second
(docs/streaming.md, "Two processes"). No step holds the event loop's GIL while
aiokafka has records to fetch (docs/benchmarks.md: in one process, the core and
faust's per-message machinery shared one core and the worker ran at ~120k readings/s).

Messages go to the children and results come back pickled (bytes and plain
dataclasses; a step of 5,000 concentrator batches is about 20 MB). The children are
started with ``spawn`` (no copy of the parent's event loop or sockets) and exit with
their parent.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from detectors import DetectorSettings
from kafka_io.core import Outputs, WorkerCores
from kafka_io.detection import DetectionInput, WorkerDetection
from kafka_io.pieces import BALANCE, DETECTION, PieceWriter, Split
from kafka_io.schema import Origin
from kafka_io.topics import KafkaSettings
from lineloss.config import EngineConfig
from lineloss.domain import Suspicion

if TYPE_CHECKING:
    from kafka_io.checkpoints import Unused
    from kafka_io.worker import RegistryFollower

log = logging.getLogger("lineloss.worker")

T = TypeVar("T")


@dataclass
class BalanceResult:
    outs: dict[int, Outputs]  # per partition stepped (``detection``: its detectors' input)
    # partition -> (balance half of its checkpoint as pieces, its position, its next
    # offset per topic), of every partition changed since the last checkpoint, when
    # this step checkpoints (asked, or a partition drained)
    snapshots: dict[int, tuple[Split, int, dict[str, int]]]
    stream_time_s: int | None  # newest event time over the owned partitions
    drained: set[int]  # partitions this worker saw drain, ever
    # pieces no manifest names, found by this step's restores (partition -> half ->
    # digests): the worker deletes them after the partition's next checkpoint
    unused: Unused = field(default_factory=dict)
    # partition -> topic -> next offset, of the partitions stepped or assigned (the
    # worker's idle notices say which readings they were sent after)
    next_offsets: dict[int, dict[str, int]] = field(default_factory=dict)


@dataclass
class DetectionResult:
    changed: dict[int, list[tuple[str, bytes]]]  # suspicions new or changed (key, message)
    snapshots: dict[int, Split]  # detection halves as pieces, of the partitions asked for
    suspicions: list[Suspicion]  # every current suspicion of the owned partitions


@dataclass(frozen=True)
class CoresInfo:
    meters: int
    areas: int
    partitions: int


_CORES: WorkerCores | None = None  # the balance child's state
_REGISTRY: RegistryFollower | None = None
_DIRTY: set[int] = set()  # partitions stepped since their last checkpoint
_DETECTION: WorkerDetection | None = None  # the detection child's state
# Unused pieces the balance child's restores found (kafka_io.checkpoints.read_checkpoints)
_UNUSED: Unused = {}
# Pieces of the manifests the balance child's restores assembled (partition -> half
# -> digests), until the partition's writers adopt them
_RESTORED: Unused = {}
# Per partition, the pieces its checkpoints sent (kafka_io.pieces), with the state
# object they are of: a partition restored or created anew starts a new writer,
# which adopts the pieces it was restored from (``_ADOPT``).
_PIECES: dict[tuple[str, int], tuple[object, PieceWriter]] = {}
_ADOPT: dict[tuple[str, int], frozenset[str]] = {}


def _pieces(half: str, partition: int, of: object) -> PieceWriter:
    held = _PIECES.get((half, partition))
    if held is None or held[0] is not of:
        held = _PIECES[(half, partition)] = (of, PieceWriter())
        held[1].adopt(_ADOPT.pop((half, partition), frozenset()))
    return held[1]


def _forget_pieces(half: str, partitions: set[int]) -> None:
    for p in partitions:
        _PIECES.pop((half, p), None)
        _ADOPT.pop((half, p), None)


def _start_balance(settings: KafkaSettings, config: EngineConfig, parent: int) -> None:
    from kafka_io.worker import start_cores

    _exit_with_parent(parent)
    global _CORES, _REGISTRY
    _CORES, _REGISTRY = start_cores(settings, config, _UNUSED, _RESTORED)


def _start_detection(
    config: EngineConfig, detector_settings: DetectorSettings | None, parent: int
) -> None:
    _exit_with_parent(parent)
    global _DETECTION
    _DETECTION = WorkerDetection(config, detector_settings)


def _exit_with_parent(parent: int, poll_s: float = 1.0) -> None:
    """End this child when its worker process ``parent`` is gone (a SIGKILLed worker
    cannot shut its pool down): a daemon thread watches the parent pid. The pid
    comes from the worker: a worker killed while this child was still starting has
    left it to another parent already, and a child that took that one for its
    worker would never end."""
    if os.getppid() != parent:
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="lineloss-parent-watch", daemon=True).start()


def _info() -> CoresInfo:
    assert _CORES is not None
    return CoresInfo(_CORES.topology.n_meters, len(_CORES.topology.area_ids), _CORES.partitions)


def _ready() -> bool:
    return _DETECTION is not None


def _balance(
    messages: list[tuple[Origin, bytes | None]],
    revoked: set[int],
    assigned: set[int],
    checkpoint: bool,
) -> BalanceResult:
    """Partitions revoked, then those assigned (restored, all from one read of the
    checkpoints), registry updates, then the step's balances; with ``checkpoint`` (or
    when a partition drained) the balance halves of every partition changed since
    the last checkpoint."""
    assert _CORES is not None and _REGISTRY is not None
    _CORES.revoke(revoked)
    _forget_pieces(BALANCE, revoked)
    # (A re-published registry is mostly repeats: only changes count.)
    updates = _CORES.timeline.changes(_REGISTRY.updates())
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
    for p in revoked:
        _RESTORED.pop(p, None)
    _CORES.prepare(assigned)
    outs = _CORES.process(messages)
    for p, halves in list(_RESTORED.items()):  # restored, detection not yet begun
        if BALANCE in halves:
            _ADOPT[(BALANCE, p)] = frozenset(halves.pop(BALANCE))
        if p in outs and outs[p].detection.begin:  # the detection child's part
            outs[p].detection.saved_pieces = frozenset(halves[DETECTION])
            del _RESTORED[p]
    for p, out in outs.items():
        for w in out.offset_warnings:
            log.error("partition %d: %s", p, w)
    _DIRTY.update(outs)
    snapshots: dict[int, tuple[Split, int, dict[str, int]]] = {}
    if checkpoint or any(out.drained for out in outs.values()):
        for p in sorted(_DIRTY):
            core = _CORES.cores[p]
            split = _pieces(BALANCE, p, core).split_arrays(core.state())
            snapshots[p] = (split, core.position, dict(core.next_offset))
        _DIRTY.clear()
    unused = dict(_UNUSED)
    _UNUSED.clear()
    offsets = {
        p: dict(_CORES.cores[p].next_offset) for p in set(outs) | assigned if p in _CORES.cores
    }
    return BalanceResult(
        outs, snapshots, _CORES.stream_time_s, set(_CORES.drained), unused, offsets
    )


def _detect(
    inputs: dict[int, DetectionInput], revoked: set[int], snapshot: set[int]
) -> DetectionResult:
    """One balance step's detection inputs, after the partitions revoked before it;
    then the detection halves of ``snapshot``."""
    assert _DETECTION is not None
    _DETECTION.revoke(revoked)
    _forget_pieces(DETECTION, revoked)
    for p, given in inputs.items():
        if given.begin:  # restarted: a new writer, which holds what it was restored from
            _forget_pieces(DETECTION, {p})
            _ADOPT[(DETECTION, p)] = given.saved_pieces
    changed = _DETECTION.run(inputs)
    halves = {
        p: _pieces(DETECTION, p, _DETECTION.parts[p]).split({DETECTION: data})
        for p, data in _DETECTION.snapshots(sorted(snapshot)).items()
    }
    return DetectionResult(changed, halves, _DETECTION.suspicions())


_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Children spawned inside get one BLAS thread each (unless the environment
    says otherwise). Each child is one core's worth of work; a multi-threaded BLAS
    in the detection child took every core at a day's close and starved the
    balances (live p99 close-to-output 4-6 s at 5,000x, docs/benchmarks.md)."""
    before = {k: os.environ.get(k) for k in _BLAS_THREADS}
    for k in _BLAS_THREADS:
        os.environ.setdefault(k, "1")
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)


def _noop() -> None:
    pass


class ChildHung(RuntimeError):
    """A child process has run one call for longer than its time limit."""


class _Child:
    """One process running submitted calls in order."""

    def __init__(
        self,
        initializer: Callable[..., None],
        initargs: tuple[Any, ...],
        *,
        name: str = "child",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._clock = clock
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=initializer,
            initargs=initargs,
        )
        # Calls not yet finished, in order, and when the first of them started:
        # calls run one after another, so each starts when the one before ends.
        self._pending: deque[Future[Any]] = deque()
        self._running_since = clock()

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.wrap_future(self.submit(fn, *args))

    def wait(self, fn: Callable[..., T], *args: Any) -> T:
        return self.submit(fn, *args).result()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        self._advance()
        if not self._pending:
            self._running_since = self._clock()
        future = self._pool.submit(fn, *args)
        self._pending.append(future)
        return future

    def _advance(self) -> None:
        while self._pending and self._pending[0].done():
            self._pending.popleft()
            self._running_since = self._clock()

    def busy_s(self) -> float:
        """How long the call running now has been running (0 when idle). (Measured
        from when the one before it was seen finished: an upper bound.)"""
        self._advance()
        return self._clock() - self._running_since if self._pending else 0.0

    def check(self, limit_s: float | None = None) -> None:
        """Raise ``BrokenProcessPool`` if the process has died (without waiting for
        the calls queued before: submitting to a pool whose process died raises at
        once), or ``ChildHung`` if one call has run longer than ``limit_s``: a
        process that is alive but stuck (a deadlock, a runaway computation) would
        otherwise hold its worker's partitions forever."""
        self._pool.submit(_noop)
        if limit_s is not None and (busy := self.busy_s()) > limit_s:
            raise ChildHung(f"the {self.name} process has run one call for {busy:.0f} s")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class StepProcesses:
    """The worker's two children. Calls to each run in the order they are made, so
    the detection child sees the balance child's steps in order."""

    def __init__(
        self,
        settings: KafkaSettings,
        config: EngineConfig,
        detector_settings: DetectorSettings | None = None,
    ) -> None:
        me = os.getpid()
        self._balance = _Child(_start_balance, (settings, config, me), name="balance")
        self._detection = _Child(
            _start_detection, (config, detector_settings, me), name="detection"
        )
        # Start both now, so that a missing topology fails the worker at once.
        with _one_blas_thread():
            self.info: CoresInfo = self._balance.wait(_info)
            self._detection.wait(_ready)

    async def balance(
        self,
        messages: list[tuple[Origin, bytes | None]],
        revoked: set[int],
        assigned: set[int],
        checkpoint: bool,
    ) -> BalanceResult:
        """A step's balances, dead letters, forwards, meter windows and detection
        inputs; with ``checkpoint`` the balance halves of the changed partitions."""
        return await self._balance.call(_balance, messages, revoked, assigned, checkpoint)

    def detect(
        self, inputs: dict[int, DetectionInput], revoked: set[int], snapshot: set[int]
    ) -> asyncio.Future[DetectionResult]:
        """Queue a step's detection (after the steps queued before it); the future
        resolves when it ran, with the detection halves of ``snapshot``."""
        return self._detection.call(_detect, inputs, revoked, snapshot)

    def check(self, limit_s: float | None = None) -> None:
        """Raise if a child process has died (a killed child is otherwise noticed
        only by the next step, and a quiet stream may not have one for hours), or
        has run one call for more than ``limit_s``."""
        self._balance.check(limit_s)
        self._detection.check(limit_s)

    def close(self) -> None:
        self._balance.close()
        self._detection.close()
