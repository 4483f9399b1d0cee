"""Localise thieves inside an area: whose under-recording is the area's new loss?

When a customer bypasses or slows a meter, its recorded consumption drops while the
area meter still sees the true load, so the area's loss rises by exactly the energy
that stopped being recorded. Per area, over its whole history (a growing window of
hourly parts, so three weeks give ~500 observations), one joint model of the hourly
loss ``L_t = supply_t - sum_i x_it``:

    L_t = a + b S_t + c S_t**2                 technical loss (+ area-meter gain)
          + sum_j c_j v_jt 1(t >= s_j)          what thief j stopped recording
          + noise

* ``a`` is the fixed (no-load) part, ``c S**2`` the load-dependent I^2 R part, ``b S``
  absorbs a constant gain error of the area meter; all fitted jointly with the
  thieves, so a theft does not leak into the technical-loss model.
* After its change point ``s_j`` a thief's stolen energy follows one of two columns
  ``v``: its recorded load (a slowed meter, h1/h3, a partial bypass: stolen energy in
  proportion to what is still recorded) or its *deficit* ``D = usual - recorded``
  (hours recorded as zero, a full bypass, a flattened or reversed day: stolen energy
  is the shortfall against what it usually uses, per part of the day and weekday or
  weekend). ``c_j > 0``.
* The stolen energy must also show in the thief's own data: it is held to the
  customer's own shortfall since the start by a Gaussian prior (its day-to-day
  spread), and a "slowed meter" must show a significant drop. A customer on holiday
  has a shortfall too, but the area's loss does not move with it; a big customer
  whose load shape happens to fit the loss has no shortfall.

Thieves are added greedily (the customer and change point that most reduce the
residual sum of squares, from running sums over days, so every candidate start of
every customer is tried at once), kept while their stolen energy is significant,
then re-tested jointly. A candidate is scored at its most probable size given the
area's loss and its own shortfall, held within what it can have stolen: when
several thieves start close together, none alone explains the area's new loss, and
judging each at the size that would (and refusing it for being too big) left whole
areas of thieves unexplained. The significance z is the estimated stolen energy over its
standard error with a Newey-West (Bartlett) long-run variance of the hourly
residuals: area-meter register rounding makes hourly residuals negatively
autocorrelated, load-model misfit positively, and a plain standard error would be
wrong either way. The score is P(theft) from z and the suspect's own drop against
its peers' level (independent evidence: the area's balance and the customer's own
meter), by a logistic calibration fitted on development grids.

h5 and h6 keep the daily total and mostly the hourly one within the noise; they are
the shape detector's job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from detectors._stats import long_run_var, quiet_nan_spread, quiet_nanmedian
from detectors.base import Finding, HistoryOnly
from detectors.observations import AreaHistory
from lineloss.domain import SuspicionCategory, TargetKind

FloatArray = npt.NDArray[np.float64]
RECORDED, DEFICIT = 0, 1


@dataclass(frozen=True)
class ThiefFit:
    """One thief of the joint model."""

    index: int  # customer index in the area's latest window
    start: int  # window index of the estimated change point
    kind: int  # RECORDED: stolen in proportion to what is still recorded; DEFICIT:
    # stolen in proportion to the shortfall against the customer's usual use
    coef: float  # kWh stolen per kWh of the column after the start
    stolen_kwh: float  # estimated over the whole period since the start [kWh]
    stolen_last_kwh: float  # in the latest window [kWh]
    z: float  # stolen_kwh / its HAC standard error
    own_kwh: float = 0.0  # its own shortfall against its usual use since the start [kWh]
    own_sd_kwh: float = 1.0  # natural spread of that shortfall [kWh]
    drop_z: float = 0.0  # its own shortfall since the start over that shortfall's spread
    # kept in the model, not reported: its share of the loss is what a thief with a
    # drop of its own (described more flexibly) explains as well
    explained: bool = False


@dataclass
class AreaModel:
    """The area's hourly data and the fitted joint model."""

    loss: FloatArray  # T, valid hours only [kWh]
    base: FloatArray  # T x 3: 1, S, S**2
    x: FloatArray  # T x N recorded [kWh]
    deficit: FloatArray  # T x N usual - recorded [kWh]
    day: npt.NDArray[np.int64]  # T window index of each hour
    n_windows: int
    daily_sd: FloatArray  # N, spread of each customer's window totals in the reference
    drop: FloatArray  # W x N shortfall per window against usual use x the peers' level [kWh]
    drop_sd: FloatArray  # N, its spread per window in the reference [kWh]
    totals: FloatArray  # W x N recorded per window (gaps at the usual use) [kWh]
    usual_totals: FloatArray  # W x N usual use per window [kWh]
    base_load: FloatArray  # W x N its lowest parts' mean x parts (NaN: totals only) [kWh]
    hac_lag: int  # Newey-West bandwidth [parts]
    thieves: list[ThiefFit] = field(default_factory=list)
    unseen: list[int] = field(default_factory=list)  # customers the area meter never saw


@dataclass
class TheftLocaliser(HistoryOnly):
    min_reference_windows: int = 7  # windows before the earliest change point
    min_z: float = 4.0  # significance for a suspect to join the model; the score decides
    max_thieves: int = 8  # per area
    # Observations per suspect in the model, at least: a daily series of 28 days
    # carries two. Eight suspects fitted to it left residuals near zero and z in the
    # thousands for honest households (an independent grid read once a day).
    min_points_per_suspect: int = 10
    min_kwh_per_window: float = 0.2  # stolen energy worth a finding [kWh per window]
    max_beta: float = 10.0  # stolen per recorded kWh; a meter recording < 10 % is a bypass
    max_gamma: float = 1.5  # stolen per kWh of shortfall against the usual use
    max_share: float = 1.5  # stolen / usual use since the start: one cannot steal much more
    deficit_tolerance_sd: float = 3.0  # stolen <= own shortfall + this many daily spreads
    min_drop_z: float = 2.0  # own shortfall of a slowed meter, in daily spreads
    # Newey-West bandwidth [windows]: a day of hourly parts, or one day of a daily
    # series (24 lags there spanned the whole history and hid every theft).
    hac_lag_windows: float = 1.0
    capped_candidates: bool = True  # candidates at their most probable feasible size
    swap_test: bool = True  # a suspect without a drop of its own against one with one
    max_mismatched: int = 2  # whole-period customer columns in the base model
    mismatch_min_r2: float = 0.5  # share of the residual variance such a column explains
    # ... and not a customer that carries ``mismatch_max_share`` or more of the supply
    # and whose own use later falls ``mismatch_max_drop_z`` spreads short of its usual
    # (``_own_drop_z``). With the supply in the base, such a customer's load enters
    # the loss with a coefficient near -1 whatever happens (the loss is the supply
    # less mostly its load), so it looks mismatched, and its whole-period column
    # then absorbs its own theft: a dedicated customer's bypass of 12,000 kWh a day in
    # its feeder's unmetered part (87 % of it) went without any suspect. A household
    # recorded in the wrong area that later leaves home stays mismatched (an
    # independent grid: unmodelled, its lack hid a thief next door).
    mismatch_max_share: float = 0.25
    mismatch_max_drop_z: float = 5.0
    mismatch_whole_period: bool = True  # a second pass for columns lowering the loss
    # P(theft) per window by logistic calibration on ln z, the suspect's own drop
    # against its peers and its kind (see ``_probability``), fitted on the
    # localiser's findings on the development grids (seeds 1, 2, 3, 5, 7, 21; 5,100
    # findings at min_z 4, session 5). The area's evidence and the suspect's own are
    # independent: a misattributed neighbour (a big customer whose load shape fits
    # the loss) shows no drop of its own, and stolen "in proportion to what is
    # recorded" is the column such a neighbour fits. Even chance at z = 14 for a
    # slowed meter without a drop, 6.5 with a drop of 10 spreads, 3.7 for a
    # shortfall-shaped theft with that drop. Before: ln z alone, (-5.11, 2.63).
    calibration: tuple[float, ...] = (-5.554, 2.099, 0.162, 1.192)
    # The joint re-fit may move a suspect's coefficient past what it can have stolen
    # (more than 1.5 x its own shortfall): the area's loss then moves with something
    # else (a household away that week took 2.2 x its shortfall on an independent grid).
    report_within_limits: bool = True
    # ... or short of it: a shortfall-shaped theft's stolen energy *is* its shortfall
    # (a bypass, hours recorded as zero), so the area's loss rises by about all of
    # it (0.6-1.5 for the thieves of our grids). A suspect whose loss share stays
    # under this mostly used less (a home away) and was lent another loss's part:
    # kept in the model, not reported.
    min_deficit_share: float = 0.4
    # A suspect whose short days since its start are far more alike than its days
    # ever were (their spread under ``steady_ratio`` of its usual) is a home left
    # empty, its fridge and standby using the same every day, unless the area's loss
    # is very clear (z >= ``steady_min_z``). On the independent grids the localiser's
    # false thefts (seeds 16, 18 and unseen 19: z 4.6-6.4) were all such homes; a
    # meter recording a fraction of a lived-in home's use keeps its day-to-day swings
    # (session 14; ``ConsumptionShapeDetector.steady_ratio`` has the figures).
    steady_ratio: float = 0.15
    steady_min_z: float = 8.0
    steady_low_share: float = 0.6  # a short day: recorded under this share of usual
    steady_min_days: int = 3
    # ... at any z when those days kept the home's base load (the mean of its
    # ``base_parts`` lowest parts a day, at least ``empty_base_ratio`` of its usual):
    # the fridge runs on with nobody home. An unseen independent grid's away household
    # (base 0.04-0.05 kWh an hour, before and during its six days away) reached z 8.5
    # in an area where seven thefts and a stuck meter began within the same ten days;
    # a bypass leaving one steady circuit metered takes the night's base down with
    # the rest.
    empty_base_ratio: float = 0.6
    base_parts: int = 4
    # ... or, their spread whatever it is, when they sit at the home's base load (a
    # day at its usual lowest parts' level, kept, times this at most: fridge and
    # standby with nobody in; an empty home levels out at 1.1-2.0 x, the levelled
    # h4 thieves at 2-9 x, see ``ConsumptionShapeDetector.levelled_min_base_ratio``).
    # Unseen independent seed 22's away household spread 0.26 of its usual over
    # eleven days at 1.6 x its base and was named at z 5.1 when it came home.
    empty_max_base_ratio: float = 2.0
    empty_max_spread_ratio: float = 0.4  # ... and still fairly alike (h4 swings as the home)
    # A suspect whose load its area meter missed from the first windows on is a
    # registry error, not a thief (``_unseen_from_start``). Our generators' mapping
    # errors and the independent grids': the coefficient -0.6 to -1.6 in each half of
    # the windows before the change point, t -3 to -28; thieves whose theft began
    # before the change point the search found: the later half only, or t above -2.
    unseen_max_start_lag: int = 2
    unseen_max_coef: float = -0.5
    unseen_min_t: float = 2.5
    max_unseen_rounds: int = 2
    name: str = "theft_localiser"

    def _limit(self, kind: int) -> float:
        return self.max_beta if kind == RECORDED else self.max_gamma

    def score_one(self, x: AreaHistory) -> list[Finding]:
        model = self.fit(x)
        if model is None:
            return []
        today = x.windows[-1]
        out = []
        for th in model.thieves:
            if (
                th.explained
                or th.z < self.min_z
                or th.stolen_kwh / max(model.n_windows - th.start, 1) < self.min_kwh_per_window
                or (self.report_within_limits and th.coef > self._limit(th.kind))
                or (th.kind == DEFICIT and th.coef < self.min_deficit_share)
                or self._empty_home(model, th)
            ):
                continue
            p = _probability(th.z, th.drop_z, th.kind == DEFICIT, self.calibration)
            out.append(
                Finding(
                    detector=self.name,
                    target_id=today.meter_ids[th.index],
                    target_kind=TargetKind.METER,
                    category=SuspicionCategory.THEFT,
                    score=round(p, 6),
                    ts=today.window_end,
                    estimated_kwh=max(th.stolen_last_kwh, 0.0),
                    reason=(
                        f"area loss rose with this meter's under-recording: "
                        f"{th.stolen_kwh:.1f} kWh unrecorded (z={th.z:.1f}; its own "
                        f"shortfall {th.own_kwh:.1f} kWh; "
                        + (
                            f"{th.coef:.2f} kWh per recorded kWh"
                            if th.kind == RECORDED
                            else f"{th.coef:.0%} of its shortfall against its usual use"
                        )
                        + f"; own drop {th.drop_z:.1f} sd against its peers"
                        + f"), joint model of {len(model.thieves)} suspect(s) "
                        f"and the technical loss"
                    ),
                    area_id=today.area_id,
                    start_s=x.windows[th.start].window_start,
                    window_start=today.window_start,
                )
            )
        return out

    def _empty_home(self, m: AreaModel, th: ThiefFit) -> bool:
        """Whether the suspect's short days since its start (at least
        ``steady_min_days``, recorded under ``steady_low_share`` of its usual use,
        0.2 kWh or more: a dead meter is no home) are those of a home nobody uses:
        far more alike than its days ever were (unless the area's loss is very clear,
        z of ``steady_min_z`` or more, and the home's base load went down too), or
        at its base load (kept, and no more than ``empty_max_base_ratio`` x a day at
        that level) and fairly alike (under ``empty_max_spread_ratio``) with the loss
        not very clear."""
        i = th.index
        rec = m.totals[th.start :, i]
        usual = m.usual_totals[th.start :, i]
        short = (rec < self.steady_low_share * usual) & (rec >= 0.2)
        if short.sum() < self.steady_min_days:
            return False
        usual_base = np.median(m.base_load[: self.min_reference_windows, i])
        short_base = np.median(m.base_load[th.start :, i][short])
        # Unknown without hours (daily readings): not shown to have gone down.
        base_kept = not bool(short_base < self.empty_base_ratio * usual_base)
        clear = th.z >= self.steady_min_z
        spread = float(
            quiet_nan_spread(rec[short])
            / quiet_nan_spread(m.totals[: self.min_reference_windows, i])
        )
        if spread < self.steady_ratio:  # NaN: not steady
            return not clear or base_kept
        at_base = bool(np.mean(rec[short]) <= self.empty_max_base_ratio * usual_base)
        return at_base and base_kept and spread < self.empty_max_spread_ratio and not clear

    # --- the model

    def fit(self, h: AreaHistory) -> AreaModel | None:
        """The area's joint model over its whole history, or None without enough data."""
        model = self._data(h)
        if model is None:
            return None
        self._add_mismatched(model)
        for _ in range(self.max_unseen_rounds + 1):
            chosen, explained = self._choose(model)
            unseen = [i for i, s, _k in chosen if self._unseen_from_start(model, i, s)]
            if not unseen:
                break
            # Not a thief: a customer whose load its area meter has not seen since the
            # first windows. Its whole recorded load joins the base model, and the
            # suspects are chosen again without it.
            model.base = np.column_stack([model.base, *(model.x[:, i] for i in unseen)])
            model.unseen.extend(unseen)
        if chosen:
            model.thieves = sorted(
                (
                    replace(f, explained=(f.index, f.start, f.kind) in explained)
                    for f in self._joint(model, chosen)
                ),
                key=lambda f: -f.z,
            )
        return model

    def _choose(
        self, model: AreaModel
    ) -> tuple[list[tuple[int, int, int]], set[tuple[int, int, int]]]:
        """The suspects (customer, start, kind) of the current base model, and those of
        them that a suspect with a drop of its own explains as well (``_swap``)."""
        silenced = [c for c in self._silenced(model) if c[0] not in model.unseen]
        starts = np.arange(self.min_reference_windows, model.n_windows)
        chosen: list[tuple[int, int, int]] = list(silenced)
        room = (len(model.loss) - model.base.shape[1]) // self.min_points_per_suspect
        for _ in range(min(self.max_thieves, room - len(chosen))):
            best = self._best_candidate(model, chosen, starts)
            if best is None:
                break
            if self._joint(model, [*chosen, best])[-1].z < self.min_z:
                break
            chosen.append(best)
        chosen = self._retest(model, chosen, keep=frozenset(silenced))
        explained: set[tuple[int, int, int]] = set()
        if self.swap_test and chosen:
            chosen, explained = self._swap(model, chosen, starts)
            chosen = self._retest(model, chosen, keep=frozenset(silenced))
        return chosen, explained

    def _unseen_from_start(self, m: AreaModel, i: int, start: int) -> bool:
        """Did the area meter miss customer ``i``'s load all along before its change
        point? A customer recorded under the wrong area, or behind a registry
        multiplier far above its field one, lacks from the area's loss from the first
        windows on; the greedy search then places its "theft" at the earliest change
        point it may try, and its deficit column fits the lack from there. A thief's
        load is seen until its theft starts. Asked of suspects whose change point is
        within ``unseen_max_start_lag`` windows of the earliest: the windows before it,
        split in two halves, must each show the load entering the loss with a
        coefficient of ``unseen_max_coef`` or below at ``unseen_min_t`` (Newey-West);
        a theft that began inside the reference windows shows the lack in the later
        half only."""
        if start > self.min_reference_windows + self.unseen_max_start_lag:
            return False
        half = start // 2
        for part in (m.day < half, (m.day >= half) & (m.day < start)):
            if part.sum() <= m.base.shape[1] + 1:
                return False
            a = np.column_stack([m.base[part], m.x[part, i]])
            pinv = np.linalg.pinv(a)
            resid = m.loss[part] - a @ (pinv @ m.loss[part])
            coef = float(pinv[-1] @ m.loss[part])
            se = math.sqrt(max(long_run_var(pinv[-1] * resid, m.hac_lag), 1e-12))
            if coef > self.unseen_max_coef or coef / se > -self.unseen_min_t:
                return False
        return True

    def _retest(
        self,
        m: AreaModel,
        chosen: list[tuple[int, int, int]],
        keep: frozenset[tuple[int, int, int]] = frozenset(),
    ) -> list[tuple[int, int, int]]:
        """Re-test jointly: a thief that only looked significant before a later one
        explained its share of the loss drops out (``keep`` stay in the model, and are
        reported only if significant)."""
        chosen = list(chosen)
        while chosen:
            fits = self._joint(m, chosen)
            bad = [j for j, f in enumerate(fits) if f.z < self.min_z and chosen[j] not in keep]
            if not bad:
                break
            del chosen[min(bad, key=lambda j: fits[j].z)]
        return chosen

    def _swap(
        self, m: AreaModel, chosen: list[tuple[int, int, int]], starts: npt.NDArray[np.int64]
    ) -> tuple[list[tuple[int, int, int]], set[tuple[int, int, int]]]:
        """Competing candidates. A suspect without a drop of its own against its peers
        (a large customer whose hourly deviations fit the loss) may only be taking
        what the model's description of a real thief misfits (one coefficient over
        all days for a share that varies by day, or the other column), or what the
        candidate with a drop of its own explains as well. It is tested against both:

        * the thieves with a drop of their own get a coefficient per day and their
          other column; the suspect is reported only if it is still significant
          (otherwise its column stays in the model, unreported: taking it out would
          put the misfit it absorbs into every other suspect's error);
        * the best candidate with a drop joins the model; when the suspect adds
          nothing significant once it is in (the area's loss cannot tell them
          apart), the one whose own meter shows the shortfall is kept."""
        fits = self._joint(m, chosen)
        explained: set[tuple[int, int, int]] = set()
        for f in sorted(fits, key=lambda f: f.drop_z):
            if f.drop_z >= self.min_drop_z:
                break
            cur = (f.index, f.start, f.kind)
            rest = [c for c in chosen if c != cur]
            alt = self._best_candidate(m, rest, starts, need_drop=True)
            if alt is not None and alt[0] != f.index:
                both = self._joint(m, [*rest, cur, alt])
                # Swapped only when the area's loss cannot tell them apart (the
                # suspect adds nothing significant once the other is in).
                if both[-2].z < self.min_z and self._joint(m, [*rest, alt])[-1].z >= self.min_z:
                    chosen = [*rest, alt]
                    continue
            dropped = [
                (g.index, g.start, g.kind)
                for g in fits
                if g.drop_z >= self.min_drop_z and (g.index, g.start, g.kind) in rest
            ]
            if dropped:
                flexible = [self._column(m, c) for c in rest if c not in dropped]
                for i, s, kind in dropped:
                    v = self._column(m, (i, s, kind))
                    flexible += [v * (m.day == d) for d in range(s, m.n_windows)]
                    other = DEFICIT if kind == RECORDED else RECORDED
                    flexible.append(self._column(m, (i, s, other)))
                if self._z_last(m, [*flexible, self._column(m, cur)]) < self.min_z:
                    explained.add(cur)
        return chosen, explained

    def _z_last(self, m: AreaModel, columns: list[FloatArray]) -> float:
        """z of the stolen energy of the last of ``columns`` in the model of the base
        and all of them (the error as in ``_joint``)."""
        a = np.column_stack([m.base, *columns])
        theta, *_ = np.linalg.lstsq(a, m.loss, rcond=None)
        resid = m.loss - a @ theta
        col = a[:, -1]
        total = float(col.sum())
        g = total * np.linalg.pinv(a)[-1]
        acov = _autocov(resid, m.hac_lag)
        var = max(long_run_var(g * resid, m.hac_lag), _quad_form(g, acov))
        return float(theta[-1]) * total / math.sqrt(max(var, 1e-12))

    def _add_mismatched(self, m: AreaModel) -> None:
        """Customers whose whole recorded consumption enters the loss with a
        coefficient far from zero throughout (recorded under the wrong area, a wrong
        multiplier, an under-recording older than the history) join the base model:
        unmodelled, a mapping error's weekday swings of hundreds of kWh drown any
        theft in its area. They are the fault and topology detectors' to report.

        Judged on the reference windows first, before any change point: a thief whose
        theft dominates the loss afterwards (a dedicated customer's bypass) fits a
        whole-period column too, and put in the base it would hide its own theft.
        Then on the whole history, for a column that *lowers* the loss of a customer
        whose own use never fell short, which no theft does: a wrong multiplier on a
        customer whose use grew eightfold after the reference windows (an independent
        grid: 32 then 250 kWh a day recorded at twice its use) drove its area's loss
        to -200 kWh a day, and the joint model hid the grid's largest theft (440 kWh)
        behind a zeroed meter "stealing" -1,300 kWh."""
        ref = m.day < self.min_reference_windows
        if ref.sum() <= m.base.shape[1] + 1:
            return
        supply = m.loss[ref] + m.x[ref].sum(axis=1)
        share = m.x[ref].sum(axis=0) / max(float(supply.sum()), 1e-9)
        short = _own_drop_z(m, self.min_reference_windows) >= self.mismatch_max_drop_z
        dropping = (share >= self.mismatch_max_share) & short
        added = self._mismatch_pass(m, ref, ~dropping, self.max_mismatched, lowers_only=False)
        if self.mismatch_whole_period:
            # Any customer whose own use fell short is left out here: a meter that
            # stopped recording lowers the loss too, seen over the whole history (it
            # recorded before and the loss rose after).
            whole = np.ones_like(ref)
            self._mismatch_pass(m, whole, ~short, self.max_mismatched - added, lowers_only=True)

    def _mismatch_pass(
        self,
        m: AreaModel,
        rows: npt.NDArray[np.bool_],
        eligible: npt.NDArray[np.bool_],
        at_most: int,
        lowers_only: bool,
    ) -> int:
        """Adds up to ``at_most`` customer columns to the base, the most significant
        first, each while it explains ``mismatch_min_r2`` of the residual variance over
        ``rows``; returns how many it added."""
        added = 0
        for _ in range(at_most):
            q, _r = np.linalg.qr(m.base[rows])
            resid = m.loss[rows] - q @ (q.T @ m.loss[rows])
            xr = m.x[rows] - q @ (q.T @ m.x[rows])  # each customer's load off the base
            norm = (xr * xr).sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                coef = np.where(norm > 1e-9, (xr.T @ resid) / norm, 0.0)
            dof = max(len(resid) - m.base.shape[1] - 1, 1)
            rss = float(resid @ resid) - coef**2 * norm
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.abs(coef) * np.sqrt(norm) / np.sqrt(np.maximum(rss, 1e-12) / dof)
            ok = np.isfinite(t) & eligible & ((coef < 0) if lowers_only else True)
            if not ok.any():
                break
            best = int(np.argmax(np.where(ok, t, 0.0)))
            # The share of the loss's variance it explains, not a t alone: with
            # hundreds of hours every small misfit is "significant".
            if rss[best] > (1.0 - self.mismatch_min_r2) * float(resid @ resid):
                break
            m.base = np.column_stack([m.base, m.x[:, best]])
            added += 1
        return added

    def _silenced(self, m: AreaModel) -> list[tuple[int, int, int]]:
        """Meters that have recorded exactly nothing for whole windows (a stuck or
        zeroed register, a dead meter, a meter wired out entirely) while they usually
        consume: their usual use enters the loss from then on. They start the model
        as suspects of the shortfall kind and stay in it, so the loss they leave is
        not pinned on a neighbour whose load happens to follow it (an independent
        grid: a stuck shop meter's 40 kWh a day went to a big customer with a slow
        downward trend and to a home left empty the same week). Reported like any
        suspect when significant; a stuck register is the fault detector's too."""
        last_day = int(m.day.max())
        recorded = m.x > 0
        out = []
        for i in range(m.x.shape[1]):
            if not recorded[:, i].any():
                continue
            start = int(m.day[recorded[:, i]].max()) + 1
            if start < self.min_reference_windows or last_day - start + 1 < 2:
                continue
            col = m.deficit[:, i] * (m.day >= start)
            if col.sum() <= 0.5 * (last_day - start + 1):  # under 0.5 kWh a day
                continue
            out.append((i, start, DEFICIT))
        return out[: self.max_thieves]

    def _data(self, h: AreaHistory) -> AreaModel | None:
        today = h.windows[-1]
        if not today.has_supply or today.n_customers == 0:
            return None
        n = len(h)
        if n <= self.min_reference_windows:
            return None
        profiles = h.profiles(spread_unresolved=True)
        supply_p = h.supply_profiles()
        if profiles is None or supply_p is None:
            x3 = h.energy()[:, :, None]
            s2 = h.supply()[:, None]
        else:
            x3 = profiles.astype(np.float64)
            s2 = supply_p.astype(np.float64)
        usual = _usual(x3, self.min_reference_windows, _weekend(h))  # W x N x K
        filled = np.where(np.isnan(x3), usual, x3)
        totals = filled[: self.min_reference_windows].sum(axis=2)
        spread = totals - usual[: self.min_reference_windows].sum(axis=2)
        daily_sd = 1.4826 * quiet_nanmedian(np.abs(spread - np.median(spread, axis=0)), axis=0)
        drop, drop_sd = _peer_drop(
            filled.sum(axis=2), usual.sum(axis=2), self.min_reference_windows
        )
        loss = s2 - filled.sum(axis=1)  # W x K
        ok = np.isfinite(loss).ravel()
        n_c, k = x3.shape[1], x3.shape[2]
        # A day of hours at least; a daily series, twice its reference windows.
        if (
            ok.sum() < min(24, 2 * self.min_reference_windows * k)
            or not np.isfinite(loss[-1]).any()
        ):
            return None
        x = filled.transpose(0, 2, 1).reshape(-1, n_c)[ok]
        deficit = (usual - filled).transpose(0, 2, 1).reshape(-1, n_c)[ok]
        s = s2.ravel()[ok]
        scale = max(float(np.abs(s).max()), 1e-9)
        base = np.column_stack([np.ones_like(s), s / scale, (s / scale) ** 2])
        day = np.repeat(np.arange(n), k)[ok]
        # A window's use were every part at its lowest level [kWh per window].
        lowest = np.sort(filled, axis=2)[:, :, : self.base_parts].mean(axis=2) * k
        return AreaModel(
            loss.ravel()[ok],
            base,
            x,
            deficit,
            day,
            n,
            daily_sd,
            drop,
            drop_sd,
            filled.sum(axis=2),
            usual.sum(axis=2),
            lowest if k >= 2 * self.base_parts else np.full_like(lowest, np.nan),
            max(1, round(self.hac_lag_windows * k)),
        )

    def _column(self, m: AreaModel, thief: tuple[int, int, int]) -> FloatArray:
        i, s, kind = thief
        v = m.x[:, i] if kind == RECORDED else m.deficit[:, i]
        return v * (m.day >= s)

    def _best_candidate(
        self,
        m: AreaModel,
        chosen: list[tuple[int, int, int]],
        starts: npt.NDArray[np.int64],
        need_drop: bool = False,
    ) -> tuple[int, int, int] | None:
        """The (customer, start, kind) whose column most reduces the residual sum of
        squares given the base and the thieves chosen so far.

        A candidate's column is ``v * 1(t >= start)`` with ``v`` its recorded load or
        its deficit; everything its least squares needs is a sum over hours at or
        after the start, so every start of every customer comes from reverse
        cumulative sums of per-window sums. ``need_drop``: only customers whose own
        data fell against their peers' level since the start (either column)."""
        a = np.column_stack([m.base] + [self._column(m, c) for c in chosen])
        q, _r = np.linalg.qr(a)
        resid = m.loss - q @ (q.T @ m.loss)
        w = m.n_windows

        def tail(v: FloatArray) -> FloatArray:
            """Sums over the hours of windows >= each start (T x ... -> S x ...)."""
            per = np.zeros((w, *v.shape[1:]))
            np.add.at(per, m.day, v)
            return np.cumsum(per[::-1], axis=0)[::-1][starts]

        usual = tail(m.x + m.deficit)  # S x N
        # What a theft takes shows in the thief's own data too: its recorded energy
        # fell short of its usual by about the stolen energy (within its natural
        # spread). A customer whose load merely resembles the loss's shape did not.
        n_after = (w - starts)[:, None]
        own = tail(m.deficit)  # S x N, each customer's shortfall since each start
        own_var = n_after * m.daily_sd**2 + 1.0
        # The drop test looks at the shortfall against the customer's usual use
        # scaled by its peers' level: a cold week or a holiday moves everybody.
        peer_drop = np.cumsum(m.drop[::-1], axis=0)[::-1][starts]  # S x N
        peer_drop_sd = np.sqrt(n_after * m.drop_sd**2 + 1.0)
        # It cannot have stolen more than its own data (against its peers' level)
        # are short of, within their spread.
        short = np.minimum(
            own + self.deficit_tolerance_sd * np.sqrt(own_var),
            peer_drop + self.deficit_tolerance_sd * peer_drop_sd,
        )
        noise_var = max(float(resid @ resid) / max(len(resid) - a.shape[1], 1), 1e-12)
        best_gain = np.full(usual.shape, -np.inf)
        best_kind = np.zeros(usual.shape, dtype=np.int64)
        for kind, v in ((RECORDED, m.x), (DEFICIT, m.deficit)):
            vv, rv, sv = tail(v * v), tail(resid[:, None] * v), tail(v)
            qv = tail(q[:, :, None] * v[:, None, :])  # S x p x N
            norm = vv - (qv * qv).sum(axis=1)
            ok = norm > 1e-9 * np.maximum(vv, 1e-12)
            limit = self._limit(kind)
            # A slowed meter records less than usual: without a significant drop in
            # its own data a customer whose load merely shares the loss's daily shape
            # would explain any leftover (a "ghost" next to a real thief).
            dropped = (
                peer_drop >= self.min_drop_z * peer_drop_sd
                if kind == RECORDED or need_drop
                else True
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                if self.capped_candidates:
                    # The most probable coefficient given the area's loss and the
                    # customer's own shortfall (its Gaussian prior), held within what
                    # it can have stolen: when several thieves start together, one
                    # alone cannot explain the area's new loss, and refusing it for
                    # that would leave all of them unexplained.
                    coef = (rv / noise_var + sv * own / own_var) / (
                        norm / noise_var + sv * sv / own_var
                    )
                    cap = np.minimum(
                        limit,
                        np.where(
                            sv > 0,
                            np.minimum(self.max_share * usual, short) / np.abs(sv),
                            0.0,
                        ),
                    )
                    coef = np.where(ok & (sv > 0), np.clip(coef, 0.0, cap), 0.0)
                else:
                    coef = np.where(ok, rv / norm, 0.0)
            # Evidence from the area's loss (chi-square units: the residual sum of
            # squares it removes) less the disagreement with the customer's own
            # shortfall (its Gaussian prior).
            stolen = coef * sv
            gain = (2.0 * coef * rv - coef * coef * norm) / noise_var - (
                stolen - own
            ) ** 2 / own_var
            feasible = (
                (coef > 0)
                & (coef <= limit)
                & (stolen > 0)
                & (stolen <= self.max_share * usual * (1 + 1e-9))
                & (stolen <= short * (1 + 1e-9))
                & dropped
            )
            better = feasible & (gain > best_gain)
            best_gain = np.where(better, gain, best_gain)
            best_kind = np.where(better, kind, best_kind)
        for i, _s, _k in chosen:
            best_gain[:, i] = -np.inf  # one change point per customer
        best_gain[:, m.unseen] = -np.inf  # in the base model: not thieves
        if not np.isfinite(best_gain).any():
            return None
        si, ci = np.unravel_index(int(np.argmax(best_gain)), best_gain.shape)
        return int(ci), int(starts[si]), int(best_kind[si, ci])

    def _joint(self, m: AreaModel, chosen: list[tuple[int, int, int]]) -> list[ThiefFit]:
        """Least squares of the whole model with the error of each thief's stolen
        energy: the larger of Newey-West on the residuals and the residuals'
        autocovariance applied to the estimator's weights (robust to hours with high
        leverage, whose own residuals the fit shrinks)."""
        a = np.column_stack([m.base] + [self._column(m, c) for c in chosen])
        theta, *_ = np.linalg.lstsq(a, m.loss, rcond=None)
        resid = m.loss - a @ theta
        pinv = np.linalg.pinv(a)  # p x T
        p0 = m.base.shape[1]
        last = m.day == m.n_windows - 1
        acov = _autocov(resid, m.hac_lag)
        out = []
        for j, (i, s, kind) in enumerate(chosen):
            col = a[:, p0 + j]
            total = float(col.sum())
            stolen = float(theta[p0 + j]) * total
            g = total * pinv[p0 + j]  # stolen - truth = g . noise
            var = max(long_run_var(g * resid, m.hac_lag), _quad_form(g, acov))
            own = float(m.drop[s:, i].sum())
            own_var = (m.n_windows - s) * float(m.drop_sd[i]) ** 2 + 1.0
            out.append(
                ThiefFit(
                    index=i,
                    start=s,
                    kind=kind,
                    coef=float(theta[p0 + j]),
                    stolen_kwh=stolen,
                    stolen_last_kwh=float(theta[p0 + j]) * float(col[last].sum()),
                    z=stolen / math.sqrt(max(var, 1e-12)),
                    own_kwh=float(m.deficit[m.day >= s, i].sum()),
                    own_sd_kwh=math.sqrt((m.n_windows - s) * float(m.daily_sd[i]) ** 2 + 1.0),
                    drop_z=own / math.sqrt(own_var),
                )
            )
        return out


def _own_drop_z(m: AreaModel, first: int) -> FloatArray:
    """Each customer's largest own shortfall from a window ``first`` or later to the
    last, in its spreads: ``drop`` summed from the start over its standard error, as
    ``ThiefFit.drop_z`` has it (N)."""
    if first >= m.n_windows:
        return np.zeros(m.drop.shape[1])
    tail = np.cumsum(m.drop[::-1], axis=0)[::-1][first:]  # sum from each start on
    n = (m.n_windows - np.arange(first, m.n_windows))[:, None]
    z = np.nan_to_num(tail) / np.sqrt(n * m.drop_sd[None, :] ** 2 + 1.0)
    out: FloatArray = z.max(axis=0)
    return out


def _peer_drop(
    totals: FloatArray, usual: FloatArray, n_ref: int, min_usual_kwh: float = 1.0
) -> tuple[FloatArray, FloatArray]:
    """Each customer's shortfall per window (W x N) against its usual use scaled by
    the area's level that window (the median customer's recorded / usual: weather and
    holidays move everybody), and its robust spread over the reference windows."""
    big = usual.mean(axis=0) >= min_usual_kwh
    level = np.ones(len(totals))
    if big.sum() >= 5:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(big[None, :] & (usual > 0), totals / usual, np.nan)
        level = np.nan_to_num(quiet_nanmedian(ratio, axis=1), nan=1.0)
    drop = level[:, None] * usual - totals
    ref = drop[:n_ref]
    sd = 1.4826 * quiet_nanmedian(np.abs(ref - np.median(ref, axis=0)), axis=0)
    return drop, np.nan_to_num(sd, nan=0.0)


def _autocov(r: FloatArray, lag: int) -> FloatArray:
    """Autocovariances of ``r`` at lags 0..lag with Bartlett weights applied."""
    n = len(r)
    rc = r - r.mean()
    out = np.array([float(rc[k:] @ rc[: n - k]) / n for k in range(min(lag, n - 1) + 1)])
    return out * (1.0 - np.arange(len(out)) / (lag + 1))


def _quad_form(g: FloatArray, acov: FloatArray) -> float:
    """Variance of ``g . noise`` for stationary noise with autocovariances ``acov``."""
    v = acov[0] * float(g @ g)
    for k in range(1, len(acov)):
        v += 2.0 * acov[k] * float(g[k:] @ g[:-k])
    return max(v, 0.0)


def _weekend(h: AreaHistory) -> npt.NDArray[np.bool_]:
    """Saturday or Sunday for each window (local day windows: the date at local noon,
    for any offset within 12 h of UTC)."""
    days = np.array([(w.window_start + 43_200) // 86_400 for w in h.windows])
    return (days + 3) % 7 >= 5  # 1970-01-01 was a Thursday


def _usual(x3: FloatArray, n_ref: int, weekend: npt.NDArray[np.bool_]) -> FloatArray:
    """Each customer's usual energy per part for each window (W x N x K): the mean
    over the reference windows of the same day type (weekday or weekend; all of
    them when a type has fewer than two), leaving out a customer's outlier days
    (above 2.5 times its median day), which would inflate its usual use."""
    ref = x3[:n_ref]
    totals = np.nansum(ref, axis=2)  # R x N
    typical = np.median(totals, axis=0)
    keep = ~(totals > 2.5 * np.maximum(typical, 1e-9))
    clean = np.where(keep[:, :, None], ref, np.nan)
    out = np.empty_like(x3)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            overall = np.nan_to_num(np.nanmean(clean, axis=0), nan=0.0)
            for kind in (False, True):
                sel = weekend[:n_ref] == kind
                prof = np.nanmean(clean[sel], axis=0) if sel.sum() >= 2 else overall
                out[weekend == kind] = np.where(np.isnan(prof), overall, prof)
    return out


def _probability(z: float, drop_z: float, deficit: bool, w: tuple[float, ...]) -> float:
    """P(theft) by logistic calibration: 1 / (1 + exp(-(w0 + w1 ln z + w2 d + w3 D)))
    with d the suspect's own drop against its peers (in its spreads, held within
    [-3, 10]) and D = 1 for a shortfall-shaped theft (0 for stolen in proportion to
    what is recorded)."""
    if z <= 0:
        return 0.0
    t = w[0] + w[1] * math.log(z)
    if len(w) > 2:
        t += w[2] * min(max(drop_z, -3.0), 10.0) + w[3] * float(deficit)
    return 1.0 / (1.0 + math.exp(-t))
