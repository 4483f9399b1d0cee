"""True customer consumption: weather, daily load shapes by class, noise, vacancy.

Everything here is energy per simulation step [kWh] as it really flows, before any
theft, fault or metering effect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from loaders.synthetic._config import SyntheticGridConfig
from loaders.synthetic._layout import AGRICULTURAL, COMMERCIAL, INDUSTRIAL, RESIDENTIAL, Layout
from loaders.synthetic._time import TimeGrid

FloatArray = npt.NDArray[np.float64]

# A humid subtropical climate like the default Asia/Shanghai [deg C].
ANNUAL_MEAN_C = 16.5
ANNUAL_AMPLITUDE_C = 12.0
COLDEST_DAY_OF_YEAR = 20.0
DAILY_AMPLITUDE_C = 4.0
WARMEST_HOUR = 15.0
WEATHER_ANOMALY_SD_C = 3.0
HEATING_BELOW_C = 14.0
COOLING_ABOVE_C = 24.0

N_ARCHETYPES = 24
# (median mean-load [kW], lognormal sigma) per class; for pumps the rated power.
SCALE_KW = {
    RESIDENTIAL: (0.28, 0.6),
    COMMERCIAL: (2.5, 1.0),
    INDUSTRIAL: (12.0, 0.9),
    AGRICULTURAL: (7.5, 0.4),
}
DEDICATED_SCALE_KW = (250.0, 0.7)
# Per-reading multiplicative noise and day-to-day variation (lognormal sigmas).
STEP_NOISE = {RESIDENTIAL: 0.30, COMMERCIAL: 0.12, INDUSTRIAL: 0.10, AGRICULTURAL: 0.08}
DAY_NOISE = {RESIDENTIAL: 0.15, COMMERCIAL: 0.08, INDUSTRIAL: 0.12, AGRICULTURAL: 0.05}
DEDICATED_STEP_NOISE = 0.06
# Sensitivity to heating / cooling degrees [fraction of load per deg C], uniform ranges.
HEAT_SENS = {RESIDENTIAL: (0.0, 0.04), COMMERCIAL: (0.0, 0.02), INDUSTRIAL: (0.0, 0.01)}
COOL_SENS = {RESIDENTIAL: (0.02, 0.08), COMMERCIAL: (0.03, 0.06), INDUSTRIAL: (0.0, 0.02)}
# Share of pumping days by month (irrigation season in summer).
PUMP_DAY_PROBABILITY = np.array(
    [0.05, 0.05, 0.15, 0.30, 0.45, 0.50, 0.55, 0.55, 0.40, 0.25, 0.10, 0.05]
)


@dataclass(frozen=True)
class Consumption:
    energy_kwh: FloatArray  # (C, T) true energy per step [kWh]
    temperature_c: FloatArray  # (T,)
    mean_kw: FloatArray  # (C,) mean power over the period [kW]
    peak_kw: FloatArray  # (C,)
    vacant: npt.NDArray[np.bool_]  # (C,) had a vacancy spell
    three_phase: npt.NDArray[np.bool_]  # (C,)


def temperature(grid: TimeGrid, rng: np.random.Generator) -> FloatArray:
    """Regional air temperature per step [deg C]: season + daily cycle + smooth weather."""
    seasonal = ANNUAL_MEAN_C - ANNUAL_AMPLITUDE_C * np.cos(
        2 * np.pi * (grid.doy - COLDEST_DAY_OF_YEAR) / 365.25
    )
    daily = DAILY_AMPLITUDE_C * np.cos(2 * np.pi * (grid.tod_h - WARMEST_HOUR) / 24.0)
    # Weather fronts: a day-level AR(1) anomaly, interpolated to steps.
    n = grid.n_days + 12
    phi = 0.75
    white = rng.standard_normal(n) * WEATHER_ANOMALY_SD_C * np.sqrt(1 - phi**2)
    anomaly_days = lfilter([1.0], [1.0, -phi], white)[10:]
    t_days = (grid.step_start_ns - grid.t0_ns + grid.step_ns / 2) / 86_400e9
    anomaly = np.interp(t_days, np.arange(len(anomaly_days)) - 0.5, anomaly_days)
    result: FloatArray = seasonal + daily + anomaly
    return result


def _bump(t: FloatArray, mu: FloatArray, width: float | FloatArray) -> FloatArray:
    d = (t - mu + 12.0) % 24.0 - 12.0
    out: FloatArray = np.exp(-0.5 * (d / width) ** 2)
    return out


def _sigmoid(x: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return out


def _residential(
    rng: np.random.Generator, n: int
) -> Callable[[FloatArray, FloatArray], FloatArray]:
    p = {
        "m": rng.uniform(6.5, 8.5, n),
        "mshift": rng.uniform(0.5, 1.5, n),
        "mh": rng.uniform(0.4, 1.0, n),
        "e": rng.uniform(18.5, 21.5, n),
        "eh": rng.uniform(0.9, 2.0, n),
        "ew": rng.uniform(1.0, 2.0, n),
        "base": rng.uniform(0.25, 0.5, n),
        "mid": rng.uniform(0.0, 0.4, n),
        "midwk": rng.uniform(0.1, 0.4, n),
    }
    c = {k: v[:, None] for k, v in p.items()}

    def shape(tod: FloatArray, wk: FloatArray) -> FloatArray:
        morning = c["mh"] * _bump(tod, c["m"] + wk * c["mshift"], 0.8)
        midday = (c["mid"] + wk * c["midwk"]) * _bump(tod, np.asarray(13.0), 2.5)
        evening = c["eh"] * _bump(tod, c["e"], c["ew"])
        out: FloatArray = c["base"] + morning + midday + evening
        return out

    return shape


def _commercial(rng: np.random.Generator, n: int) -> Callable[[FloatArray, FloatArray], FloatArray]:
    c = {
        "o": rng.uniform(7.0, 10.0, n)[:, None],
        "c": rng.uniform(17.0, 23.0, n)[:, None],
        "base": rng.uniform(0.1, 0.3, n)[:, None],
        "wk": rng.uniform(0.3, 1.2, n)[:, None],  # offices close, shops open more
        "lunch": rng.uniform(0.0, 0.15, n)[:, None],
    }

    def shape(tod: FloatArray, wk: FloatArray) -> FloatArray:
        on = _sigmoid((tod - c["o"]) / 0.3) * _sigmoid((c["c"] - tod) / 0.3)
        act = 1.0 + wk * (c["wk"] - 1.0)
        out: FloatArray = c["base"] + (1 - c["base"]) * on * act * (
            1.0 + c["lunch"] * _bump(tod, np.asarray(12.5), 1.0)
        )
        return out

    return shape


def _industrial(rng: np.random.Generator, n: int) -> Callable[[FloatArray, FloatArray], FloatArray]:
    shifts = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    o = np.choose(shifts, [8.0, 6.0, -2.0]) + rng.uniform(-0.5, 0.5, n)
    cl = np.choose(shifts, [17.0, 22.0, 26.0]) + rng.uniform(-0.5, 0.5, n)
    c = {
        "o": o[:, None],
        "c": cl[:, None],
        "one": (shifts == 0)[:, None].astype(np.float64),
        "base": rng.uniform(0.05, 0.25, n)[:, None],
        "wk": rng.choice([0.1, 0.5, 1.0], size=n, p=[0.4, 0.3, 0.3])[:, None],
    }

    def shape(tod: FloatArray, wk: FloatArray) -> FloatArray:
        on = _sigmoid((tod - c["o"]) / 0.25) * _sigmoid((c["c"] - tod) / 0.25)
        lunch = 1.0 - 0.3 * c["one"] * _bump(tod, np.asarray(12.5), 0.4)
        act = 1.0 + wk * (c["wk"] - 1.0)
        out: FloatArray = c["base"] + (1 - c["base"]) * on * lunch * act
        return out

    return shape


def _archetype_table(
    factory: Callable[[np.random.Generator, int], Callable[[FloatArray, FloatArray], FloatArray]],
    rng: np.random.Generator,
    grid: TimeGrid,
) -> FloatArray:
    """Profiles (N_ARCHETYPES, T), each scaled to a weekday mean of 1."""
    shape = factory(rng, N_ARCHETYPES)
    ref_tod = (np.arange(96, dtype=np.float64) + 0.5) / 4.0
    ref = shape(ref_tod[None, :], np.zeros((1, 96)))
    wk = grid.weekend[grid.day].astype(np.float64)[None, :]
    table = shape(grid.tod_h[None, :], wk)
    out: FloatArray = table / ref.mean(axis=1, keepdims=True)
    return out


def _lognormal_scale(rng: np.random.Generator, median: float, sigma: float, n: int) -> FloatArray:
    out: FloatArray = median * np.exp(sigma * rng.standard_normal(n))
    return out


def make_consumption(
    cfg: SyntheticGridConfig, layout: Layout, grid: TimeGrid, rng: np.random.Generator
) -> Consumption:
    n_c, n_t = layout.n_customers, grid.n_steps
    temp = temperature(grid, rng)
    hdd = np.maximum(0.0, HEATING_BELOW_C - temp)
    cdd = np.maximum(0.0, temp - COOLING_ABOVE_C)
    cls = layout.cust_class
    ded = layout.cust_dedicated

    scale = np.empty(n_c)
    step_sigma = np.empty(n_c)
    day_sigma = np.empty(n_c)
    for k, (median, sigma) in SCALE_KW.items():
        rows = np.flatnonzero((cls == k) & ~ded)
        scale[rows] = _lognormal_scale(rng, median, sigma, len(rows))
        step_sigma[rows] = STEP_NOISE[k]
        day_sigma[rows] = DAY_NOISE[k]
    ded_rows = np.flatnonzero(ded)
    scale[ded_rows] = _lognormal_scale(rng, *DEDICATED_SCALE_KW, len(ded_rows))
    step_sigma[ded_rows] = DEDICATED_STEP_NOISE
    day_sigma[ded_rows] = DAY_NOISE[INDUSTRIAL]

    energy = np.empty((n_c, n_t), dtype=np.float64)
    factories = {RESIDENTIAL: _residential, COMMERCIAL: _commercial, INDUSTRIAL: _industrial}
    for k, factory in factories.items():
        rows = np.flatnonzero(cls == k)
        table = _archetype_table(factory, rng, grid)
        arch = rng.integers(0, N_ARCHETYPES, size=len(rows))
        heat = rng.uniform(*HEAT_SENS[k], size=len(rows))
        cool = rng.uniform(*COOL_SENS[k], size=len(rows))
        if len(rows) == 0:
            continue
        block = table[arch]
        block *= 1.0 + heat[:, None] * hdd[None, :] + cool[:, None] * cdd[None, :]
        energy[rows] = block

    agri = np.flatnonzero(cls == AGRICULTURAL)
    if len(agri):
        energy[agri] = _pumping(rng, grid, len(agri))

    # Day-to-day variation and per-step noise, both with mean 1.
    dayf = np.exp(
        day_sigma[:, None] * rng.standard_normal((n_c, grid.n_days)) - day_sigma[:, None] ** 2 / 2
    )
    energy *= dayf[:, grid.day]
    noise = rng.standard_normal((n_c, n_t), dtype=np.float32)
    sig = step_sigma.astype(np.float32)[:, None]
    noise *= sig
    noise -= sig * sig / 2
    np.exp(noise, out=noise)
    energy *= noise
    del noise
    energy *= (scale * grid.step_h)[:, None]

    # A vacant home keeps what runs with nobody in: fridge, freezer, standby, at
    # about its usual lowest level (its 10th percentile step here, 1.05-1.5 x), and
    # loses the shape of its days. Before session 16 the whole load was scaled by
    # 0.5-5 %, shape and all: the signature of a shunt bypass, which no empty house
    # shows (the CREST households of ``loaders.independent`` keep their cold
    # appliances when away).
    vacant = np.zeros(n_c, dtype=np.bool_)
    candidates = np.flatnonzero(~ded)
    n_vac = int(rng.binomial(len(candidates), cfg.vacancy_fraction)) if len(candidates) else 0
    steps_per_day = max(1, round(86_400e9 / grid.step_ns))
    for row in np.sort(rng.choice(candidates, size=n_vac, replace=False)) if n_vac else []:
        length = int(rng.uniform(2, 10) * steps_per_day)
        begin = int(rng.integers(-length // 2, n_t))
        lo, hi = max(0, begin), min(n_t, begin + length)
        kept_kwh = np.quantile(energy[row], 0.1) * (1.0 + 10.0 * rng.uniform(0.005, 0.05))
        np.minimum(energy[row, lo:hi], kept_kwh, out=energy[row, lo:hi])
        vacant[row] = hi > lo

    three_phase = (
        ded | (cls == INDUSTRIAL) | (cls == AGRICULTURAL) | ((cls == COMMERCIAL) & (scale > 5.0))
    )
    return Consumption(
        energy_kwh=energy,
        temperature_c=temp,
        mean_kw=energy.mean(axis=1) / grid.step_h,
        peak_kw=energy.max(axis=1) / grid.step_h,
        vacant=vacant,
        three_phase=three_phase,
    )


def _pumping(rng: np.random.Generator, grid: TimeGrid, n: int) -> FloatArray:
    """Irrigation pumps: on for a few hours on some days, more often in summer.

    Normalised so a pumping day at the default duty has mean ~1 of the rated power
    scaled by its duty; the rated power itself comes from the caller's scale.
    """
    p_day = PUMP_DAY_PROBABILITY[grid.month - 1][None, :] * rng.uniform(0.7, 1.3, n)[:, None]
    pumping = rng.random((n, grid.n_days)) < p_day
    duration = rng.uniform(2.0, 10.0, (n, grid.n_days))
    begin = rng.uniform(0.0, 1.0, (n, grid.n_days)) * (24.0 - duration)
    d = grid.day
    rel = grid.tod_h[None, :] - begin[:, d]
    on = pumping[:, d] & (rel >= 0) & (rel < duration[:, d])
    out: FloatArray = np.where(on, 1.0, 0.02)
    return out
