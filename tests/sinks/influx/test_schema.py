"""The measurement schema: points built from balances and suspicions, and its docs."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

from lineloss.config import LossBand
from lineloss.domain import (
    Balance,
    BalanceLevel,
    BalanceStatus,
    Suspicion,
    SuspicionCategory,
    TargetKind,
)
from sinks.influx.replay_sink import sink_health_fields
from sinks.influx.schema import (
    AREA_BALANCE,
    FEEDER_BALANCE,
    PIPELINE_HEALTH,
    PIPELINE_REJECTS,
    SUSPICION,
    WORKORDER_HIT_RATE,
    WORKORDER_STATE,
    alignment_point,
    balance_point,
    health_point,
    rejects_point,
    suspicion_point,
    window_label,
)
from sinks.influx.writer import SinkHealth

DOC = (Path(__file__).parents[3] / "docs" / "influxdb.md").read_text(encoding="utf-8")
DAY0 = 1772294400

BALANCE = Balance(
    level=BalanceLevel.AREA,
    target_id="A1",
    feeder_id="F1",
    window_start=DAY0,
    window_end=DAY0 + 86400,
    supply_kwh=400.0,
    billed_kwh=380.0,
    loss_kwh=20.0,
    loss_rate=0.05,
    coverage=1.0,
    meters_expected=10,
    meters_reporting=10,
    status=BalanceStatus.HIGH_LOSS,
    reason="loss rate 12% above 10%",
    revision=2,
    final=True,
)
SUSPECT = Suspicion(
    target_id="C17",
    target_kind=TargetKind.METER,
    category=SuspicionCategory.THEFT,
    score=0.8,
    first_detected=DAY0,
    estimated_kwh=42.0,
    evidence="x",
    area_id="A1",
    detector="theft_localiser",
)


@pytest.mark.parametrize(
    ("window_s", "label"), [(900, "15m"), (1800, "30m"), (3600, "1h"), (86400, "1d"), (45, "45s")]
)
def test_window_label_is_an_influxql_duration(window_s: int, label: str) -> None:
    assert window_label(window_s) == label


def test_area_balance_point() -> None:
    p = balance_point(BALANCE, window_s=86400, band=LossBand(-0.01, 0.1))
    assert p.measurement == AREA_BALANCE
    assert p.tags == {"area": "A1", "feeder": "F1", "window": "1d"}
    assert p.time_ns == DAY0 * 10**9  # window start: every issue of the window overwrites
    assert p.fields["status"] == "high_loss" and p.fields["status_high_loss"] == 1
    assert sum(int(p.fields[f"status_{s.value}"]) for s in BalanceStatus) == 1
    assert (p.fields["revision"], p.fields["final"]) == (2, True)
    assert isinstance(p.fields["supply_kwh"], float)
    assert isinstance(p.fields["meters_expected"], int)


def test_status_and_revision_are_never_tags() -> None:
    p = balance_point(BALANCE, window_s=86400, band=LossBand())
    revised = balance_point(
        replace(BALANCE, status=BalanceStatus.NORMAL, reason="", revision=3),
        window_s=86400,
        band=LossBand(),
    )
    assert (p.measurement, p.tags, p.time_ns) == (
        revised.measurement,
        revised.tags,
        revised.time_ns,
    )


def test_undefined_loss_rate_is_left_out_not_written_as_nan() -> None:
    b = replace(BALANCE, supply_kwh=0.0, loss_rate=math.nan, status=BalanceStatus.INCOMPUTABLE)
    assert "loss_rate" not in balance_point(b, window_s=86400, band=LossBand()).fields


def test_feeder_balance_and_area_without_feeder() -> None:
    f = replace(BALANCE, level=BalanceLevel.FEEDER, target_id="F1")
    p = balance_point(f, window_s=900, band=LossBand())
    assert (p.measurement, p.tags) == (FEEDER_BALANCE, {"feeder": "F1", "window": "15m"})
    p = balance_point(replace(BALANCE, feeder_id=None), window_s=86400, band=LossBand())
    assert p.tags["feeder"] == ""  # left out of the line


def test_suspicion_point() -> None:
    p = suspicion_point(SUSPECT, stream_time_s=DAY0 + 100)
    assert p.measurement == SUSPICION
    assert p.tags == {"target": "C17", "area": "A1", "category": "theft", "target_kind": "meter"}
    assert p.time_ns == (DAY0 + 100) * 10**9
    assert p.fields["first_detected_s"] == DAY0


def _doc_names(measurement: str) -> set[str]:
    """Backquoted names in the doc section of a measurement."""
    m = re.search(rf"^### `{measurement}`.*?(?=^### |^## )", DOC, re.S | re.M)
    assert m, measurement
    return set(re.findall(r"`([a-z_0-9]+)`", m.group(0)))


def test_docs_list_every_tag_and_field() -> None:
    health = SinkHealth(True, *([0] * 14), "", 1.0)
    points = [
        balance_point(BALANCE, window_s=86400, band=LossBand()),
        balance_point(
            replace(BALANCE, level=BalanceLevel.FEEDER, target_id="F1"),
            window_s=86400,
            band=LossBand(),
        ),
        suspicion_point(SUSPECT, stream_time_s=DAY0),
        health_point("influx_sink", sink_health_fields(health), time_ns=0),
        rejects_point("replay", "duplicate", 3, time_ns=0),
        alignment_point(
            3,
            source_watermark_s=DAY0,
            final_watermark_s=None,
            finals_held_s=None,
            holding_all=True,
            waiting_for=(1, 2),
            idle=False,
            time_ns=0,
        ),
    ]
    for p in points:
        section = AREA_BALANCE if p.measurement == FEEDER_BALANCE else p.measurement
        missing = (set(p.tags) | set(p.fields)) - _doc_names(section)
        assert not missing, (p.measurement, missing)
    replay_fields = {
        "readings_total",
        "accepted_total",
        "rejected_total",
        "balances_total",
        "readings_per_s",
        "elapsed_s",
        "stream_time_s",
        "event_lag_s",
        "done",
    }
    assert replay_fields <= _doc_names(PIPELINE_HEALTH)
    assert {"component", "reason", "rejected_total"} <= _doc_names(PIPELINE_REJECTS)
    assert {"team", "state", "orders", "overdue", "oldest_age_s"} <= _doc_names(WORKORDER_STATE)
    assert {"detector", "closed", "inspected", "confirmed", "hit_rate"} <= _doc_names(
        WORKORDER_HIT_RATE
    )


def test_an_alignment_point_always_has_every_field() -> None:
    """Points are stored to the second: a later point in the same second must
    replace every field of the earlier one, so none is ever left out."""
    p = alignment_point(
        0,
        source_watermark_s=None,
        final_watermark_s=None,
        finals_held_s=None,
        holding_all=True,
        waiting_for=(2, 1),
        idle=False,
        time_ns=5,
    )
    assert p.tags == {"partition": "0"}
    assert p.fields == {
        "source_watermark_s": 0,
        "final_watermark_s": 0,
        "finals_held_s": 0,
        "holding_all": True,
        "waiting_for": "2,1",
        "idle": False,
    }
