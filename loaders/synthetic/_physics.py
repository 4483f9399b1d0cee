"""Physics of the network: multipliers, technical losses, area and feeder supply, voltages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from loaders.synthetic._config import SyntheticGridConfig
from loaders.synthetic._layout import Layout
from loaders.synthetic._load import Consumption
from loaders.synthetic._time import TimeGrid

FloatArray = npt.NDArray[np.float64]

STANDARD_KVA = np.array(
    [
        30,
        50,
        63,
        80,
        100,
        125,
        160,
        200,
        250,
        315,
        400,
        500,
        630,
        800,
        1000,
        1250,
        1600,
        2000,
        2500,
    ],
    dtype=np.float64,
)
AREA_CT_RATIOS = np.array([40, 60, 80, 100, 150, 200], dtype=np.float64)
LV_CT_RATIOS = np.array([20, 30, 40, 50, 60, 80, 100, 150, 200], dtype=np.float64)
HV_CT_RATIOS = np.array([2, 3, 4, 6, 8, 10, 15, 20, 30, 40, 60, 80], dtype=np.float64)
FEEDER_CT_RATIOS = np.array([20, 30, 40, 60, 80, 100, 120, 160, 200, 300], dtype=np.float64)
PT_RATIO_10KV = 100.0  # 10 kV / 100 V
LV_VOLTS = 380.0
HV_VOLTS = 10_000.0
POWER_FACTOR = 0.9
DIRECT_METER_MAX_KW = 40.0  # above this an LV customer is metered through CTs
SECONDARY_PHASE_V = 231.0  # no-load LV phase voltage of a 10/0.4 kV transformer


def _pick(choices: FloatArray, needed: FloatArray) -> FloatArray:
    """Smallest standard value >= needed (the largest one when none is big enough)."""
    i = np.minimum(np.searchsorted(choices, needed, side="left"), len(choices) - 1)
    out: FloatArray = choices[i]
    return out


def _ct_ratio(choices: FloatArray, peak_kw: FloatArray, volts: float) -> FloatArray:
    current_a = peak_kw * 1000.0 / (np.sqrt(3.0) * volts * POWER_FACTOR)
    return _pick(choices, 1.2 * current_a / 5.0)


def customer_multipliers(layout: Layout, cons: Consumption) -> FloatArray:
    """True field multiplier of each customer meter (CT x PT ratio) [-]."""
    mult = np.ones(layout.n_customers)
    lv_ct = ~layout.cust_dedicated & (cons.peak_kw > DIRECT_METER_MAX_KW)
    mult[lv_ct] = _ct_ratio(LV_CT_RATIOS, cons.peak_kw[lv_ct], LV_VOLTS)
    ded = layout.cust_dedicated
    mult[ded] = _ct_ratio(HV_CT_RATIOS, cons.peak_kw[ded], HV_VOLTS) * PT_RATIO_10KV
    return mult


@dataclass(frozen=True)
class NetworkPhysics:
    area_load_kwh: FloatArray  # (A, T) true customer consumption of each area
    area_loss_kwh: FloatArray  # (A, T) technical loss
    area_supply_kwh: FloatArray  # (A, T) energy through the area meter point
    area_kva: FloatArray  # (A,) transformer rating
    area_no_load_kw: FloatArray  # (A,)
    area_loss_rate: FloatArray  # (A,) technical loss / supply over the period
    area_multiplier: FloatArray  # (A,)
    feeder_supply_kwh: FloatArray  # (F, T) energy through the feeder head meter
    feeder_loss_kwh: FloatArray  # (F, T) 10 kV line loss
    feeder_loss_rate: FloatArray  # (F,)
    feeder_multiplier: FloatArray  # (F,)


def network_physics(
    cfg: SyntheticGridConfig,
    layout: Layout,
    grid: TimeGrid,
    energy_kwh: FloatArray,
    rng: np.random.Generator,
) -> NetworkPhysics:
    """Technical losses calibrated per area and per feeder, and the supply they add up to.

    Area loss = no-load part (constant kW) + load part k * P^2; k is chosen so the
    area's period loss rate equals a target drawn from ``technical_loss_range``.
    """
    dt_h = grid.step_h
    hours = grid.n_steps * dt_h
    n_lv = layout.n_lv
    load = np.add.reduceat(energy_kwh[:n_lv], layout.area_first_customer, axis=0)
    p_kw = load / dt_h
    peak_kw = p_kw.max(axis=1)
    loading = rng.uniform(0.35, 0.8, layout.n_areas)
    kva = _pick(STANDARD_KVA, peak_kw / POWER_FACTOR / loading)
    rate = rng.uniform(*cfg.technical_loss_range, size=layout.n_areas)
    total_load = load.sum(axis=1)
    total_loss = rate / (1.0 - rate) * total_load
    no_load_kw = rng.uniform(0.001, 0.003, layout.n_areas) * kva
    # Lightly loaded areas: keep the fixed part below 60 % of the target loss.
    no_load_kw = np.minimum(no_load_kw, 0.6 * total_loss / hours)
    quad = (p_kw**2).sum(axis=1) * dt_h
    k = np.where(quad > 0, (total_loss - no_load_kw * hours) / np.where(quad > 0, quad, 1), 0.0)
    loss = no_load_kw[:, None] * dt_h + k[:, None] * p_kw**2 * dt_h
    supply = load + loss
    area_mult = _ct_ratio(AREA_CT_RATIOS, kva * POWER_FACTOR, LV_VOLTS)

    n_f = layout.n_feeders
    area_onehot = np.zeros((n_f, layout.n_areas))
    area_onehot[layout.area_feeder, np.arange(layout.n_areas)] = 1.0
    ded_rows = np.flatnonzero(layout.cust_dedicated)
    ded_onehot = np.zeros((n_f, len(ded_rows)))
    ded_onehot[layout.cust_feeder[ded_rows], np.arange(len(ded_rows))] = 1.0
    feeder_load = area_onehot @ supply + ded_onehot @ energy_kwh[ded_rows]
    pf_kw = feeder_load / dt_h
    f_rate = rng.uniform(*cfg.feeder_loss_range, size=n_f)
    f_quad = (pf_kw**2).sum(axis=1) * dt_h
    f_k = np.where(
        f_quad > 0,
        f_rate / (1 - f_rate) * feeder_load.sum(axis=1) / np.where(f_quad > 0, f_quad, 1),
        0,
    )
    f_loss = f_k[:, None] * pf_kw**2 * dt_h
    f_supply = feeder_load + f_loss
    f_mult = _ct_ratio(FEEDER_CT_RATIOS, pf_kw.max(axis=1), HV_VOLTS) * PT_RATIO_10KV
    with np.errstate(invalid="ignore", divide="ignore"):
        area_rate = np.where(supply.sum(1) > 0, loss.sum(1) / supply.sum(1), 0.0)
        feeder_rate = np.where(f_supply.sum(1) > 0, f_loss.sum(1) / f_supply.sum(1), 0.0)
    return NetworkPhysics(
        area_load_kwh=load,
        area_loss_kwh=loss,
        area_supply_kwh=supply,
        area_kva=kva,
        area_no_load_kw=no_load_kw,
        area_loss_rate=area_rate,
        area_multiplier=area_mult,
        feeder_supply_kwh=f_supply,
        feeder_loss_kwh=f_loss,
        feeder_loss_rate=feeder_rate,
        feeder_multiplier=f_mult,
    )


def _ar1(rng: np.random.Generator, n: int, n_t: int, sd: float, tau_steps: float) -> FloatArray:
    """n stationary AR(1) series of length n_t with std ``sd`` and correlation time tau."""
    phi = float(np.exp(-1.0 / max(tau_steps, 1e-9)))
    burn = int(min(5 * tau_steps, 2000)) + 1
    white = rng.standard_normal((n, n_t + burn)) * sd * np.sqrt(1 - phi**2)
    out: FloatArray = lfilter([1.0], [1.0, -phi], white, axis=1)[:, burn:]
    return out


@dataclass(frozen=True)
class Voltages:
    area_v: FloatArray  # (A, R) area meter voltage (mean of phases)
    customer_v: FloatArray  # (C, R) NaN for dedicated (10 kV) customers


def voltages(
    layout: Layout,
    grid: TimeGrid,
    energy_kwh: FloatArray,
    peak_kw: FloatArray,
    phys: NetworkPhysics,
    rng: np.random.Generator,
) -> Voltages:
    """Phase voltages [V] at each reading time.

    Area level: transformer tap + a shared upstream (feeder) component + an area
    component + a drop with the area's load; per phase a small extra component.
    Customer: its area-phase voltage, minus a drop along the LV line growing with the
    area's load and with the customer's own load, plus measurement noise. A customer
    follows its TRUE area, which is what exposes a wrong mapping.
    """
    n_a, n_f = layout.n_areas, layout.n_feeders
    steps = grid.reading_last_step
    n_t = grid.n_steps
    per_h = 1.0 / grid.step_h
    feeder_u = _ar1(rng, n_f, n_t, 0.006, 6 * per_h)[:, steps]
    area_u = _ar1(rng, n_a, n_t, 0.006, 1.5 * per_h)[:, steps]
    phase_u = _ar1(rng, 3 * n_a, n_t, 0.002, 1.0 * per_h)[:, steps].reshape(n_a, 3, -1)
    f_load = phys.feeder_supply_kwh[:, steps]
    f_pu = f_load / np.maximum(f_load.max(axis=1, keepdims=True), 1e-9)
    beta_f = rng.uniform(0.01, 0.03, n_f)
    a_pu = phys.area_load_kwh[:, steps] / grid.step_h / (phys.area_kva * 0.9)[:, None]
    beta_t = rng.uniform(0.03, 0.06, n_a)
    tap = rng.choice([-0.05, -0.025, 0.0, 0.025], size=n_a, p=[0.15, 0.35, 0.35, 0.15])
    f = layout.area_feeder
    base = SECONDARY_PHASE_V * (
        1.0
        + tap[:, None]
        + feeder_u[f]
        - beta_f[f][:, None] * f_pu[f]
        + area_u
        - beta_t[:, None] * a_pu
    )
    phase_v = base[:, None, :] * (1.0 + phase_u)  # (A, 3, R)
    area_v = phase_v.mean(axis=1) + rng.normal(0, 0.1, base.shape)

    n_lv = layout.n_lv
    ca = layout.cust_area[:n_lv]
    line = rng.uniform(0.0, 1.0, n_lv) * rng.uniform(0.01, 0.04, n_a)[ca]
    # Own drop: up to 0.5-3 % at the customer's own peak (service cable sized to the load).
    own_drop = rng.uniform(0.005, 0.03, n_lv) / np.maximum(peak_kw[:n_lv], 1e-6)
    own_kw = energy_kwh[:n_lv][:, steps] / grid.step_h
    cust_v = np.full((layout.n_customers, len(steps)), np.nan)
    cust_v[:n_lv] = (
        phase_v[ca, layout.cust_phase[:n_lv]] * (1.0 - line[:, None] * a_pu[ca])
        - SECONDARY_PHASE_V * own_drop[:, None] * own_kw
        + rng.normal(0, 0.2, (n_lv, len(steps)))
    )
    return Voltages(area_v=np.round(area_v, 1), customer_v=np.round(cust_v, 1))
