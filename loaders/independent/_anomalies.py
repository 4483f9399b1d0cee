"""What the meters register: thefts, faults and registry errors on top of true demand.

The attacks change only what a meter registers; the power flow always carries the true
demand, so a theft's energy shows up where it physically does, as unexplained loss at
the area meter. Besides the six false-data attacks of Jokar et al. (2016) and a shunted
current coil, two kinds our own generator never had: ``clip`` (heavy appliances wired
around the meter, so the register misses every minute's demand above a cap) and
``night`` (the meter bypassed every night, 22:00-06:00, when nobody checks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

THEFT_KINDS: tuple[str, ...] = ("h1", "h2", "h3", "h4", "h5", "h6", "bypass", "clip", "night")
FAULT_KINDS: tuple[str, ...] = ("stuck", "zero", "wrong_multiplier", "clock_drift", "step_back")
STEPS_PER_DAY = 96
MINUTES_PER_STEP = 15


@dataclass(frozen=True)
class Case:
    """One customer's ground truth."""

    label: str  # theft | meter_fault | topology_error | normal
    kind: str = ""
    start_step: int = -1  # first affected 15-minute step; -1 for none
    recorded_area: int = -1  # area in the registry, when it is not the true one
    registry_multiplier: float = 0.0  # multiplier in the registry, when wrong
    drift_min_per_day: float = 0.0
    step_back_kwh: float = 0.0
    cap_w: float = 0.0


def steps_from_minutes(power_w: FloatArray) -> FloatArray:
    """Minute power [W] -> energy of each 15-minute step [kWh] (last axis)."""
    shaped = power_w.reshape(*power_w.shape[:-1], -1, MINUTES_PER_STEP)
    out: FloatArray = shaped.sum(axis=-1) / 60_000.0
    return out


def metered_kwh(case: Case, true_w: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Energy per step [kWh] that the meter of one customer registers, before any
    register fault (those act on the register in ``registers``)."""
    energy = steps_from_minutes(true_w)
    if case.label != "theft":
        return energy
    s = case.start_step
    n_t = len(energy)
    n_days = n_t // STEPS_PER_DAY
    days = energy.reshape(n_days, STEPS_PER_DAY).copy()
    day0 = s // STEPS_PER_DAY
    part = days[day0:]
    k = case.kind
    if k == "h1":
        part *= rng.uniform(0.1, 0.8, (len(part), 1))
    elif k == "h2":
        for row in part:
            length = int(rng.integers(12, 33))  # 3-8 h
            begin = int(rng.integers(0, STEPS_PER_DAY - length + 1))
            row[begin : begin + length] = 0.0
    elif k == "h3":
        part *= rng.uniform(0.1, 0.8, part.shape)
    elif k == "h4":
        part[:] = part.mean(axis=1, keepdims=True) * rng.uniform(0.1, 0.8, part.shape)
    elif k == "h5":
        part[:] = part.mean(axis=1, keepdims=True)
    elif k == "h6":
        part[:] = part[:, ::-1]
    elif k == "bypass":
        part *= rng.uniform(0.0, 0.3)
    elif k == "clip":
        minutes = true_w.reshape(n_days, -1)[day0:]
        part[:] = steps_from_minutes(np.minimum(minutes, case.cap_w))
    elif k == "night":
        hour = np.arange(STEPS_PER_DAY) / 4.0
        part[:, (hour >= 22.0) | (hour < 6.0)] = 0.0
    else:
        raise ValueError(f"unknown theft kind {k!r}")
    days[day0:] = part
    out: FloatArray = days.reshape(n_t)
    return out


def register_kwh(
    case: Case, metered: FloatArray, start_kwh: float, multiplier: float
) -> FloatArray:
    """The register [kWh, before the multiplier] at the end of each step (unrounded).

    Faults act here: a stuck register stops, a zeroed one reads 0, a step back drops
    once, a fast clock reads the register of an earlier moment at each of its marks.
    """
    cum = np.cumsum(metered) / multiplier
    reg = start_kwh + cum
    if case.label != "meter_fault":
        return reg
    s = case.start_step
    if case.kind == "stuck":
        reg[s:] = reg[s - 1] if s > 0 else start_kwh
    elif case.kind == "zero":
        reg[s:] = 0.0
    elif case.kind == "step_back":
        reg[s:] -= case.step_back_kwh
    elif case.kind == "clock_drift":
        # At true time t the clock shows t + d(t); it freezes its reading when it
        # shows a mark m, i.e. at true time m - d: the register of an earlier moment.
        t_end = np.arange(1, len(reg) + 1, dtype=np.float64)  # step ends [steps]
        reg = np.interp(
            t_end - clock_lag_steps(case, len(reg)),
            np.concatenate([[0.0], t_end]),
            np.concatenate([[start_kwh], reg]),
        )
    # wrong_multiplier: the register is right, the registry is not.
    return reg


def clock_lag_steps(case: Case, n_t: int) -> FloatArray:
    """How far behind true time a fast meter clock's marks fall at each step end
    [steps]: 0 before its start, then growing by ``drift_min_per_day``."""
    t_end = np.arange(1, n_t + 1, dtype=np.float64)
    out: FloatArray = np.clip(
        (t_end - case.start_step) * case.drift_min_per_day / (STEPS_PER_DAY * MINUTES_PER_STEP),
        0,
        None,
    )
    return out


def voltage_at_meter_clock(case: Case, voltage_v: FloatArray) -> FloatArray:
    """The voltage a meter records at each step end (its load curve, 负荷曲线): a
    fast clock freezes the voltage of the same earlier moment as its register, so
    its whole record lags, not only the energy."""
    if case.label != "meter_fault" or case.kind != "clock_drift":
        return voltage_v
    t_end = np.arange(1, len(voltage_v) + 1, dtype=np.float64)
    out: FloatArray = np.interp(t_end - clock_lag_steps(case, len(voltage_v)), t_end, voltage_v)
    return out


def draw_cases(
    rng: np.random.Generator,
    customer_area: IntArray,
    area_feeder: IntArray,
    ct_multiplier: FloatArray,
    n_steps: int,
    theft_fraction: float,
    fault_fraction: float,
    topology_error_fraction: float,
) -> list[Case]:
    """Who steals, whose meter is faulty, who is filed under the wrong area, and from when.

    Starts fall on a day boundary in the middle 40 % of the period (history before,
    at least a week after on periods of three weeks or more). A wrong multiplier is a
    registry error from the start; it needs a CT customer (multiplier > 1) or records
    a CT ratio for a direct meter.
    """
    n = len(customer_area)
    n_days = n_steps // STEPS_PER_DAY
    cases = [Case("normal")] * n
    order = rng.permutation(n)
    n_theft = round(theft_fraction * n)
    n_fault = round(fault_fraction * n)
    n_topo = round(topology_error_fraction * n)

    def start() -> int:
        lo, hi = int(0.3 * n_days), max(int(0.3 * n_days) + 1, int(0.7 * n_days))
        return int(rng.integers(lo, hi)) * STEPS_PER_DAY

    theft_kinds = np.resize(rng.permutation(np.array(THEFT_KINDS)), n_theft)
    for i, kind in zip(order[:n_theft], theft_kinds, strict=True):
        cases[i] = Case("theft", str(kind), start(), cap_w=float(rng.uniform(300.0, 1000.0)))
    fault_kinds = np.resize(rng.permutation(np.array(FAULT_KINDS)), n_fault)
    for i, kind in zip(order[n_theft : n_theft + n_fault], fault_kinds, strict=True):
        k = str(kind)
        if k == "wrong_multiplier":
            true_m = float(ct_multiplier[i])
            wrong = 1.0 if true_m > 1 else float(rng.choice([10.0, 20.0, 30.0]))
            cases[i] = Case("meter_fault", k, 0, registry_multiplier=wrong)
        else:
            cases[i] = Case(
                "meter_fault",
                k,
                start(),
                drift_min_per_day=float(rng.uniform(3.0, 14.0)),
                step_back_kwh=float(rng.uniform(5.0, 50.0)),
            )
    for i in order[n_theft + n_fault : n_theft + n_fault + n_topo]:
        here = customer_area[i]
        same_feeder = np.flatnonzero(
            (area_feeder == area_feeder[here]) & (np.arange(len(area_feeder)) != here)
        )
        others = np.flatnonzero(np.arange(len(area_feeder)) != here)
        pool = same_feeder if len(same_feeder) and rng.random() < 0.8 else others
        if len(pool):
            cases[i] = Case("topology_error", "wrong_area", 0, recorded_area=int(rng.choice(pool)))
    return cases
