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
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka_io.core import WorkerCore
from kafka_io.schema import DRAINED, METER, Origin, encode_balance, encode_control
from kafka_io.topics import KafkaSettings, ensure_topics
from lineloss.config import EngineConfig
from lineloss.domain import Meter, MeterRole, Topology

log = logging.getLogger("lineloss.worker")


@dataclass(frozen=True)
class WorkerSettings:
    kafka: KafkaSettings
    take_max: int = 5000  # messages per step
    take_within_s: float = 0.5  # wait at most this long to fill a step
    exit_on_drain: bool = False  # stop after the end-of-stream markers (replays, tests)
    session_timeout_s: float = 10.0  # a dead worker's partitions move after this


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


def build_app(settings: WorkerSettings, core: WorkerCore) -> Any:
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

    @app.agent(readings)
    async def balance(stream: Any) -> None:
        async for events in stream.take_events(settings.take_max, within=settings.take_within_s):
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
    app = build_app(settings, core)
    Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()
