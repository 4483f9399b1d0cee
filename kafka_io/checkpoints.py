"""Where a partition's checkpoints live on the broker, and which one a restore takes.

The worker (kafka_io.worker) writes a partition's checkpoint as a manifest on
``P.checkpoints`` and its pieces on ``P.checkpoint-pieces`` (kafka_io.pieces), each
in the partition of the same number as the readings partition. Several checkpoints
of a partition may be there at once (compaction keeps the last written, but not at
once; a zombie may have written after the owner), so ``read_checkpoints`` ranks
them: the one that covers the group's committed offsets (else readings acked by
the owner would be skipped) and has read furthest, and whose pieces are all there.
docs/streaming.md, "Worker, checkpoints and recovery".
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from kafka_io.pieces import (
    BALANCE,
    DETECTION,
    Manifest,
    Split,
    assemble,
    decode_manifest,
    encode_manifest,
)
from kafka_io.topics import KafkaSettings, scan_records

log = logging.getLogger("lineloss.worker")

CHECKPOINT_POSITION = "position"  # header of a checkpoint: PartitionCore.position
CHECKPOINT_OFFSETS = "offsets"  # header: JSON {topic: next offset} of the checkpoint


def checkpoint_key(settings: KafkaSettings, partition: int) -> bytes:
    return f"{settings.group_id}/{settings.readings}/{partition}".encode()


def piece_key(settings: KafkaSettings, partition: int, half: str, digest: str) -> bytes:
    """Key of a checkpoint piece: partition, half (kafka_io.pieces.BALANCE or
    DETECTION) and digest, so that no two writers ever share one."""
    return f"{settings.group_id}/{settings.readings}/{partition}/{half}/{digest}".encode()


def checkpoint_partition(partition: int, count: int) -> int:
    """The checkpoint topic's partition that holds a readings partition's
    checkpoints: the same number (topics made by ``ensure_topics`` have as many),
    modulo the count for a topic made with fewer (one, before session 5). A restore
    then reads only the partitions of the readings partitions it restores."""
    return partition % max(count, 1)


def partition_count(settings: KafkaSettings, topic: str) -> int:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(**settings.client(), enable_auto_commit=False, group_id=None)
    try:
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        consumer.close()


def checkpoint_headers(position: int, next_offset: dict[str, int]) -> dict[str, bytes]:
    return {
        CHECKPOINT_POSITION: str(position).encode(),
        CHECKPOINT_OFFSETS: json.dumps(next_offset, sort_keys=True).encode(),
    }


@dataclass(frozen=True)
class Record:
    """One message of a checkpoint, for whichever producer sends it."""

    topic: str
    key: bytes
    partition: int
    value: bytes | None  # None: a tombstone
    headers: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointHomes:
    """How many partitions the checkpoint topics have (``checkpoint_partition``)."""

    checkpoints: int
    pieces: int

    @classmethod
    def of(cls, settings: KafkaSettings) -> CheckpointHomes:
        return cls(
            partition_count(settings, settings.checkpoints),
            partition_count(settings, settings.checkpoint_pieces),
        )


def checkpoint_records(
    settings: KafkaSettings,
    homes: CheckpointHomes,
    partition: int,
    halves: dict[str, Split],
    position: int,
    next_offset: dict[str, int],
) -> list[Record]:
    """A partition's checkpoint as it is written: the new pieces of each half
    (``halves``: BALANCE and DETECTION), then the manifest that names them all."""
    at = checkpoint_partition(partition, homes.pieces)
    out = [
        Record(settings.checkpoint_pieces, piece_key(settings, partition, half, d), at, piece)
        for half in (BALANCE, DETECTION)
        for d, piece in halves[half].new.items()
    ]
    out.append(
        Record(
            settings.checkpoints,
            checkpoint_key(settings, partition),
            checkpoint_partition(partition, homes.checkpoints),
            encode_manifest(halves[BALANCE], halves[DETECTION]),
            checkpoint_headers(position, next_offset),
        )
    )
    return out


def piece_tombstone(
    settings: KafkaSettings, homes: CheckpointHomes, partition: int, half: str, digest: str
) -> Record:
    return Record(
        settings.checkpoint_pieces,
        piece_key(settings, partition, half, digest),
        checkpoint_partition(partition, homes.pieces),
        None,
    )


def send_records(producer: Any, records: list[Record]) -> None:
    """Send ``records`` with a kafka-python producer (tools and tests; the worker
    sends through faust) and wait until the broker has them."""
    for r in records:
        headers = list(r.headers.items())
        producer.send(r.topic, key=r.key, value=r.value, partition=r.partition, headers=headers)
    producer.flush()


def checkpoint_rank(
    headers: list[tuple[str, bytes]] | None, committed: dict[str, int]
) -> tuple[bool, int]:
    """How good a checkpoint of one partition is to restore: first whether it covers
    the group's committed offsets on every topic (``committed``: topic -> next
    offset), then how far it has read. A checkpoint behind a committed offset would
    lose the messages in between: they were acked by an owner whose later
    checkpoint this is not (a zombie's late write, or compaction kept the wrong
    one). Checkpoints without offsets (older workers) count as covering."""
    found = dict(headers or ())
    position = int(found.get(CHECKPOINT_POSITION, b"-1"))
    raw = found.get(CHECKPOINT_OFFSETS)
    if raw is None:
        return True, position
    offsets = {str(t): int(o) for t, o in json.loads(raw).items()}
    covers = all(offsets.get(t, 0) >= o for t, o in committed.items())
    return covers, position


def committed_offsets(settings: KafkaSettings, partitions: set[int]) -> dict[int, dict[str, int]]:
    """The worker group's committed offsets: partition -> {topic: next offset}. (A
    consumer that never subscribes does not join the group; it only asks.)"""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **settings.client(), group_id=settings.group_id, enable_auto_commit=False
    )
    try:
        out: dict[int, dict[str, int]] = {p: {} for p in partitions}
        for p in sorted(partitions):
            for topic in (settings.readings, settings.routed):
                offset = consumer.committed(TopicPartition(topic, p))
                if offset is not None and offset >= 0:
                    out[p][topic] = int(offset)
        return out
    finally:
        consumer.close(autocommit=False)


Unused = dict[int, dict[str, set[str]]]  # partition -> half -> digests


def read_checkpoints(
    settings: KafkaSettings,
    partitions: set[int],
    unused: Unused | None = None,
    restored: Unused | None = None,
) -> dict[int, bytes]:
    """The saved state of each of ``partitions`` that has one, as one checkpoint
    message (``kafka_io.detection.checkpoint_bytes``): of several, the one that
    covers the group's committed offsets and has read furthest (``checkpoint_rank``),
    whatever the order they were written in. An incremental checkpoint (a manifest,
    kafka_io.pieces) is assembled from its pieces; one whose pieces are not all
    there gives way to the next best. If none covers the committed offsets, the
    furthest, with an error in the log: readings were acked that no checkpoint holds.
    If none can be restored at all while the group has committed offsets of the
    partition, ``CheckpointMissing``: the worker stops rather than start it empty.

    Reading changes nothing. ``unused`` receives the pieces that no manifest of the
    partition names (left by an earlier owner, or of a manifest being written right
    now): the owner that restores the partition deletes them after its first
    checkpoint (kafka_io.worker, ``_checkpoint``), unless that checkpoint uses them.
    ``restored`` receives the pieces of each manifest restored, per half: the
    owner's next checkpoint need not send them again."""
    committed = committed_offsets(settings, partitions)
    keys = {checkpoint_key(settings, p): p for p in partitions}
    manifests: dict[int, list[tuple[tuple[bool, int], int, Manifest]]] = {p: [] for p in partitions}
    full: dict[int, tuple[tuple[bool, int], int, bytes]] = {}  # the best one-message checkpoint
    seen = 0

    def checkpoint(rec: Any) -> None:
        nonlocal seen
        p = keys.get(rec.key)
        if p is None or rec.value is None:
            return
        seen += 1
        rank = checkpoint_rank(rec.headers, committed.get(p, {}))
        manifest = decode_manifest(rec.value)
        if manifest is not None:
            manifests[p].append((rank, seen, manifest))
        elif p not in full or rank >= full[p][0]:
            full[p] = (rank, seen, rec.value)

    def homes(count: int) -> set[int]:
        return {checkpoint_partition(p, count) for p in partitions}

    scan_records(settings, settings.checkpoints, checkpoint, partitions=homes)
    named = {
        (p, half): set().union(*(m.digests_of(half) for _, _, m in ms))
        for p, ms in manifests.items()
        for half in (BALANCE, DETECTION)
    }
    pieces: dict[tuple[int, str], dict[str, bytes]] = {k: {} for k in named}
    present: dict[tuple[int, str], set[str]] = {k: set() for k in named}
    prefix = f"{settings.group_id}/{settings.readings}/"

    def piece(rec: Any) -> None:
        key = rec.key.decode() if rec.key else ""
        if not key.startswith(prefix):
            return
        part, half, digest = key[len(prefix) :].split("/")
        at = (int(part), half)
        if at not in present:
            return
        if rec.value is None:
            present[at].discard(digest)
            pieces[at].pop(digest, None)
        else:
            present[at].add(digest)
            if digest in named[at]:
                pieces[at][digest] = rec.value

    scan_records(settings, settings.checkpoint_pieces, piece, partitions=homes)
    if unused is not None:
        for (p, half), digests in present.items():
            if digests - named[(p, half)]:
                unused.setdefault(p, {})[half] = digests - named[(p, half)]
    out = {}
    for p in sorted(partitions):
        options: list[tuple[tuple[bool, int], int, Manifest | bytes]] = [*manifests[p]]
        if p in full:
            options.append(full[p])
        for (covers, position), _, saved in sorted(options, key=lambda o: o[:2], reverse=True):
            if isinstance(saved, Manifest):
                try:
                    data = assemble(saved, pieces[(p, BALANCE)], pieces[(p, DETECTION)])
                    if restored is not None:
                        restored[p] = {h: saved.digests_of(h) for h in (BALANCE, DETECTION)}
                except KeyError as missing:
                    log.warning(
                        "partition %d: checkpoint at position %d lacks piece %s; trying an "
                        "earlier one",
                        p,
                        position,
                        missing,
                    )
                    continue
            else:
                data = saved
            if not covers:
                log.error(
                    "partition %d: no checkpoint covers the committed offsets %s; restoring "
                    "the furthest (position %d): readings acked by an earlier owner may be "
                    "missing",
                    p,
                    committed.get(p),
                    position,
                )
            out[p] = data
            break
        if p not in out and any(committed.get(p, {}).values()):
            raise CheckpointMissing(
                f"partition {p}: the group has committed offsets {committed[p]} but no "
                "checkpoint of it could be restored (deleted, or its pieces lost): starting "
                "it empty would drop every reading before them. Restore the checkpoint "
                "topics, or reset the group's offsets of this partition to replay it."
            )
    return out


class CheckpointMissing(RuntimeError):
    """A partition has committed offsets but no checkpoint to restore."""
