"""A ceiling in the quarter hours: a meter that misses what runs above a cap.

A clip (a meter, or a tampered one, that records nothing above some power) keeps
a home's shape and most of its total; what it leaves is a ceiling. An hour mixes
minutes above and below the cap, so hourly energies spread under it (a household
clipped at 600 W has hours of 0.37-0.59 kWh); a quarter hour with the heavy
appliance running all through it is the cap itself, to the register's last digit,
on dozens of quarters a day. Honest households keep a long tail of single peaks
(a kettle, a shower, an oven), each at its own height.

The engine keeps each customer's largest quarter hours per window
(``EngineConfig.peak_parts``), largest first, which is all a ceiling needs: how high
the peaks go and how many reach the top. This module finds the ceilings; the
consumption-shape detector adds what the day must still be (lived-in, most of its
total), so that a home away does not pass for one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Ceiling:
    """Per customer: the ceiling of the recent windows and what supports it."""

    kwh: Matrix  # the ceiling: the second largest recent quarter [kWh] (one stray allowed)
    parts: npt.NDArray[np.int64]  # recent quarters at the ceiling
    days: npt.NDArray[np.int64]  # recent windows with ``parts_per_day`` or more there
    above_share: Matrix  # reference windows whose peak went well above it
    step_kwh: Matrix  # the register's step as seen in the peaks (inf: unknown)
    hit: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class QuarterCeiling:
    """Parameters, measured on nine independent grids (CREST households, clip caps
    of 300-1000 W on every minute, 0.01 kWh registers; ``/work/s17/pile2.py``): over
    the last 5 windows, 12 quarters or more within one register step (or 2 %) of
    the ceiling, on 3 days with 3 or more each, and two thirds of the reference
    windows peaking more than 25 % (plus a step) above it, named 16 of the 17 clips
    that a 0.01 kWh register shows at that resolution (the two behind current
    transformers, a step of 0.1-0.15 kWh, were already named by their hourly
    levelling), 14 of them within 7 days of the start, against 1 honest household
    of about 6,000 (its 2 kW appliance idle for five days, its next one pinned at
    0.13 kWh)."""

    days: int = 5
    min_parts: int = 12
    min_days: int = 3
    parts_per_day: int = 3
    # "At the ceiling": within one register step below it (a cap of 0.125 kWh
    # reads 0.12 and 0.13 by turns), or 2 % where the step is finer.
    near_share: float = 0.98
    near_steps: float = 1.01
    ref_margin: float = 1.25
    # Two of three reference windows or more: a smooth household of our own
    # generator, its peaks of 0.09-0.10 kWh piled within a step of each other at
    # the end of a month using less, went above on 5-6 of its 10.
    ref_share: float = 0.65
    # A cap under 280 W (0.07 kWh a quarter) is a fridge's level: an empty home's.
    min_kwh: float = 0.07
    # The register must resolve the ceiling: a step over a tenth of it (a current
    # transformer's 10 x 0.01 kWh under a cap of 0.1 kWh a quarter) cannot tell a
    # cap from a quiet day.
    max_step_share: float = 0.1
    # A step must recur between the peaks' distinct values this often to count as
    # the register's: one interpolated reading makes a half step once.
    step_repeats: int = 3
    on_step_share: float = 0.8

    def find(self, peaks: npt.NDArray[np.float32], reference_windows: int) -> Ceiling:
        """``peaks``: windows x customers x parts, largest first, NaN-padded."""
        n, r = peaks.shape[0], self.days
        pk = peaks.astype(np.float64)
        ref, rec = pk[:reference_windows], pk[n - r :]
        flat = np.sort(np.nan_to_num(rec.transpose(1, 0, 2).reshape(rec.shape[1], -1), nan=-1.0))
        ceiling = flat[:, -2] if flat.shape[1] > 1 else np.full(len(flat), np.nan)
        ceiling = np.where(ceiling > 0, ceiling, np.nan)
        # The register's step (a Python loop per customer) only where some step
        # allowed could still make a ceiling: "at the ceiling" is widest with the
        # largest step, "well above" easiest with none.
        loose = self._support(ref, rec, ceiling, self.max_step_share * ceiling, 0.0)
        step = np.full(len(ceiling), np.inf)
        both = np.concatenate([ref, rec], axis=0)
        for i in np.flatnonzero((ceiling >= self.min_kwh) & self._enough(*loose)):
            step[i] = self._step(both[:, i].ravel())
        fine = np.where(np.isfinite(step), step, 0.0)
        parts, days, above = self._support(ref, rec, ceiling, fine, fine)
        with np.errstate(invalid="ignore"):
            hit = (
                (ceiling >= self.min_kwh)
                & (step <= self.max_step_share * ceiling)
                & self._enough(parts, days, above)
            )
        return Ceiling(ceiling, parts, days, above, step, hit)

    def _support(
        self,
        ref: Matrix,
        rec: Matrix,
        ceiling: Matrix,
        near_step: Matrix | float,
        step: Matrix | float,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], Matrix]:
        """Recent quarters and windows at the ceiling (within ``near_step``), and the
        share of reference windows (with readings) that peaked well above it (by
        ``step`` more)."""
        with np.errstate(invalid="ignore"):
            below = np.maximum(self.near_steps * near_step, (1 - self.near_share) * ceiling)
            near = rec >= (ceiling - below)[None, :, None]
            parts = near.sum(axis=(0, 2))
            days = (near.sum(-1) >= self.parts_per_day).sum(0)
            known = np.isfinite(ref[..., 0])  # a window without readings is no evidence
            went_above = ref[..., 0] > (self.ref_margin * ceiling + step)[None, :]
        above = (went_above & known).sum(0) / np.maximum(known.sum(0), 1)
        return parts, days, above

    def _enough(
        self, parts: npt.NDArray[np.int64], days: npt.NDArray[np.int64], above: Matrix
    ) -> npt.NDArray[np.bool_]:
        return (parts >= self.min_parts) & (days >= self.min_days) & (above >= self.ref_share)

    def _step(self, values: Matrix) -> float:
        """The register's step (its resolution times the meter's multiplier): the
        largest gap between distinct values, among those recurring
        ``step_repeats`` times, that most values are whole multiples of. A lost
        reading prorates its quarters to half steps, and a month of 1 % losses makes
        half steps recur too; they stay a minority of the values. When no step fits
        (values finer than any), the smallest gap."""
        v = np.round(values[np.isfinite(values) & (values > 0)], 6)
        distinct = np.unique(v)
        if len(distinct) < 2:
            return float("inf")
        gaps, counts = np.unique(np.round(np.diff(distinct), 5), return_counts=True)
        for g in gaps[(counts >= self.step_repeats) & (gaps > 0)][::-1]:
            k = v / g
            if np.mean(np.abs(k - np.round(k)) < 1e-3) >= self.on_step_share:
                return float(g)
        return float(gaps[gaps > 0][0]) if (gaps > 0).any() else float("inf")
