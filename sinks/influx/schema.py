"""The InfluxDB measurement schema: which measurement, tags and fields each result gets.

docs/influxdb.md is the reference for analysts and dashboard authors; this module is
the one place that builds the points, so the two must agree (a test checks it).

Two rules shape everything here:

- **A revision must overwrite, never add.** InfluxDB identifies a point by its series
  (measurement + tag set) and timestamp. A balance's point is stamped with its
  window start and tagged only with things that cannot change between the
  provisional and the final issue of a window (area, feeder, window length). The
  status and its reason change with revisions, so they are *fields*, with one 0/1
  field per status (``status_high_loss`` ...) so that ``sum()`` counts areas per
  status without ever seeing a superseded issue. Had status been a tag, a window
  revised from normal to high_loss would leave its provisional point behind in the
  ``status=normal`` series, and every count and sum would include it twice.
- **Few tag values.** Every distinct tag set is a series in InfluxDB's index. Areas,
  feeders, suspects and reject reasons are thousands at most; meters are millions,
  so per-meter series stay out of InfluxDB (see docs/influxdb.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from lineloss.config import LossBand
from lineloss.domain import Balance, BalanceLevel, BalanceStatus, Suspicion
from sinks.lineprotocol import FieldValue, Point

AREA_BALANCE: Final = "area_balance"
FEEDER_BALANCE: Final = "feeder_balance"
SUSPICION: Final = "suspicion"
PIPELINE_HEALTH: Final = "pipeline_health"
PIPELINE_REJECTS: Final = "pipeline_rejects"
WORKORDER_STATE: Final = "workorder_state"
WORKORDER_HIT_RATE: Final = "workorder_hit_rate"
PARTITION_ALIGNMENT: Final = "partition_alignment"

NS_PER_S: Final = 1_000_000_000

STATUS_FIELDS: Final[dict[BalanceStatus, str]] = {s: f"status_{s.value}" for s in BalanceStatus}


def window_label(window_s: int) -> str:
    """The ``window`` tag: the window length as an InfluxQL duration (``15m``, ``1h``, ``1d``).

    It is a valid duration literal on purpose, so a dashboard can ``GROUP BY
    time($window)``; and it keeps 15-minute and daily balances of one area apart
    (both have a point at local midnight, which would otherwise overwrite each other).
    """
    for unit_s, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if window_s % unit_s == 0:
            return f"{window_s // unit_s}{unit}"
    return f"{window_s}s"


def balance_point(balance: Balance, *, window_s: int, band: LossBand) -> Point:
    """The point of one area or feeder balance; timestamp = window start.

    ``loss_rate`` is left out when it is undefined (supply not positive: the status
    is then always ``incomputable``). A point overwritten by such a revision keeps
    its old ``loss_rate``; that is why every panel reading ``loss_rate`` filters
    ``"status" <> 'incomputable'``.
    """
    window = window_label(window_s)
    if balance.level == BalanceLevel.AREA:
        measurement = AREA_BALANCE
        tags = {"area": balance.target_id, "feeder": balance.feeder_id or "", "window": window}
    else:
        measurement = FEEDER_BALANCE
        tags = {"feeder": balance.target_id, "window": window}
    fields: dict[str, FieldValue] = {
        "supply_kwh": float(balance.supply_kwh),
        "billed_kwh": float(balance.billed_kwh),
        "loss_kwh": float(balance.loss_kwh),
    }
    if math.isfinite(balance.loss_rate):
        fields["loss_rate"] = float(balance.loss_rate)
    fields.update(
        {
            "coverage": float(balance.coverage),
            "meters_expected": int(balance.meters_expected),
            "meters_reporting": int(balance.meters_reporting),
            "status": balance.status.value,
            "reason": balance.reason,
            "revision": int(balance.revision),
            "final": bool(balance.final),
            "band_lower_rate": float(band.lower_rate),
            "band_upper_rate": float(band.upper_rate),
            "window_end_s": int(balance.window_end),
        }
    )
    for status, name in STATUS_FIELDS.items():
        fields[name] = int(balance.status == status)
    return Point(measurement, tags, fields, balance.window_start * NS_PER_S)


def suspicion_point(suspicion: Suspicion, *, stream_time_s: int) -> Point:
    """A suspicion as it stood at ``stream_time_s`` (event time of the pipeline).

    One point per change, so "scores over time" is the suspicion's history and
    ``last()`` per target is its current state.
    """
    return Point(
        SUSPICION,
        {
            "target": suspicion.target_id,
            "area": suspicion.area_id or "",
            "category": suspicion.category.value,
            "target_kind": suspicion.target_kind.value,
        },
        {
            "score": float(suspicion.score),
            "estimated_kwh": float(suspicion.estimated_kwh),
            "evidence": suspicion.evidence,
            "detector": suspicion.detector,
            "first_detected_s": int(suspicion.first_detected),
        },
        stream_time_s * NS_PER_S,
    )


def health_point(component: str, fields: dict[str, FieldValue], *, time_ns: int) -> Point:
    """A pipeline-health point of ``component`` (``replay``, ``worker``, ``influx_sink``)."""
    return Point(PIPELINE_HEALTH, {"component": component}, fields, time_ns)


def alignment_point(
    partition: int,
    *,
    source_watermark_s: int | None,
    final_watermark_s: int | None,
    finals_held_s: int | None,
    holding_all: bool,
    waiting_for: Sequence[int],
    idle: bool,
    time_ns: int,
) -> Point:
    """Where a Kafka readings partition's finals stand against the other partitions'
    watermarks (kafka_io.core.Alignment); wall-clock time, like the health points.
    Every field is always written (0 for a watermark not known or no hold): points
    are stored to the second, and two steps within one second must leave the later
    point whole, not a mix of both."""
    fields: dict[str, FieldValue] = {
        "source_watermark_s": int(source_watermark_s or 0),
        "final_watermark_s": int(final_watermark_s or 0),
        "finals_held_s": int(finals_held_s or 0),
        "holding_all": holding_all,
        "waiting_for": ",".join(str(q) for q in waiting_for),
        "idle": idle,
    }
    return Point(PARTITION_ALIGNMENT, {"partition": str(partition)}, fields, time_ns)


def rejects_point(component: str, reason: str, rejected_total: int, *, time_ns: int) -> Point:
    """Cumulative count of readings refused for ``reason`` (the dead-letter path)."""
    return Point(
        PIPELINE_REJECTS,
        {"component": component, "reason": reason},
        {"rejected_total": int(rejected_total)},
        time_ns,
    )


def workorder_state_point(
    team: str, state: str, *, orders: int, overdue: int, oldest_age_s: int, time_ns: int
) -> Point:
    """Work orders of one team in one state at a moment (a snapshot, written
    periodically; zero counts are written too, so ``last()`` never shows a stale one)."""
    return Point(
        WORKORDER_STATE,
        {"team": team, "state": state},
        {"orders": int(orders), "overdue": int(overdue), "oldest_age_s": int(oldest_age_s)},
        time_ns,
    )


def workorder_hit_rate_point(
    detector: str,
    *,
    month_start_s: int,
    closed: int,
    inspected: int,
    confirmed: int,
    hit_rate: float,
) -> Point:
    """Share of inspected orders confirmed as theft or fault, per detector and month
    of closing; stamped at the month's start so a recount overwrites it."""
    return Point(
        WORKORDER_HIT_RATE,
        {"detector": detector},
        {
            "closed": int(closed),
            "inspected": int(inspected),
            "confirmed": int(confirmed),
            "hit_rate": float(hit_rate),  # NaN (nothing inspected) is dropped by the encoder
        },
        month_start_s * NS_PER_S,
    )
