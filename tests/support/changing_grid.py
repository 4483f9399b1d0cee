"""A small grid whose registry changes while it reads: the scenario of the
topology-update tests (engine, pipeline, Kafka core)."""

from __future__ import annotations

from factories import DAY, DAY0, make_batch, make_topology

from lineloss.config import EngineConfig
from lineloss.domain import Meter, MeterRole, ReadingBatch
from lineloss.timeline import BEGINNING_S, MeterState, TopologyTimeline

CONFIG = EngineConfig(
    window_s=DAY, allowed_lateness_s=3600, recollect_horizon_s=DAY, revision_interval_s=0
)
TOPO = make_topology(
    [
        ("T1", "area", "A1", "F1", 40.0),
        ("C1", "customer", "A1", "F1", 1.0),
        ("C2", "customer", "A1", "F1", 1.0),
        ("T2", "area", "A2", "F2", 1.0),
        ("C3", "customer", "A2", "F2", 1.0),
    ]
)
# kWh per 15 minutes, raw register units (T1 has a CT of 40, later 80)
STEP = {"T1": 0.1, "C1": 0.5, "C2": 1.0, "T2": 4.0, "C3": 2.0, "C4": 0.25}
DAYS = 5


def customer(meter_id: str, area: str, feeder: str, multiplier: float = 1.0) -> Meter:
    return Meter(meter_id, MeterRole.CUSTOMER, area, feeder, multiplier)


UPDATES: dict[str, tuple[MeterState, ...] | None] = {
    # commissioned in A1 on day 1
    "C4": (MeterState(DAY0 + DAY, customer("C4", "A1", "F1")),),
    # moved to A2 on another feeder from day 2
    "C2": (
        MeterState(BEGINNING_S, customer("C2", "A1", "F1")),
        MeterState(DAY0 + 2 * DAY, customer("C2", "A2", "F2")),
    ),
    # new CT in the middle of day 1: takes effect with day 2's window
    "T1": (
        MeterState(BEGINNING_S, Meter("T1", MeterRole.AREA, "A1", "F1", 40.0)),
        MeterState(DAY0 + DAY + 6 * 3600, Meter("T1", MeterRole.AREA, "A1", "F1", 80.0)),
    ),
    # out of service from day 3
    "C3": (
        MeterState(BEGINNING_S, customer("C3", "A2", "F2")),
        MeterState(DAY0 + 3 * DAY, None),
    ),
}
TIMELINE = TopologyTimeline.of(TOPO).apply(UPDATES)


def readings(
    meters: list[str], days: int = DAYS, off_grid: tuple[str, ...] = ()
) -> list[tuple[str, int, float]]:
    """Every meter every 15 minutes from DAY0, in time order (C4 from day 1);
    meters ``off_grid`` read 7 minutes after the grid (a slow clock)."""
    out = []
    for k in range(days * 96 + 1):
        t = DAY0 + k * 900
        for m in meters:
            if (m == "C4" and t < DAY0 + DAY) or (m in off_grid and k == days * 96):
                continue  # (nor one after the others' last: no window of its own)
            out.append((m, t + (420 if m in off_grid else 0), round(100.0 + k * STEP[m], 6)))
    return out


def batch(rows: list[tuple[str, int, float]], timeline: TopologyTimeline) -> ReadingBatch:
    return make_batch(timeline.latest, rows)


ALL = ["T1", "C1", "C2", "T2", "C3", "C4"]
