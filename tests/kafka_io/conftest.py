"""Fixtures of the Kafka tests: the real broker (see tests/support/kafka_server.py)."""

from kafka_server import kafka_bootstrap, kafka_settings

__all__ = ["kafka_bootstrap", "kafka_settings"]
