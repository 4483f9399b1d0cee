"""Publish a data directory (docs/data-contract.md) to Kafka with kafka-python.

Readings go out in arrival order (``received_at``, else file order) as concentrator
batches, one area each, keyed by the area's region (its substation or feeder: the
shard key, kafka_io.shards), so one region's readings stay on one partition and in
order; the
topology goes to its compacted topic keyed by meter. ``key_by`` can also play a
head-end that keys by area, or firmware that sends single readings keyed by meter:
workers forward such readings to their partition. Rows the loader refuses
(malformed) are not published: they are returned for the caller's rejects.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kafka_io.schema import (
    END_OF_STREAM,
    ReadingRow,
    area_key,
    encode_batch,
    encode_control,
    encode_meter,
    encode_reading,
    meter_message,
)
from kafka_io.shards import shard_key
from kafka_io.topics import KafkaSettings, ensure_topics
from lineloss.domain import NO_INDEX, MeterEvent, Topology
from lineloss.timeline import BEGINNING_S, TopologyTimeline
from loaders.files import LoadedReadings, read_readings, read_topology_timeline

KEY_BY = ("feeder", "area", "meter")


class BatchKeys:
    """(the batch's area, the message key) of each meter's readings, looked up once
    per meter: the key is the shard key (``key_by="feeder"``) or the area
    (``"area"``); a meter not in the topology keeps its own id (its readings become
    ``unknown_meter`` dead letters)."""

    def __init__(self, topology: Topology, key_by: str = "feeder") -> None:
        self.topology = topology
        self.key_by = key_by
        self._cache: dict[str, tuple[str, str]] = {}

    def __call__(self, meter_id: str) -> tuple[str, str]:
        keys = self._cache.get(meter_id)
        if keys is None:
            area = area_key(self.topology, meter_id)
            i = int(self.topology.index_of([meter_id])[0])
            if self.key_by == "area":
                key = area
            else:
                key = shard_key(self.topology, i) if i != NO_INDEX else meter_id
            keys = self._cache[meter_id] = (area, key)
        return keys


def batches(
    rows: Iterable[ReadingRow], keys: BatchKeys, batch_max: int = 500
) -> Iterator[tuple[str, bytes]]:
    """Concentrator batches of ``rows``: one per area (at most ``batch_max``
    readings each), as (message key, message), in order of first appearance."""
    groups: dict[tuple[str, str], list[ReadingRow]] = {}
    for r in rows:
        groups.setdefault(keys(r.meter_id), []).append(r)
    for (area, key), group in groups.items():
        for k in range(0, len(group), batch_max):
            yield key, encode_batch(area, group[k : k + batch_max])


def publish_registry(
    producer: Any, settings: KafkaSettings, timeline: TopologyTimeline, *, since_s: int, upto_s: int
) -> int:
    """Registry messages for every meter with a state taking effect in
    (``since_s``, ``upto_s``]: its history as known at ``upto_s``. Keyed by meter id;
    flushed, so that readings sent after it are fetched after it. Returns the number
    of messages."""
    sent = 0
    for meter_id, history in timeline.histories.items():
        known = tuple(st for st in history if st.effective_from_s <= upto_s)
        if known and known[-1].effective_from_s > since_s:
            producer.send(
                settings.topology, key=meter_id.encode(), value=encode_meter(meter_id, known)
            )
            sent += 1
    producer.flush()
    return sent


def registry_changes(timeline: TopologyTimeline, rows: list[ReadingRow]) -> dict[int, int]:
    """Row index -> the time up to which the registry must be published before that
    row: a replay announces each dated change just before the first reading (in
    arrival order) at or after its effective time."""
    out: dict[int, int] = {}
    if not rows:
        return out
    newest = np.maximum.accumulate(np.array([r.ts for r in rows], np.int64))
    for t in timeline.starts_s:
        i = int(np.searchsorted(newest, t, side="left"))
        if 0 < i < len(rows):
            out[i] = max(out.get(i, t), t)
    return out


def publish_topology(producer: Any, settings: KafkaSettings, topology: Topology) -> None:
    """Every meter to the compacted topology topic, keyed by meter id (not flushed)."""
    for i in range(topology.n_meters):
        producer.send(
            settings.topology,
            key=str(topology.meter_ids[i]).encode(),
            value=meter_message(topology, i),
        )


@dataclass(frozen=True)
class Published:
    readings: int
    messages: int
    meters: int
    topology_rejects: pd.DataFrame  # loader rejects, REJECT_COLUMNS
    reading_rejects: pd.DataFrame
    elapsed_s: float


def reading_rows(
    data_dir: Path,
) -> tuple[TopologyTimeline, list[ReadingRow], pd.DataFrame, pd.DataFrame]:
    """The registry and the usable readings of a data directory in arrival order,
    as message rows."""
    timeline, topo_rejects = read_topology_timeline(data_dir)
    loaded = read_readings(data_dir, timeline.latest)
    return timeline, rows_of(timeline.latest, loaded), topo_rejects, loaded.rejects


def rows_of(topology: Topology, loaded: LoadedReadings) -> list[ReadingRow]:
    """Loaded readings (arrival order) as message rows."""
    b = loaded.batch
    known = b.meter_idx != NO_INDEX
    ids = np.where(known, topology.meter_ids[np.where(known, b.meter_idx, 0)], loaded.raw_meter_ids)
    names = {int(c): (MeterEvent(int(c)).name.lower() if c else "") for c in np.unique(b.event)}
    rows = [
        ReadingRow(str(m), int(t), float(v), bool(i), float(u), names[int(e)])
        for m, t, v, i, u, e in zip(
            ids.tolist(),
            b.ts.tolist(),
            b.value.tolist(),
            b.is_interval.tolist(),
            b.voltage_v.tolist(),
            b.event.tolist(),
            strict=True,
        )
    ]
    return rows


def publish_data_dir(
    data_dir: Path,
    settings: KafkaSettings,
    *,
    speed: float = math.inf,
    chunk_rows: int = 2000,
    batch_max: int = 500,
    key_by: str = "feeder",
    progress: Callable[[str], None] | None = None,
) -> Published:
    """Publish topology and readings, then an end-of-stream marker on every readings
    partition. ``speed`` N plays the stream N times faster than event time (by the
    readings' ``ts``); ``math.inf`` sends as fast as the broker takes it. ``key_by``:
    ``feeder`` (batches keyed by the shard key), ``area`` (batches keyed by area) or
    ``meter`` (one reading per message, keyed by meter)."""
    if key_by not in KEY_BY:
        raise ValueError(f"key_by must be one of {KEY_BY}, not {key_by!r}")
    from kafka import KafkaProducer

    t0 = time.monotonic()
    say = progress or (lambda _m: None)
    timeline, rows, topo_rejects, reading_rejects = reading_rows(data_dir)
    topology = timeline.latest
    ensure_topics(settings)
    producer = KafkaProducer(**settings.client(), acks="all", linger_ms=20)
    try:
        ts0 = rows[0].ts if rows else 0
        known_s = ts0 if rows else max(timeline.starts_s)
        publish_registry(producer, settings, timeline, since_s=BEGINNING_S - 1, upto_s=known_s)
        changes = registry_changes(timeline, rows)
        keys = BatchKeys(topology, key_by)
        messages = 0
        newest = ts0
        edges = sorted({*range(0, len(rows), chunk_rows), *changes, len(rows)})
        for lo, hi in pairwise(edges):
            chunk = rows[lo:hi]
            if lo in changes:  # registry updates due now, before the readings needing them
                publish_registry(producer, settings, timeline, since_s=known_s, upto_s=changes[lo])
                known_s = changes[lo]
            if math.isfinite(speed):
                # Pace by the chunk's median time: a meter with a wrong clock (years
                # ahead) must not stall the stream.
                newest = max(newest, int(np.median([r.ts for r in chunk])))
                wait = t0 + (newest - ts0) / speed - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            if key_by == "meter":
                for r in chunk:
                    producer.send(
                        settings.readings, key=r.meter_id.encode(), value=encode_reading(r)
                    )
                messages += len(chunk)
                continue
            for key, value in batches(chunk, keys, batch_max):
                producer.send(settings.readings, key=key.encode(), value=value)
                messages += 1
            if lo and lo % (50 * chunk_rows) == 0:
                say(f"published {lo:,}/{len(rows):,} readings")
        producer.flush()
        eos = encode_control(END_OF_STREAM, readings=len(rows))
        for p in sorted(producer.partitions_for(settings.readings)):
            producer.send(settings.readings, value=eos, partition=p)
        producer.flush()
    finally:
        producer.close()
    elapsed = time.monotonic() - t0
    say(f"published {len(rows):,} readings in {messages:,} messages in {elapsed:.1f} s")
    return Published(len(rows), messages, topology.n_meters, topo_rejects, reading_rejects, elapsed)
