"""``lineloss simulate``: a generated grid's meters and concentrators publishing live.

What a head-end (采集主站) sends, in real time or faster: every area's concentrator
uploads a batch per reading interval, some meters publish single readings of their
own (keyed by meter, so workers forward them), uploads arrive late and out of order
(the generator's ``received_at``: upload delays, failed batches re-collected hours
later), readings go missing, some are sent twice, and a few messages are broken
(bad JSON, an unknown schema version, an unknown meter, a value that is no number).
Every broken message should come out on the dead-letter topic with its reason.

The generated data is shifted by whole days so that its first day is today; the
stream starts at the current time of day (earlier readings are skipped, or sent at
once with ``backfill_h``) and goes on at ``speed`` x event time. Pure planning
(``plan_messages``) is separate from sending (``run_simulation``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from kafka_io.produce import BatchKeys, batches, publish_topology
from kafka_io.schema import ReadingRow, encode_reading
from kafka_io.topics import KafkaSettings, ensure_topics
from lineloss.domain import NO_INDEX, Topology

BAD_KINDS = ("malformed_json", "unsupported_version", "unknown_meter", "non_numeric")


@dataclass(frozen=True)
class SimulationSettings:
    speed: float = 1.0  # x event time; 96 plays a day in 15 minutes
    single_fraction: float = 0.05  # meters publishing their own single readings
    duplicate_fraction: float = 0.002  # messages sent twice
    bad_fraction: float = 0.001  # messages replaced by a broken one
    backfill_h: float = 0.0  # also send the readings of the last hours at once
    seed: int = 7


@dataclass(frozen=True)
class Planned:
    due_s: float  # event-time second (shifted) at which it is sent
    key: bytes
    value: bytes
    kind: str  # "batch", "single", "duplicate" or one of BAD_KINDS


@dataclass
class SimulationReport:
    messages: int = 0
    readings: int = 0
    duplicates: int = 0
    bad: int = 0
    first_due_s: float = math.nan
    last_due_s: float = math.nan


def day_shift_s(first_ts: int, now_s: float, tz: str) -> int:
    """Whole days that move the data's first local day onto today (local)."""
    zone = ZoneInfo(tz)
    first = datetime.fromtimestamp(first_ts, zone).date()
    today = datetime.fromtimestamp(now_s, zone).date()
    return (today - first).days * 86400


def plan_messages(
    topology: Topology,
    rows: list[ReadingRow],
    arrivals: np.ndarray,
    settings: SimulationSettings,
    *,
    shift_s: int,
    start_s: float,
) -> Iterator[Planned]:
    """The messages of a live stream, in sending order. ``rows`` are the readings,
    ``arrivals`` when each reached the head-end [s, before the shift]. A concentrator
    sends the readings of its area that arrive in the same minute as one batch."""
    rng = np.random.default_rng(settings.seed)
    n_meters = topology.n_meters
    single = rng.random(n_meters) < settings.single_fraction
    order = np.argsort(arrivals, kind="stable")
    due_all = arrivals[order] + shift_s
    keep = due_all >= start_s - settings.backfill_h * 3600
    order, due_all = order[keep], due_all[keep]
    idx = topology.index_of([rows[i].meter_id for i in order])
    keys = BatchKeys(topology)
    lo = 0
    while lo < len(order):
        minute = due_all[lo] // 60
        hi = lo
        while hi < len(order) and due_all[hi] // 60 == minute:
            hi += 1
        concentrated: list[ReadingRow] = []
        out: list[Planned] = []
        for j in range(lo, hi):
            r = rows[int(order[j])]
            r = ReadingRow(r.meter_id, r.ts + shift_s, r.value, r.is_interval, r.voltage_v, r.event)
            i = int(idx[j])
            if i != NO_INDEX and single[i]:
                out.append(
                    Planned(float(due_all[j]), r.meter_id.encode(), encode_reading(r), "single")
                )
                continue
            concentrated.append(r)
        due = float(due_all[hi - 1])
        for key, value in batches(concentrated, keys, batch_max=len(concentrated) or 1):
            out.append(Planned(due, key.encode(), value, "batch"))
        for m in out:
            u = rng.random()
            if u < settings.bad_fraction:
                yield _broken(m, rng, n_meters)
                continue
            yield m
            if u < settings.bad_fraction + settings.duplicate_fraction:
                yield Planned(m.due_s, m.key, m.value, "duplicate")
        lo = hi


def _broken(m: Planned, rng: np.random.Generator, n_meters: int) -> Planned:
    """One broken message in place of ``m`` (its readings are lost, as in the field)."""
    kind = BAD_KINDS[int(rng.integers(len(BAD_KINDS)))]
    if kind == "malformed_json":
        value = m.value[: max(1, len(m.value) // 2)]
    else:
        msg = json.loads(m.value)
        if kind == "unsupported_version":
            msg["version"] = 99
        else:
            readings = msg.get("readings", [msg])
            field = "interval_kwh" if "interval_kwh" in readings[0] else "register_kwh"
            if kind == "unknown_meter":
                readings[0]["meter_id"] = f"NOT-IN-REGISTRY-{int(rng.integers(n_meters))}"
            else:
                readings[0][field] = "12,5"  # a decimal comma
        value = json.dumps(msg).encode()
    return Planned(m.due_s, m.key, value, kind)


def run_simulation(
    topology: Topology,
    rows: list[ReadingRow],
    arrivals: np.ndarray,
    kafka: KafkaSettings,
    settings: SimulationSettings,
    *,
    tz: str,
    duration_s: float | None = None,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> SimulationReport:
    """Publish the topology, then the planned messages when they are due: at
    ``start + (due - start) / speed`` of the wall clock."""
    from kafka import KafkaProducer

    say = progress or (lambda _m: None)
    ensure_topics(kafka)
    producer = KafkaProducer(**kafka.client(), acks="all", linger_ms=50)
    report = SimulationReport()
    try:
        publish_topology(producer, kafka, topology)
        producer.flush()
        t0 = clock()
        shift = day_shift_s(min(r.ts for r in rows), t0, tz) if rows else 0
        last_say = t0
        for m in plan_messages(topology, rows, arrivals, settings, shift_s=shift, start_s=t0):
            if math.isnan(report.first_due_s):
                report.first_due_s = m.due_s
            wall = t0 + max(m.due_s - t0, 0.0) / settings.speed
            if duration_s is not None and wall - t0 > duration_s:
                break
            wait = wall - clock()
            if wait > 0:
                producer.flush()  # what is due now is on the broker before we sleep
                sleep(wait)
            producer.send(kafka.readings, key=m.key, value=m.value)
            report.messages += 1
            report.last_due_s = m.due_s
            if m.kind in BAD_KINDS:
                report.bad += 1
            elif m.kind == "duplicate":
                report.duplicates += 1
            else:
                report.readings += m.value.count(b'"meter_id"')
            if clock() - last_say >= 10:
                last_say = clock()
                say(
                    f"simulate: {report.messages:,} messages, {report.readings:,} readings, "
                    f"event time {_iso(m.due_s, tz)}"
                )
        producer.flush()
    finally:
        producer.close()
    return report


def _iso(ts: float, tz: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def arrival_times(received_at: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """When each reading reached the head-end: ``received_at`` where the data has it,
    else its own time."""
    return np.where(received_at > 0, received_at, ts).astype(np.float64)
