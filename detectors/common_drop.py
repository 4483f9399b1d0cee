"""A customer's drop that the customers most like it shared: a common cause, not a meter.

The drop detectors (``ConsumptionShapeDetector``'s consumption and scaled drops)
already ask the area's median customer to have kept its level (``peer_ratio``): a
cold week or a holiday moves a whole area. But a common cause can move a group
that is not an area: homes heated the same way when a mild spell comes, rented
rooms whose tenants leave for the Spring Festival, holiday flats, households on
one school calendar. Such a group is scattered over the areas of a region, and
what marks it is that its members moved together before too.

So for each drop finding (and each suspect of the theft localiser, whose
evidence is a shortfall too), this check takes the region's customers whose daily
totals over the history's first windows (the drop detector's reference, before
any recent case) correlated best with the candidate's: its *cohort*, the
``cohort_size`` best at ``min_corr`` or more and beyond what the region's size
makes likely by chance. Where the cohort's level over the drop's windows fell as
well (median at ``max_cohort_ratio`` of its usual or less), to about the
candidate's depth and on the same days (mean and median day within
``max_ratio_gap``), the drop is explained and the finding goes. A meter recording
a fraction of what flows through it falls alone: the customers that moved with
it before keep moving as they did.

Measured (session 28, ``docs/detection.md#session-28``): on two SimBench grids
whose household curves run up to two weeks apart, 22 honest customers sharing a
seasonal dip (copies of one measured curve) were reported as scaled drops; the
check explains the drops of 113 honest customers there, at a median 0.00 from
their cohort's level, and of one thief out of 16 with a cohort (an h6 whose
reversed day names it anyway); the other thieves' cohorts stayed at 0.64-1.23
of their usual while they fell to 0.16-0.6.

Pure: it reads the region's area histories it is given and keeps no state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from detectors._stats import corr_columns, fisher_z, quiet_nanmean, quiet_nanmedian
from detectors.base import Finding
from detectors.observations import AreaHistory
from lineloss.domain import SuspicionCategory

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Cohort:
    """The customers that moved most like a candidate, and where they went."""

    meter_ids: tuple[str, ...]
    min_corr: float  # the weakest member's correlation with the candidate
    ratio: float  # the cohort's median level over the drop's windows / its usual
    own_ratio: float  # the candidate's, the same way
    daily_ratio: tuple[float, ...]  # the cohort's median level in each drop window
    own_daily_ratio: tuple[float, ...]  # the candidate's (NaN: unknown)


@dataclass(frozen=True)
class _Levels:
    """The region's customers over one set of reference windows: what every
    candidate known on those windows is compared with."""

    ref: Matrix  # reference windows x customers [kWh]
    known: npt.NDArray[np.bool_]  # customers known on every reference window
    usual: Matrix  # per customer, its median reference window [kWh]
    daily: Matrix  # drop windows x customers, each over its usual
    ratio: Matrix  # per customer, the mean of ``daily``


@dataclass(frozen=True)
class _RegionDays:
    """Daily totals of every customer of a region over one history's windows."""

    keys: tuple[tuple[str, str], ...]  # (area, meter) per column
    energy_kwh: Matrix  # windows x customers, NaN where unknown
    # Levels by the reference windows read (a mask's bytes): most candidates of a
    # window share theirs, and the region's medians are the check's main cost.
    levels: dict[bytes, _Levels] = field(default_factory=dict)

    @cached_property
    def column(self) -> dict[tuple[str, str], int]:
        return {k: j for j, k in enumerate(self.keys)}


@dataclass(frozen=True)
class CommonDropCheck:
    cohort_size: int = 5
    min_corr: float = 0.6
    # ... and beyond chance in a region this size: over 9 or 10 windows an honest
    # customer correlates at 0.6 with 4 % of unrelated ones (20 in a region of
    # 500). A member's Fisher z must be one that at most this many of the region's
    # customers reach by chance (about r 0.8 for 500 customers and 10 windows,
    # 0.87 for 5,000).
    chance_members: float = 1.0
    # The first windows of the history, as the drop detector's own level
    # (ConsumptionShapeDetector.reference_windows): a thief's later windows are
    # its theft, and a cohort chosen on them follows the thief's noise into
    # whoever fell in the meantime (a theft-heavy grid of ours, seed 102: an h4
    # "explained" by four other thieves once a week of its theft was reference).
    reference_windows: int = 10
    min_reference_windows: int = 7
    drop_windows: int = 5  # ConsumptionShapeDetector.drop_of_days
    max_cohort_ratio: float = 0.8  # ConsumptionShapeDetector.peer_ratio
    max_ratio_gap: float = 0.15
    min_usual_kwh: float = 1.0  # per window; a smaller customer's days are noise
    # The drop detectors' findings, and the localiser's: its suspect is a customer
    # whose shortfall the area's loss followed, and a shortfall its cohort shared
    # is a common cause too: SimBench seed 37's last false theft (C89229886, z 8.5,
    # its own drop 24 spreads) went; no other case changed on the 51 grids (session 29).
    detectors: tuple[str, ...] = (
        "consumption_shape:consumption_drop",
        "consumption_shape:scaled_drop",
        "theft_localiser",
    )

    def applies(self, f: Finding) -> bool:
        return f.category == SuspicionCategory.THEFT and f.detector in self.detectors

    def without_explained(
        self, findings: Sequence[Finding], scopes: Iterable[Mapping[str, AreaHistory]]
    ) -> list[Finding]:
        """``findings`` (of one window, every area of each scope pushed) less the
        drops their cohorts explain, in their order."""
        gone: set[int] = set()
        for scope in scopes:
            gone.update(k for k, c in self.cohorts(findings, scope).items() if self.explains(c))
        return [f for k, f in enumerate(findings) if k not in gone]

    def cohorts(
        self, findings: Sequence[Finding], scope: Mapping[str, AreaHistory]
    ) -> dict[int, Cohort]:
        """Per position in ``findings`` (those this check applies to, in areas of
        ``scope``), the candidate's cohort where one can be formed."""
        out: dict[int, Cohort] = {}
        days: dict[tuple[int, ...], _RegionDays | None] = {}  # by the windows read
        for k, f in enumerate(findings):
            area = f.area_id
            if not self.applies(f) or area is None or area not in scope:
                continue
            starts = self._starts(scope[area])
            if starts is None:
                continue
            if starts not in days:
                days[starts] = self._region_days(starts, scope)
            region = days[starts]
            if region is None:
                continue
            cohort = self._cohort(region, (area, f.target_id))
            if cohort is not None:
                out[k] = cohort
        return out

    def explains(self, c: Cohort) -> bool:
        """The cohort fell, to about the candidate's depth, and day by day with it
        (the median of the windows' differences within the same gap): a common
        cause moves its group on the same days. A meter slowed by a factor drawn
        each day (h1) whose cohort happens to be away keeps its own days (SimBench
        seed 37's h1 against a cohort chosen over later windows, a group away from
        home: 0.2, 0.84, 0.2, 0.35, 0.47 against 0.42, 0.39, 0.35, 0.27, 0.27, both
        near 0.4 on the mean, 0.2 apart on the median day)."""
        if c.ratio > self.max_cohort_ratio or abs(c.ratio - c.own_ratio) > self.max_ratio_gap:
            return False
        gap = np.abs(np.array(c.own_daily_ratio) - np.array(c.daily_ratio))
        gap = gap[np.isfinite(gap)]
        return bool(len(gap)) and float(np.median(gap)) <= self.max_ratio_gap

    def _starts(self, own: AreaHistory) -> tuple[int, ...] | None:
        """The windows a candidate of ``own`` is judged on: its history's first
        (reference) windows and its last (drop) windows, by start."""
        n_ref = min(self.reference_windows, len(own) - self.drop_windows)
        if n_ref < self.min_reference_windows:
            return None
        all_starts = [w.window_start for w in own.windows]
        return tuple(all_starts[:n_ref] + all_starts[-self.drop_windows :])

    def _region_days(
        self, starts: tuple[int, ...], scope: Mapping[str, AreaHistory]
    ) -> _RegionDays | None:
        """Every customer of the region over these windows, matched by start: the
        pipeline pushes a window to every area before checking; an area younger
        than the reference has no column known throughout it."""
        keys: list[tuple[str, str]] = []
        cols: list[Matrix] = []
        for area in sorted(scope):
            h = scope[area]
            if not len(h) or h.windows[-1].virtual:
                continue  # a virtual area's customers are columns of their own areas
            row = {w.window_start: i for i, w in enumerate(h.windows)}
            e = h.energy()
            take = np.array([row.get(s, -1) for s in starts])
            block = np.where((take >= 0)[:, None], e[np.maximum(take, 0)], np.nan)
            cols.append(block)
            keys += [(area, m) for m in h.windows[-1].meter_ids]
        if not cols:
            return None
        return _RegionDays(tuple(keys), np.concatenate(cols, axis=1))

    def _levels(self, region: _RegionDays, rows: npt.NDArray[np.bool_]) -> _Levels:
        """The region over the reference windows ``rows``, computed once per set."""
        key = rows.tobytes()
        got = region.levels.get(key)
        if got is not None:
            return got
        e = region.energy_kwh
        ref, drop = e[: -self.drop_windows][rows], e[-self.drop_windows :]
        with np.errstate(all="ignore"):
            usual = quiet_nanmedian(ref, axis=0)
            daily = drop / usual
            ratio = quiet_nanmean(daily, axis=0)
        known = np.asarray(np.isfinite(ref).all(axis=0))
        got = region.levels[key] = _Levels(ref, known, usual, daily, ratio)
        return got

    def _cohort(self, region: _RegionDays, key: tuple[str, str]) -> Cohort | None:
        j = region.column.get(key)
        if j is None:
            return None
        # The reference windows the candidate is known on (a history's first window
        # is often nobody's: no register reading before it), and columns known on
        # every one of them: correlations over different windows for different
        # customers would rank them on different evidence.
        rows = np.isfinite(region.energy_kwh[: -self.drop_windows, j])
        if rows.sum() < self.min_reference_windows:
            return None
        lv = self._levels(region, rows)
        ref, known, usual, daily, ratio = lv.ref, lv.known, lv.usual, lv.daily, lv.ratio
        corr = np.full(len(known), np.nan)
        corr[known] = corr_columns(ref[:, j], ref[:, known])
        ok = known & (usual >= self.min_usual_kwh) & np.isfinite(corr) & np.isfinite(ratio)
        ok[j] = False
        z_min = NormalDist().inv_cdf(1.0 - min(self.chance_members / max(ok.sum(), 1), 0.5))
        ok &= (corr >= self.min_corr) & (fisher_z(corr, ref.shape[0]) >= z_min)
        if ok.sum() < self.cohort_size or not np.isfinite(ratio[j]):
            return None
        cand = np.flatnonzero(ok)
        # best correlation first; ties by column (the areas' and meters' order)
        best = cand[np.lexsort((cand, -corr[cand]))][: self.cohort_size]
        return Cohort(
            meter_ids=tuple(region.keys[i][1] for i in best),
            min_corr=float(corr[best].min()),
            ratio=float(np.median(ratio[best])),
            own_ratio=float(ratio[j]),
            daily_ratio=tuple(float(x) for x in quiet_nanmedian(daily[:, best], axis=1)),
            own_daily_ratio=tuple(float(x) for x in daily[:, j]),
        )
