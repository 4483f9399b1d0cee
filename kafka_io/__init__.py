"""Kafka wiring around the pure core: message schemas, producers, the worker, collection.

Nothing in ``streams`` imports this package; it only adapts Kafka messages to
``ReadingBatch`` and the core's results back to messages (docs/streaming.md).
"""
