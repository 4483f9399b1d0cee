"""``lineloss worker``: a faust-streaming app whose one agent is thin wiring around
``WorkerCore`` (and so around ``streams.pipeline.Pipeline``).

Event time belongs to the core: no faust windowed tables (they close windows by the
wall clock). The agent takes batches with ``stream.take_events``, steps the
pipeline, sends balances, suspicions and dead letters, then writes a checkpoint to
the compacted checkpoint topic and waits for the broker to acknowledge it. Only
then does the loop go on, and only then does faust ack the batch's events and may
commit their offsets. So a committed offset is never ahead of a checkpoint: after a
crash the worker restores the last checkpoint, faust re-delivers from the committed
offset, and the core skips what the checkpoint already holds (docs/streaming.md).

After each step, ``StepReporter`` (the I/O edge; the core knows nothing of it)
writes the step's balances, changed suspicions and the worker's health to InfluxDB
through one ``InfluxWriter`` (when configured) and refreshes the heartbeat file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafka_io.core import Outputs, WorkerCore
from kafka_io.schema import DRAINED, METER, Origin, encode_balance, encode_control
from kafka_io.topics import KafkaSettings, ensure_topics
from lineloss.config import EngineConfig
from lineloss.domain import Meter, MeterRole, Topology

if TYPE_CHECKING:
    from sinks.influx import InfluxReplaySink, InfluxSettings, InfluxWriter

log = logging.getLogger("lineloss.worker")

HEALTH_COMPONENT = "worker"


@dataclass(frozen=True)
class WorkerSettings:
    kafka: KafkaSettings
    take_max: int = 5000  # messages per step
    take_within_s: float = 0.5  # wait at most this long to fill a step
    exit_on_drain: bool = False  # stop after the end-of-stream markers (replays, tests)
    session_timeout_s: float = 10.0  # a dead worker's partitions move after this
    influx: InfluxSettings | None = None  # also write the results to InfluxDB
    heartbeat: Path | None = None  # file refreshed after each step and while idle
    heartbeat_interval_s: float = 5.0  # refresh period while idle (and InfluxDB tick)


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
        core: WorkerCore,
        *,
        writer: InfluxWriter | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.core = core
        self.heartbeat = settings.heartbeat
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

    def step(self, out: Outputs) -> None:
        self.readings += out.readings
        self.balances += len(out.balances)
        self.rejected.update(d.reason for d in out.dead_letters)
        if self.sink is not None:
            try:
                self._write(out)
            except Exception as exc:  # InfluxDB must never stop the stream
                self._log_error("InfluxDB output of a step failed", exc)
        self.beat()

    def _write(self, out: Outputs) -> None:
        from streams.replay import ReplayProgress

        assert self.sink is not None
        self.sink.balances(out.balances)
        stream_time_s = self.core.pipeline.stream_time_s
        if stream_time_s is not None:
            self.sink.suspicions(self.core.pipeline.suspicions(), stream_time_s)
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
                done=out.drained,
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
                stream_time_s=self.core.pipeline.stream_time_s,
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


def read_compacted(
    settings: KafkaSettings, topic: str, timeout_s: float = 30.0
) -> dict[bytes, bytes]:
    """The latest value of every key of a (compacted) topic, read to its end now."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.client(), enable_auto_commit=False, group_id=None)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return {}
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        latest: dict[bytes, bytes] = {}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s} s")
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    if rec.value is None:
                        latest.pop(rec.key, None)
                    else:
                        latest[rec.key] = rec.value
        return latest
    finally:
        consumer.close()


def load_topology(settings: KafkaSettings) -> Topology:
    meters = []
    for raw in read_compacted(settings, settings.topology).values():
        d = json.loads(raw)
        if d.get("schema") != METER:
            continue
        meters.append(
            Meter(
                meter_id=d["meter_id"],
                role=MeterRole(d["role"]),
                area_id=d.get("area_id"),
                feeder_id=d.get("feeder_id"),
                multiplier=float(d.get("multiplier", 1.0)),
                customer_class=d.get("customer_class"),
            )
        )
    if not meters:
        raise RuntimeError(f"topic {settings.topology} holds no meters: publish a topology first")
    return Topology.from_meters(meters)


def checkpoint_key(settings: KafkaSettings) -> bytes:
    return settings.group_id.encode()


def start_core(settings: KafkaSettings, config: EngineConfig) -> WorkerCore:
    """Restore the last checkpoint, or start fresh."""
    ensure_topics(settings)
    topology = load_topology(settings)
    saved = read_compacted(settings, settings.checkpoints).get(checkpoint_key(settings))
    if saved is not None:
        log.warning("restoring checkpoint (%d bytes)", len(saved))
        return WorkerCore.restore(topology, config, saved)
    return WorkerCore(topology, config, settings.partitions)


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


def build_app(
    settings: WorkerSettings,
    core: WorkerCore,
    reporter: StepReporter | None = None,
    executor: ThreadPoolExecutor | None = None,
) -> Any:
    """The faust app. ``reporter`` runs on ``executor`` (one thread: order is kept,
    and a slow InfluxDB never blocks the event loop and with it Kafka's heartbeats)."""
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
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    readings = app.topic(k.readings, **raw)
    balances = app.topic(k.balances, **raw)
    suspicions = app.topic(k.suspicions, **raw)
    dead_letters = app.topic(k.dead_letters, **raw)
    checkpoints = app.topic(k.checkpoints, **raw)
    in_step = False

    async def report(fn: Callable[..., None], *args: Any) -> None:
        if reporter is not None:
            await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    @app.timer(interval=settings.heartbeat_interval_s)
    async def idle() -> None:
        # Only between steps: a step stuck on Kafka must let the heartbeat go stale.
        if reporter is not None and not in_step:
            await report(reporter.idle)

    @app.agent(readings)
    async def balance(stream: Any) -> None:
        nonlocal in_step
        async for events in stream.take_events(settings.take_max, within=settings.take_within_s):
            in_step = True
            messages = [
                (Origin(e.message.topic, e.message.partition, e.message.offset), e.message.value)
                for e in events
            ]
            out = core.process(messages)
            sent = []
            for b in out.balances:
                sent.append(await balances.send(key=b.target_id.encode(), value=encode_balance(b)))
            for key, msg in out.suspicions:
                sent.append(await suspicions.send(key=key.encode(), value=msg))
            for d in out.dead_letters:
                sent.append(await dead_letters.send(key=d.meter_id.encode(), value=d.encode()))
            sent.append(await checkpoints.send(key=checkpoint_key(k), value=core.snapshot()))
            for fut in sent:
                await fut  # delivered before faust may commit these events' offsets
            if reporter is not None:
                await report(reporter.step, out)
            in_step = False
            if out.drained:
                await (await balances.send(value=encode_control(DRAINED), partition=0))
                log.warning("drained: every partition reached its end-of-stream marker")
                if settings.exit_on_drain:
                    os.kill(os.getpid(), signal.SIGTERM)

    return app


def run_worker(
    settings: WorkerSettings, config: EngineConfig, say: Callable[[str], None] | None = None
) -> None:
    from faust.worker import Worker

    core = start_core(settings.kafka, config)
    if say is not None:
        say(
            f"worker {settings.kafka.group_id}: {core.topology.n_meters} meters, "
            f"{len(core.topology.area_ids)} areas, consuming {settings.kafka.readings}"
        )
    reporter = StepReporter(settings, config, core)
    reporter.beat()
    if say is not None and settings.influx is not None:
        say(f"worker {settings.kafka.group_id}: results also to {settings.influx.redacted()}")
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lineloss-report")
    app = build_app(settings, core, reporter, executor)
    try:
        Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()
    finally:
        executor.shutdown(wait=True)
        reporter.close()
