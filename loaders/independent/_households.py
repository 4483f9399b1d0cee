"""Household demand from the CREST stochastic load model (richardsonpy), not from ours.

Richardson, Thomson, Infield and Clifford, "Domestic electricity use: a high-resolution
energy demand model", Energy and Buildings 42 (2010), as implemented by RWTH Aachen's
``richardsonpy``: active occupancy from time-use-survey Markov chains, appliance switch-on
events drawn from occupancy and activity statistics, lighting from occupancy and
irradiance. Minute resolution. Nobody on this team wrote or tuned it, which is the point:
detectors tuned to our own generator's shapes are checked against someone else's.

The model draws from Python's global ``random`` and numpy's global RNG; each household
runs with both seeded from (grid seed, household index) and restores them after, so a
household's profile does not depend on what ran before it.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
MINUTES_PER_DAY = 1440


def _richardsonpy() -> tuple[object, object, object, object, str]:
    try:
        import richardsonpy
        import richardsonpy.classes.appliance as appliance
        import richardsonpy.classes.lighting as lighting
        import richardsonpy.classes.occupancy as occupancy
        import richardsonpy.classes.stochastic_el_load_wrapper as wrapper
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the independent grid needs richardsonpy and pandapower: "
            "pip install 'lineloss[independent]'"
        ) from exc
    return appliance, lighting, occupancy, wrapper, os.path.dirname(richardsonpy.__file__)


@cache
def _irradiance_w_m2() -> FloatArray:
    """Hourly global horizontal irradiance of the model's bundled test reference year."""
    import richardsonpy.functions.load_radiation as load_radiation

    q_direct, q_diffuse = load_radiation.get_rad_from_try_path()
    return np.asarray(q_direct, dtype=np.float64) + np.asarray(q_diffuse, dtype=np.float64)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    py_state = random.getstate()
    np_state = np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


@dataclass(frozen=True)
class Household:
    """One dwelling: who lives there, how much they use, and when they are away."""

    occupants: int  # 1..5, the model's range
    annual_kwh: float  # scales the appliance stock's consumption
    away_days: tuple[int, ...] = ()  # day indices with nobody home (holiday, travel)


def household_power_w(
    household: Household, days: int, first_day_of_year: int, first_weekday: int, seed: int
) -> FloatArray:
    """Minute-resolution demand [W] of one household over ``days`` days.

    ``first_day_of_year`` (0-based) picks the irradiance (lighting) of the model's
    reference year; ``first_weekday`` is 1 (Monday) .. 7 (Sunday). On ``away_days``
    the model runs with zero active occupancy: cold appliances and standby keep running,
    nothing is switched on, the base load an honest empty home leaves on its meter.
    """
    appliance, lighting, occupancy, wrapper, root = _richardsonpy()
    irradiance = _irradiance_w_m2()
    minutes = np.arange(MINUTES_PER_DAY)
    hours_s = 3600.0 * np.arange(24)
    with _seeded(seed):
        occ = occupancy.Occupancy(  # type: ignore[attr-defined]
            number_occupants=household.occupants,
            initial_day=first_weekday,
            nb_days=days,
        ).occupancy
        apps = appliance.Appliances(  # type: ignore[attr-defined]
            os.path.join(root, "inputs", "Appliances.csv"),
            annual_consumption=0.91 * household.annual_kwh,  # 9 % is lighting (the model's split)
            randomize_appliances=True,
        )
        lights = lighting.load_lighting_profile(  # type: ignore[attr-defined]
            filename=os.path.join(root, "inputs", "LightBulbs.csv"), index=random.randrange(100)
        )
        model = wrapper.ElectricityProfile(apps, lights)  # type: ignore[attr-defined]
        out = np.empty(days * MINUTES_PER_DAY)
        for d in range(days):
            doy = (first_day_of_year + d) % 365
            irr = np.interp(60.0 * minutes, hours_s, irradiance[24 * doy : 24 * doy + 24])
            occ_day = np.asarray(occ[144 * d : 144 * (d + 1)])
            if d in household.away_days:
                occ_day = np.zeros_like(occ_day)
            weekend = (d + first_weekday) % 7 in (0, 6)
            power, _, _ = model.power_sim(
                irradiation=irr, weekend=weekend, day=doy, occupancy=occ_day
            )
            out[d * MINUTES_PER_DAY : (d + 1) * MINUTES_PER_DAY] = power
    # The model's appliance stock overshoots its annual target (German homes, heavy
    # users): scale to the household's use on the days someone is home, keeping shape.
    home = np.ones(days, dtype=bool)
    home[[d for d in household.away_days if d < days]] = False
    per_day_kwh = out.reshape(days, MINUTES_PER_DAY).sum(axis=1) / 60_000.0
    if home.any() and per_day_kwh[home].mean() > 0:
        out *= household.annual_kwh / 365.0 / per_day_kwh[home].mean()
    return out


def draw_households(
    rng: np.random.Generator, n: int, days: int, away_fraction: float, median_annual_kwh: float
) -> list[Household]:
    """Occupancy and annual use of ``n`` dwellings; a share of them away for 3-14 days.

    Annual use is lognormal around ``median_annual_kwh`` (a Chinese urban household
    uses 1,500-3,000 kWh a year, the model's German default is higher); the away
    periods are what an honest vacancy looks like, the case a theft detector must not
    flag for its drop alone.
    """
    occupants = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.15, 0.33, 0.27, 0.17, 0.08])
    annual = median_annual_kwh * np.exp(0.45 * rng.standard_normal(n)) * (0.6 + 0.2 * occupants)
    out = []
    for i in range(n):
        away: tuple[int, ...] = ()
        if days > 4 and rng.random() < away_fraction:
            length = int(rng.integers(3, min(14, days - 1) + 1))
            first = int(rng.integers(0, days - length + 1))
            away = tuple(range(first, first + length))
        out.append(Household(int(occupants[i]), float(annual[i]), away))
    return out
