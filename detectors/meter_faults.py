"""Meter faults, each named with its type.

* ``step_back`` / ``register_reset``: from the register flags the engine raises when
  a register decreases (never counted as negative consumption); ``reverse_energy``
  when it steps back in several windows running (a register running backwards:
  current reversed, a meter wired back to front);
* ``stuck``: the register stopped (exactly zero energy on consecutive windows) for a
  customer that used to consume; ``zero`` when it started with a reset to 0.00;
* ``wrong_multiplier``: the area's loss is explained, over the whole history, by a
  constant factor of one customer's consumption: the registry's CT x PT ratio differs
  from the field's by that factor (x2, x5, x10, /2 ...). Over-billing shows as
  negative loss, under-billing as high loss;
* ``clock_drift``: reading times sliding along the clock grid, or (a meter that
  stamps its own marks) a recorded profile lagging more every day while the area
  meter sees the true one (``detectors.content_lag``) or the meter's voltage lags
  its neighbours' as much (``detectors.voltage_lag``: its whole record lags); or,
  with no readable rhythm in the household's day, its voltage alone lagging its
  peers' more every window from on time;
* ``voltage_loss`` / ``phase_loss``: a meter's voltage fallen well below its area
  peers' from a normal past (``detectors.voltage_loss``), where voltages exist;
* ``register_jump``: a register that leapt forward (a sudden constant offset on the
  register: a corrupted reading, a replacement meter filed from a wrong start
  value), billing in one window many times the customer's largest window while the
  area's loss fell by that much: the area meter did not supply it. When the
  engine read that leap as a rollover, a ``register_reset``: a register that fell
  to 0.00 just after a value near its last digit looks like a wrap;
* meter events that signal a fault (voltage loss, phase loss, reverse energy, clock
  error) raise a fault finding with that type (evidence below the decider alone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from detectors._stats import corr_columns, quiet_nanmedian
from detectors.base import Finding, HistoryOnly
from detectors.content_lag import (
    GrowingLag,
    daily_lags_parts,
    fit_growing_lags,
    loss_coefficient,
    true_minus_recorded,
)
from detectors.observations import AreaHistory, AreaWindow
from detectors.voltage_lag import (
    VoltageLagParams,
    VoltageLags,
    day_curve_lag,
    voltage_lag_series,
    voltage_lags,
)
from detectors.voltage_loss import VoltageLossParams, voltage_losses
from lineloss.domain import MeterEvent, SuspicionCategory, TargetKind
from streams.registers import FLAG_RESET, FLAG_ROLLOVER, FLAG_STEP_BACK

_FAULT_EVENTS = {
    MeterEvent.VOLTAGE_LOSS: "voltage_loss",
    MeterEvent.PHASE_LOSS: "phase_loss",
    MeterEvent.REVERSE_ENERGY: "reverse_energy",
    MeterEvent.CLOCK_ERROR: "clock_error",
}


@dataclass
class MeterFaultDetector(HistoryOnly):
    stuck_windows: int = 2
    min_usual_kwh: float = 0.5
    # A register stepping back in this many windows running runs backwards.
    reverse_windows: int = 3
    # Above a single step back (0.9): the windows running leave no other reading.
    reverse_score: float = 0.95
    drift_windows: int = 4
    min_drift_s_per_window: float = 60.0
    min_drift_total_s: float = 180.0  # 3 x 60 s: the 4 windows' slope, not more
    slow_drift_windows: int = 8
    slow_min_drift_s_per_window: float = 10.0
    multiplier_min_windows: int = 7
    multiplier_min_corr: float = 0.85
    band: tuple[float, float] = (-0.01, 0.10)
    # Field / registry multiplier at least this far from 1 (either way). Any ratio
    # counts: CT ratios (30, 40, 60, 120, ...) make every quotient possible.
    multiplier_min_factor: float = 1.25
    # Below about a tenth (0.1 less the 20 % an estimate against a flat 3 % technical
    # loss can be off), the meter's consumption is (nearly) absent from the balance:
    # a customer recorded under the wrong area looks the same (coefficient -1) and is
    # far more common; the topology detectors pair it with its true area.
    multiplier_min_share: float = 0.08
    # A direct meter (registry multiplier 1) under-billing: a wrong multiplier there is
    # a CT the registry missed, and current transformers for metering start at
    # 25/5 A (low-voltage customers' at 50/5 or more). A field ratio under this is a
    # meter recording part of what flows since before the history: named a theft
    # (``under_recording_score``), not a fault.
    multiplier_min_ct: float = 5.0
    under_recording_score: float = 0.8
    # A fast clock in the content (detectors.content_lag): the usual day from the
    # first windows, a trailing mean of a few windows against it, a lag growing
    # steadily (a quartz off by 2-30 min a day; State Grid calls 5 min a fault)
    # that the area meter's loss confirms with a coefficient near 1.
    lag_ref_windows: int = 7
    lag_span_windows: int = 3
    lag_min_windows_after: int = 4
    lag_rate_min_per_window: tuple[float, float] = (2.0, 30.0)
    lag_min_t: float = 3.0
    lag_max_ramp_over_step: float = 1.5
    # Before its start the lag is about 0 (the usual day is from the first windows):
    # a profile that first slid earlier and then later is a household's.
    lag_max_level_min: float = 60.0
    lag_min_final_min: float = 45.0
    lag_max_candidates: int = 25
    lag_loss_min_t: float = 3.5
    lag_loss_coef: tuple[float, float] = (0.6, 1.6)
    # Or the meter's voltage confirms it (detectors.voltage_lag): in the last windows
    # its voltage lags its peers' clearly, by at least lag_voltage_min_min and by
    # lag_voltage_ratio of the lag its energy shows there (the energy's lag is read
    # off a household's habits, so only roughly), and in its first windows it did
    # not. A lag the first windows already hint at (a fit lag_voltage_first_gain x
    # better than none) is an offset the household always had, not counted as grown.
    lag_voltage: VoltageLagParams = field(default_factory=VoltageLagParams)
    lag_voltage_min_min: float = 45.0
    lag_voltage_ratio: tuple[float, float] = (1 / 3, 3.0)
    lag_voltage_first_gain: float = 1.1
    # Or its voltage's mean day confirms it (voltage_lag.day_curve_lag): in the first
    # lag_day_first_windows it followed its area's median day on time (correlation
    # lag_day_first_min_corr or more, lag within lag_max_level_min), in the last
    # windows it follows it shifted (lag_day_last_min_corr or more, and by
    # lag_day_min_corr_gain more than on time), by the lag grown as above. On the
    # independent grids (session 23): 7 of 9 fast clocks, none of 525 honest
    # households whose day slid (the nearest at 0.54 now, or 0.38 at first).
    # Or the voltage alone (``_voltage_led_clocks``): a lag of lag_led_min_final_min
    # or more against the peers that fits lag_led_gain x better than none now, none
    # at first, grown window by window at a hinge t of lag_led_min_t. Measured on the
    # independent grids once their busbar swing reached the houses (session 27):
    # fast clocks at gains 2-13 and t 14-55, no honest meter at a gain of 1.5 with a
    # lag of 30 min; on the old grids' voltages (nothing in common, the worst case)
    # honest meters up to 1.96 x, never growing. 30 min is six times what State Grid
    # calls a clock fault and two steps of the lag grid.
    lag_led_gain: float = 2.0
    lag_led_min_t: float = 8.0
    lag_led_min_final_min: float = 30.0
    lag_day_first_windows: int = 5
    lag_day_first_min_corr: float = 0.5
    lag_day_last_min_corr: float = 0.6
    lag_day_min_corr_gain: float = 0.2
    # A register leaping forward: today's energy at least jump_ratio x the
    # customer's largest earlier window (and jump_min_kwh over its usual), the
    # area's loss below what the other customers' billing and its last
    # jump_level_windows make expected by jump_loss_share of that excess, and by
    # jump_min_sd of its spread; with five windows of history or more. The loss
    # follows the other customers' billing by at most jump_max_loss_per_billed.
    jump_min_windows: int = 6
    jump_ratio: float = 5.0
    jump_min_kwh: float = 10.0
    jump_loss_share: tuple[float, float] = (0.6, 1.4)
    jump_min_sd: float = 4.0
    jump_level_windows: int = 7
    jump_max_loss_per_billed: float = 1.0
    # A meter's voltage against its area peers' (detectors.voltage_loss); named at
    # voltage_loss_score, certain with a voltage- or phase-loss event of its own.
    voltage: VoltageLossParams = field(default_factory=VoltageLossParams)
    voltage_loss_score: float = 0.8
    voltage_event_bonus: float = 0.1
    name: str = "meter_fault"

    def __post_init__(self) -> None:
        if isinstance(self.voltage, dict):  # from a settings file (JSON)
            self.voltage = VoltageLossParams(**self.voltage)
        if isinstance(self.lag_voltage, dict):
            self.lag_voltage = VoltageLagParams(**self.lag_voltage)

    def _finding(
        self,
        w: AreaWindow,
        i: int,
        kind: str,
        score: float,
        reason: str,
        kwh: float = 0.0,
        category: SuspicionCategory = SuspicionCategory.METER_FAULT,
    ) -> Finding:
        return Finding(
            detector=f"{self.name}:{kind}",
            target_id=w.meter_ids[i],
            target_kind=TargetKind.METER,
            category=category,
            score=score,
            ts=w.window_end,
            estimated_kwh=kwh,
            reason=reason,
            area_id=w.area_id,
        )

    def score_one(self, x: AreaHistory) -> list[Finding]:
        today = x.windows[-1]
        out = []
        energy = x.energy()
        if x.windows[-1].virtual:
            # Its customers' own checks run in their own areas, but a customer of an
            # area without an area meter (or a dedicated one) has no balance there:
            # a wrong multiplier or a register leaping forward shows only in the
            # feeder's unmetered part.
            return self._wrong_multiplier(x, energy) + self._register_jump(x, energy)
        n = len(x)
        run = self._backward_run(x)
        reversing = run >= self.reverse_windows
        for i in np.flatnonzero(today.flags & FLAG_STEP_BACK):
            if reversing[i]:
                # What its usual use left unbilled in each window of the run (the
                # first may still hold the forward part before it turned); the first
                # finding takes the earlier windows' too (named step backs then).
                with np.errstate(all="ignore"):
                    usual_kwh = float(quiet_nanmedian(energy[: n - run[i], i]))
                usual_kwh = usual_kwh if np.isfinite(usual_kwh) else 0.0
                counted = self.reverse_windows if run[i] == self.reverse_windows else 1
                unbilled = np.maximum(usual_kwh - np.nan_to_num(energy[n - counted :, i]), 0.0)
                out.append(
                    self._finding(
                        today,
                        int(i),
                        "reverse_energy",
                        self.reverse_score,
                        f"register running backwards in each of the last {int(run[i])} "
                        "windows (counted as zero): reversed current, a meter wired "
                        f"back to front; usually {usual_kwh:.1f} kWh per window",
                        float(unbilled.sum()),
                    )
                )
                continue
            out.append(
                self._finding(
                    today,
                    int(i),
                    "step_back",
                    0.9,
                    "register stepped backwards (counted as zero, not negative)",
                )
            )
        resets = np.zeros(today.n_customers, np.bool_)
        for w in x.windows:
            resets |= (w.flags & FLAG_RESET) != 0
        for i in np.flatnonzero(today.flags & FLAG_RESET):
            out.append(
                self._finding(
                    today,
                    int(i),
                    "register_reset",
                    0.55,
                    "register dropped to near zero: meter replaced or reset; check the registry",
                )
            )
        for code, kind in _FAULT_EVENTS.items():
            for i in np.flatnonzero(today.events & (1 << int(code))):
                # Evidence, not a case: events alone stay below the default decider.
                out.append(self._finding(today, int(i), kind, 0.4, f"meter reported {kind}"))

        if n > self.stuck_windows + 3:
            with np.errstate(all="ignore"):
                usual = quiet_nanmedian(energy[: n - self.stuck_windows], axis=0)
            recent = energy[n - self.stuck_windows :]
            stuck = (recent == 0).all(axis=0) & (usual >= self.min_usual_kwh) & ~reversing
            for i in np.flatnonzero(stuck):
                kind = "zero" if resets[i] else "stuck"
                out.append(
                    self._finding(
                        today,
                        int(i),
                        kind,
                        0.85,
                        f"register not advancing for {self.stuck_windows} windows "
                        f"(usually {usual[i]:.1f} kWh per window)",
                        float(usual[i]),
                    )
                )
        out += self._wrong_multiplier(x, energy)
        out += self._register_jump(x, energy)
        out += self._clock_drift(x)
        named = {f.target_id for f in out if f.detector.endswith(":clock_drift")}
        out += [f for f in self._content_lag(x) if f.target_id not in named]
        out += self._voltage_loss(x)
        return out

    def _backward_run(self, x: AreaHistory) -> np.ndarray:
        """Per customer, how many windows running up to the last its register
        stepped back in: one step back is a fault reading, a register that keeps
        falling runs backwards (反向计量)."""
        run = np.zeros(x.windows[-1].n_customers, np.int64)
        going = np.ones(len(run), np.bool_)
        for w in reversed(x.windows):
            going &= (w.flags & FLAG_STEP_BACK) != 0
            if not going.any():
                break
            run += going
        return run

    def _register_jump(self, x: AreaHistory, energy: np.ndarray) -> list[Finding]:
        """A register that leapt forward in the last window. Only against a supply
        (an area meter, or for a customer of an area without one, the feeder's
        unmetered part): without it, a customer's exceptional day (a harvest, a
        building site) and a register error bill the same; the meter upstream tells
        them apart, having supplied the one and not the other. A customer
        over-billed (negative unbilled energy)."""
        n = len(x)
        supply = x.supply()
        if n < self.jump_min_windows or not np.isfinite(supply[-1]):
            return []
        before, today = energy[:-1], energy[-1]
        with np.errstate(all="ignore"):
            usual = quiet_nanmedian(before, axis=0)
            biggest = np.nanmax(np.where(np.isfinite(before), before, -np.inf), axis=0)
        excess = today - usual
        candidates = np.flatnonzero(
            np.isfinite(excess)
            & (biggest > 0)
            & (today >= self.jump_ratio * biggest)
            & (excess >= self.jump_min_kwh)
        )
        if not len(candidates):
            return []
        loss = supply - np.nansum(energy, axis=1)
        known = np.isfinite(energy).all(axis=1) & np.isfinite(supply)
        if not known[-1] or known[:-1].sum() < self.jump_min_windows - 1:
            return []
        # The loss expected today, from what the other customers billed (a line
        # fitted on the earlier windows: the technical loss follows the load, and
        # so may a thief's, which the supply would carry into the fit; the other
        # customers' billing knows nothing of the candidate's leap), at the median
        # level of the last week (a theft that began weeks ago moved it; one odd
        # day of loss must not).
        others = np.nansum(energy, axis=1) - energy[:, candidates].sum(axis=1)
        o_past, l_past = others[:-1][known[:-1]], loss[:-1][known[:-1]]
        design = np.column_stack([np.ones_like(o_past), o_past])
        coef, *_ = np.linalg.lstsq(design, l_past, rcond=None)
        slope = min(max(float(coef[1]), 0.0), self.jump_max_loss_per_billed)
        resid = l_past - slope * o_past
        expected = float(np.median(resid[-self.jump_level_windows :])) + slope * others[-1]
        # Spread: from window to window, and around the recent level, whichever is
        # wider: a thief's loss wanders, and a few windows' differences can hide it.
        steps = np.diff(resid)
        recent = resid[-2 * self.jump_level_windows :]
        sd = 1.4826 * max(
            float(np.median(np.abs(steps - np.median(steps)))) / math.sqrt(2.0),
            float(np.median(np.abs(recent - np.median(recent)))),
        )
        drop = expected - float(loss[-1])
        # Two registers leaping in one window share the drop.
        total = float(excess[candidates].sum())
        lo, hi = self.jump_loss_share
        if not lo * total <= drop <= hi * total or drop < self.jump_min_sd * sd:
            return []
        w = x.windows[-1]
        return [self._jump_finding(w, int(i), today, usual, biggest, drop) for i in candidates]

    def _jump_finding(
        self,
        w: AreaWindow,
        i: int,
        today: np.ndarray,
        usual: np.ndarray,
        biggest: np.ndarray,
        drop_kwh: float,
    ) -> Finding:
        """A register jump, or, when the engine read the leap as a rollover, a
        register that fell to zero: a wrap bills the energy up to the last digit,
        which the area meter would have supplied had it been consumed."""
        wrapped = bool(w.flags[i] & FLAG_ROLLOVER)
        why = (
            "read as a wrap past its last digit, it more likely fell to zero "
            "(a reset or a replaced meter)"
            if wrapped
            else "a corrupted reading or a wrong start value"
        )
        return self._finding(
            w,
            i,
            "register_reset" if wrapped else "register_jump",
            0.9,
            f"register leapt forward: {today[i]:.1f} kWh billed in this window "
            f"against a usual {usual[i]:.1f} (at most {biggest[i]:.1f} before), "
            f"while the area's loss came {drop_kwh:.1f} kWh below what the other "
            f"customers' billing made expected: the area meter did not supply it; {why}",
            -float(today[i] - usual[i]),
        )

    def _voltage_loss(self, x: AreaHistory) -> list[Finding]:
        """A meter whose voltage fell well below its area peers' (module
        ``detectors.voltage_loss``). Not for a feeder's dedicated customers: each
        sits behind its own transformer (and may be metered at 10 kV), so they are
        nobody's peers."""
        today = x.windows[-1]
        if today.dedicated or today.voltage_v is None:
            return []
        events = np.zeros(today.n_customers, np.int64)
        for w in x.windows:
            events |= w.events
        lost = (1 << int(MeterEvent.VOLTAGE_LOSS)) | (1 << int(MeterEvent.PHASE_LOSS))
        out = []
        for v in voltage_losses([w.voltage_v for w in x.windows], today.profile_kwh, self.voltage):
            reported = bool(events[v.customer] & lost)
            what = (
                "one phase of three missing"
                if v.kind == "phase_loss"
                else "its voltage element lost"
            )
            out.append(
                self._finding(
                    today,
                    v.customer,
                    v.kind,
                    min(
                        1.0,
                        self.voltage_loss_score + (self.voltage_event_bonus if reported else 0.0),
                    ),
                    f"meter voltage at {v.ratio:.2f} of its area peers' in {v.low_parts} of "
                    f"{v.known_parts} parts (usually {v.usual_ratio:.2f}): {what}, a fault "
                    "or a cut voltage link; it records that share of the energy"
                    + (", and the meter reported it" if reported else ""),
                    v.unbilled_kwh,
                )
            )
        return out

    def _content_lag(self, x: AreaHistory) -> list[Finding]:
        """A recorded profile lagging more every window, the lag confirmed by the area
        meter's loss or by the meter's own voltage (modules ``detectors.content_lag``
        and ``detectors.voltage_lag``). Needs profiles, and an area meter or
        voltages: a lag neither confirms is a household's habit (a feeder's dedicated
        customers have no supply profile and no peers on their transformer; its
        unmetered part never gets here)."""
        today = x.windows[-1]
        profiles = x.profiles()
        supply = x.supply_profiles()
        voltages = None if today.dedicated else x.voltages()
        if (
            profiles is None
            or (supply is None and voltages is None)
            or len(x) < self.lag_ref_windows + self.lag_min_windows_after
        ):
            return []
        parts = profiles.shape[2]
        part_min = (today.window_end - today.window_start) / parts / 60.0
        fits = self._growing_lags(
            daily_lags_parts(
                profiles, self.lag_ref_windows, self.lag_span_windows, max(1, parts // 3)
            ),
            self.lag_span_windows,
            part_min,
            self.lag_min_t,
            self.lag_min_final_min,
        )
        fits = sorted(fits, key=lambda f: -f.t)[: self.lag_max_candidates]
        p = profiles.astype(np.float64)
        why = {f.customer: self._loss_confirms(supply, p, f) for f in fits}
        # Every customer's voltage lag at once (the voltage-led test below needs all).
        vlags = (
            None
            if voltages is None
            else voltage_lags(voltages, p, self.lag_ref_windows, self.lag_voltage)
        )
        for f in fits:
            if why[f.customer] is None and voltages is not None:
                why[f.customer] = self._voltage_confirms(
                    vlags, len(p), f, part_min
                ) or self._voltage_day_confirms(voltages, parts, len(p), f, part_min)
        out = []
        for f in fits:
            if why[f.customer] is None:
                continue
            out.append(
                self._finding(
                    today,
                    f.customer,
                    "clock_drift",
                    0.8,
                    f"recorded profile lags {f.rate_parts * part_min:+.0f} min more every "
                    f"window ({f.final_lag_parts * part_min:.0f} min now); "
                    f"{why[f.customer]}: a fast clock",
                )
            )
        if voltages is not None and vlags is not None:
            named = {f.customer for f in fits if why[f.customer] is not None}
            out += self._voltage_led_clocks(today, voltages, p, vlags, named, part_min)
        return out

    def _voltage_led_clocks(
        self,
        today: AreaWindow,
        voltages: np.ndarray,
        profiles: np.ndarray,
        vlags: VoltageLags,
        named: set[int],
        part_min: float,
    ) -> list[Finding]:
        """A fast clock read off the voltage alone: the meter's voltage lags its peers'
        clearly now (``lag_led_gain``), on time in its first windows, and the lag,
        read window by window (``voltage_lag.voltage_lag_series``), grew steadily from
        about 0 (the hinge of ``content_lag.fit_growing_lags``, t of
        ``lag_led_min_t`` or more). Where the household's day is too irregular to
        read its energy's lag, the voltage still carries the clock: the busbar's
        swing and the transformer's load reach every meter of the area at once."""
        last_min = vlags.last_lag * part_min
        with np.errstate(invalid="ignore"):
            lagging = (vlags.last_gain >= self.lag_led_gain) & (
                last_min >= self.lag_led_min_final_min
            )
            on_time_first = ~(
                (vlags.first_gain >= self.lag_voltage_first_gain)
                & (np.abs(vlags.first_lag) > self.lag_voltage.lag_step_parts)
            )
        cand = np.array(
            [i for i in np.flatnonzero(lagging & on_time_first) if int(i) not in named],
            dtype=np.int64,
        )
        if len(cand) == 0:
            return []
        series = voltage_lag_series(
            voltages, profiles, self.lag_ref_windows, self.lag_voltage, cand
        )
        fits = self._growing_lags(
            series,
            self.lag_voltage.block_windows,
            part_min,
            self.lag_led_min_t,
            self.lag_led_min_final_min,
        )
        out = []
        for f in fits:
            i = int(cand[f.customer])
            out.append(
                self._finding(
                    today,
                    i,
                    "clock_drift",
                    0.8,
                    f"its voltage lags its {int(vlags.peers[i])} nearest peers' by "
                    f"{last_min[i]:.0f} min (x{vlags.last_gain[i]:.1f} better fit than "
                    f"none), grown {f.rate_parts * part_min:+.0f} min a window over the "
                    f"last {len(profiles) - f.start:.0f} windows from on time: "
                    "the whole record lags, a fast clock",
                )
            )
        return out

    def _growing_lags(
        self,
        lags_parts: np.ndarray,
        span_windows: int,
        part_min: float,
        min_t: float,
        min_final_min: float,
    ) -> list[GrowingLag]:
        """The lag series (windows x customers, in parts) that grew from about 0
        after the reference windows at a clock's rate (``fit_growing_lags``), at a
        hinge t of ``min_t`` and a last lag of ``min_final_min`` or more."""
        fits = fit_growing_lags(
            lags_parts,
            span_windows,
            self.lag_ref_windows - 1,
            self.lag_min_windows_after,
            (
                self.lag_rate_min_per_window[0] / part_min,
                self.lag_rate_min_per_window[1] / part_min,
            ),
            self.lag_max_ramp_over_step,
        )
        return [
            f
            for f in fits
            if f.t >= min_t
            and f.final_lag_parts * part_min >= min_final_min
            and abs(f.level_parts) * part_min <= self.lag_max_level_min
        ]

    def _loss_confirms(
        self, supply: np.ndarray | None, profiles: np.ndarray, fit: GrowingLag
    ) -> str | None:
        """The area meter's clock is right: its loss carries the lag's true-less-recorded
        energy with a coefficient near 1 (``detectors.content_lag.loss_coefficient``).
        None without an area meter or that evidence."""
        if supply is None:
            return None
        supply_flat = supply.astype(np.float64).ravel()
        loss = supply_flat - profiles.sum(axis=1).ravel()  # NaN where any part is unknown
        own = profiles[:, fit.customer]
        coef, t = loss_coefficient(loss, supply_flat, own.ravel(), true_minus_recorded(own, fit))
        lo, hi = self.lag_loss_coef
        if t < self.lag_loss_min_t or not lo <= coef <= hi:
            return None
        return f"the area meter sees the true profile (loss x{coef:.2f}, t={t:.1f})"

    def _voltage_confirms(
        self,
        vlags: VoltageLags | None,
        n: int,
        fit: GrowingLag,
        part_min: float,
    ) -> str | None:
        """Evidence that the whole load curve lags, not only the household's use: the
        meter's voltage lags its peers' now by about what its energy does, and did
        not in its first windows (module ``detectors.voltage_lag``). None without.

        What counts is the lag grown since the first windows: some households'
        voltage always trails their peers' a little (their own appliances, a peer
        further along the cable), which a clock's lag would add to; an offset the
        first windows hint at, even below ``min_gain``, is taken off."""
        vl = None if vlags is None else vlags.of(fit.customer)
        if vl is None or not vl.last.clear(self.lag_voltage.min_gain):
            return None
        now_min = vl.last.lag_parts * part_min
        started_lagging = vl.first.clear(self.lag_voltage.min_gain) and (
            abs(vl.first.lag_parts) > self.lag_voltage.lag_step_parts
        )
        hinted = np.isfinite(vl.first.gain) and vl.first.gain >= self.lag_voltage_first_gain
        grown_min = now_min - (vl.first.lag_parts * part_min if hinted else 0.0)
        if started_lagging or not self._grown_like_energy(grown_min, n, fit, part_min):
            return None
        since = f", {grown_min:.0f} min more than at first" if grown_min != now_min else ""
        return (
            f"its voltage lags its {vl.peers} nearest peers' by {now_min:.0f} min{since} "
            f"(x{vl.last.gain:.1f} better fit than none), the whole record and not the "
            "household's habits"
        )

    def _grown_like_energy(
        self, grown_min: float, n: int, fit: GrowingLag, part_min: float
    ) -> bool:
        """A voltage lag grown by ``grown_min`` over the last ``block_windows`` of
        ``n`` is a clock's: at least ``lag_voltage_min_min``, and within
        ``lag_voltage_ratio`` of what the energy's fitted lag reaches there."""
        centre = n - self.lag_voltage.block_windows / 2.0
        expected_min = fit.rate_parts * max(0.0, centre - fit.start) * part_min
        lo, hi = self.lag_voltage_ratio
        return (
            grown_min >= self.lag_voltage_min_min
            and lo * expected_min <= grown_min <= hi * expected_min
        )

    def _voltage_day_confirms(
        self, voltages: np.ndarray, parts: int, n: int, fit: GrowingLag, part_min: float
    ) -> str | None:
        """The meter's mean day of voltage followed its area's on time at first and
        follows it shifted now, by about what its energy lags (module
        ``detectors.voltage_lag``, ``day_curve_lag``). None without."""
        dl = day_curve_lag(
            voltages,
            fit.customer,
            parts,
            self.lag_day_first_windows,
            self.lag_voltage.block_windows,
            max(1, parts // 3),
        )
        if dl is None:
            return None
        on_time_at_first = (
            dl.first_corr >= self.lag_day_first_min_corr
            and abs(dl.first_lag_parts) * part_min <= self.lag_max_level_min
        )
        shifted_now = (
            dl.last_corr >= self.lag_day_last_min_corr
            and dl.last_corr - dl.last_corr_on_time >= self.lag_day_min_corr_gain
        )
        grown_min = (dl.last_lag_parts - dl.first_lag_parts) * part_min
        if not (
            on_time_at_first
            and shifted_now
            and self._grown_like_energy(grown_min, n, fit, part_min)
        ):
            return None
        return (
            f"its voltage's day follows its area's {grown_min:.0f} min later than at "
            f"first (correlation {dl.last_corr:.2f}, {dl.last_corr_on_time:.2f} on time), "
            "the whole record and not the household's habits"
        )

    def _clock_drift(self, x: AreaHistory) -> list[Finding]:
        """Readings sliding along the clock grid day after day: a drifting meter clock.

        The phase (offset from the 15-minute grid) is unwrapped over the last windows
        and fitted with a line; a drift moves it the same way every window. Two
        scales: a fast drift over ``drift_windows`` (at least
        ``min_drift_s_per_window``, and ``min_drift_total_s`` in all), and a slow one
        over ``slow_drift_windows`` (at least ``slow_min_drift_s_per_window``). A slow
        apparent drift is also what a clock drifting by almost the grid a day leaves
        (the phase wraps: 14.8 minutes a day looks like -12 s a day), and a meter
        clock should keep within a second or two a day. A constant offset (a meter
        that always reads at :07) is not a drift.
        """
        phases = x.phases()
        if phases is None:
            return []
        today = x.windows[-1]
        found: dict[int, tuple[float, float, int]] = {}
        for k, min_slope, min_total in (
            (self.drift_windows, self.min_drift_s_per_window, self.min_drift_total_s),
            (self.slow_drift_windows, self.slow_min_drift_s_per_window, 0.0),
        ):
            if len(phases) < k or k < 3:
                continue
            p = phases[-k:]
            ok = np.isfinite(p).all(axis=0)
            if not ok.any():
                continue
            grid = 900.0
            unwrapped = np.unwrap(p[:, ok] * 2 * np.pi / grid, axis=0) * grid / (2 * np.pi)
            slope = np.polyfit(np.arange(k, dtype=np.float64), unwrapped, 1)[0]
            total = unwrapped[-1] - unwrapped[0]
            step = np.diff(unwrapped, axis=0) * np.sign(slope)[None, :]
            steady = step.min(axis=0) > 0  # every window, the same way
            flag = (np.abs(slope) >= min_slope) & (np.abs(total) >= min_total) & steady
            idx = np.flatnonzero(ok)
            for j in np.flatnonzero(flag):
                found.setdefault(int(idx[j]), (float(slope[j]), float(total[j]), k))
        return [
            self._finding(
                today,
                i,
                "clock_drift",
                0.8,
                f"reading times drift {slope:+.0f} s per window against the clock grid "
                f"({total / 60:+.1f} min over {k} windows)",
            )
            for i, (slope, total, k) in sorted(found.items())
        ]

    def _wrong_multiplier(self, x: AreaHistory, energy: np.ndarray) -> list[Finding]:
        today = x.windows[-1]
        supply = x.supply()
        ok = np.isfinite(supply) & np.isfinite(energy).all(axis=1)
        if ok.sum() < self.multiplier_min_windows or today.n_customers == 0:
            return []
        e = energy[ok]
        loss = supply[ok] - e.sum(axis=1)
        rate = float(np.median(loss / supply[ok]))
        if self.band[0] <= rate <= self.band[1]:
            return []  # a wrong multiplier shifts the loss rate out of its band for good
        # Technical loss is a few percent of supply; the factor must explain the rest.
        excess = loss - 0.03 * supply[ok]
        r = corr_columns(excess, e)
        best_i = int(np.argmax(np.abs(r)))
        out = []
        for i in [best_i] if abs(r[best_i]) >= self.multiplier_min_corr else []:
            xi = e[:, i]
            if xi.mean() <= 0:
                continue
            c = _slope(xi, excess)
            factor = 1.0 + c  # field multiplier / registry multiplier
            if factor < self.multiplier_min_share or abs(math.log(factor)) < math.log(
                self.multiplier_min_factor
            ):
                continue
            # A wrong registry entry holds from the start: its consumption entered
            # the loss in the first windows already (at least half the coefficient,
            # same sign). A large customer's theft that starts later (its recording
            # falls while the loss rises) fits a factor over the whole history too,
            # and named a fault it would no longer be a theft suspect.
            first = slice(0, self.multiplier_min_windows)
            if _slope(xi[first], excess[first]) / c < 0.5:
                continue
            if abs(float(c)) * xi.mean() < 0.5 * abs(excess.mean()):
                continue
            kwh = float(c * xi.sum() / len(xi))
            registry = today.multiplier[i] if today.multiplier is not None else math.nan
            if registry == 1.0 and 1.0 < factor < self.multiplier_min_ct:
                # No CT ratio is that small: the direct meter records about 1 / factor
                # of what flows (a shunt, a slowed or tampered meter), and did before
                # the history began. A theft lead with no change point to show.
                reason = (
                    f"area loss tracks this direct meter's consumption x{factor - 1:+.2f} "
                    f"(r={r[i]:.2f}) from the first windows on: it records about "
                    f"{1 / factor:.0%} of what flows, since before the data began (no CT "
                    "ratio is that small)"
                )
                theft = SuspicionCategory.THEFT
                score = self.under_recording_score
                out.append(
                    self._finding(today, int(i), "under_recording", score, reason, kwh, theft)
                )
                continue
            reason = (
                f"area loss tracks this meter's consumption x{factor - 1:+.2f} (r={r[i]:.2f}): "
                f"the field multiplier is about {_ratio_words(factor)} the registry's"
            )
            out.append(self._finding(today, int(i), "wrong_multiplier", 0.9, reason, kwh))
        return out


def _ratio_words(factor: float) -> str:
    """0.033 -> '1/30 of'; 20.2 -> '20 x'."""
    if factor >= 1.0:
        return f"{factor:.3g} x"
    return f"1/{1.0 / factor:.3g} of"


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` on ``x`` with an intercept."""
    (_, c), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(x), x]), y, rcond=None)
    return float(c)
