"""A customer's consumption against its own history and its neighbours.

Works without an area meter. Per customer, from its load profile:

* drop: the daily total fell well below its usual level while its area peers did
  not (h1, h3, h4, bypass when the profile is all one has). Weak alone: a home left
  empty drops too. With hourly profiles, a drop that took the *base load* down in
  proportion (the lowest hours of the day: fridge, standby) is a meter recording a
  fraction of what flows through it; an empty home keeps its base load while the
  rest falls (CREST households of ``loaders.independent``: base kept at 0.6-1.0 of
  its usual on all 47 absences of one grid that were not also thefts, down to
  0.0-0.4 with every h1, h2, bypass and night theft). That scaled drop, on at least
  ``drop_min_days`` days each, is evidence on its own; so is a day under 8 % of the
  usual whose hours still have the shape of the customer's days at home (a shunt
  passing a few percent of every hour; a switched-off home records noise);
* flat day (h5): the profile lost its shape (coefficient of variation far below
  the customer's usual) though the total is kept;
* levelled drop (h4): the profile lost its shape *and* most of its total, yet sits
  well above the customer's usual base load: a meter passing on a fraction of the
  day's mean, reading by reading. An empty home levels out too, but at its base
  load (fridge, standby), and the same every day;
* reversed day (h6): the recent days' profiles (each, or their mean) match the
  usual one played backwards much better than forwards, for a customer whose usual
  day is not symmetric;
* zero hours (h2): hours recorded as exactly zero where the customer usually
  consumes, which its own history rarely shows.

A pattern must hold on at least ``min_days`` of the last ``of_days`` windows: one odd
day is a holiday, not a case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors._stats import quiet_nan_spread, quiet_nanmean, quiet_nanmedian
from detectors.base import Finding, HistoryOnly
from detectors.observations import AreaHistory
from detectors.quarter_ceiling import QuarterCeiling
from lineloss.domain import SuspicionCategory, TargetKind

Matrix = npt.NDArray[np.float64]


def _cv(p: Matrix) -> Matrix:
    """Coefficient of variation of each profile along the last axis."""
    mean = p.mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mean > 0, p.std(axis=-1) / mean, np.nan)


def _mean_day(days: Matrix, keep: npt.NDArray[np.bool_] | None = None) -> Matrix:
    """Per customer, the mean of its days (days x customers x parts) each taken as
    shares of its own total, over the days in ``keep`` (all when None); a day of
    nothing counts as no day. One day of a household is noisy; its mean day is
    what it keeps doing."""
    with np.errstate(all="ignore"):
        shares = days / days.sum(-1, keepdims=True)
    if keep is not None:
        shares = np.where(keep[..., None], shares, np.nan)
    return quiet_nanmean(shares, axis=0)


def _row_corr(a: Matrix, b: Matrix) -> Matrix:
    ac = a - a.mean(axis=-1, keepdims=True)
    bc = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((ac * ac).sum(-1) * (bc * bc).sum(-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (ac * bc).sum(-1) / den, np.nan)


def _longest_zero_run(p: Matrix, consumes: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Longest run of parts recorded as zero where the customer usually consumes."""
    z = (p <= 0) & consumes
    best = np.zeros(z.shape[:-1], np.int64)
    cur = np.zeros(z.shape[:-1], np.int64)
    for k in range(z.shape[-1]):
        cur = np.where(z[..., k], cur + 1, 0)
        best = np.maximum(best, cur)
    return best


@dataclass
class ConsumptionShapeDetector(HistoryOnly):
    reference_windows: int = 10
    # Scoring starts once this many windows precede the drop's days (the first
    # windows then stand for the ``reference_windows``): a theft begun on day 8 of a
    # history was otherwise first looked at on day 15, a week late whatever it was.
    min_reference_windows: int = 7
    short_reference_max_score: float = 0.8  # ... and scores at most this until then
    of_days: int = 3
    min_days: int = 2
    drop_of_days: int = 5  # longer for drops: a weekend is not a theft
    drop_min_days: int = 4
    # recent total / usual total. 0.55 since session 17: a meter slowed by a factor
    # drawn each day from 0.1-0.8 (h1) averages 0.45 plus its fridge, near half
    # (seed 18's C75752292 at 0.50-0.52 for a week); +4 thefts named, +8 within 7
    # days on our 36 own grids and +1 on the independent ones, no new false theft.
    drop_ratio: float = 0.55
    drop_mean: bool = True  # the mean ratio over the days, not each day below it
    peer_ratio: float = 0.8  # the area's median customer kept at least this
    min_usual_kwh: float = 1.0  # per window; smaller customers carry too little signal
    base_parts: int = 4  # the day's lowest parts (hours) make its base load
    scaled_base_mean: bool = True  # the base judged on the days' mean (see _score)
    scaled_low_ref_share: float = 0.2  # ... unless this share of its first days were low
    scaled_base_ratio: float = 0.6  # base load at most this share of its usual ...
    scaled_margin: float = 0.25  # ... and at most this above the total's share
    scaled_min_ratio: float = 0.08  # below this, a dead meter or a switched-off home ...
    residual_min_corr: float = 0.45  # ... unless its hours keep its usual day's shape
    scaled_max_ratio: float = 0.8  # a day's total at most this share of its usual
    scaled_score: float = 0.6
    # ... or the last this many days each scaled (0: off), their mean under
    # ``drop_ratio`` as a drop's must be. Until session 26 any day at 0.8 of the
    # usual or less counted: a home whose heating or holiday took a quarter off its
    # days, base and all, was "scaled" day after day (SimBench homes whose curves
    # run two weeks apart: 40 false thefts on two grids at 61-74 % of their usual),
    # while the meters it found alone recorded half or less (but one h3 at 70 % of
    # a 1.5 kWh customer on an independent grid).
    scaled_fast_days: int = 3
    # ... unless its days became far more alike than they ever were: the spread of its
    # daily totals over the drop days (coefficient of variation) under this share of
    # its usual spread. Nobody home, a house uses the same every day (its fridge and
    # standby); a meter recording a fraction of a lived-in home's use keeps the
    # home's day-to-day swings. Independent grids (CREST): 5-day spreads of away
    # households at a median 0.15 of their usual, of thieves' at 0.75-1.5 (5th
    # percentile: bypass 0.27, clip 0.19, h3 0.18, h4 0.34).
    steady_ratio: float = 0.15
    flat_ratio: float = 0.1  # today's CV / usual CV; h5 leaves ~0.02, a quiet day ~0.4
    flat_min_base_ratio: float = 1.2  # a flat day's level / its usual base load
    # Levelled drop (h4): variation under this share of the usual on a day at
    # ``scaled_min_ratio``-``scaled_max_ratio`` of its usual total, its mean over
    # this multiple of the usual base load. Independent grids (CREST), one day each:
    # h4 days at 0.13-0.26 of their usual variation (5th-95th percentile), 1.9-8.8 x
    # their base once at a quarter of their total or more; other low, flat days
    # (homes left empty) at 1.1-2.0 x (95th percentile 2.04: one flat day is not a
    # case, two of three are). On seven independent grids it names 14 of 15 h4
    # thieves (the localiser had 3) and no honest household; on our own grids, whose
    # vacant homes keep their shape, nobody honest either.
    levelled_cv_ratio: float = 0.3
    levelled_min_base_ratio: float = 2.0
    levelled_score: float = 0.75
    reversed_margin: float = 0.5
    # A day played backwards correlates with the usual day as much as the usual day
    # with its own reverse (its symmetry s), and with the reverse at about 1: the
    # gap is 1 - s. A customer whose usual day is fairly symmetric (s 0.3-0.7: a
    # morning and an evening peak of similar size) keeps a gap worth testing, at
    # ``reversed_gap_share`` of it, where the fixed margin asks more than the
    # reversal can give (a held-out h6 at s 0.55: 0.99 reversed, 0.46-0.51 forwards).
    max_symmetry: float = 0.7
    reversed_gap_share: float = 0.7
    reversed_mean_min_corr: float = 0.5  # the recent days' mean day reversed, at least
    # Clipped peak (see ``_ceiling``).
    ceiling_days: int = 6
    ceiling_min_days: int = 3
    ceiling_ref_margin: float = 1.25
    ceiling_ref_share: float = 0.7
    ceiling_min_base_ratio: float = 3.75
    ceiling_min_corr: float = 0.5
    ceiling_score: float = 0.55
    # The same in the quarter hours' peaks, where a cap is exact (see
    # ``detectors.quarter_ceiling``; a ``dict`` from a settings file: its fields).
    quarter_ceiling: QuarterCeiling | dict[str, Any] = field(default_factory=QuarterCeiling)
    quarter_ceiling_score: float = 0.6
    # The ceiling must stand well above the same days' base load (their lowest
    # hours; ``quarters_per_part``: the engine's profile_s / peak_part_s): a load
    # running at one constant power all day (a closed shop's freezers in our
    # generator, 1.0-1.5 x its base) is flat, not capped; a cap leaves the base
    # alone, and the independent clips stood at 4.7 x their usual base or more.
    quarter_ceiling_min_base_ratio: float = 3.0
    quarters_per_part: int = 4
    zero_run_parts: int = 2
    zero_part_ref_share: float = 0.05  # a part zero on more reference days is not "used"
    # a pattern the customer's own reference shows on this share of days or more is
    # its normal behaviour, not a case (flat days, zero hours)
    max_ref_share: float = 0.1
    name: str = "consumption_shape"

    def __post_init__(self) -> None:
        if isinstance(self.quarter_ceiling, dict):
            self.quarter_ceiling = QuarterCeiling(**self.quarter_ceiling)

    def score_one(self, x: AreaHistory) -> list[Finding]:
        if x.windows[-1].virtual:
            return []  # its customers are scored in their own areas
        # the customer's first windows, before any recent case
        first = min(self.reference_windows, len(x) - max(self.of_days, self.drop_of_days))
        if first < self.min_reference_windows:
            return []
        findings = self._score(x, first)
        if first == self.reference_windows:
            return findings
        # A usual day from a week of windows is a rougher yardstick: nothing found on
        # it is certain on one window (an independent grid's household, home between
        # two absences, read as a day played backwards with seven windows behind it).
        cap = self.short_reference_max_score
        return [f if f.score <= cap else replace(f, score=cap) for f in findings]

    def _score(self, x: AreaHistory, first: int) -> list[Finding]:
        n = len(x)
        recent = self.of_days
        today = x.windows[-1]
        energy = x.energy()
        ref = energy[: n - recent]
        with np.errstate(all="ignore"):
            usual = quiet_nanmedian(ref, axis=0)
        big = usual >= self.min_usual_kwh
        findings: list[Finding] = []

        # A drop alone is weak evidence: a vacant home and a full bypass look the
        # same from the meter. Below the decider, it adds to the evidence of other
        # detectors (the localiser confirms it where an area meter exists).
        drop_base = 0.45
        d = self.drop_of_days
        # Against the larger of its usual and its first windows' level: after ten days
        # of theft the median of all earlier days is the theft's level.
        level = np.fmax(usual, quiet_nanmedian(energy[:first], axis=0))
        with np.errstate(all="ignore"):
            d_ratio = energy[n - d :] / level  # inf / NaN for a level of 0: not "big"
        d_peers = quiet_nanmedian(d_ratio, axis=1)
        peers_kept = d_peers >= self.peer_ratio
        if self.drop_mean:
            # The mean over the days its peers kept their level: a meter slowed by a
            # factor drawn per day (h1) is below half on only some of the days.
            kept_ratio = quiet_nanmean(np.where(peers_kept[:, None], d_ratio, np.nan), axis=0)
            dropped = (peers_kept.sum() >= self.drop_min_days) & (kept_ratio < self.drop_ratio)
        else:
            drop_days = ((d_ratio < self.drop_ratio) & peers_kept[:, None]).sum(0)
            dropped = drop_days >= self.drop_min_days
        self._emit(
            findings,
            today,
            big & dropped,
            "consumption_drop",
            lambda i: drop_base + 0.04 * float(np.clip(1 - np.nanmean(d_ratio[:, i]), 0, 1)),
            lambda i: (
                f"consumption at {np.nanmean(d_ratio[:, i]):.0%} of its usual "
                f"{level[i]:.1f} kWh per window while its area peers kept "
                f"{quiet_nanmedian(d_peers):.0%}"
            ),
            lambda i: max(float(level[i] - np.nanmean(energy[n - d :, i])), 0.0),
        )

        profiles = x.profiles()
        if profiles is None or profiles.shape[-1] < 4:
            return findings
        raw = profiles.astype(np.float64)  # NaN: no reading
        p = np.nan_to_num(raw, nan=0.0)

        p_ref, p_rec = p[: n - recent], p[n - recent :]
        # The usual day is what the customer's days at home look like (a total of at
        # least half its usual): an empty home's day is its meter's noise around a
        # few watt-hours, as varied as any shape. A home empty for its first week and
        # flat ever since (our held-out grids) had a "usual" variation of 1.18 from
        # those days and was called flattened.
        home = np.where((p_ref.sum(-1) >= 0.5 * usual[None, :])[..., None], p_ref, np.nan)
        with np.errstate(all="ignore"):
            norm_ref = home / home.sum(-1, keepdims=True)
            typical = quiet_nanmedian(norm_ref, axis=0)  # customers x parts
            usual_cv = quiet_nanmedian(_cv(home), axis=0)

        base = np.sort(p, axis=-1)[..., : self.base_parts].mean(-1)  # windows x customers
        usual_base = quiet_nanmedian(base[: n - d], axis=0)
        with np.errstate(all="ignore"):
            day_base = base[n - d :] / usual_base
        base_ratio = quiet_nanmean(np.where(peers_kept[:, None], day_base, np.nan), axis=0)
        # Day by day: a home empty for some of the days and full on the others averages
        # to a scaled-looking drop, but none of its days is scaled (near zero or whole).
        # Under ``scaled_min_ratio`` a day is a dead meter or a home switched off at
        # the breaker, unless what is left still has the shape of the customer's days
        # at home: a shunt across the meter passes on a small, fixed share of every
        # hour; an empty home keeps its fridge's base, a switched-off one records
        # nothing or noise. Judged on the mean of those days (one day of a few
        # register steps is noise either way): on the eight independent grids, the
        # six bypasses recording 2-5 % correlated 0.52-0.86 (best window) with their
        # usual day, the 21 households away as low, 0.32 at most.
        residual = (d_ratio > 0) & (d_ratio < self.scaled_min_ratio)
        residual_day = quiet_nanmean(np.where(residual[..., None], p[n - d :], np.nan), axis=0)
        lived_in = residual & (_row_corr(residual_day, typical) >= self.residual_min_corr)[None, :]
        fraction_each = (
            peers_kept[:, None]
            & ((d_ratio >= self.scaled_min_ratio) | lived_in)
            & (d_ratio <= self.scaled_max_ratio)
            & (day_base <= d_ratio + self.scaled_margin)
        )
        scaled_each = fraction_each & (day_base <= self.scaled_base_ratio)
        scaled_days = scaled_each.sum(0)
        # A factor drawn per day (h1) leaves the base of a day at 0.51 of the usual
        # at 0.67: judged on the days' mean base, each day's base only following its
        # total. A home switched off at the breaker on some days and full on the
        # others has no such days (near zero or whole). Nor may low days be part of
        # the customer's week: a shop closed at weekends (two days at 0.12 of the
        # usual, base and all) in a slow week (0.8) averages to a meter at half.
        with np.errstate(all="ignore"):
            low_ref = (energy[:first] < self.drop_ratio * level).mean(0)
        mean_scaled = (
            self.scaled_base_mean
            & (low_ref < self.scaled_low_ref_share)
            & (fraction_each.sum(0) >= self.drop_min_days)
            & (base_ratio <= self.scaled_base_ratio)
        )
        usual_spread = quiet_nan_spread(energy[: n - d])  # the days before the drop's
        steady = quiet_nan_spread(energy[n - d :]) < self.steady_ratio * usual_spread
        # A theft that began three days ago: its five-day mean is not yet below half,
        # but each of its days is scaled, and together they are as far down.
        k = self.scaled_fast_days
        fast = k > 0 and scaled_each[-k:].all(0) & (
            quiet_nanmean(d_ratio[-k:], axis=0) < self.drop_ratio
        )
        scaled = (
            big
            & (usual_base > 0.02 * usual / p.shape[-1])  # a base load to speak of
            & ((dropped & ((scaled_days >= self.drop_min_days) | mean_scaled)) | fast)
            & ~steady
        )
        total_ratio = quiet_nanmean(d_ratio, axis=0)
        self._emit(
            findings,
            today,
            scaled,
            "scaled_drop",
            lambda i: self.scaled_score,
            lambda i: (
                f"consumption at {total_ratio[i]:.0%} of its usual {level[i]:.1f} kWh per "
                f"window and its base load (lowest hours) at {base_ratio[i]:.0%} too, while "
                f"its area peers kept {quiet_nanmedian(d_peers):.0%}: the meter records a "
                f"fraction of the load (an empty home keeps its base load)"
            ),
            lambda i: max(float(level[i] - np.nanmean(energy[n - d :, i])), 0.0),
        )
        shaped = big & (usual_cv > 0.3)

        # h5 and h2 keep (most of) the day's total; a vacant home does not. A flat
        # day must also sit above the customer's usual base load: a home left with
        # only its fridge and standby running is flat at its base load (an
        # independent grid's household away kept "half its median day" and was
        # called a thief), a flattened meter passes on the day's use, its mean: 2-6 x
        # the base for the independent grids' households, but only 1.2-1.5 x for the
        # flatter households of our own generator (1.5 lost 4 of their h5 thefts).
        kept = p_rec.sum(-1) >= 0.5 * usual[None, :]
        rec_cv, rec_mean = _cv(p_rec), p_rec.mean(-1)  # the recent days' variation and level
        above_base = rec_mean > self.flat_min_base_ratio * usual_base[None, :]
        flat_days = ((rec_cv < self.flat_ratio * usual_cv) & kept & above_base).sum(0)
        # Flat days must be rare in the customer's own history (its first
        # ``reference_windows``, before any recent case): an irrigation pump or a
        # workshop runs on some days and idles at a flat base load on the others, so
        # its median day is shaped and its idle days look "flattened".
        p_first = p[:first]
        kept_ref = p_first.sum(-1) >= 0.5 * usual[None, :]
        flat_ref = ((_cv(p_first) < self.flat_ratio * usual_cv) & kept_ref).mean(0)
        self._emit(
            findings,
            today,
            shaped & (flat_ref < self.max_ref_share) & (flat_days >= self.min_days),
            "flat_profile",
            lambda i: 0.8,
            lambda i: (
                f"load profile flattened (variation {np.nanmean(rec_cv[:, i]):.2f}"
                f" against a usual {usual_cv[i]:.2f}) with the daily total kept"
            ),
            lambda i: 0.0,
        )

        rec_ratio = d_ratio[-recent:]
        levelled_days = (
            peers_kept[-recent:, None]
            & (rec_ratio >= self.scaled_min_ratio)
            & (rec_ratio <= self.scaled_max_ratio)
            & (rec_cv < self.levelled_cv_ratio * usual_cv)
            & (rec_mean > self.levelled_min_base_ratio * usual_base[None, :])
        ).sum(0)
        self._emit(
            findings,
            today,
            shaped & (flat_ref < self.max_ref_share) & (levelled_days >= self.min_days) & ~steady,
            "levelled_drop",
            lambda i: self.levelled_score,
            lambda i: (
                f"load profile levelled (variation {np.nanmean(rec_cv[:, i]):.2f} against "
                f"a usual {usual_cv[i]:.2f}) at {np.nanmean(rec_ratio[:, i]):.0%} of its usual "
                f"{level[i]:.1f} kWh per window, "
                f"{np.nanmean(rec_mean[:, i]) / usual_base[i]:.1f} x its base load: "
                f"a meter recording a fraction of the day's mean (an empty home levels out at "
                f"its base load)"
            ),
            lambda i: max(float(level[i] - np.nanmean(energy[n - recent :, i])), 0.0),
        )

        fwd = _row_corr(p_rec, typical[None])
        bwd = _row_corr(p_rec[..., ::-1], typical[None])
        symmetry = _row_corr(typical, typical[:, ::-1])
        margin = np.minimum(self.reversed_margin, self.reversed_gap_share * (1.0 - symmetry))
        rev_days = (((bwd - fwd) > margin) & (bwd >= 0.5)).sum(0)
        # ... or their mean day does (the recent days that kept half the usual total
        # or more, each as shares of its total): one day of a CREST household
        # correlates only 0.3-0.8 with its own usual day, and an independent grid's
        # two h6 thieves, reversed on every day from day 12 (reversed minus forwards
        # about +0.9), stayed under the 0.5 a single day must reach. On the mean of
        # three days, the 28 h6 thieves of nine independent grids reached 0.60-0.89
        # reversed; no lived-in household met the margin at all, and the days that
        # did without a shape (homes away, levelled h4, stuck meters: 0.48 at most)
        # do not keep half the total.
        mean_day = _mean_day(p_rec, kept)  # customers x parts
        fwd_mean = _row_corr(mean_day, typical)
        bwd_mean = _row_corr(mean_day[:, ::-1], typical)
        rev_mean = (
            (kept.sum(0) >= self.min_days)
            & ((bwd_mean - fwd_mean) > margin)
            & (bwd_mean >= self.reversed_mean_min_corr)
        )
        self._emit(
            findings,
            today,
            shaped & (symmetry < self.max_symmetry) & ((rev_days >= self.min_days) | rev_mean),
            "reversed_profile",
            lambda i: 0.85,
            lambda i: (
                f"load profile runs backwards (its recent days' mean day correlates "
                f"{fwd_mean[i]:.2f} with its usual day, {bwd_mean[i]:.2f} reversed)"
            ),
            lambda i: 0.0,
        )

        # A part "usually consumes" when the customer's own reference days almost
        # never recorded it as zero, however little it is: a home's night hours are a
        # fridge and standby, 1 % of its day, and a meter bypassed every night (or
        # for a few hours at any time of day, h2) records exactly nothing there.
        # Judged on its first windows (as flat days are), before any recent case. A
        # part without a reading (NaN: lost, a concentrator outage) is not a zero.
        zero_share = quiet_nanmean(np.where(np.isnan(raw), np.nan, raw <= 0)[:first], axis=0)
        consumes = zero_share <= self.zero_part_ref_share  # NaN (never read): False
        ref_runs = _longest_zero_run(raw[:first], consumes[None])
        rare = (ref_runs >= self.zero_run_parts).mean(0) < self.max_ref_share
        rec_runs = _longest_zero_run(raw[n - recent :], consumes[None])
        zero_days = ((rec_runs >= self.zero_run_parts) & kept).sum(0)
        self._emit(
            findings,
            today,
            big & rare & (zero_days >= self.min_days),
            "zero_hours",
            lambda i: 0.7,
            lambda i: (
                f"hours recorded as zero where it usually consumes, on "
                f"{zero_days[i]} of the last {recent} days"
            ),
            lambda i: max(float(usual[i] - np.nanmean(energy[n - recent :, i])), 0.0),
        )
        hourly = self._ceiling(findings, today, p, energy, usual, big, typical, usual_base)
        self._quarter_ceiling(findings, x, p, energy, usual, big & ~hourly, typical, base)
        return findings

    def _ceiling(
        self,
        findings: list[Finding],
        today: Any,
        p: Matrix,
        energy: Matrix,
        usual: Matrix,
        big: npt.NDArray[np.bool_],
        typical: Matrix,
        usual_base: Matrix,
    ) -> npt.NDArray[np.bool_]:
        """A clipped peak. Over the last ``ceiling_days``, the highest part c is
        reached (within 5 %) on ``ceiling_min_days`` days or more, while most earlier
        days went well above it, the total stays at a quarter of the usual or more,
        c sits well above the base load (an empty home's ceiling is its fridge), and
        the days keep the customer's lived-in shape (their mean day correlating with
        its usual day). A meter that misses every minute above a cap, or heavy
        appliances wired past it. Measured on nine independent grids
        (``/work/s16/clip3.py``, c at 3 x the base or more): 11 of 19 clips, an h1
        and an h3 thief, nobody honest; on our development grids two honest
        households, with a ceiling of 3.2-3.5 x their base (the clips: 4.0-54 x),
        hence 3.75. The margin is thin on both sides: scored just over the decider,
        and the area's balance adds its word where it has one. Under the decider
        (0.45) it corroborated no localiser suspect on any grid: on its own or not
        at all."""
        n, r = p.shape[0], self.ceiling_days
        if n - r < self.reference_windows:
            return np.zeros(p.shape[1], np.bool_)
        ref, rec = p[: n - r], p[n - r :]
        ceiling = rec.max(axis=(0, 2))
        with np.errstate(all="ignore"):
            at_ceiling = (rec.max(-1) >= 0.95 * ceiling[None, :]).sum(0)
            above = (ref.max(-1) > self.ceiling_ref_margin * ceiling[None, :]).mean(0)
        ratio, lived_in = self._lived_in_days(p[n - r :], energy[n - r :], usual, typical)
        hit = (
            big
            & (at_ceiling >= self.ceiling_min_days)
            & (above >= self.ceiling_ref_share)
            & (ratio >= 0.25)
            & (ceiling >= self.ceiling_min_base_ratio * usual_base)
            & lived_in
        )
        self._emit(
            findings,
            today,
            hit,
            "clipped_peak",
            lambda i: self.ceiling_score,
            lambda i: (
                f"its highest hour held at {ceiling[i]:.2f} kWh on {at_ceiling[i]} of the last "
                f"{r} days, which {above[i]:.0%} of its earlier days went well above, at "
                f"{ratio[i]:.0%} of its usual use: a meter missing what runs above a cap"
            ),
            lambda i: max(float(usual[i] - np.nanmean(energy[n - r :, i])), 0.0),
        )
        return hit

    def _quarter_ceiling(
        self,
        findings: list[Finding],
        x: AreaHistory,
        p: Matrix,
        energy: Matrix,
        usual: Matrix,
        candidates: npt.NDArray[np.bool_],
        typical: Matrix,
        base: Matrix,
    ) -> None:
        """A ceiling in the quarter hours' peaks, on a day that keeps a quarter of
        its usual total or more and the lived-in shape (an empty home's ceiling is
        its fridge's cycle; the clips of nine independent grids correlated 0.64 or
        more with their usual day over the ceiling's days, the away households under
        0.4)."""
        peaks = x.peaks()
        qc = self.quarter_ceiling
        assert isinstance(qc, QuarterCeiling)  # see __post_init__
        n, r = p.shape[0], qc.days
        if peaks is None or n - r < self.reference_windows or not candidates.any():
            return
        found = qc.find(peaks, self.reference_windows)
        ratio, lived_in = self._lived_in_days(p[n - r :], energy[n - r :], usual, typical)
        recent_base = np.median(base[n - r :], axis=0)  # the recent days' lowest hours
        above_base = (
            found.kwh * self.quarters_per_part >= self.quarter_ceiling_min_base_ratio * recent_base
        )
        hit = candidates & found.hit & (ratio >= 0.25) & lived_in & above_base
        self._emit(
            findings,
            x.windows[-1],
            hit,
            "clipped_peak",
            lambda i: self.quarter_ceiling_score,
            lambda i: (
                f"its quarter hours capped at {found.kwh[i]:.2f} kWh "
                f"({found.kwh[i] * self.quarters_per_part:.1f} kW)"
                f": {found.parts[i]} quarters of the last {r} days reach it, at most one "
                f"goes above, where {found.above_share[i]:.0%} of its earlier days went well "
                f"above, at {ratio[i]:.0%} of its usual use: a meter missing what runs "
                f"above a cap"
            ),
            lambda i: max(float(usual[i] - np.nanmean(energy[n - r :, i])), 0.0),
        )

    def _lived_in_days(
        self, days: Matrix, energy: Matrix, usual: Matrix, typical: Matrix
    ) -> tuple[Matrix, npt.NDArray[np.bool_]]:
        """What a capped meter keeps of these days: their mean total as a share of
        the usual, and whether their mean day has the customer's lived-in shape (an
        empty home's ceiling is its fridge)."""
        with np.errstate(all="ignore"):
            ratio = energy.mean(0) / usual
        return ratio, _row_corr(_mean_day(days), typical) >= self.ceiling_min_corr

    def _emit(
        self,
        out: list[Finding],
        today: Any,
        mask: npt.NDArray[np.bool_],
        kind: str,
        score: Callable[[int], float],
        reason: Callable[[int], str],
        kwh: Callable[[int], float],
    ) -> None:
        for i in np.flatnonzero(mask):
            out.append(
                Finding(
                    detector=f"{self.name}:{kind}",
                    target_id=today.meter_ids[i],
                    target_kind=TargetKind.METER,
                    category=SuspicionCategory.THEFT,
                    score=round(min(score(int(i)), 0.99), 6),
                    ts=today.window_end,
                    estimated_kwh=kwh(int(i)),
                    reason=reason(int(i)),
                    area_id=today.area_id,
                )
            )
