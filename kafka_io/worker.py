"""``lineloss worker``: a faust-streaming app whose one agent is thin wiring around
the pure core: ``WorkerCores`` (a ``PartitionCore`` per readings partition the
worker owns: balances) in one child process, ``WorkerDetection`` (the same
partitions' detectors) in another (kafka_io.step_process).

Event time belongs to the core: no faust windowed tables (they close windows by the
wall clock). The agent takes batches with ``stream.take_events``, steps the owned
partitions' balances, sends balances, dead letters, forwarded readings and meter
windows, queues the step's detection and goes on with the next batch. A second task
(``finish``) takes the detection results in step order, sends the suspicions and, for
a step that checkpoints, waits until every output up to that step is delivered,
writes each changed partition's checkpoint (both halves as of that step) to the
compacted checkpoint topic and waits for the broker to acknowledge it. Only then does
faust ack the events of the steps it covers and may commit their offsets. So a
committed offset is never ahead of its partition's checkpoint: after a crash or a
rebalance the new owner restores the partition's last checkpoint, faust re-delivers
from the committed offset, and the core skips what the checkpoint already holds
(docs/streaming.md).

``StepReporter`` (the I/O edge; the core knows nothing of it) writes each step's
balances, the changed suspicions and the worker's health to InfluxDB through one
``InfluxWriter`` (when configured) and refreshes the heartbeat file.

A failure in either task (a child process gone, a send the broker refused) stops
the worker with a non-zero exit status, for its supervisor to restart it; the
restart resumes from the checkpoints.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafka_io.checkpoints import (
    CheckpointHomes,
    Record,
    Unused,
    checkpoint_records,
    piece_tombstone,
    read_checkpoints,
)
from kafka_io.core import Outputs, WorkerCores
from kafka_io.pieces import BALANCE, DETECTION, Split
from kafka_io.schema import (
    DRAINED,
    IDLE,
    MessageError,
    Origin,
    decode_meter,
    encode_balance,
    encode_control,
)
from kafka_io.step_process import BalanceResult, DetectionResult, StepProcesses
from kafka_io.topics import KafkaSettings, ensure_topics
from lineloss.config import EngineConfig
from lineloss.domain import Suspicion
from lineloss.timeline import MeterHistory, TopologyTimeline

if TYPE_CHECKING:
    from detectors import DetectorSettings
    from sinks.influx import InfluxReplaySink, InfluxSettings, InfluxWriter

log = logging.getLogger("lineloss.worker")

HEALTH_COMPONENT = "worker"


@dataclass(frozen=True)
class WorkerSettings:
    kafka: KafkaSettings
    take_max: int = 5000  # messages per step
    take_within_s: float = 0.2  # wait at most this long to fill a step
    checkpoint_interval_s: float = 2.0  # checkpoint (and let offsets commit) this often
    exit_on_drain: bool = False  # stop after the end-of-stream markers (replays, tests)
    session_timeout_s: float = 10.0  # a dead worker's partitions move after this
    influx: InfluxSettings | None = None  # also write the results to InfluxDB
    heartbeat: Path | None = None  # file refreshed after each step and while idle
    heartbeat_interval_s: float = 5.0  # refresh period while idle (and InfluxDB tick)
    # Messages of the steps whose detection may still be running before the next
    # step waits for it: bounds the memory of the events held until their
    # checkpoint (a 137-reading concentrator batch is ~7 kB) and of queued detection
    # inputs. A day's detection takes seconds; live, that is hundreds of small steps.
    detection_lag_messages: int = 50_000
    # A child process that runs one call for longer is taken as hung: the worker
    # stops (status 1) for its supervisor to restart it. A day's detection at
    # province scale takes minutes, a restore of a large partition about as long.
    child_timeout_s: float = 1800.0
    # An owned readings partition without a reading for this long is declared idle
    # (kafka_io.core: the other partitions' finals stop waiting for its watermark
    # until its next reading). Wall clock: the worker's business, not the core's.
    idle_after_s: float = 60.0


def write_heartbeat(path: Path, *, unix_s: float, stream_time_s: int | None) -> None:
    """Atomically replace ``path`` with one JSON line ``{"unix_s": ..., "stream_time_s": ...}``
    (stream time: event time of the newest accepted reading, null before any). Health
    checks read the file's mtime, which the rename sets to now."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"unix_s": round(unix_s, 3), "stream_time_s": stream_time_s}) + "\n")
    os.replace(tmp, path)


class StepReporter:
    """What the worker tells the outside world after each step: balances (provisional,
    revised, final), changed suspicions and ``pipeline_health,component=worker`` to
    InfluxDB through one batching ``InfluxWriter``, and the heartbeat file.

    Synchronous and not thread-safe: the agent runs every call on one thread. It never
    raises: InfluxDB trouble is the writer's (retries, spill to disk), anything else is
    logged, so the consume-balance-produce loop goes on regardless.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        config: EngineConfig,
        *,
        writer: InfluxWriter | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.partitions = settings.kafka.partitions
        self.heartbeat = settings.heartbeat
        # what the last step said of the owned partitions
        self.stream_time_s: int | None = None
        self.suspicions: list[Suspicion] = []
        self.drained: set[int] = set()
        self._wall_clock = wall_clock
        self._t0 = time.monotonic()
        self.writer: InfluxWriter | None = writer
        self.sink: InfluxReplaySink | None = None
        if self.writer is None and settings.influx is not None:
            from sinks.influx import InfluxWriter

            self.writer = InfluxWriter(settings.influx)
        if self.writer is not None:
            from sinks.influx import InfluxReplaySink

            self.sink = InfluxReplaySink(
                self.writer, config, component=HEALTH_COMPONENT, wall_clock=wall_clock
            )
        # counters of this process (health points are *_total since the worker started)
        self.readings = 0
        self.balances = 0
        self.rejected: Counter[str] = Counter()
        self._last_error_log = 0.0

    def step(self, result: BalanceResult) -> None:
        """After one step's balances."""
        outs = list(result.outs.values())
        self.stream_time_s = result.stream_time_s
        self.drained = result.drained
        for out in outs:
            self.readings += out.readings
            self.balances += len(out.balances)
            self.rejected.update(d.reason for d in out.dead_letters)
        if self.sink is not None:
            try:
                self._write(outs)
            except Exception as exc:  # InfluxDB must never stop the stream
                self._log_error("InfluxDB output of a step failed", exc)
        self.beat()

    def detected(self, result: DetectionResult) -> None:
        """After one step's detection: the suspicions that changed."""
        self.suspicions = result.suspicions
        if self.sink is not None and self.stream_time_s is not None:
            try:
                self.sink.suspicions(self.suspicions, self.stream_time_s)
            except Exception as exc:
                self._log_error("InfluxDB output of suspicions failed", exc)

    def _write(self, outs: list[Outputs]) -> None:
        from streams.replay import ReplayProgress

        assert self.sink is not None
        self.sink.balances([b for out in outs for b in out.balances])
        self.sink.writer.write(alignment_points(outs, time_ns=int(self._wall_clock() * 1e9)))
        stream_time_s = self.stream_time_s
        rejected = sum(self.rejected.values())
        self.sink.progress(
            ReplayProgress(
                readings_fed=self.readings,
                readings_total=self.readings,
                accepted=self.readings - rejected,
                rejected_by_reason=dict(self.rejected),
                balances_emitted=self.balances,
                stream_time_s=stream_time_s,
                elapsed_s=time.monotonic() - self._t0,
                done=len(self.drained) == self.partitions,
            )
        )

    def idle(self) -> None:
        """Between steps: send a partly filled batch that is due, refresh the heartbeat."""
        if self.writer is not None:
            try:
                self.writer.tick()
            except Exception as exc:
                self._log_error("InfluxDB tick failed", exc)
        self.beat()

    def beat(self) -> None:
        if self.heartbeat is None:
            return
        try:
            write_heartbeat(
                self.heartbeat,
                unix_s=self._wall_clock(),
                stream_time_s=self.stream_time_s,
            )
        except OSError as exc:
            self._log_error(f"cannot write the heartbeat {self.heartbeat}", exc)

    def close(self) -> None:
        if self.writer is None:
            return
        try:
            health = self.writer.close()
        except Exception as exc:
            self._log_error("closing the InfluxDB writer failed", exc)
            return
        waiting = health.buffer_points + health.spill_pending_points
        if waiting:
            log.warning(
                "InfluxDB unavailable (%s): %d points wait in %s for the next start",
                health.last_error,
                waiting,
                self.writer.settings.spill_dir,
            )

    def _log_error(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= 30.0:  # at most one per 30 s
            self._last_error_log = now
            log.error("%s: %r", what, exc)


def alignment_points(outs: list[Outputs], *, time_ns: int) -> list[Any]:
    """``partition_alignment`` points of the partitions a step moved."""
    from sinks.influx.schema import alignment_point

    return [
        alignment_point(
            a.partition,
            source_watermark_s=a.source_watermark_s,
            final_watermark_s=a.final_watermark_s,
            finals_held_s=a.finals_held_s,
            holding_all=a.holding_all,
            waiting_for=a.waiting_for,
            idle=a.idle,
            time_ns=time_ns,
        )
        for out in outs
        if (a := out.alignment) is not None
    ]


class RegistryFollower:
    """Follows the compacted topology topic: all of it at start, then, before each
    step, whatever was written since. A publisher that writes a registry update
    before the readings that need it (``--to-kafka``, ``simulate``) therefore has it
    applied before those readings are balanced: they were fetched after it was
    written, and the step reads the topic to its end of that moment."""

    def __init__(self, settings: KafkaSettings) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.settings = settings
        self._consumer = KafkaConsumer(**settings.client(), enable_auto_commit=False, group_id=None)
        parts = self._consumer.partitions_for_topic(settings.topology) or set()
        self._tps = [TopicPartition(settings.topology, p) for p in sorted(parts)]
        if self._tps:
            self._consumer.assign(self._tps)
            self._consumer.seek_to_beginning(*self._tps)
        self.rejected = 0  # registry messages that could not be read (logged)

    def updates(self, timeout_s: float = 30.0) -> dict[str, MeterHistory | None]:
        """Meter id -> its newest history (None: deleted), of every message written
        since the last call, read to the topic's end as of now."""
        if not self._tps:
            return {}
        c = self._consumer
        end = c.end_offsets(self._tps)
        out: dict[str, MeterHistory | None] = {}
        deadline = time.monotonic() + timeout_s
        while any(c.position(tp) < end[tp] for tp in self._tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {self.settings.topology} in {timeout_s} s")
            for records in c.poll(timeout_ms=500).values():
                for rec in records:
                    key = rec.key.decode("utf-8", "replace") if rec.key else ""
                    if rec.value is None:
                        if key:
                            out[key] = None
                        continue
                    try:
                        meter_id, history = decode_meter(rec.value)
                    except MessageError as exc:
                        self.rejected += 1
                        log.warning("topology message at offset %d skipped: %s", rec.offset, exc)
                        continue
                    out[meter_id] = history
        return out

    def close(self) -> None:
        self._consumer.close()


def load_topology(settings: KafkaSettings) -> TopologyTimeline:
    """The registry as the topology topic holds it now (every meter's history)."""
    follower = RegistryFollower(settings)
    try:
        return _timeline_of(follower.updates(), settings)
    finally:
        follower.close()


def _timeline_of(
    histories: dict[str, MeterHistory | None], settings: KafkaSettings
) -> TopologyTimeline:
    kept = {k: h for k, h in histories.items() if h is not None}
    if not kept:
        raise RuntimeError(f"topic {settings.topology} holds no meters: publish a topology first")
    return TopologyTimeline(kept)


def start_cores(
    settings: KafkaSettings,
    config: EngineConfig,
    unused: Unused | None = None,
    restored: Unused | None = None,
) -> tuple[WorkerCores, RegistryFollower]:
    """The worker's partition cores (each restores its checkpoint when first
    needed) and the follower of the registry they were built from; ``unused`` and
    ``restored`` collect what the restores found (``read_checkpoints``)."""
    ensure_topics(settings)
    follower = RegistryFollower(settings)
    timeline = _timeline_of(follower.updates(), settings)

    def load(partitions: set[int]) -> dict[int, bytes]:
        saved = read_checkpoints(settings, partitions, unused, restored)
        for p in sorted(saved):
            log.warning("partition %d: restoring its checkpoint (%d bytes)", p, len(saved[p]))
        return saved

    cores = WorkerCores(timeline, config, settings.partitions, load=load)
    return cores, follower


def _faust_credentials(security: dict[str, Any]) -> Any:
    import faust

    proto = str(security.get("security_protocol", "PLAINTEXT")).upper()
    ssl_context = None
    if proto in ("SSL", "SASL_SSL"):
        import ssl

        ssl_context = ssl.create_default_context(cafile=security.get("ssl_cafile"))
    if proto.startswith("SASL"):
        return faust.SASLCredentials(
            username=security.get("sasl_plain_username"),
            password=security.get("sasl_plain_password"),
            mechanism=security.get("sasl_mechanism", "PLAIN"),
            ssl_context=ssl_context,
        )
    if ssl_context is not None:
        return faust.SSLCredentials(ssl_context)
    return None


@dataclass
class _Step:
    """A step whose detection was queued: what waits for its result."""

    detection: asyncio.Future[DetectionResult]
    events: list[Any]  # acked once a checkpoint covers this step
    sent: list[Any]  # the step's output sends (futures)
    # balance halves, when this step checkpoints (see BalanceResult.snapshots)
    snapshots: dict[int, tuple[Split, int, dict[str, int]]]
    owned_since: dict[int, int]  # ownership epoch of each snapshotted partition
    drained: set[int] = field(default_factory=set)  # partitions that drained in it
    messages: int = 0  # taken in the step


class FetchGenerations:
    """Which fetched events a step may process: only those fetched under the
    assignment in force.

    faust stamps each event with the consumer group generation it was fetched in.
    A rebalance first revokes (that generation's assignment is over, though faust
    keeps its number until the next assignment starts), then assigns under a new
    number and seeks every assigned partition back to its committed offset, so the
    events fetched before come again. Processed, such an event would move a core
    restored from its checkpoint past offsets not yet re-fetched, which it would
    then skip as seen, and its checkpoint would make the next owner skip them too:
    readings lost. So an event of an earlier generation, or of the current one
    once it has been revoked, is dropped (never acked either).
    """

    def __init__(self, current: Callable[[], int | None]) -> None:
        self._current = current
        self._revoked: int | None = None  # the generation whose assignment was revoked

    def revoked(self) -> None:
        """The assignment of the current generation is over."""
        self._revoked = self._current()

    def stale(self, fetched_in: int | None) -> bool:
        if fetched_in is None:  # (events not from a group consumer)
            return False
        return fetched_in != self._current() or fetched_in == self._revoked


class QuietPartitions:
    """Which owned readings partitions have had no reading for ``idle_after_s`` of
    wall clock: for each, one ``IDLE`` notice to its own routed partition, saying up
    to which readings offset the worker had seen (kafka_io.core makes the partition
    idle, and tells the others, unless it took readings past that). Sent again when
    the worker learns of a further offset (a notice the core found void), and after
    the next reading once that goes quiet in turn."""

    def __init__(self, readings_topic: str, idle_after_s: float) -> None:
        self.topic = readings_topic
        self.idle_after_s = idle_after_s
        self.last_reading_at: dict[int, float] = {}  # owned partitions only
        self.seen_next: dict[int, int] = {}  # next readings offset known per partition
        self.notified: dict[int, int] = {}  # partition -> the offset its notice said

    def assigned(self, partitions: set[int], now: float) -> None:
        for p in partitions:
            self.last_reading_at[p] = now
            self.notified.pop(p, None)

    def revoked(self, partitions: set[int]) -> None:
        for p in partitions:
            self.last_reading_at.pop(p, None)
            self.seen_next.pop(p, None)
            self.notified.pop(p, None)

    def taken(self, topic: str, partition: int, offset: int, now: float) -> None:
        """A message the agent took; readings make their partition active again."""
        if topic != self.topic or partition not in self.last_reading_at:
            return
        self.last_reading_at[partition] = now
        self.seen_next[partition] = max(self.seen_next.get(partition, 0), offset + 1)
        self.notified.pop(partition, None)

    def positions(self, next_offsets: dict[int, dict[str, int]]) -> None:
        """The cores' next offsets after a step (a restored core's are the first
        the worker learns)."""
        for p, offsets in next_offsets.items():
            if p in self.last_reading_at and self.topic in offsets:
                self.seen_next[p] = max(self.seen_next.get(p, 0), offsets[self.topic])

    def notices(self, now: float) -> list[tuple[int, bytes]]:
        """The idle notices due now: (routed partition, message)."""
        out = []
        for p, at in sorted(self.last_reading_at.items()):
            seen = self.seen_next.get(p, 0)
            if now - at < self.idle_after_s or self.notified.get(p, -1) >= seen:
                continue
            self.notified[p] = seen
            out.append((p, encode_control(IDLE, partition=p, next_offset={self.topic: seen})))
        return out


class WorkerFailed(RuntimeError):
    """A step or its detection failed: the worker stops with a non-zero status."""


def build_app(
    settings: WorkerSettings,
    stepper: StepProcesses,
    reporter: StepReporter | None = None,
    executor: ThreadPoolExecutor | None = None,
    failures: list[BaseException] | None = None,
) -> Any:
    """The faust app. Balances and detection are computed in ``stepper``'s child
    processes; ``reporter`` runs on ``executor`` (one thread: order is kept, and a
    slow InfluxDB never blocks the event loop). So the event loop stays free to
    fetch the next messages and keep Kafka's heartbeats while a step computes.
    (Blocking the loop for a step's CPU time stalls aiokafka's fetching far beyond
    that time: docs/benchmarks.md.) A failure is appended to ``failures`` and stops
    the worker."""
    import faust

    k = settings.kafka
    datadir = Path(tempfile.gettempdir()) / "lineloss-faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        k.group_id,
        broker=[f"kafka://{b}" for b in k.bootstrap.split(",")],
        broker_credentials=_faust_credentials(k.security),
        store="memory://",
        # faust wants a data directory even with in-memory stores; keep it out of the
        # working directory (the state that matters is in the checkpoint topic).
        datadir=str(datadir / "{conf.id}"),
        web_enabled=False,
        autodiscover=False,
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=1.0,
        producer_max_request_size=64 * 1024 * 1024,
        # take_events returns early only when ``take_max`` events wait in the
        # stream's buffer: a buffer smaller than that makes every step of a backlog
        # wait the whole ``take_within_s``.
        stream_buffer_maxsize=4 * settings.take_max,
        # Events stay unacked until their checkpoint is written (see the agent); a
        # rebalance must not wait for them: the next owner starts from the
        # checkpoint and the committed offsets, whatever was held here.
        stream_wait_empty=False,
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    readings = app.topic(k.readings, k.routed, **raw)  # copartitioned: same owner
    routed = app.topic(k.routed, **raw)
    balances = app.topic(k.balances, **raw)
    suspicions = app.topic(k.suspicions, **raw)
    dead_letters = app.topic(k.dead_letters, **raw)
    meter_windows = app.topic(k.meter_windows, **raw)
    checkpoint_topics = {t: app.topic(t, **raw) for t in (k.checkpoints, k.checkpoint_pieces)}
    homes = CheckpointHomes.of(k)
    in_step = False
    failed = failures if failures is not None else []

    def fail(what: str, exc: BaseException) -> None:
        """Stop the worker: its supervisor restarts it from the checkpoints."""
        if not failed:
            log.critical("%s failed, stopping the worker: %r", what, exc, exc_info=exc)
            failed.append(exc)
            os.kill(os.getpid(), signal.SIGTERM)

    async def report(fn: Callable[..., None], *args: Any) -> None:
        if reporter is not None:
            await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    @app.timer(interval=settings.heartbeat_interval_s)
    async def idle() -> None:
        if failed:
            return
        try:
            stepper.check(settings.child_timeout_s)
        except Exception as exc:
            fail("a child process", exc)
            return
        # Only between steps: a step stuck on Kafka must let the heartbeat go stale.
        if reporter is not None and not in_step:
            await report(reporter.idle)
        try:
            for p, msg in quiet.notices(time.monotonic()):
                await routed.send(value=msg, partition=p)
        except Exception as exc:
            fail("an idle notice", exc)

    generations = FetchGenerations(lambda: app.consumer_generation_id)
    quiet = QuietPartitions(k.readings, settings.idle_after_s)

    def readings_partitions(tps: Any) -> set[int]:
        return {tp.partition for tp in tps if tp.topic in (k.readings, k.routed)}

    revoked_since_step: set[int] = set()
    assigned_since_step: set[int] = set()
    owned_since: Counter[int] = Counter()  # bumped each time a partition is revoked
    leftovers: Unused = {}  # pieces to delete after a restored partition's next checkpoint
    stepping: list[Any] = []  # events of the step being balanced
    queued: deque[_Step] = deque()  # steps whose detection is queued, in order
    unacked: list[Any] = []  # events of detected steps, until a checkpoint covers them
    step_queued = asyncio.Event()
    step_done = asyncio.Event()

    @app.on_partitions_revoked.connect
    def revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The next owner restores these partitions from their checkpoints; if they
        # come back here, so do we, instead of going on from a stale state. Events
        # fetched before now are not processed (FetchGenerations: faust re-fetches
        # them); events of the next assignment are, even those faust hands over
        # before it sends on_partitions_assigned (skipped, they would still be acked
        # and committed, i.e. lost). A step already running on a partition just
        # revoked is harmless: its checkpoint is not sent (``owned_since``).
        generations.revoked()
        gone = readings_partitions(args[0])
        quiet.revoked(gone)
        revoked_since_step.update(gone)
        owned_since.update(gone)  # checkpoints taken before now are not sent
        for p in gone:
            leftovers.pop(p, None)
        # Never ack what was processed here for a partition now gone: those offsets
        # are the next owner's to commit, after its own checkpoint.
        for events in (stepping, unacked, *(step.events for step in queued)):
            events[:] = [e for e in events if e.message.partition not in gone]

    @app.on_partitions_assigned.connect
    def assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Restored together at the next step (one read of the checkpoint topic).
        assigned_since_step.update(readings_partitions(args[0]))
        quiet.assigned(readings_partitions(args[0]), time.monotonic())

    @app.agent(readings)
    async def balance(stream: Any) -> None:
        nonlocal in_step
        last_checkpoint = time.monotonic()
        finishing = asyncio.ensure_future(finish())
        try:
            async for events in stream.take_events(
                settings.take_max, within=settings.take_within_s
            ):
                in_step = True
                for e in events:
                    # take_events acks each event after this body; one more reference
                    # keeps it unacked (so uncommitted) until its checkpoint is written.
                    e.message.incref()
                # Events of an assignment that no longer holds are never processed
                # nor acked (FetchGenerations): faust re-fetches them.
                events = [e for e in events if not generations.stale(e.message.generation_id)]
                stepping[:] = events
                now = time.monotonic()
                for e in events:
                    quiet.taken(e.message.topic, e.message.partition, e.message.offset, now)
                messages = [
                    (
                        Origin(e.message.topic, e.message.partition, e.message.offset),
                        e.message.value,
                    )
                    for e in events
                ]
                gone = set(revoked_since_step)  # dropped by the children before the step
                revoked_since_step.clear()
                new = set(assigned_since_step)
                assigned_since_step.clear()
                # One checkpoint at a time on its way (each holds a balance half).
                due = not any(step.snapshots for step in queued) and (
                    time.monotonic() - last_checkpoint >= settings.checkpoint_interval_s
                )
                owned = dict(owned_since)  # a revocation during the step voids its checkpoints
                result = await stepper.balance(messages, gone, new, due)
                leftovers.update(result.unused)
                quiet.positions(result.next_offsets)
                if result.snapshots:
                    last_checkpoint = time.monotonic()
                outs = result.outs
                sent = []
                for out in outs.values():
                    for b in out.balances:
                        sent.append(
                            await balances.send(key=b.target_id.encode(), value=encode_balance(b))
                        )
                    for d in out.dead_letters:
                        sent.append(
                            await dead_letters.send(key=d.meter_id.encode(), value=d.encode())
                        )
                    for partition, msg in out.forwards:
                        sent.append(await routed.send(value=msg, partition=partition))
                for p, out in outs.items():  # copartitioned with the readings
                    for msg in out.meter_windows:
                        sent.append(await meter_windows.send(value=msg, partition=p))
                detection = stepper.detect(
                    {p: out.detection for p, out in outs.items()}, gone, set(result.snapshots)
                )
                queued.append(
                    _Step(
                        detection,
                        list(stepping),
                        sent,
                        result.snapshots,
                        {p: owned.get(p, 0) for p in result.snapshots},
                        {p for p, out in outs.items() if out.drained},
                        len(messages),
                    )
                )
                stepping.clear()
                step_queued.set()
                await report(reporter.step if reporter else _noop, result)
                in_step = False
                while (
                    sum(step.messages for step in queued) > settings.detection_lag_messages
                    and not finishing.done()
                ):
                    step_done.clear()
                    await step_done.wait()
                if finishing.done():
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            fail("a step", exc)
        finally:
            finishing.cancel()

    async def finish() -> None:
        """Detection results in step order: suspicions out, then the checkpoints a
        step asked for and the acks they allow, then the drained markers."""
        confirming: list[Any] = []  # output sends, until a checkpoint waits for them
        drained: set[int] = set()
        try:
            while True:
                while not queued:
                    step_queued.clear()
                    await step_queued.wait()
                step = queued[0]
                result = await step.detection
                for changed in result.changed.values():
                    for key, msg in changed:
                        confirming.append(await suspicions.send(key=key.encode(), value=msg))
                confirming += step.sent
                unacked.extend(step.events)
                step.events.clear()
                if step.snapshots:
                    await _checkpoint(step, result, confirming)
                queued.popleft()
                step_done.set()
                await report(reporter.detected if reporter else _noop, result)
                for p in sorted(step.drained):
                    marker = encode_control(DRAINED, partition=p)
                    await (await balances.send(value=marker, partition=0))
                    log.warning("partition %d drained", p)
                drained |= step.drained
                if settings.exit_on_drain and len(drained) >= k.partitions:
                    log.warning("drained: every partition reached its end of stream")
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            fail("detection", exc)

    async def send(rec: Record) -> Any:
        topic = checkpoint_topics[rec.topic]
        return await topic.send(
            key=rec.key, partition=rec.partition, value=rec.value, headers=rec.headers
        )

    async def _checkpoint(step: _Step, result: DetectionResult, confirming: list[Any]) -> None:
        # Every output of the steps up to this one is delivered before the
        # checkpoint that says they were made is sent (a failed send then fails the
        # worker before the checkpoint, and the restart makes those outputs again).
        for fut in confirming:
            await fut
        confirming.clear()
        # Incremental (kafka_io.pieces): the pieces no earlier checkpoint sent, then
        # the manifest that names them all, then, once it is written, tombstones of
        # the pieces no manifest of the last two uses.
        written = []
        unused: list[tuple[int, str, str]] = []
        for p, (balance, position, offsets) in step.snapshots.items():
            if owned_since[p] != step.owned_since[p]:
                continue  # revoked since the step: the next owner's now
            halves = {BALANCE: balance, DETECTION: result.snapshots[p]}
            for rec in checkpoint_records(k, homes, p, halves, position, offsets):
                written.append(await send(rec))
            for half, split in halves.items():
                # What the restore found unused, unless this checkpoint uses it.
                left = leftovers.get(p, {}).pop(half, set()) - split.used
                unused += [(p, half, d) for d in sorted(left) + split.tombstones]
        for fut in written:
            await fut  # checkpoints delivered, then the acks
        deleted = []
        for p, half, digest in unused:
            if owned_since[p] != step.owned_since[p]:
                continue  # revoked while the checkpoint was on its way: the next
                # owner may have restored a manifest that uses these pieces
            deleted.append(await send(piece_tombstone(k, homes, p, half, digest)))
        for e in unacked:
            e.ack()  # faust may now commit these offsets
        unacked.clear()
        for fut in deleted:
            await fut

    return app


def _noop(*_args: Any) -> None:
    pass


def run_worker(
    settings: WorkerSettings,
    config: EngineConfig,
    say: Callable[[str], None] | None = None,
    detector_settings: DetectorSettings | None = None,
) -> None:
    """Run the worker until it is stopped (SIGTERM, SIGINT) or drained
    (``exit_on_drain``). Raises ``WorkerFailed`` when a step failed."""
    from faust.worker import Worker

    ensure_topics(settings.kafka)
    stepper = StepProcesses(settings.kafka, config, detector_settings)
    if say is not None:
        say(
            f"worker {settings.kafka.group_id}: {stepper.info.meters} meters, "
            f"{stepper.info.areas} areas, consuming {settings.kafka.readings}"
        )
    reporter = StepReporter(settings, config)
    reporter.beat()
    if say is not None and settings.influx is not None:
        say(f"worker {settings.kafka.group_id}: results also to {settings.influx.redacted()}")
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lineloss-report")
    failures: list[BaseException] = []
    app = build_app(settings, stepper, reporter, executor, failures)
    try:
        Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()
    except SystemExit as exc:
        if failures:
            raise WorkerFailed(f"the worker stopped after a failure: {failures[0]!r}") from exc
        raise
    finally:
        executor.shutdown(wait=True)
        reporter.close()
        stepper.close()
