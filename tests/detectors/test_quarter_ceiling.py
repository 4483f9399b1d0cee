"""Ceilings in the quarter hours' peaks, on hand-built households."""

from __future__ import annotations

import numpy as np
from factories import area_day

from detectors.meter_shape import ConsumptionShapeDetector
from detectors.observations import AreaHistory
from detectors.quarter_ceiling import QuarterCeiling
from streams.profile import top_parts

N_CUSTOMERS, N_DAYS, QUARTERS = 10, 20, 96
STEP_KWH = 0.01  # the register's last digit


def _quarters(rng: np.random.Generator) -> np.ndarray:
    """Days x customers x quarter hours [kWh] of households on 0.01 kWh registers:
    a base load, a lived-in evening, and appliances of their own heights running
    for a quarter or two (a kettle, a shower, a heater) on most days."""
    q = np.arange(QUARTERS) / 4
    shape = 0.03 + 0.08 * np.exp(-((q - 19.5) ** 2) / 4) + 0.04 * np.exp(-((q - 7.5) ** 2) / 2)
    p = shape[None, None, :] * rng.lognormal(0.0, 0.25, (N_DAYS, N_CUSTOMERS, QUARTERS))
    for d in range(N_DAYS):
        for c in range(N_CUSTOMERS):
            for _ in range(rng.integers(2, 6)):
                start = rng.integers(24, 90)
                p[d, c, start : start + rng.integers(1, 8)] += rng.uniform(0.15, 0.6)
    return p


def _register(p: np.ndarray, multiplier: float = 1.0) -> np.ndarray:
    """What a register of ``STEP_KWH`` behind ``multiplier`` records of ``p``."""
    cum = np.floor(np.cumsum(p / multiplier, axis=-1) / STEP_KWH) * STEP_KWH
    return np.diff(cum, axis=-1, prepend=0.0) * multiplier


def _peaks(p: np.ndarray) -> np.ndarray:
    return np.stack([top_parts(day.astype(np.float32), 16) for day in p])


def _clip(p: np.ndarray, customer: int, days: int, cap_kwh: float) -> None:
    """The customer's meter misses everything above ``cap_kwh`` a quarter from
    ``days`` before the end; the home runs a heater through its evenings."""
    p[-days:, customer, 72:84] += 0.4
    p[-days:, customer] = np.minimum(p[-days:, customer], cap_kwh)


def test_a_cap_on_every_quarter_is_a_ceiling_and_honest_peaks_are_not() -> None:
    rng = np.random.default_rng(3)
    p = _quarters(rng)
    _clip(p, 4, 6, 0.13)
    p[-6:, 7] *= 0.6  # using less, its peaks as scattered as ever
    found = QuarterCeiling().find(_peaks(_register(p)), 10)
    assert set(np.flatnonzero(found.hit)) == {4}
    assert abs(found.kwh[4] - 0.13) <= STEP_KWH
    assert found.step_kwh[4] == STEP_KWH
    assert found.days[4] >= 3 and found.above_share[4] >= 0.5


def test_the_register_step_is_read_from_the_peaks_despite_prorated_quarters() -> None:
    """A lost reading prorates its two quarters (half steps), and over a month of
    1 % losses half steps recur: the step is the largest recurring gap that most
    values are whole multiples of. Behind a current transformer (10 x 0.01 kWh) a
    cap of 0.1 kWh a quarter is one step: no ceiling can be told from a quiet day
    there."""
    rng = np.random.default_rng(4)
    p = _register(_quarters(rng))
    for day in range(0, N_DAYS, 2):  # lost readings, off the register's grid
        p[day, 2, 80:82] += np.array([0.005, -0.005])
    gaps, counts = np.unique(
        np.round(np.diff(np.unique(np.round(p[:, 2], 6))), 5), return_counts=True
    )
    assert counts[gaps == 0.005][0] >= 3  # half steps recur
    qc = QuarterCeiling()
    assert qc._step(p[:, 2].ravel()) == STEP_KWH
    coarse = _quarters(rng)
    _clip(coarse, 4, 6, 0.1)
    found = qc.find(_peaks(_register(coarse, multiplier=10.0)), 10)
    assert found.step_kwh[4] >= 0.1 - 1e-9
    assert not found.hit[4]


def _history(p: np.ndarray) -> AreaHistory:
    """An area without a meter of its own, as the engine sends it: hourly profiles
    and each customer's 16 largest quarter hours."""
    h = AreaHistory()
    ids = tuple(f"C{i:02d}" for i in range(p.shape[1]))
    hourly = p.reshape(*p.shape[:2], 24, 4).sum(-1)
    for d in range(p.shape[0]):
        h.push(
            area_day(
                d,
                ids,
                p[d].sum(axis=1),
                profile_kwh=hourly[d].astype(np.float32),
                peak_kwh=top_parts(p[d].astype(np.float32), 16),
            )
        )
    return h


def test_the_shape_detector_names_a_quarter_hour_ceiling_on_a_lived_in_day() -> None:
    """C04's meter is capped at 0.15 kWh a quarter (600 W) for its last five days:
    named with its ceiling. C06 is away for those days, its fridge cycling at its
    own exact height all day long: no lived-in shape, no total, no case."""
    rng = np.random.default_rng(5)
    p = _quarters(rng)
    _clip(p, 4, 5, 0.15)
    p[-5:, 6] = np.tile([0.02, 0.02, 0.0, 0.0], 24)[None, :]
    h = _history(_register(p))
    found = [f for f in ConsumptionShapeDetector().score_one(h) if "clipped_peak" in f.detector]
    assert [f.target_id for f in found] == ["C04"]
    assert "capped at 0.15 kWh (0.6 kW)" in found[0].reason
    assert found[0].estimated_kwh > 0
    off = ConsumptionShapeDetector(quarter_ceiling={"min_parts": 10_000})
    assert not [f for f in off.score_one(h) if "clipped_peak" in f.detector]


def test_a_load_running_at_one_power_all_day_is_flat_not_capped() -> None:
    """C08 stops living in for its last five days and runs one machine at 1.2 kW
    all day (a closed shop's freezers in our generator): its quarters pinned at
    0.3 kWh with a trace of its old rhythm, but the pin is its base load, not a cap
    well above it."""
    rng = np.random.default_rng(6)
    p = _quarters(rng)
    q = np.arange(QUARTERS) / 4
    trace = np.exp(-((q - 19.5) ** 2) / 4)
    p[-5:, 8] = np.minimum(0.3, 0.27 + 0.05 * trace)[None, :]
    h = _history(_register(p))

    def clipped(det: ConsumptionShapeDetector) -> set[str]:
        return {f.target_id for f in det.score_one(h) if "clipped_peak" in f.detector}

    assert "C08" in clipped(ConsumptionShapeDetector(quarter_ceiling_min_base_ratio=0.0))
    assert "C08" not in clipped(ConsumptionShapeDetector())
