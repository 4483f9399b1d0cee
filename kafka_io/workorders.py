"""Work orders on Kafka: the service fed by the suspicions topic, and every order
change published to a compacted topic for the utility's own workforce systems.

The suspicions topic carries the latest version of each suspicion (keyed by target,
category and detector), so consuming it from the start, or again after a restart,
re-ingests versions the store already has: the service is idempotent, nothing is
created twice. Orders are keyed by order id on a compacted topic, so a consumer that
reads it from the beginning gets the current state of every order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, Final

from kafka_io.schema import VERSION, decode_suspicion
from kafka_io.topics import KafkaSettings, ensure_topics
from lineloss.domain import Suspicion
from workorders.model import WorkOrder
from workorders.service import IngestReport, WorkOrderService

WORKORDER: Final = "lineloss.workorder"


def encode_order(order: WorkOrder) -> bytes:
    d: dict[str, Any] = asdict(order)
    d["state"] = order.state.value
    d["outcome"] = order.outcome.value if order.outcome else None
    d["evidence"]["detector_scores"] = dict(order.evidence.detector_scores)
    body = {"schema": WORKORDER, "version": VERSION, **d}
    return json.dumps(body, ensure_ascii=False, sort_keys=True).encode()


class KafkaOrderSink:
    """Publishes every created or changed order; waits for the broker's ack, so an
    order the service stored is on the topic before the call returns."""

    def __init__(self, settings: KafkaSettings) -> None:
        from kafka import KafkaProducer

        ensure_topics(settings)
        self.topic = settings.workorders
        self._producer = KafkaProducer(**settings.client(), acks="all", linger_ms=5)

    def publish(self, orders: Sequence[WorkOrder]) -> None:
        for o in orders:
            self._producer.send(self.topic, key=o.order_id.encode(), value=encode_order(o))
        self._producer.flush(timeout=30)

    def close(self) -> None:
        self._producer.close(timeout=10)


def run_workorder_consumer(
    settings: KafkaSettings,
    service: WorkOrderService,
    *,
    clock: Callable[[], float] = time.time,
    idle_exit_s: float | None = None,
    poll_ms: int = 500,
    say: Callable[[str], None] = lambda _m: None,
) -> IngestReport:
    """Consume the suspicions topic and ingest each poll's suspicions. Runs until
    ``idle_exit_s`` passes with no message (None: forever). Offsets are committed
    after the orders are stored, so a crash re-reads, never skips."""
    from kafka import KafkaConsumer

    ensure_topics(settings)
    consumer = KafkaConsumer(
        settings.suspicions,
        **settings.client(),
        group_id=f"{settings.prefix}.workorders",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    totals = {"created": 0, "updated": 0, "reopened": 0}
    skipped: dict[str, int] = {}
    last_message = time.monotonic()
    try:
        while idle_exit_s is None or time.monotonic() - last_message < idle_exit_s:
            polled = consumer.poll(timeout_ms=poll_ms)
            batch: list[Suspicion] = []
            for records in polled.values():
                for rec in records:
                    try:
                        batch.append(decode_suspicion(rec.value))
                    except (ValueError, KeyError, TypeError) as e:  # never stall on one
                        say(f"workorders: skipped an unreadable suspicion at {rec.offset}: {e}")
            if not polled:
                continue
            last_message = time.monotonic()
            report = service.ingest(_latest(batch), now_s=int(clock()))
            consumer.commit()
            totals["created"] += report.created
            totals["updated"] += report.updated
            totals["reopened"] += report.reopened
            for k, v in report.skipped.items():
                skipped[k] = skipped.get(k, 0) + v
            say(
                f"workorders: {len(batch)} suspicions -> {report.created} created, "
                f"{report.updated} updated, {report.reopened} reopened"
            )
    finally:
        consumer.close()
    return IngestReport(skipped=skipped, **totals)


def _latest(batch: list[Suspicion]) -> list[Suspicion]:
    """The last version of each suspicion in a poll (the topic's key)."""
    out: dict[tuple[str, str, str], Suspicion] = {}
    for s in batch:
        out[(s.target_id, s.category.value, s.detector)] = s
    return list(out.values())
