"""What inspectors would have received: a replay's suspicions through the same
work-order service that production runs, into a ranked ``workorders.csv``.

The orders are created as of the end of the replayed data (``now_s``), in an
in-memory SQLite store, so a back-test needs no database and exercises exactly the
dedupe, valuation, priority, SLA and capacity rules of the live service.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lineloss.domain import Suspicion, Topology
from streams.engine import MeterWindowResult
from workorders.policy import Directory
from workorders.service import SYSTEM, WorkOrderService
from workorders.settings import WorkOrderSettings
from workorders.store import WorkOrderStore

WORKORDER_COLUMNS = [
    "order_id",
    "target_id",
    "category",
    "priority",
    "score",
    "estimated_kwh",
    "estimated_value",
    "due",
    "reason",
    # beyond the published minimum: who goes, and when
    "priority_class",
    "area_id",
    "team",
    "rank",
    "visit_day",
]


def monthly_kwh(
    meter_ids: np.ndarray, total_kwh: np.ndarray, seconds: np.ndarray
) -> dict[str, float]:
    """Energy per 30 days of each meter that consumed any, from its total over the
    ``seconds`` in which its energy was known."""
    with np.errstate(invalid="ignore", divide="ignore"):
        monthly = np.where(seconds > 0, total_kwh / seconds * 30 * 86400, 0.0)
    return {str(m): float(v) for m, v in zip(meter_ids, monthly, strict=True) if v > 0}


def billed_kwh_per_month(
    results: Sequence[MeterWindowResult], meter_ids: np.ndarray
) -> dict[str, float]:
    """Each meter's mean billed energy per 30 days over the replayed windows (what a
    stepped tariff prices stolen energy on top of)."""
    total = np.zeros(len(meter_ids))
    seconds = np.zeros(len(meter_ids))
    for r in results:
        known = np.isfinite(r.energy_kwh)
        total[known] += r.energy_kwh[known]
        seconds[known] += r.window_end - r.window_start
    return monthly_kwh(meter_ids, total, seconds)


def billed_kwh_per_month_of_replay(out_dir: Path) -> dict[str, float]:
    """The same from a replay's ``meter_windows.parquet`` ({} when there is none)."""
    path = out_dir / "meter_windows.parquet"
    if not path.exists():
        return {}
    window_s = int(json.loads((out_dir / "summary.json").read_text())["window_s"])
    mw = pd.read_parquet(path, columns=["meter_id", "energy_kwh"])
    known = mw[np.isfinite(mw["energy_kwh"])]
    per_meter = known.groupby("meter_id")["energy_kwh"].agg(["sum", "count"])
    return monthly_kwh(
        per_meter.index.to_numpy(),
        per_meter["sum"].to_numpy(),
        per_meter["count"].to_numpy() * window_s,
    )


def directory_for(
    topology: Topology,
    settings: WorkOrderSettings,
    billed: Mapping[str, float] | None = None,
) -> Directory:
    classes = {}
    if topology.customer_class:
        classes = {
            str(m): c for m, c in zip(topology.meter_ids, topology.customer_class, strict=True) if c
        }
    return Directory(
        team_by_area=settings.team_by_area,
        customer_class=classes,
        billed_kwh_per_month=dict(billed or {}),
    )


def _iso(ts_s: int, tz: str) -> str:
    return pd.Timestamp(ts_s, unit="s", tz="UTC").tz_convert(tz).isoformat()


def backtest_orders(
    suspicions: Sequence[Suspicion],
    *,
    now_s: int,
    directory: Directory,
    settings: WorkOrderSettings,
    tz: str = "Asia/Shanghai",
) -> pd.DataFrame:
    """Ranked orders, visits of day 0 first, in the ``workorders.csv`` layout."""
    with WorkOrderStore("sqlite:///:memory:") as store:
        service = WorkOrderService(
            store, policy=settings.policy, tariffs=settings.tariffs, directory=directory
        )
        service.ingest(suspicions, now_s=now_s)
        visits = service.plan(SYSTEM)
    rows = [
        {
            "order_id": v.order.order_id,
            "target_id": v.order.target_id,
            "category": v.order.evidence.category,
            "priority": v.order.evidence.priority,
            "score": v.order.evidence.score,
            "estimated_kwh": v.order.evidence.estimated_kwh,
            "estimated_value": v.order.evidence.estimated_value,
            "due": _iso(v.order.due_s, tz),
            "reason": v.order.evidence.reason,
            "priority_class": v.order.evidence.priority_class,
            "area_id": v.order.area_id or "",
            "team": v.order.team,
            "rank": v.rank,
            "visit_day": v.visit_day,
        }
        for v in visits
    ]
    return pd.DataFrame(rows, columns=WORKORDER_COLUMNS)


def write_workorders(
    out_dir: Path,
    suspicions: Sequence[Suspicion],
    topology: Topology,
    *,
    now_s: int,
    settings: WorkOrderSettings | None = None,
    meter_windows: Sequence[MeterWindowResult] = (),
    billed: Mapping[str, float] | None = None,
    tz: str = "Asia/Shanghai",
) -> pd.DataFrame:
    """``OUT_DIR/workorders.csv`` of a replay. A stepped tariff prices stolen energy on
    top of each customer's monthly bill: ``billed`` (meter -> kWh per 30 days), else
    from ``meter_windows``; without either, from its first tier."""
    settings = settings or WorkOrderSettings()
    if billed is None:
        billed = billed_kwh_per_month(meter_windows, topology.meter_ids)
    frame = backtest_orders(
        suspicions,
        now_s=now_s,
        directory=directory_for(topology, settings, billed),
        settings=settings,
        tz=tz,
    )
    frame.to_csv(out_dir / "workorders.csv", index=False)
    return frame
