"""Injected ground truth: theft, meter faults, wrong customer-to-area mapping, events."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loaders.synthetic._config import SyntheticGridConfig
from loaders.synthetic._layout import Layout, _count_at_least_one
from loaders.synthetic._time import TimeGrid

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EVENTS: tuple[str, ...] = (
    "cover_open",
    "magnetic",
    "power_down",
    "voltage_loss",
    "phase_loss",
    "reverse_energy",
    "clock_error",
)
EVENT_CODE = {name: i for i, name in enumerate(EVENTS)}
LABELS: tuple[str, ...] = ("normal", "theft", "meter_fault", "topology_error")
NORMAL, THEFT, FAULT, TOPOLOGY = range(len(LABELS))
WRONG_MULTIPLIER_FACTORS = (2.0, 5.0, 10.0, 0.5)
CLOCK_ERROR_AFTER_MIN = 5.0
# The voltage a meter's element sees after the fault, as a share of the true one:
# one phase of a three-phase meter's three gone (the mean of its phase voltages, and
# the energy it records, at about 2/3), or the voltage link cut or loose (欠压法).
PHASE_LOSS_FACTOR = (0.62, 0.70)
VOLTAGE_LOSS_FACTOR = (0.05, 0.45)
THEFT_WEIGHT_CAP_KW = 20.0


@dataclass(frozen=True)
class Anomalies:
    label: IntArray  # (C,) index into LABELS
    kind: npt.NDArray[np.object_]  # (C,) "" for normal
    start_step: IntArray  # (C,) first affected step, -1 for normal
    recorded_area: IntArray  # (C,) area in the registry (-1 for dedicated)
    registry_multiplier: FloatArray  # (C,) multiplier in topology.csv
    zero_from_step: IntArray  # (C,) register reads 0.00 from this step, -1 never
    drift_start_step: IntArray  # (C,) clock drift begins, -1 never
    drift_min_per_day: FloatArray  # (C,) clock drift rate [min/day]
    metered_kwh: FloatArray  # (C, T) energy the meter registers [kWh, primary side]
    voltage_from_step: IntArray  # (C,) voltage_factor applies from here, -1 never
    voltage_factor: FloatArray  # (C,) share of its voltage the meter sees; 1 if sound
    stolen_kwh: FloatArray  # (C,) true minus billed over the period [kWh]
    event_row: IntArray  # customer rows of anomaly events
    event_step: IntArray
    event_code: IntArray


def _start_steps(
    grid: TimeGrid, cfg: SyntheticGridConfig, rng: np.random.Generator, n: int, day_aligned: bool
) -> IntArray:
    n_t = grid.n_steps
    warm = min(n_t - 1, math.ceil(cfg.warmup_fraction * n_t))
    if day_aligned:
        days = np.flatnonzero(grid.day_starts >= warm)
        if len(days):
            return grid.day_starts[rng.choice(days, size=n)].astype(np.int64)
    return rng.integers(warm, n_t, size=n).astype(np.int64)


def _attack(kind: str, x: FloatArray, grid: TimeGrid, rng: np.random.Generator) -> FloatArray:
    """The Jokar et al. (2016) false-data attacks on rows of per-step energies x."""
    n, n_t = x.shape
    d = grid.day
    if kind == "h1":
        return x * rng.uniform(0.1, 0.8, (n, grid.n_days))[:, d]
    if kind == "h2":
        dur = rng.uniform(3.0, 8.0, (n, grid.n_days))
        begin = rng.uniform(0.0, 1.0, (n, grid.n_days)) * (24.0 - dur)
        rel = grid.tod_h[None, :] - begin[:, d]
        return np.where((rel >= 0) & (rel < dur[:, d]), 0.0, x)
    if kind == "h3":
        return x * rng.uniform(0.1, 0.8, (n, n_t))
    lengths = (grid.day_ends - grid.day_starts).astype(np.float64)
    day_mean: FloatArray = np.asarray(np.add.reduceat(x, grid.day_starts, axis=1)) / lengths
    if kind == "h4":
        return day_mean[:, d] * rng.uniform(0.1, 0.8, (n, n_t))
    if kind == "h5":
        out: FloatArray = day_mean[:, d]
        return out
    if kind == "h6":
        rev = grid.day_starts[d] + grid.day_ends[d] - 1 - np.arange(n_t)
        reversed_x: FloatArray = x[:, rev]
        return reversed_x
    if kind == "bypass":
        return x * rng.uniform(0.0, 0.3, (n, 1))
    raise ValueError(f"unknown theft kind {kind!r}")


def inject(
    cfg: SyntheticGridConfig,
    layout: Layout,
    grid: TimeGrid,
    energy_kwh: FloatArray,
    true_multiplier: FloatArray,
    vacant: npt.NDArray[np.bool_],
    mean_kw: FloatArray,
    rng: np.random.Generator,
    event_rng: np.random.Generator,
) -> Anomalies:
    n_c, n_t = energy_kwh.shape
    label = np.zeros(n_c, dtype=np.int64)
    kind = np.full(n_c, "", dtype=object)
    start = np.full(n_c, -1, dtype=np.int64)
    recorded_area = layout.cust_area.copy()
    registry = true_multiplier.copy()
    zero_from = np.full(n_c, -1, dtype=np.int64)
    backwards = np.zeros(n_c, dtype=np.bool_)
    drift_start = np.full(n_c, -1, dtype=np.int64)
    drift_rate = np.zeros(n_c)
    volt_from = np.full(n_c, -1, dtype=np.int64)
    volt_factor = np.ones(n_c)
    metered = energy_kwh.copy()
    ev_row: list[IntArray] = []
    ev_step: list[IntArray] = []
    ev_code: list[IntArray] = []

    def add_events(rows: IntArray, steps: IntArray, codes: IntArray) -> None:
        keep = (steps >= 0) & (steps < n_t)
        ev_row.append(rows[keep])
        ev_step.append(steps[keep])
        ev_code.append(codes[keep])

    eligible = np.flatnonzero(~vacant)
    n_theft = min(len(eligible), _count_at_least_one(cfg.theft_fraction, n_c))
    n_fault = min(len(eligible) - n_theft, _count_at_least_one(cfg.fault_fraction, n_c))
    # Bigger consumers have more to gain: theft odds grow with sqrt(mean load), capped.
    weight = np.sqrt(np.clip(mean_kw[eligible], 0.05, THEFT_WEIGHT_CAP_KW))
    thieves = np.sort(
        rng.choice(eligible, size=n_theft, replace=False, p=weight / weight.sum())
        if n_theft
        else np.zeros(0, dtype=np.int64)
    )
    rest = rng.permutation(np.setdiff1d(eligible, thieves))

    # --- theft
    theft_kind = np.resize(rng.permutation(np.array(cfg.theft_kinds, dtype=object)), n_theft)
    label[thieves] = THEFT
    kind[thieves] = theft_kind
    for k in cfg.theft_kinds:
        rows = thieves[theft_kind == k]
        if not len(rows):
            continue
        s = _start_steps(grid, cfg, rng, len(rows), day_aligned=k != "bypass")
        if cfg.theft_before_start_fraction > 0:
            s[rng.random(len(rows)) < cfg.theft_before_start_fraction] = 0
        start[rows] = s
        x = energy_kwh[rows]
        attacked = _attack(k, x, grid, rng)
        metered[rows] = np.where(np.arange(n_t)[None, :] >= s[:, None], attacked, x)
    if n_theft:
        raise_ev = event_rng.random(n_theft) < cfg.theft_event_probability
        rows = thieves[raise_ev]
        counts = 1 + event_rng.poisson(0.5, len(rows))
        rows = np.repeat(rows, counts)
        span = max(1, round(2 * 86_400e9 / grid.step_ns))
        steps = start[rows] + event_rng.integers(0, span, len(rows))
        codes = np.where(
            event_rng.random(len(rows)) < 0.6, EVENT_CODE["cover_open"], EVENT_CODE["magnetic"]
        )
        add_events(rows, steps, codes.astype(np.int64))

    # --- meter faults; wrong multipliers go to CT-metered customers first
    fault_kind = np.resize(rng.permutation(np.array(cfg.fault_kinds, dtype=object)), n_fault)
    n_wm = int(np.count_nonzero(fault_kind == "wrong_multiplier"))
    ct_first = rest[true_multiplier[rest] > 1][:n_wm]
    others = rest[~np.isin(rest, ct_first)]
    wm_rows = np.concatenate([ct_first, others[: n_wm - len(ct_first)]])
    others = others[n_wm - len(ct_first) :]
    plain_rows = others[: n_fault - n_wm]
    others = others[n_fault - n_wm :]
    faulty = np.concatenate([wm_rows, plain_rows]).astype(np.int64)
    kinds_in_order = np.concatenate(
        [
            np.full(len(wm_rows), "wrong_multiplier", dtype=object),
            fault_kind[fault_kind != "wrong_multiplier"],
        ]
    )
    label[faulty] = FAULT
    kind[faulty] = kinds_in_order
    daily_kwh = energy_kwh.sum(axis=1) / grid.n_days
    for k in cfg.fault_kinds:
        rows = np.sort(faulty[kinds_in_order == k])
        if not len(rows):
            continue
        if k == "wrong_multiplier":
            start[rows] = 0
            factors = np.where(
                true_multiplier[rows] > 1,
                rng.choice(WRONG_MULTIPLIER_FACTORS, size=len(rows)),
                rng.choice(WRONG_MULTIPLIER_FACTORS[:-1], size=len(rows)),
            )
            registry[rows] = true_multiplier[rows] * factors
            continue
        s = _start_steps(grid, cfg, rng, len(rows), day_aligned=False)
        start[rows] = s
        after = np.arange(n_t)[None, :] >= s[:, None]
        fire = event_rng.random(len(rows)) < cfg.fault_event_probability
        if k in ("stuck", "zero"):
            metered[rows] = np.where(after, 0.0, metered[rows])
            if k == "zero":
                zero_from[rows] = s
            code = EVENT_CODE["voltage_loss" if k == "stuck" else "power_down"]
            add_events(rows[fire], s[fire], np.full(int(fire.sum()), code, dtype=np.int64))
        elif k == "step_back":
            jump = np.maximum(1.0, daily_kwh[rows] * rng.uniform(0.5, 3.0, len(rows)))
            metered[rows, s] -= jump
            code = EVENT_CODE["power_down"]
            add_events(rows[fire], s[fire], np.full(int(fire.sum()), code, dtype=np.int64))
        elif k == "register_jump":
            # A sudden constant offset on the register (a corrupted reading, a
            # replacement filed from a wrong start value): billed, never supplied.
            jump = np.maximum(20.0, daily_kwh[rows] * rng.uniform(10.0, 100.0, len(rows)))
            metered[rows, s] += jump
        elif k == "reverse_energy":
            # Current through the meter the wrong way round (wired back to front):
            # the register runs backwards by what the customer uses.
            backwards[rows] = True
            metered[rows] = np.where(after, -metered[rows], metered[rows])
            add_events(rows[fire], s[fire], np.full(int(fire.sum()), EVENT_CODE[k], dtype=np.int64))
        elif k in ("voltage_loss", "phase_loss"):
            lo, hi = PHASE_LOSS_FACTOR if k == "phase_loss" else VOLTAGE_LOSS_FACTOR
            factor = rng.uniform(lo, hi, len(rows))
            volt_from[rows] = s
            volt_factor[rows] = factor
            metered[rows] = np.where(after, metered[rows] * factor[:, None], metered[rows])
            add_events(rows[fire], s[fire], np.full(int(fire.sum()), EVENT_CODE[k], dtype=np.int64))
        elif k == "clock_drift":
            rate = rng.uniform(2.0, 15.0, len(rows)) * rng.choice([-1.0, 1.0], len(rows))
            drift_start[rows] = s
            drift_rate[rows] = rate
            per_step_min = np.abs(rate) * grid.step_h / 24.0
            ev = s + np.ceil(CLOCK_ERROR_AFTER_MIN / per_step_min).astype(np.int64)
            add_events(rows[fire], ev[fire], np.full(int(fire.sum()), EVENT_CODE["clock_error"]))

    # --- customers recorded under the wrong area (mostly another area of the same feeder)
    lv_left = others[layout.cust_area[others] >= 0]
    n_topo = (
        min(len(lv_left), _count_at_least_one(cfg.topology_error_fraction, n_c))
        if layout.n_areas > 1
        else 0
    )
    mis = np.sort(lv_left[:n_topo])
    for row in mis:
        true_a = int(layout.cust_area[row])
        same = np.flatnonzero(
            (layout.area_feeder == layout.area_feeder[true_a])
            & (np.arange(layout.n_areas) != true_a)
        )
        anywhere = np.flatnonzero(np.arange(layout.n_areas) != true_a)
        pool = same if len(same) and rng.random() < 0.85 else anywhere
        recorded_area[row] = int(rng.choice(pool))
    label[mis] = TOPOLOGY
    kind[mis] = "wrong_area"
    start[mis] = 0

    # A register running backwards bills nothing (a step back counts zero).
    billed = np.where(backwards[:, None], np.maximum(metered, 0.0), metered).sum(axis=1)
    billed *= registry / true_multiplier
    stolen = np.where(label == THEFT, 1.0, 0.0) + np.where(label == FAULT, 1.0, 0.0)
    stolen = stolen * (energy_kwh.sum(axis=1) - billed)

    def cat(parts: list[IntArray]) -> IntArray:
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

    return Anomalies(
        label=label,
        kind=kind,
        start_step=start,
        recorded_area=recorded_area,
        registry_multiplier=registry,
        zero_from_step=zero_from,
        drift_start_step=drift_start,
        drift_min_per_day=drift_rate,
        metered_kwh=metered,
        voltage_from_step=volt_from,
        voltage_factor=volt_factor,
        stolen_kwh=stolen,
        event_row=cat(ev_row),
        event_step=cat(ev_step),
        event_code=cat(ev_code),
    )
