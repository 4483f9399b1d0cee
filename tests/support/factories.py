"""Factories for tests: small topologies and reading batches built by hand."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.meter_faults import MeterFaultDetector
from detectors.observations import AreaHistory, AreaWindow
from lineloss.domain import Meter, MeterRole, ReadingBatch, Topology

# 2026-03-01T00:00:00+08:00, a local midnight in Asia/Shanghai [s since epoch]
DAY0 = 1772294400
DAY = 86400

Reading = tuple[str, int, float] | tuple[str, int, float, bool]


def make_topology(spec: Sequence[tuple[str, str, str | None, str | None, float]]) -> Topology:
    """Topology from (meter_id, role, area_id, feeder_id, multiplier) rows."""
    return Topology.from_meters(
        [Meter(mid, MeterRole(role), area, feeder, mult) for mid, role, area, feeder, mult in spec]
    )


def make_batch(topo: Topology, readings: Sequence[Reading], *, first_pos: int = 0) -> ReadingBatch:
    """Batch from (meter_id, ts, value[, is_interval]) rows; registers by default."""
    n = len(readings)
    return ReadingBatch(
        meter_idx=topo.index_of([r[0] for r in readings]),
        ts=np.array([r[1] for r in readings], dtype=np.int64),
        value=np.array([r[2] for r in readings], dtype=np.float64),
        is_interval=np.array([bool(r[3]) if len(r) > 3 else False for r in readings]),  # type: ignore[misc]
        event=np.zeros(n, np.int16),
        voltage_v=np.full(n, np.nan, np.float32),
        source_pos=np.arange(first_pos, first_pos + n, dtype=np.int64),
    )


def area_day(
    day: int,
    meter_ids: tuple[str, ...],
    energy_kwh: np.ndarray,
    *,
    area_id: str = "A1",
    supply_kwh: float = float("nan"),
    feeder_id: str = "F1",
    **fields: Any,
) -> AreaWindow:
    """Day ``day`` after DAY0 of an area on ``feeder_id`` as the detectors see it, with
    no register flags and no events unless ``fields`` sets them, as it sets the other
    ``AreaWindow`` fields (profiles, phases, ``virtual``)."""
    n = len(meter_ids)
    return AreaWindow(
        area_id=area_id,
        feeder_id=feeder_id,
        window_start=DAY0 + day * DAY,
        window_end=DAY0 + (day + 1) * DAY,
        meter_ids=meter_ids,
        energy_kwh=energy_kwh,
        supply_kwh=supply_kwh,
        **{
            "flags": np.zeros(n, np.int8),
            "events": np.zeros(n, np.int32),
            "profile_kwh": None,
            "supply_profile_kwh": None,
            **fields,
        },
    )


def household_days(rng: np.random.Generator, n: int, hours: np.ndarray) -> np.ndarray:
    """Customers x len(hours): households' usual day (relative), each with its own
    evening (18-21 h) and morning (6.5-8.5 h) peak over a base load; ``hours`` are
    the hour of the day of each part."""
    evening = rng.uniform(18.0, 21.0, n)[:, None]
    morning = rng.uniform(6.5, 8.5, n)[:, None]
    return (
        0.25
        + np.exp(-((hours[None, :] - evening) ** 2) / 4)
        + 0.5 * np.exp(-((hours[None, :] - morning) ** 2) / 2)
    )


def clock_drifting(h: AreaHistory) -> set[str]:
    """The meters the fault detector names with a drifting clock on ``h``."""
    return {
        f.target_id
        for f in MeterFaultDetector().score_one(h)
        if f.detector == "meter_fault:clock_drift"
    }


def area_voltages_v(
    rng: np.random.Generator,
    load_kwh: np.ndarray,
    lag_h: np.ndarray | None = None,
    fine: int = 4,
    noise_v: float = 0.5,
) -> np.ndarray:
    """Customers x hours mean voltages of one area's meters: the 10 kV swing (a daily
    tap-changer swing and slow noise), the transformer's drop with the area's load
    (``load_kwh``, hours x customers), each house's position on the cable and its own
    load's drop, and reading noise, sampled ``fine`` times an hour. ``lag_h`` (hours x
    customers, hours behind true time) is where a meter's clock takes its samples: a
    fast clock samples earlier and earlier."""
    n_h, n_c = load_kwh.shape
    t = np.arange(n_h * fine, dtype=np.float64) / fine  # [h]
    slow = np.zeros(len(t))
    for k in range(1, len(t)):
        slow[k] = 0.97 * slow[k - 1] + 0.0015 * rng.standard_normal()
    source = 230.0 * (1.02 - 0.006 * np.sin(2 * np.pi * (t - 8) / 24) + slow)
    hours = np.arange(n_h, dtype=np.float64) + 0.5
    area = np.interp(t, hours, load_kwh.sum(axis=1))
    own = np.stack([np.interp(t, hours, load_kwh[:, c]) for c in range(n_c)], axis=1)
    depth = np.asarray(rng.uniform(0.2, 1.0, n_c))  # along the cable
    true_v = source[:, None] - 0.3 * depth[None, :] * area[:, None] - 2.0 * own
    lag = np.zeros((n_h, n_c)) if lag_h is None else lag_h
    at = t[:, None] - np.repeat(lag, fine, axis=0)
    seen = np.stack([np.interp(at[:, c], t, true_v[:, c]) for c in range(n_c)], axis=1)
    seen += rng.normal(0.0, noise_v, seen.shape)
    return seen.reshape(n_h, fine, n_c).mean(axis=1).T
