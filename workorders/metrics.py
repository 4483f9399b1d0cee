"""Work-order numbers for Grafana: state counts per team and hit rates per detector,
as InfluxDB points (schema in docs/influxdb.md)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from sinks.influx.schema import NS_PER_S, workorder_hit_rate_point, workorder_state_point
from sinks.lineprotocol import Point
from workorders.feedback import HitRate
from workorders.model import OrderState
from workorders.store import StateCount


def month_start_s(month: str, tz: str) -> int:
    """``2026-11`` -> the epoch second of 2026-11-01 00:00 local time."""
    return int(pd.Timestamp(f"{month}-01", tz=tz).timestamp())


def workorder_points(
    counts: Sequence[StateCount], rates: Sequence[HitRate], *, now_s: int, tz: str
) -> list[Point]:
    """Every state of every team that has orders (zeros too), and every hit rate."""
    by_key = {(c.team, c.state): c for c in counts}
    points = []
    for team in sorted({c.team for c in counts}):
        for state in OrderState:
            c = by_key.get((team, state))
            points.append(
                workorder_state_point(
                    team,
                    state.value,
                    orders=c.orders if c else 0,
                    overdue=c.overdue if c else 0,
                    oldest_age_s=c.oldest_age_s if c else 0,
                    time_ns=now_s * NS_PER_S,
                )
            )
    for r in rates:
        points.append(
            workorder_hit_rate_point(
                r.detector,
                month_start_s=month_start_s(r.month, tz),
                closed=r.closed,
                inspected=r.inspected,
                confirmed=r.confirmed,
                hit_rate=r.hit_rate,
            )
        )
    return points
