"""Fixtures for integration tests against the real Kafka that scripts/test starts.

``kafka_bootstrap`` is ``LINELOSS_KAFKA_BOOTSTRAP`` (default 127.0.0.1:9092). If the
broker does not answer, the test fails: integration tests are never skipped.
Each test gets its own topic prefix (``kafka_settings``), so runs never share topics.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from kafka_io.topics import KafkaSettings

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def answers(bootstrap: str) -> bool:
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except (OSError, ValueError):
        return False  # nothing listens: fail at once instead of retrying for 30 s

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=5000)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    bootstrap = os.environ.get("LINELOSS_KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP)
    if not answers(bootstrap):
        pytest.fail(
            f"Kafka does not answer at {bootstrap} (LINELOSS_KAFKA_BOOTSTRAP). Integration "
            "tests need the real broker: run them through scripts/test, which starts it with "
            "scripts/kafka-local start.",
            pytrace=False,
        )
    return bootstrap


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(kafka_bootstrap, prefix=f"lltest-{uuid.uuid4().hex[:10]}", partitions=3)
