"""An independent test grid in the replay data contract: others' demand model, AC physics.

``generate_independent`` builds feeders of published LV networks (``_network``), fills
every house with a CREST household (``_households``), lets some customers steal, some
meters fail and some registry entries point at the wrong area (``_anomalies``), solves
the AC power flow of every 15-minute step, and writes what the meters would have
registered: customer, area and feeder registers (with CT multipliers, register
resolution, lost readings and concentrator outages) and house voltages.

It exists to check the detectors on data whose shapes and physics nobody on this team
chose (``benchmarks/bench_independent.py``, docs/detection.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from loaders.independent import _simbench as simbench
from loaders.independent._anomalies import (
    STEPS_PER_DAY,
    Case,
    draw_cases,
    metered_kwh,
    register_kwh,
    steps_from_minutes,
    voltage_at_meter_clock,
)
from loaders.independent._households import Household, draw_households, household_power_w
from loaders.independent._network import (
    AreaNetwork,
    area_network,
    feeder_network,
    simulate_feeder,
)

FloatArray = npt.NDArray[np.float64]
Progress = Callable[[str], None]

DEFAULT_FEEDERS: tuple[tuple[str, ...], ...] = (
    ("kerber_dorfnetz", "kerber_vorstadtnetz_kabel_1", "kb_extrem_dorfnetz_trafo"),
    ("kerber_vorstadtnetz_kabel_2", "kb_extrem_vorstadtnetz_trafo_1", "kb_extrem_landnetz_kabel"),
)
_STEP_S = 900
_PHASE_V = 230.0


@dataclass(frozen=True)
class IndependentGridConfig:
    """What shapes an independent grid; the same config always gives the same files."""

    seed: int = 11
    feeders: tuple[tuple[str, ...], ...] = DEFAULT_FEEDERS  # area network names per feeder
    start: str = "2026-03-02"  # local midnight of the first day
    days: int = 28
    tz: str = "Asia/Shanghai"
    median_annual_kwh: float = 2200.0
    away_fraction: float = 0.08  # households away (honest vacancy) for 3-14 days
    ct_fraction: float = 0.04  # shops and workshops behind a CT (multiplier 10-30)
    theft_fraction: float = 0.03
    fault_fraction: float = 0.01
    topology_error_fraction: float = 0.01
    missing_fraction: float = 0.01  # customer readings lost at random
    outage_per_area_day: float = 0.03  # chance of a 1-6 h concentrator outage
    voltage_noise_v: float = 0.5
    workers: int = 1  # processes for the household model (the slow part)
    # Household demand: "crest" (the CREST model, minute by minute) or "simbench"
    # (SimBench's measured 15-minute profiles; each house of a SimBench area keeps the
    # profile its grid names, others draw a household profile), each customer's curve
    # moved by up to ``simbench_shift_min`` minutes and taken from a week up to
    # ``simbench_offset_weeks`` away (both 0: shared as published; ``_simbench``).
    demand: str = "crest"
    simbench_shift_min: int = 120
    simbench_offset_weeks: int = 0

    def __post_init__(self) -> None:
        if self.days < 2:
            raise ValueError("days must be at least 2")
        if self.demand not in ("crest", "simbench"):
            raise ValueError(f"demand is 'crest' or 'simbench', not {self.demand!r}")
        if not self.feeders or not all(self.feeders):
            raise ValueError("every feeder needs at least one area")


def _profile(args: tuple[Household, int, int, int, int]) -> npt.NDArray[np.float32]:
    household, days, doy, weekday, seed = args
    return household_power_w(household, days, doy, weekday, seed).astype(np.float32)


def _source_voltage_pu(rng: np.random.Generator, n_t: int) -> FloatArray:
    """Substation MV busbar: a tap-changer setpoint with a daily swing and slow noise."""
    hour = (np.arange(n_t) % STEPS_PER_DAY) / 4.0
    noise = np.zeros(n_t)
    for t in range(1, n_t):
        noise[t] = 0.97 * noise[t - 1] + 0.0015 * rng.standard_normal()
    out: FloatArray = np.clip(
        1.02 - 0.006 * np.sin(2 * np.pi * (hour - 8) / 24) + noise, 0.97, 1.06
    )
    return out


def _floor(x: FloatArray, decimals: int) -> FloatArray:
    """Registers show whole digits: truncate, never round up energy not yet used."""
    scale = 10.0**decimals
    out: FloatArray = np.floor(x * scale + 1e-9) / scale
    return out


def _ct_ratio(peak_kw: float) -> float:
    """Smallest standard CT (primary / 5 A) for a peak load on a 0.4 kV three-phase meter."""
    amps = 1000.0 * peak_kw / (math.sqrt(3) * 400.0)
    for primary in (50, 75, 100, 150, 200, 300, 400, 600, 800, 1000, 1500, 2000):
        if primary >= amps:
            return primary / 5.0
    return 2000 / 5.0


@dataclass(frozen=True)
class _Grid:
    area_ids: list[str]
    area_feeder: npt.NDArray[np.int64]
    feeder_ids: list[str]
    networks: list[AreaNetwork]
    customer_area: npt.NDArray[np.int64]
    customer_ids: list[str]


def _layout(cfg: IndependentGridConfig, rng: np.random.Generator) -> _Grid:
    area_ids, area_feeder, feeder_ids, networks = [], [], [], []
    for f, names in enumerate(cfg.feeders):
        feeder_ids.append(f"FD{f + 1:02d}")
        for i, name in enumerate(names):
            area_ids.append(f"FD{f + 1:02d}-TA{i + 1:02d}")
            area_feeder.append(f)
            networks.append(area_network(name))
    customer_area = np.concatenate(
        [np.full(a.n_customers, i, dtype=np.int64) for i, a in enumerate(networks)]
    )
    numbers = rng.choice(90_000_000, size=len(customer_area), replace=False) + 10_000_000
    return _Grid(
        area_ids,
        np.asarray(area_feeder, dtype=np.int64),
        feeder_ids,
        networks,
        customer_area,
        [f"C{n}" for n in numbers],
    )


def generate_independent(
    cfg: IndependentGridConfig, out_dir: Path, progress: Progress | None = None
) -> dict[str, object]:
    """Write the data contract (topology, readings, labels) plus ground truth to
    ``out_dir``; returns the summary also written to ``summary.json``."""
    say = progress or (lambda _msg: None)
    rng = np.random.default_rng(cfg.seed)
    grid = _layout(cfg, rng)
    n_c = len(grid.customer_ids)
    n_t = cfg.days * STEPS_PER_DAY
    start = pd.Timestamp(cfg.start, tz=cfg.tz)
    if start != start.normalize():
        raise ValueError("start must be a local midnight")

    households = draw_households(rng, n_c, cfg.days, cfg.away_fraction, cfg.median_annual_kwh)
    jobs = [
        (h, cfg.days, start.dayofyear - 1, start.isoweekday(), cfg.seed * 1_000_003 + i)
        for i, h in enumerate(households)
    ]
    if cfg.demand == "simbench":
        say(f"customer demand (SimBench profiles): {n_c} customers x {cfg.days} days")
        minute_w = _simbench_demand(cfg, grid, households, start)
    else:
        say(f"household demand (CREST model): {n_c} households x {cfg.days} days")
        minute_w = np.empty((n_c, cfg.days * 1440), dtype=np.float32)
        if cfg.workers > 1:
            with ProcessPoolExecutor(cfg.workers) as pool:
                for i, row in enumerate(pool.map(_profile, jobs, chunksize=4)):
                    minute_w[i] = row
        else:
            for i, job in enumerate(jobs):
                minute_w[i] = _profile(job)
    # Shops and workshops behind a CT: the same model, scaled up.
    is_ct = rng.random(n_c) < cfg.ct_fraction
    scale = np.where(is_ct, rng.uniform(4.0, 10.0, n_c), 1.0)
    minute_w *= scale[:, None].astype(np.float32)
    ct_mult = np.array(
        [_ct_ratio(float(minute_w[i].max()) / 1000.0) if is_ct[i] else 1.0 for i in range(n_c)]
    )

    cases = draw_cases(
        rng,
        grid.customer_area,
        grid.area_feeder,
        ct_mult,
        n_t,
        cfg.theft_fraction,
        cfg.fault_fraction,
        cfg.topology_error_fraction,
    )
    true_kwh = steps_from_minutes(minute_w.astype(np.float64))
    metered = np.stack(
        [metered_kwh(cases[i], minute_w[i].astype(np.float64), rng) for i in range(n_c)]
    )
    del minute_w

    # AC power flow, feeder by feeder, at each step's mean powers.
    power_factor = rng.uniform(0.92, 0.99, n_c)
    p_w = true_kwh * (3_600_000.0 / _STEP_S)
    q_var = p_w * np.tan(np.arccos(power_factor))[:, None]
    source_pu = _source_voltage_pu(rng, n_t)
    area_kwh = np.zeros((len(grid.area_ids), n_t))
    feeder_kwh = np.zeros((len(grid.feeder_ids), n_t))
    voltage_v = np.zeros((n_c, n_t))
    for f, fid in enumerate(grid.feeder_ids):
        idx = np.flatnonzero(grid.area_feeder == f)
        rows = [np.flatnonzero(grid.customer_area == a) for a in idx]
        say(f"power flow {fid}: {len(idx)} areas, {n_t} steps")
        flows = simulate_feeder(
            [grid.networks[a] for a in idx],
            feeder_network(rng.uniform(0.5, 3.0, len(idx))),
            [p_w[r] for r in rows],
            [q_var[r] for r in rows],
            source_pu,
            progress=_day_counter(say, fid),
        )
        area_kwh[idx] = flows.area_p_w * (_STEP_S / 3_600_000.0)
        feeder_kwh[f] = flows.head_p_w * (_STEP_S / 3_600_000.0)
        for k, r in enumerate(rows):
            voltage_v[r] = _PHASE_V * flows.house_voltage_pu[k]

    say("registers and files")
    out_dir.mkdir(parents=True, exist_ok=True)
    readings = _readings(cfg, grid, cases, metered, ct_mult, voltage_v, area_kwh, feeder_kwh, rng)
    readings.to_csv(out_dir / "readings.csv", index=False, float_format="%.4f")
    _topology(grid, cases, ct_mult, area_kwh).to_csv(out_dir / "topology.csv", index=False)
    _labels(cfg, grid, cases, households, true_kwh, metered).to_csv(
        out_dir / "labels.csv", index=False
    )
    truth = _truth_areas(grid, cases, true_kwh, area_kwh, feeder_kwh)
    truth.to_csv(out_dir / "truth_areas.csv", index=False)
    summary: dict[str, object] = {
        "generator": "loaders.independent: "
        + (
            "SimBench load profiles"
            if cfg.demand == "simbench"
            else "CREST households (richardsonpy)"
        )
        + ", pandapower AC power flow",
        "config": asdict(cfg),
        "customers": n_c,
        "areas": len(grid.area_ids),
        "readings": len(readings),
        "labels": pd.Series([c.label for c in cases]).value_counts().to_dict(),
        "area_technical_loss_rate": dict(
            zip(truth["area_id"], truth["technical_loss_rate"].round(4), strict=True)
        ),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _simbench_demand(
    cfg: IndependentGridConfig,
    grid: _Grid,
    households: list[Household],
    start: pd.Timestamp,
) -> npt.NDArray[np.float32]:
    """Minute demand [W] from SimBench's profiles: a SimBench area's houses keep the
    profile their grid names; a house of another network draws a household profile.
    Its own generator, so the grid's other draws do not depend on this choice."""
    rng = np.random.default_rng([cfg.seed, 2016])
    first_day = simbench.first_profile_day(start, cfg.days)
    out = np.empty((len(households), cfg.days * 1440), dtype=np.float32)
    i = 0
    for network in grid.networks:
        names = network.load_profiles or tuple(
            rng.choice(simbench.HOUSEHOLD_PROFILES, size=network.n_customers)
        )
        for profile in names:
            home = households[i]
            out[i] = simbench.customer_power_w(
                profile,
                home.annual_kwh,
                cfg.days,
                first_day,
                cfg.simbench_offset_weeks,
                home.away_days,
                rng,
                cfg.simbench_shift_min,
            )
            i += 1
    return out


def _day_counter(say: Progress, name: str) -> Callable[[int, int], None]:
    def report(done_steps: int, n_steps: int) -> None:
        say(f"  {name}: day {done_steps // STEPS_PER_DAY} of {n_steps // STEPS_PER_DAY}")

    return report


def _iso(start: pd.Timestamp, n_t: int) -> npt.NDArray[np.object_]:
    """Reading times: the period start (anchor) and the end of every step."""
    times = start + pd.to_timedelta(np.arange(n_t + 1) * _STEP_S, unit="s")
    return np.asarray(
        times.strftime("%Y-%m-%dT%H:%M:%S%z").str.replace(
            r"([+-]\d\d)(\d\d)$", r"\1:\2", regex=True
        ),
        dtype=object,
    )


def _readings(
    cfg: IndependentGridConfig,
    grid: _Grid,
    cases: list[Case],
    metered: FloatArray,
    ct_mult: FloatArray,
    voltage_v: FloatArray,
    area_kwh: FloatArray,
    feeder_kwh: FloatArray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    n_c, n_t = metered.shape
    ts = _iso(pd.Timestamp(cfg.start, tz=cfg.tz), n_t)
    start_kwh = np.asarray(rng.uniform(100.0, 30_000.0, size=n_c), dtype=np.float64)
    reg = np.empty((n_c, n_t + 1))
    for i in range(n_c):
        series = register_kwh(cases[i], metered[i], float(start_kwh[i]), float(ct_mult[i]))
        reg[i] = np.concatenate([[start_kwh[i]], series])
    reg = _floor(reg, 2)
    keep = rng.random((n_c, n_t + 1)) >= cfg.missing_fraction
    # Concentrator outages: every customer of an area silent for 1-6 hours.
    for a in range(len(grid.area_ids)):
        rows = np.flatnonzero(grid.customer_area == a)
        for d in range(cfg.days):
            if rng.random() < cfg.outage_per_area_day:
                length = int(rng.integers(4, 25))
                first = d * STEPS_PER_DAY + int(rng.integers(0, STEPS_PER_DAY - length))
                keep[np.ix_(rows, np.arange(first + 1, first + 1 + length))] = False
    keep[:, 0] = True  # the anchor reading at the start
    recorded_v = np.stack([voltage_at_meter_clock(cases[i], voltage_v[i]) for i in range(n_c)])
    volts = np.round(recorded_v + rng.normal(0.0, cfg.voltage_noise_v, voltage_v.shape), 1)
    volts = np.concatenate([np.full((n_c, 1), np.nan), volts], axis=1)
    r, c = np.nonzero(keep)
    customers = pd.DataFrame(
        {
            "meter_id": np.asarray(grid.customer_ids, dtype=object)[r],
            "ts": ts[c],
            "register_kwh": reg[r, c],
            "voltage_v": volts[r, c],
        }
    )
    frames = [customers]
    for ids, energy, mult in (
        ([f"M-{a}" for a in grid.area_ids], area_kwh, _area_multipliers(area_kwh)),
        ([f"M-{f}" for f in grid.feeder_ids], feeder_kwh, np.full(len(grid.feeder_ids), 6000.0)),
    ):
        start = rng.uniform(100.0, 5_000.0, len(ids))
        registers = _floor(
            np.concatenate(
                [start[:, None], start[:, None] + np.cumsum(energy, axis=1) / mult[:, None]], axis=1
            ),
            4,
        )
        frames.append(
            pd.DataFrame(
                {
                    "meter_id": np.repeat(np.asarray(ids, dtype=object), n_t + 1),
                    "ts": np.tile(ts, len(ids)),
                    "register_kwh": registers.ravel(),
                    "voltage_v": np.nan,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["ts", "meter_id"], kind="stable", ignore_index=True)


def _area_multipliers(area_kwh: FloatArray) -> FloatArray:
    peak_kw = area_kwh.max(axis=1) * (3_600_000.0 / _STEP_S) / 1000.0
    return np.array([_ct_ratio(1.5 * p) for p in peak_kw])


def _topology(
    grid: _Grid, cases: list[Case], ct_mult: FloatArray, area_kwh: FloatArray
) -> pd.DataFrame:
    rows = []
    for i, mid in enumerate(grid.customer_ids):
        case = cases[i]
        area = case.recorded_area if case.recorded_area >= 0 else int(grid.customer_area[i])
        mult = case.registry_multiplier if case.registry_multiplier > 0 else float(ct_mult[i])
        rows.append(
            {
                "meter_id": mid,
                "role": "customer",
                "area_id": grid.area_ids[area],
                "feeder_id": grid.feeder_ids[int(grid.area_feeder[area])],
                "multiplier": mult,
                "customer_class": "commercial" if ct_mult[i] > 1 else "residential",
            }
        )
    for a, (aid, mult) in enumerate(zip(grid.area_ids, _area_multipliers(area_kwh), strict=True)):
        rows.append(
            {
                "meter_id": f"M-{aid}",
                "role": "area",
                "area_id": aid,
                "feeder_id": grid.feeder_ids[int(grid.area_feeder[a])],
                "multiplier": mult,
                "customer_class": "",
                "name": f"{aid} ({grid.networks[a].name}, "
                f"{grid.networks[a].transformer.sn_kva:.0f} kVA)",
            }
        )
    for fid in grid.feeder_ids:
        rows.append(
            {
                "meter_id": f"M-{fid}",
                "role": "feeder",
                "area_id": "",
                "feeder_id": fid,
                "multiplier": 6000.0,
                "customer_class": "",
                "substation_id": "SS01",  # the feeders of one substation
                "name": f"10 kV feeder {fid}",
            }
        )
    return pd.DataFrame(rows)


def _labels(
    cfg: IndependentGridConfig,
    grid: _Grid,
    cases: list[Case],
    households: list[Household],
    true_kwh: FloatArray,
    metered: FloatArray,
) -> pd.DataFrame:
    """labels.csv; an honest household away for some days is ``normal`` of kind
    ``away`` (the vacancy a drop detector must not call theft)."""
    start = pd.Timestamp(cfg.start, tz=cfg.tz)
    rows = []
    for i, case in enumerate(cases):
        true_area = grid.area_ids[int(grid.customer_area[i])]
        recorded = grid.area_ids[case.recorded_area] if case.recorded_area >= 0 else true_area
        rows.append(
            {
                "meter_id": grid.customer_ids[i],
                "label": case.label,
                "start": (start + pd.Timedelta(seconds=case.start_step * _STEP_S)).isoformat()
                if case.label != "normal"
                else "",
                "kind": case.kind or ("away" if households[i].away_days else ""),
                "true_area_id": true_area,
                "recorded_area_id": recorded,
                "stolen_kwh": round(float(true_kwh[i].sum() - metered[i].sum()), 3)
                if case.label == "theft"
                else 0.0,
            }
        )
    return pd.DataFrame(rows)


def _truth_areas(
    grid: _Grid,
    cases: list[Case],
    true_kwh: FloatArray,
    area_kwh: FloatArray,
    feeder_kwh: FloatArray,
) -> pd.DataFrame:
    """Per area: energy at its meter, the houses' true demand, and the physics' loss."""
    rows = []
    for a, aid in enumerate(grid.area_ids):
        members = grid.customer_area == a
        demand = float(true_kwh[members].sum())
        supplied = float(area_kwh[a].sum())
        rows.append(
            {
                "area_id": aid,
                "network": grid.networks[a].name,
                "customers": int(members.sum()),
                "supplied_kwh": round(supplied, 3),
                "true_demand_kwh": round(demand, 3),
                "technical_loss_kwh": round(supplied - demand, 3),
                "technical_loss_rate": (supplied - demand) / supplied if supplied > 0 else 0.0,
                "thieves": int(
                    sum(1 for i in np.flatnonzero(members) if cases[i].label == "theft")
                ),
            }
        )
    for f, fid in enumerate(grid.feeder_ids):
        below = float(area_kwh[grid.area_feeder == f].sum())
        supplied = float(feeder_kwh[f].sum())
        rows.append(
            {
                "area_id": fid,
                "network": "10 kV feeder (transformers + MV cable)",
                "customers": 0,
                "supplied_kwh": round(supplied, 3),
                "true_demand_kwh": round(below, 3),
                "technical_loss_kwh": round(supplied - below, 3),
                "technical_loss_rate": (supplied - below) / supplied if supplied > 0 else 0.0,
                "thieves": 0,
            }
        )
    return pd.DataFrame(rows)
