"""SimBench's low-voltage grids and measured load profiles, as a second outside source.

SimBench (Meinecke et al., "SimBench: a benchmark dataset of electric power systems to
compare innovative solutions based on power flow analysis", Energies 13 (2020), the
``simbench`` package) publishes German LV grids (rural, semi-urban, urban: overhead
lines and cables, 13-118 loads each) and a year of 15-minute load profiles derived
from measurements: five household profiles (H0-A, B, C, G, L), trade and agriculture
(G*, L*). Every load of a grid names its profile, so some twenty houses of an area
share one curve. ``shift_min`` moves each customer's curve by up to that many minutes
(drawn), so that neighbours are alike but not identical, as real households are, while
the weather and the season stay common to the area. ``offset_weeks`` instead takes each
customer's curve from a different week of its profile (same weekdays): a household
whose season runs weeks ahead of its neighbours', which is what an electrically heated
home next to unheated ones looks like in spring, exaggerated (neighbours there do not
share the same days' weather either). With both 0 the curves are shared exactly, as
SimBench ships them.

The profiles are for 2016; a customer's days are taken from the 2016 days with the
same weekdays as the grid's calendar, near the same day of the year.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loaders.independent._anomalies import MINUTES_PER_STEP, STEPS_PER_DAY

FloatArray = npt.NDArray[np.float64]
PREFIX = "simbench:"
_PROFILE_YEAR = 2016
_PROFILE_DAYS = 366
# Grids whose profile tables together hold every LV profile SimBench uses.
_PROFILE_SOURCES = ("1-LV-urban6--0-sw", "1-LV-rural1--0-sw", "1-LV-rural2--0-sw")
HOUSEHOLD_PROFILES = ("H0-A", "H0-B", "H0-C", "H0-G", "H0-L")


def simbench() -> Any:
    try:
        import simbench as sb
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "SimBench grids need the simbench package: pip install 'lineloss[independent]'"
        ) from exc
    return sb


def is_simbench(name: str) -> bool:
    return name.startswith(PREFIX)


def is_simbench_lv(name: str) -> bool:
    """``simbench:<code>`` with an LV code, what an area can be."""
    return is_simbench(name) and "-LV-" in name.removeprefix(PREFIX)


def simbench_net(name: str) -> Any:
    """The pandapower net of ``simbench:<code>`` (an LV code such as
    ``1-LV-rural1--0-sw``)."""
    if not is_simbench_lv(name):
        raise ValueError(f"{name}: an area is a SimBench LV grid (1-LV-...)")
    code = name.removeprefix(PREFIX)
    return simbench().get_simbench_net(code)


@cache
def _profiles() -> dict[str, FloatArray]:
    """Active-power profile per name, relative units, 366 x 96 values of 2016."""
    out: dict[str, FloatArray] = {}
    for code in _PROFILE_SOURCES:
        table = simbench().get_simbench_net(code).profiles["load"]
        for col in table.columns:
            if col.endswith("_pload"):
                values = table[col].to_numpy(dtype=np.float64)
                out.setdefault(col.removesuffix("_pload"), values.clip(min=0.0))
    return out


def profile_names() -> tuple[str, ...]:
    return tuple(sorted(_profiles()))


# 2016's clock changes in Germany (0-based days: 27 March, 30 October). SimBench's time
# axis does not follow them, but trade and farm profiles do (their working hours move
# an hour on the axis, measured: G1-A, G4-A, L2-A), which on a grid without daylight
# saving reads as a meter's clock jumping an hour.
_CLOCK_CHANGE_DAYS = (86, 303)


def first_profile_day(start: pd.Timestamp, days: int = 1) -> int:
    """The 2016 day (0-based) with ``start``'s weekday nearest its day of the year
    whose ``days`` days cross no clock change (where one exists)."""
    target = start.dayofyear - 1
    weekday_2016 = pd.Timestamp(f"{_PROFILE_YEAR}-01-01").dayofweek
    shift = ((weekday_2016 + target) - start.dayofweek) % 7
    nearest = target - shift if target - shift >= 0 else target - shift + 7
    candidates = [
        d
        for d in range(nearest % 7, _PROFILE_DAYS - days + 1, 7)
        if not any(d < c < d + days for c in _CLOCK_CHANGE_DAYS)
    ]
    if not candidates:
        return int(min(nearest, _PROFILE_DAYS - days))
    return int(min(candidates, key=lambda d: abs(d - nearest)))


def customer_power_w(
    profile: str,
    annual_kwh: float,
    days: int,
    first_day: int,
    offset_weeks: int,
    away_days: tuple[int, ...],
    rng: np.random.Generator,
    shift_min: int = 0,
) -> FloatArray:
    """Minute-resolution demand [W] of one customer over ``days`` days: its profile's
    15-minute curve (each quarter hour held for its 15 minutes) from a week
    ``offset_weeks`` or fewer away and moved by ``shift_min`` minutes or fewer (both
    drawn), scaled to ``annual_kwh`` a year.

    On ``away_days`` nobody is home: what is left is the home's base (the 5th
    percentile of its quarter hours on days at home) with a tenth's noise, a fridge
    and standby; SimBench has no vacancies, so this part is ours."""
    curve = _profiles()[profile]
    last_first = _PROFILE_DAYS - days
    if last_first < 0:
        raise ValueError(f"SimBench profiles cover {_PROFILE_DAYS} days, not {days}")
    weeks = np.arange(-offset_weeks, offset_weeks + 1)
    choices = first_day + 7 * weeks
    choices = choices[(choices >= 0) & (choices <= last_first)]
    day0 = int(rng.choice(choices)) if len(choices) else min(first_day, last_first)
    minutes = np.repeat(curve, MINUTES_PER_STEP)
    first = day0 * 1440 + (int(rng.integers(-shift_min, shift_min + 1)) if shift_min else 0)
    first = min(max(first, 0), len(minutes) - days * 1440)
    per_day = minutes[first : first + days * 1440].reshape(days, 1440).copy()
    home = np.ones(days, dtype=bool)
    home[[d for d in away_days if d < days]] = False
    mean_kwh_per_day = float(per_day[home].sum(axis=1).mean()) if home.any() else 0.0
    # Relative units -> W: a day's minutes sum to the household's daily use.
    scale = annual_kwh / 365.0 / mean_kwh_per_day * 60_000.0 if mean_kwh_per_day > 0 else 0.0
    per_day *= scale
    if not home.all():
        base = float(np.percentile(per_day[home], 5)) if home.any() else 0.0
        away = ~home
        noise = rng.uniform(0.9, 1.1, (int(away.sum()), STEPS_PER_DAY))
        per_day[away] = base * np.repeat(noise, MINUTES_PER_STEP, axis=1)
    out: FloatArray = per_day.ravel()
    return out
