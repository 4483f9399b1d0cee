"""Register arithmetic: from two consecutive readings to the energy between them.

Meters report a cumulative register; the energy of an interval is the register
difference times the multiplier (CT x PT ratio). Real registers roll over, are reset
when a meter is replaced, and sometimes step backwards on faults. None of these may
silently become negative consumption, so each case gets a rule and a flag:

* rollover: the register wrapped past its last digit (99999.99 -> 0.05); the energy
  is what it took to reach the wrap plus the new value.
* reset: a replaced meter starts again near zero; the energy counted is the new
  meter's value (what it measured since zero). What the old meter measured after
  its last reading is unknown and not invented.
* step back: any other decrease; the interval counts zero energy and is flagged so
  the meter-fault detector can name it.

Interval readings (``interval_kwh``) already carry their energy after the multiplier
and behave like increments of a virtual register.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from lineloss.domain import UKWH_PER_KWH

FLAG_ROLLOVER: Final = 1
FLAG_RESET: Final = 2
FLAG_STEP_BACK: Final = 4
FLAG_MIXED_KINDS: Final = 8

FLAG_NAMES: Final = {
    FLAG_ROLLOVER: "register_rollover",
    FLAG_RESET: "register_reset",
    FLAG_STEP_BACK: "register_step_back",
    FLAG_MIXED_KINDS: "mixed_register_and_interval",
}

# A previous value within the top 10 % of its decade, and a wrapped advance within
# 10 % of the register span, is a rollover rather than a fault.
_ROLLOVER_TOP_FRACTION: Final = 0.9
_ROLLOVER_MAX_ADVANCE_FRACTION: Final = 0.1
# A new value below 10 % of a previous value of at least 10 kWh is a new meter.
_RESET_FRACTION: Final = 0.1
_RESET_MIN_PREVIOUS_KWH: Final = 10.0


def flag_names(flags: int) -> list[str]:
    return [name for bit, name in FLAG_NAMES.items() if flags & bit]


def to_ukwh(energy_kwh: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """kWh [float] to the core's fixed point [1e-6 kWh, int64], rounded half to even."""
    return np.rint(energy_kwh * UKWH_PER_KWH).astype(np.int64)


def clean_deltas(
    prev_raw: npt.NDArray[np.float64],
    prev_is_interval: npt.NDArray[np.bool_],
    cur_raw: npt.NDArray[np.float64],
    cur_is_interval: npt.NDArray[np.bool_],
    multiplier: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8]]:
    """Energy [1e-6 kWh] between each previous and current reading, and its flags.

    ``*_raw`` are register values [kWh before multiplier] or interval energies [kWh
    after multiplier] as ``*_is_interval`` says; ``multiplier`` [-] applies to
    registers only. Deterministic element-wise: the same pair always gives the same
    integer, which keeps balances independent of the order readings arrived in.
    """
    n = len(cur_raw)
    flags = np.zeros(n, dtype=np.int8)
    # Fast path first: register to register, forward (almost every reading).
    step = cur_raw - prev_raw
    energy_kwh = step * multiplier
    odd = cur_is_interval | prev_is_interval | (step < 0)
    if not odd.any():
        return to_ukwh(energy_kwh), flags

    interval = cur_is_interval
    energy_kwh[interval] = cur_raw[interval]
    both_registers = ~cur_is_interval & ~prev_is_interval
    mixed = ~cur_is_interval & prev_is_interval
    energy_kwh[mixed] = 0.0
    flags[mixed] |= FLAG_MIXED_KINDS

    backward = both_registers & (step < 0)
    if backward.any():
        prev_b = prev_raw[backward]
        cur_b = cur_raw[backward]
        with np.errstate(divide="ignore", invalid="ignore"):
            decade = 10.0 ** np.ceil(np.log10(np.maximum(prev_b, 1e-9) + 0.005))
        wrapped = decade - prev_b + cur_b
        is_rollover = (prev_b >= _ROLLOVER_TOP_FRACTION * decade) & (
            wrapped <= _ROLLOVER_MAX_ADVANCE_FRACTION * decade
        )
        is_reset = (
            ~is_rollover & (prev_b >= _RESET_MIN_PREVIOUS_KWH) & (cur_b < _RESET_FRACTION * prev_b)
        )
        mult_b = multiplier[backward]
        e_b = np.where(is_rollover, wrapped * mult_b, np.where(is_reset, cur_b * mult_b, 0.0))
        f_b = np.where(
            is_rollover, FLAG_ROLLOVER, np.where(is_reset, FLAG_RESET, FLAG_STEP_BACK)
        ).astype(np.int8)
        energy_kwh[backward] = e_b
        flags[backward] |= f_b

    return to_ukwh(energy_kwh), flags
