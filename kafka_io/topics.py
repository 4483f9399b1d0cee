"""Topic names, client settings and topic creation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach the cluster. ``security`` holds kafka-python settings such as
    ``security_protocol``, ``sasl_mechanism``, ``sasl_plain_username``,
    ``sasl_plain_password``, ``ssl_cafile`` (docs/streaming.md#your-own-cluster)."""

    bootstrap: str
    prefix: str = "lineloss"
    partitions: int = 4
    replication: int = 1
    security: dict[str, Any] = field(default_factory=dict)

    @property
    def readings(self) -> str:
        return f"{self.prefix}.readings"

    @property
    def routed(self) -> str:
        """Readings a worker passed on to the partition that owns their meters (same
        partition count as ``readings``; faust assigns both topics' partition p to
        the same worker)."""
        return f"{self.prefix}.readings.routed"

    @property
    def topology(self) -> str:
        return f"{self.prefix}.topology"

    @property
    def balances(self) -> str:
        return f"{self.prefix}.balances"

    @property
    def suspicions(self) -> str:
        return f"{self.prefix}.suspicions"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.dead-letters"

    @property
    def meter_windows(self) -> str:
        """Per-meter energies of every final window (``lineloss.meter_windows``): the
        evidence behind balances and suspicions, and ``meter_windows.parquet``."""
        return f"{self.prefix}.meter-windows"

    @property
    def workorders(self) -> str:
        """Compacted, keyed by order id: the latest state of every work order."""
        return f"{self.prefix}.workorders"

    @property
    def checkpoints(self) -> str:
        return f"{self.prefix}.checkpoints"

    @property
    def checkpoint_pieces(self) -> str:
        """The pieces the checkpoints' manifests name (kafka_io.pieces), keyed by
        partition and content digest."""
        return f"{self.prefix}.checkpoint-pieces"

    @property
    def group_id(self) -> str:
        return f"{self.prefix}.worker"

    def client(self) -> dict[str, Any]:
        """Keyword arguments common to every kafka-python client."""
        return {"bootstrap_servers": self.bootstrap.split(","), **self.security}

    def aiokafka_client(self) -> dict[str, Any]:
        """The same for an aiokafka client (TLS as an ``ssl_context``)."""
        out: dict[str, Any] = {"bootstrap_servers": self.bootstrap.split(",")}
        for key in (
            "security_protocol",
            "sasl_mechanism",
            "sasl_plain_username",
            "sasl_plain_password",
        ):
            if key in self.security:
                out[key] = self.security[key]
        if str(self.security.get("security_protocol", "")).upper() in ("SSL", "SASL_SSL"):
            import ssl

            out["ssl_context"] = ssl.create_default_context(cafile=self.security.get("ssl_cafile"))
        return out


def ensure_topics(settings: KafkaSettings) -> None:
    """Create the topics if missing: readings and outputs with ``partitions``
    partitions; topology and checkpoints compacted."""
    from kafka.admin import KafkaAdminClient

    n, rf = settings.partitions, settings.replication
    compacted = {"cleanup.policy": "compact"}
    want: dict[str, dict[str, Any]] = {
        settings.readings: {"num_partitions": n, "replication_factor": rf},
        settings.routed: {"num_partitions": n, "replication_factor": rf},
        settings.balances: {"num_partitions": n, "replication_factor": rf},
        settings.suspicions: {"num_partitions": n, "replication_factor": rf},
        settings.dead_letters: {"num_partitions": n, "replication_factor": rf},
        settings.meter_windows: {"num_partitions": n, "replication_factor": rf},
        settings.topology: {"num_partitions": 1, "replication_factor": rf, "configs": compacted},
        settings.workorders: {"num_partitions": n, "replication_factor": rf, "configs": compacted},
        # One partition per readings partition (kafka_io.checkpoints.checkpoint_partition):
        # a restore reads only those of the partitions it restores.
        settings.checkpoints: {
            "num_partitions": n,
            "replication_factor": rf,
            # A checkpoint per partition and step: roll segments often and compact
            # early, so a restore reads a few versions, not hours of them.
            "configs": {
                **compacted,
                "max.message.bytes": str(64 * 1024 * 1024),
                "segment.bytes": str(64 * 1024 * 1024),
                "segment.ms": str(10 * 60 * 1000),
                "min.cleanable.dirty.ratio": "0.1",
            },
        },
        # Pieces of at most 256 KiB (kafka_io.pieces.PIECE_BYTES), each written once;
        # one no manifest uses any more is deleted by a tombstone.
        settings.checkpoint_pieces: {
            "num_partitions": n,
            "replication_factor": rf,
            "configs": {
                **compacted,
                "max.message.bytes": str(2 * 1024 * 1024),
                "segment.ms": str(60 * 60 * 1000),
                "min.cleanable.dirty.ratio": "0.2",
            },
        },
    }
    admin = KafkaAdminClient(**settings.client())
    try:
        existing = set(admin.list_topics())
        missing = {name: opts for name, opts in want.items() if name not in existing}
        if missing:
            admin.create_topics(missing, raise_errors=False, wait_for_metadata=True)
    finally:
        admin.close()


def read_compacted(
    settings: KafkaSettings,
    topic: str,
    timeout_s: float = 30.0,
    newer: Callable[[Any, Any], bool] | None = None,
) -> dict[bytes, bytes]:
    """The latest value of every key of a (compacted) topic, read to its end now.
    ``newer(record, kept)`` decides between two records of a key (default: the later
    one wins)."""
    records = read_compacted_records(settings, topic, timeout_s, newer)
    return {k: rec.value for k, rec in records.items()}


def read_compacted_records(
    settings: KafkaSettings,
    topic: str,
    timeout_s: float = 30.0,
    newer: Callable[[Any, Any], bool] | None = None,
    partitions: Callable[[int], set[int]] | None = None,
) -> dict[bytes, Any]:
    """Like ``read_compacted``, the kept record of each key (with its headers).
    ``partitions(count)`` chooses which of the topic's ``count`` partitions to read
    (default: all)."""
    latest: dict[bytes, Any] = {}

    def keep(rec: Any) -> None:
        if rec.value is None:
            latest.pop(rec.key, None)
        elif newer is None or rec.key not in latest or newer(rec, latest[rec.key]):
            latest[rec.key] = rec

    scan_records(settings, topic, keep, timeout_s, partitions)
    return latest


def scan_records(
    settings: KafkaSettings,
    topic: str,
    visit: Callable[[Any], None],
    timeout_s: float = 30.0,
    partitions: Callable[[int], set[int]] | None = None,
) -> None:
    """Every record of ``topic`` from its beginning to its end now, in offset order
    per partition, to ``visit``; ``partitions`` as in ``read_compacted_records``.

    Read with aiokafka, whose record parsing is compiled: a restore reads a
    partition's whole checkpoint, and kafka-python took 10 s for the 57 MB of a
    10,730-meter partition's pieces where aiokafka takes 0.2 s
    (docs/benchmarks.md#incremental-checkpoints). It runs on an event loop of its
    own in a thread, so callers with an event loop of their own can use it too."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lineloss-scan") as pool:
        pool.submit(asyncio.run, _scan(settings, topic, visit, timeout_s, partitions)).result()


async def _scan(
    settings: KafkaSettings,
    topic: str,
    visit: Callable[[Any], None],
    timeout_s: float,
    partitions: Callable[[int], set[int]] | None,
) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(
        **settings.aiokafka_client(),
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=32 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        # (``consumer.topics()`` fetches the same metadata but keeps only the names;
        # ``partitions_for_topic`` knows subscribed topics only)
        metadata = await consumer._client.fetch_all_metadata()
        parts = metadata.partitions_for_topic(topic) or set()
        if partitions is not None:
            parts = set(parts) & partitions(len(parts))
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        left = [tp for tp in tps if end[tp] > 0]
        while left:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s} s")
            fetched = await consumer.getmany(*left, timeout_ms=500)
            for tp in left:
                for rec in fetched.get(tp, ()):
                    visit(rec)
            left = [tp for tp in left if await consumer.position(tp) < end[tp]]
    finally:
        await consumer.stop()
