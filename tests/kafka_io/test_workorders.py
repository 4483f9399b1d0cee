"""Work orders through the real broker: suspicions topic in, compacted orders topic out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from workorder_factories import T0, suspicion

from kafka_io.schema import encode_suspicion, suspicion_key
from kafka_io.topics import KafkaSettings, ensure_topics
from kafka_io.workorders import WORKORDER, KafkaOrderSink, run_workorder_consumer
from workorders.policy import Directory, order_id_for
from workorders.service import WorkOrderService
from workorders.store import WorkOrderStore

pytestmark = pytest.mark.integration


def publish(settings: KafkaSettings, sus: list) -> None:  # type: ignore[type-arg]
    ensure_topics(settings)
    p = KafkaProducer(**settings.client(), acks="all")
    for s in sus:
        p.send(settings.suspicions, key=suspicion_key(s).encode(), value=encode_suspicion(s))
    p.flush()
    p.close()


def read_orders(settings: KafkaSettings) -> dict[str, dict]:  # type: ignore[type-arg]
    c = KafkaConsumer(
        settings.workorders,
        **settings.client(),
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    latest = {rec.key.decode(): json.loads(rec.value) for rec in c}
    c.close()
    return latest


def test_suspicions_become_orders_on_the_orders_topic(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    sus = [
        suspicion("C1", area_id="A1", estimated_kwh=800),
        suspicion("C2", area_id="A1", estimated_kwh=300),
        suspicion("C3", area_id="A2", score=0.2),  # below threshold: no order
    ]
    publish(kafka_settings, sus)
    store = WorkOrderStore(f"sqlite:///{tmp_path / 'o.db'}")
    sink = KafkaOrderSink(kafka_settings)
    svc = WorkOrderService(store, directory=Directory(), sinks=[sink])
    report = run_workorder_consumer(kafka_settings, svc, clock=lambda: T0, idle_exit_s=3.0)
    assert (report.created, report.skipped) == (2, {"below_threshold": 1})
    on_topic = read_orders(kafka_settings)
    assert set(on_topic) == {order_id_for("C1"), order_id_for("C2")}
    msg = on_topic[order_id_for("C1")]
    assert msg["schema"] == WORKORDER and msg["state"] == "open"
    assert msg["evidence"]["estimated_kwh"] == 800
    assert msg["evidence"]["detector_scores"] == {"theft_localiser": 0.9}

    # Grown evidence for C1 arrives later: the open order is updated, and the topic's
    # latest message for it carries the new numbers. Nothing is created twice.
    publish(kafka_settings, [suspicion("C1", area_id="A1", estimated_kwh=1200)])
    report = run_workorder_consumer(kafka_settings, svc, clock=lambda: T0 + 60, idle_exit_s=3.0)
    assert (report.created, report.updated) == (0, 1)
    assert read_orders(kafka_settings)[order_id_for("C1")]["evidence"]["estimated_kwh"] == 1200
    assert len(store.find()) == 2
    sink.close()
    store.close()
