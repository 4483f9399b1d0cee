"""The balance engine: a pure, event-time state machine over reading batches.

It knows no Kafka, no files and no clock. Callers feed batches with ``ingest`` and
ask for results with ``advance``; stream time only moves with the readings' own
timestamps, so replaying history, a live stream and a recovered worker all give the
same answers for the same readings.

Window lifecycle (W = watermark = newest accepted timestamp - allowed lateness):

* a window closes *provisionally* (revision 0) once W passes its end;
* readings that arrive later, within the re-collection horizon (补采), re-issue it
  with the next revision when its numbers change;
* once W passes its end plus the horizon, the window is *final*; readings for it
  are then rejected as too late (dead-lettered, never silently dropped).

``flush`` ends the stream: every window still open becomes final.

The topology may change while the stream runs (``apply_timeline``, see
lineloss.timeline): each window is balanced with the version in effect at its
start. A meter whose membership (area, feeder, role, in service) changes at a time
is *cut* there: readings before the change do not bracket windows after it and vice
versa, except a reading exactly at the change, which closes the one and opens the
other. So a customer moved to another feeder gives the same balances whether one
engine holds both feeders or two shards hold one each.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import pandas as pd

from lineloss.config import EngineConfig
from lineloss.domain import (
    UKWH_PER_KWH,
    Balance,
    ReadingBatch,
    RejectReason,
    Rejects,
    Topology,
)
from lineloss.timeline import TopologyTimeline, state_at
from streams.balance import BalanceMembers, compute_balances
from streams.energy import MeterWindowEnergy, ReadingRef, window_energy
from streams.profile import profile_energies, profile_voltage, reading_phase, top_parts
from streams.slots import TS_BASE, TS_LIMIT, Run, Slot, make_keys
from streams.windows import WindowGrid

_REASON_CODES = list(RejectReason)


@dataclass(frozen=True)
class MeterWindowResult:
    """Final per-meter energies of one window, for the detectors."""

    window_start: int
    window_end: int
    energy_kwh: npt.NDArray[np.float64]  # NaN where the meter's energy is not determined
    reporting: npt.NDArray[np.bool_]
    flags: npt.NDArray[np.int8]
    events: npt.NDArray[np.int32]
    # Energy per sub-window (config.profile_s) [kWh], meters x parts; NaN where not
    # determined; None when profiles are off.
    profile_kwh: npt.NDArray[np.float32] | None = None
    # Mean voltage per sub-window [V], meters x parts; NaN where none was reported.
    voltage_v: npt.NDArray[np.float32] | None = None
    # Circular mean offset of the readings from the 15-minute clock grid [s]
    # (clock-drift evidence); NaN without readings.
    phase_s: npt.NDArray[np.float32] | None = None
    # Each meter's ``config.peak_parts`` largest energies over ``config.peak_part_s``
    # [kWh], largest first, NaN-padded; None when off.
    peak_kwh: npt.NDArray[np.float32] | None = None


# A final window's profile energies, mean voltages, reading phases and peak parts.
_Profiles = tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.float32] | None,
]


@dataclass(frozen=True)
class Emission:
    """What one ``advance`` produced: balances (new, revised or final) in window
    order, and the per-meter results of windows that became final."""

    balances: list[Balance] = field(default_factory=list)
    final_meter_windows: list[MeterWindowResult] = field(default_factory=list)


@dataclass
class _WindowState:
    start_s: int
    end_s: int
    emitted: bool = False
    computed_at_s: int = 0  # watermark when last balanced [s since epoch]
    final: bool = False
    dirty: bool = True
    energy: MeterWindowEnergy | None = None
    balances: dict[tuple[str, str], Balance] = field(default_factory=dict)


class BalanceEngine:
    """Normalisation + event-time windowed balance, for one set of meters."""

    def __init__(self, topology: Topology | TopologyTimeline, config: EngineConfig) -> None:
        self.timeline = (
            topology if isinstance(topology, TopologyTimeline) else TopologyTimeline.of(topology)
        )
        self.config = config
        self.grid = WindowGrid(config.window_s, config.tz)
        self._set_timeline(self.timeline)
        n = self.timeline.n_meters
        self._all_meters = np.arange(n, dtype=np.int64)
        self._last_ts = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        self._frontier_s: int | None = None
        self._slots: dict[int, Slot] = {}
        self._windows: dict[int, _WindowState] = {}
        self._first_start_s: int | None = None
        # Windows starting before this are final and their slots evicted.
        self._evicted_before_s: int | None = None
        self._evicted_carry = ReadingRef.none(n)

    # ------------------------------------------------------------------ topology
    @property
    def topology(self) -> Topology:
        """The newest topology version (the one new windows get)."""
        return self.timeline.latest

    def _set_timeline(self, timeline: TopologyTimeline) -> None:
        self.timeline = timeline
        self._members = [BalanceMembers.of(t) for t in timeline.versions]
        # Every (meter, window start of a membership change), flat: ``_cut`` is
        # vectorised over them, once per window balanced.
        changes = timeline.membership_changes()
        self._cut_meters = np.array(
            [m for m, times in changes.items() for _ in times], dtype=np.int64
        )
        self._cut_s = np.array(
            [self._first_start_from(t) for times in changes.values() for t in times],
            dtype=np.int64,
        )
        self._cut_unique, self._cut_index = np.unique(self._cut_meters, return_inverse=True)

    def _first_start_from(self, t_s: int) -> int:
        """The first window start at or after ``t_s``: where a change takes effect."""
        start = int(self.grid.window_start(np.array([t_s]))[0])
        return start if start == t_s else int(self.grid.window_end(np.array([start]))[0])

    def _version(self, start_s: int) -> tuple[Topology, BalanceMembers]:
        v = int(self.timeline.version_index([start_s])[0])
        return self.timeline.versions[v], self._members[v]

    def apply_timeline(self, timeline: TopologyTimeline) -> list[str]:
        """Take a new topology timeline (the old one with updates applied). Windows
        not final yet are re-balanced with it, and re-issued where numbers change.
        Returns the meters whose change took effect before the first window still
        open: for the windows already final it came too late, and they stay as
        they were."""
        old = self.timeline
        n_old = old.n_meters
        if (
            timeline.meter_ids[:n_old] != old.meter_ids
            or timeline.area_ids[: len(old.area_ids)] != old.area_ids
            or timeline.feeder_ids[: len(old.feeder_ids)] != old.feeder_ids
        ):
            raise ValueError("a new timeline must extend the engine's index space")
        late = self._late_changes(old, timeline)
        self._set_timeline(timeline)
        grow = timeline.n_meters - n_old
        if grow:
            self._all_meters = np.arange(timeline.n_meters, dtype=np.int64)
            self._last_ts = np.concatenate(
                (self._last_ts, np.full(grow, np.iinfo(np.int64).min, np.int64))
            )
            self._evicted_carry = self._evicted_carry.grown(timeline.n_meters)
        for start, slot in list(self._slots.items()):
            rebuilt = Slot(start, slot.end_s, self._version(start)[0].multiplier)
            rebuilt.add(slot.all_rows())
            self._slots[start] = rebuilt
        for w in self._windows.values():
            if not w.final:
                w.dirty, w.energy = True, None
        return late

    def _late_changes(self, old: TopologyTimeline, new: TopologyTimeline) -> list[str]:
        """Meters whose state changed during a window already final."""
        open_starts = [w.start_s for w in self._windows.values() if not w.final]
        final_until = min(open_starts) if open_starts else self._evicted_before_s
        first = self._first_start_s
        if final_until is None or first is None or final_until <= first:
            return []  # no window is final yet
        late = []
        for meter_id, history in new.histories.items():
            before = old.histories.get(meter_id, ())
            if before == history:
                continue
            times = sorted({st.effective_from_s for st in (*history, *before)})
            for t, until in zip(times, [*times[1:], None], strict=True):
                overlaps = t < final_until and (until is None or until > first)
                if overlaps and state_at(history, t) != state_at(before, t):
                    late.append(meter_id)
                    break
        return sorted(late)

    # ------------------------------------------------------------------ stream time
    @property
    def watermark_s(self) -> int | None:
        if self._frontier_s is None:
            return None
        return self._frontier_s - self.config.allowed_lateness_s

    @property
    def stream_time_s(self) -> int | None:
        """Event time reached [s since epoch]: the watermark plus the allowed
        lateness, i.e. the newest accepted reading; None before any."""
        return self._frontier_s

    # ------------------------------------------------------------------ ingest
    def ingest(
        self, batch: ReadingBatch, clock_judged: npt.NDArray[np.bool_] | None = None
    ) -> Rejects:
        """Accept a batch of readings; return those refused, with reasons.

        ``clock_judged`` marks readings whose clock was already judged against the
        stream they arrived on (a Kafka partition forwarding them here): they are
        not tested for clock jumps against this engine's own stream, which may be
        days behind or ahead of theirs."""
        n = len(batch)
        if n == 0:
            return Rejects.empty()
        reason = np.full(n, -1, dtype=np.int16)
        detail: dict[int, str] = {}

        def refuse(mask: npt.NDArray[np.bool_], why: RejectReason) -> None:
            reason[mask & (reason < 0)] = _REASON_CODES.index(why)

        m, ts, value = batch.meter_idx, batch.ts, batch.value
        refuse(m < 0, RejectReason.UNKNOWN_METER)
        refuse(~np.isfinite(value) | (ts < TS_BASE) | (ts >= TS_LIMIT), RejectReason.MALFORMED)
        refuse(batch.is_interval & (value < 0), RejectReason.NEGATIVE_ENERGY)
        refuse(~batch.is_interval & (value < 0), RejectReason.IMPLAUSIBLE_VALUE)
        out_of_service = self._out_of_service(m, ts, reason < 0)
        refuse(out_of_service, RejectReason.UNKNOWN_METER)
        for i in np.flatnonzero(out_of_service)[:1000]:
            detail[int(i)] = (
                f"{self.timeline.meter_ids[int(m[i])]} is not in service at this time "
                "in the topology"
            )

        ok = reason < 0
        if clock_judged is not None:
            ok &= ~clock_judged
        if ok.any():
            jump = np.zeros(n, np.bool_)
            jump[ok] = clock_jumps(ts[ok], self._frontier_s, self.config.max_clock_jump_s)
            refuse(jump, RejectReason.CLOCK_JUMP)

        ok = reason < 0
        starts = np.zeros(n, np.int64)
        starts[ok] = self.grid.window_start(ts[ok])
        too_late = np.zeros(n, np.bool_)
        if self._evicted_before_s is not None:
            too_late |= ok & (starts < self._evicted_before_s)
        final_starts = [s for s, w in self._windows.items() if w.final]
        if final_starts:
            too_late |= ok & np.isin(starts, final_starts)
        refuse(too_late, RejectReason.TOO_LATE)

        ok_idx = np.flatnonzero(reason < 0)
        keys = make_keys(m[ok_idx], ts[ok_idx])
        order = np.argsort(keys, kind="stable")  # equal keys keep arrival order
        ok_idx, keys = ok_idx[order], keys[order]
        repeat = np.zeros(len(keys), np.bool_)
        repeat[1:] = keys[1:] == keys[:-1]
        if repeat.any():
            first_pos = np.maximum.accumulate(np.where(~repeat, np.arange(len(keys)), 0))
            same_value = (value[ok_idx] == value[ok_idx[first_pos]]) & (
                batch.is_interval[ok_idx] == batch.is_interval[ok_idx[first_pos]]
            )
            refuse(_mask(n, ok_idx[repeat & same_value]), RejectReason.DUPLICATE)
            refuse(_mask(n, ok_idx[repeat & ~same_value]), RejectReason.CONFLICTING_DUPLICATE)
            for j in np.flatnonzero(repeat & ~same_value)[:1000]:
                detail[int(ok_idx[j])] = (
                    f"kept {float(value[ok_idx[first_pos[j]]])}, got {float(value[ok_idx[j]])}"
                )
            ok_idx, keys = ok_idx[~repeat], keys[~repeat]

        # Readings not newer than the meter's newest may repeat a stored one.
        maybe_seen = ts[ok_idx] <= self._last_ts[m[ok_idx]]
        if maybe_seen.any():
            cand = np.flatnonzero(maybe_seen)
            cand_starts = starts[ok_idx[cand]]
            seen = np.zeros(len(cand), np.bool_)
            conflict = np.zeros(len(cand), np.bool_)
            for s in np.unique(cand_starts):
                slot = self._slots.get(int(s))
                if slot is None:
                    continue
                sel = np.flatnonzero(cand_starts == s)
                found, stored, stored_int = slot.lookup(keys[cand[sel]])
                rows = ok_idx[cand[sel]]
                same = (stored == value[rows]) & (stored_int == batch.is_interval[rows])
                seen[sel] = found
                conflict[sel] = found & ~same
                for j in np.flatnonzero(found & ~same)[:1000]:
                    detail[int(rows[j])] = f"kept {float(stored[j])}, got {float(value[rows[j]])}"
            refuse(_mask(n, ok_idx[cand[seen & ~conflict]]), RejectReason.DUPLICATE)
            refuse(_mask(n, ok_idx[cand[conflict]]), RejectReason.CONFLICTING_DUPLICATE)
            keep = np.ones(len(ok_idx), np.bool_)
            keep[cand[seen]] = False
            ok_idx, keys = ok_idx[keep], keys[keep]

        if len(ok_idx):
            self._accept(batch, ok_idx, keys, starts[ok_idx])
        return self._rejects(batch, reason, detail)

    def _accept(
        self,
        batch: ReadingBatch,
        idx: npt.NDArray[np.int64],
        keys: npt.NDArray[np.int64],
        starts: npt.NDArray[np.int64],
    ) -> None:
        m, ts = batch.meter_idx[idx], batch.ts[idx]
        prev_last = self._last_ts[m]
        late = ts <= prev_last
        # Mark emitted, not final windows whose numbers these readings may change: a
        # late reading can change any of them; a new one only windows ending after
        # the meter's previous reading (where it becomes the bracketing reading).
        for w in self._windows.values():
            if w.emitted and not w.final and not w.dirty and (late | (prev_last < w.end_s)).any():
                w.dirty = True
        unique_starts = np.sort(pd.unique(starts))
        ends = self.grid.window_end(unique_starts)
        for s_arr, e_arr in zip(unique_starts, ends, strict=True):
            s, e = int(s_arr), int(e_arr)
            sel = starts == s
            slot = self._slots.get(s)
            if slot is None:
                slot = self._slots[s] = Slot(s, e, self._version(s)[0].multiplier)
            slot.add(
                Run(
                    key=keys[sel],
                    value=batch.value[idx[sel]],
                    is_interval=batch.is_interval[idx[sel]],
                    event=batch.event[idx[sel]],
                    voltage_v=batch.voltage_v[idx[sel]],
                )
            )
            if s not in self._windows:
                self._windows[s] = _WindowState(s, e)
            else:
                self._windows[s].dirty = True
        # Keys are sorted by meter, then time: each meter's newest is its last.
        last = np.flatnonzero(np.concatenate((m[1:] != m[:-1], [True])))
        self._last_ts[m[last]] = np.maximum(self._last_ts[m[last]], ts[last])
        newest = int(ts.max())
        self._frontier_s = newest if self._frontier_s is None else max(self._frontier_s, newest)
        oldest = int(starts.min())
        self._first_start_s = (
            oldest if self._first_start_s is None else min(self._first_start_s, oldest)
        )

    def _out_of_service(
        self, m: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], ok: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.bool_]:
        """Readings of meters in service neither in the window the reading belongs
        to nor, for a reading at a window's end, in the next one (whose opening
        bracket it is): a reading at a change counts for both sides."""
        service = self.timeline.in_service
        out = np.zeros(len(m), np.bool_)
        if service.all():
            return out
        idx = np.flatnonzero(ok)
        t = ts[idx]
        within = self.timeline.version_index(self.grid.window_start(t))
        opens = self.timeline.version_index(self.grid.window_start(t + 1))
        out[idx] = ~(service[within, m[idx]] | service[opens, m[idx]])
        return out

    def _rejects(
        self, batch: ReadingBatch, reason: npt.NDArray[np.int16], detail: dict[int, str]
    ) -> Rejects:
        bad = np.flatnonzero(reason >= 0)
        if len(bad) == 0:
            return Rejects.empty()
        reasons = tuple(_REASON_CODES[int(r)] for r in reason[bad])
        details = tuple(
            detail.get(int(i)) or _default_detail(r, batch, int(i), self)
            for i, r in zip(bad, reasons, strict=True)
        )
        return Rejects(
            source_pos=batch.source_pos[bad],
            meter_idx=batch.meter_idx[bad],
            ts=batch.ts[bad],
            reason=reasons,
            detail=details,
        )

    # ------------------------------------------------------------------ advance
    def advance(self, final_watermark_s: int | None = None) -> Emission:
        """Emit what the watermark allows: new provisional windows, revisions, finals.

        ``final_watermark_s`` holds finals back: a window becomes final only once
        this watermark too is past its end plus the horizon. A partition of a
        Kafka worker passes the slowest watermark among the partitions that may
        still forward readings to it (kafka_io.core), so that a reading forwarded
        from a partition further behind in a backlog is not refused as too late."""
        wm = self.watermark_s
        if wm is None:
            return Emission()
        return self._emit(wm, final_watermark_s)

    def flush(self) -> Emission:
        """End of stream: close and finalise every window."""
        if self._frontier_s is None:
            return Emission()
        return self._emit(None)

    def _emit(self, watermark_s: int | None, final_watermark_s: int | None = None) -> Emission:
        assert self._first_start_s is not None and self._frontier_s is not None
        # Every window from the first seen to the last closed one gets a balance,
        # including windows in which no meter reported (an analyst must see holes).
        # Windows before the evicted ones are final and gone: start after them.
        last_start = int(self.grid.window_start(np.array([self._frontier_s]))[0])
        first = self._first_start_s
        if self._evicted_before_s is not None:
            first = max(first, self._evicted_before_s)
        starts = self.grid.starts_between(first, last_start)
        ends = self.grid.window_end(starts)
        for s_arr, e_arr in zip(starts, ends, strict=True):
            s = int(s_arr)
            if s not in self._windows:
                self._windows[s] = _WindowState(s, int(e_arr))

        horizon = self.config.recollect_horizon_s
        final_wm = watermark_s
        if watermark_s is not None and final_watermark_s is not None:
            final_wm = min(watermark_s, final_watermark_s)
        due: list[_WindowState] = []
        for s in sorted(self._windows):
            w = self._windows[s]
            if w.final:
                continue
            closes = watermark_s is None or w.end_s <= watermark_s
            finalises = final_wm is None or w.end_s + horizon <= final_wm
            revise = w.dirty and (
                watermark_s is None
                or watermark_s - w.computed_at_s >= self.config.revision_interval_s
            )
            if closes and (not w.emitted or revise or finalises):
                due.append(w)
                w.final = finalises
        if not due:
            return Emission()

        energies, profiles = self._energies(
            [w for w in due if w.dirty or w.energy is None or w.final]
        )

        emission = Emission()
        for w in due:
            if w.start_s in energies:
                w.energy = energies[w.start_s]
                w.dirty = False
            assert w.energy is not None
            became_final = w.final
            topo, members = self._version(w.start_s)
            balances = compute_balances(
                topo=topo,
                members=members,
                energy=w.energy,
                window_start_s=w.start_s,
                window_end_s=w.end_s,
                config=self.config.balance,
                final=became_final,
            )
            w.emitted = True
            w.computed_at_s = watermark_s if watermark_s is not None else w.end_s
            for b in balances:
                key = (b.level.value, b.target_id)
                before = w.balances.get(key)
                if before is None:
                    out = b
                elif not before.same_numbers(b):
                    out = replace(b, revision=before.revision + 1)
                elif became_final:
                    out = replace(before, final=True)
                else:
                    continue
                w.balances[key] = out
                emission.balances.append(out)
            if became_final:
                e = w.energy
                emission.final_meter_windows.append(
                    MeterWindowResult(
                        window_start=w.start_s,
                        window_end=w.end_s,
                        energy_kwh=np.where(e.determined, e.energy_ukwh / UKWH_PER_KWH, np.nan),
                        reporting=e.reporting.copy(),
                        flags=e.flags.copy(),
                        events=e.events.copy(),
                        profile_kwh=profiles[w.start_s][0] if w.start_s in profiles else None,
                        voltage_v=profiles[w.start_s][1] if w.start_s in profiles else None,
                        phase_s=profiles[w.start_s][2] if w.start_s in profiles else None,
                        peak_kwh=profiles[w.start_s][3] if w.start_s in profiles else None,
                    )
                )
        self._evict()
        return emission

    def _energies(
        self, windows: list[_WindowState]
    ) -> tuple[
        dict[int, MeterWindowEnergy],
        dict[int, _Profiles],
    ]:
        """Per-meter energies of the given windows (and profiles of the final ones),
        one forward and one backward pass over the live slots to find each window's
        bracketing readings."""
        if not windows:
            return {}, {}
        meters = self._all_meters
        live = sorted(self._slots)
        wanted = sorted(w.start_s for w in windows)
        by_start = {w.start_s: w for w in windows}

        carries: dict[int, ReadingRef] = {}
        carry = self._evicted_carry.copy()
        li = 0
        for s in wanted:
            while li < len(live) and live[li] < s:
                carry.take_last_of(self._slots[live[li]].summary, meters)
                li += 1
            carries[s] = carry.copy()

        followings: dict[int, ReadingRef] = {}
        following = ReadingRef.none(len(meters))
        li = len(live) - 1
        for s in reversed(wanted):
            while li >= 0 and live[li] > s:
                following.take_first_of(self._slots[live[li]].summary, meters)
                li -= 1
            followings[s] = following.copy()
        if len(self._cut_meters):
            for s in wanted:
                self._cut(s, carries[s], followings[s])

        out = {}
        profiles = {}
        for s in wanted:
            w = by_start[s]
            slot = self._slots.get(s)
            if slot is not None:
                slot.refresh_summary()
            multiplier = self._version(s)[0].multiplier
            if w.final and self.config.profile_s:
                rows = slot.all_rows() if slot is not None else Run.empty()
                edges = self._edges(w, self.config.profile_s)
                fine = self._edges(w, self.config.peak_part_s) if self.config.peak_part_s else None
                energies = profile_energies(
                    rows=rows,
                    carry=carries[s],
                    following=followings[s],
                    edges=[edges] if fine is None else [edges, fine],
                    multiplier=multiplier,
                    max_interval_ratio=self.config.profile_max_interval_ratio,
                )
                peaks = None
                if fine is not None:
                    quarters = energies[1]
                    quarters[:, np.diff(fine) == 0] = np.nan
                    peaks = top_parts(quarters, self.config.peak_parts)
                energy = energies[0]
                energy[:, np.diff(edges) == 0] = np.nan  # an hour the clock skipped
                profiles[s] = (
                    energy,
                    profile_voltage(rows=rows, n_meters=len(meters), edges_s=edges),
                    reading_phase(rows=rows, n_meters=len(meters)),
                    peaks,
                )
            out[s] = window_energy(
                window_start_s=w.start_s,
                window_end_s=w.end_s,
                meters=meters,
                carry=carries[s],
                slot=slot.summary if slot is not None else None,
                following=followings[s],
                multiplier=multiplier,
                max_bracket_gap_s=self.config.max_bracket_gap_s,
            )
        return out, profiles

    def _edges(self, w: _WindowState, step_s: int) -> npt.NDArray[np.int64]:
        return _profile_edges(w.start_s, w.end_s, step_s, self.grid.window_s, self.config.tz)

    def _cut(self, start_s: int, carry: ReadingRef, following: ReadingRef) -> None:
        """Forget brackets across a meter's membership changes: a window after the
        change takes no reading from before it, a window before none from after."""
        um, at, cut_s = self._cut_unique, self._cut_index, self._cut_s
        before = cut_s <= start_s
        last_before = np.full(len(um), np.iinfo(np.int64).min, np.int64)
        np.maximum.at(last_before, at[before], cut_s[before])
        first_after = np.full(len(um), np.iinfo(np.int64).max, np.int64)
        np.minimum.at(first_after, at[~before], cut_s[~before])
        carry.has[um] &= carry.ts[um] >= last_before
        following.has[um] &= following.ts[um] <= first_after

    def _evict(self) -> None:
        """Drop final windows at the old end; fold their last readings into the carry."""
        for s in sorted(self._windows):
            w = self._windows[s]
            if not w.final:
                break
            slot = self._slots.pop(s, None)
            if slot is not None:
                self._evicted_carry.take_last_of(slot.summary, self._all_meters)
            del self._windows[s]
            self._evicted_before_s = w.end_s

    # ------------------------------------------------------------------ inspection
    def stats(self) -> dict[str, int]:
        return {
            "live_windows": len(self._windows),
            "live_slots": len(self._slots),
            "stored_readings": sum(len(s) for s in self._slots.values()),
        }


def clock_jumps(
    ts: npt.NDArray[np.int64], frontier_s: int | None, jump_s: int
) -> npt.NDArray[np.bool_]:
    """Which timestamps jumped ahead of the stream: a minority cut off from the rest.

    Timestamps are grouped into clusters separated by gaps longer than ``jump_s``.
    The base cluster is the one reaching the stream's event time (or, at the start,
    the largest). A later cluster is a clock jump unless it holds at least half of
    the batch: then the stream itself moved on (an outage ended, a replay resumed).
    """
    if frontier_s is not None and int(ts.max()) <= frontier_s + jump_s:
        return np.zeros(len(ts), np.bool_)  # the common case: nothing far ahead
    order = np.argsort(ts, kind="stable")
    sorted_ts = ts[order]
    cluster = np.concatenate(([0], np.cumsum(np.diff(sorted_ts) > jump_s)))
    sizes = np.bincount(cluster)
    near = sorted_ts <= (frontier_s + jump_s) if frontier_s is not None else np.zeros(0, bool)
    if frontier_s is not None and near.any():
        base = int(cluster[near].max())
    else:
        base = int(np.argmax(sizes))
    later_minority = (np.arange(len(sizes)) > base) & (sizes * 2 < len(ts))
    out = np.empty(len(ts), np.bool_)
    out[order] = later_minority[cluster]
    return out


def _profile_edges(
    start_s: int, end_s: int, step_s: int, window_s: int, tz: str
) -> npt.NDArray[np.int64]:
    """Sub-window edges from start to end every ``step_s`` of the local clock.

    Every window of a length gets the same parts, so a history of profiles stacks
    whatever daylight saving does: on the day the clock springs forward, the hour it
    skips is a part of no length (its energy is unknown, not zero); on the day it
    falls back, the hour it repeats lies in one part twice as long. Without this, a
    23- or 25-hour day left every profile detector without a history for as long as
    that day stayed in it."""
    n = end_s - start_s
    if n == window_s or window_s % step_s:
        edges = np.arange(start_s, end_s, min(step_s, n), dtype=np.int64)
        return np.append(edges, end_s)
    wall = pd.date_range(
        pd.Timestamp(start_s, unit="s", tz="UTC").tz_convert(tz).tz_localize(None),
        periods=window_s // step_s + 1,
        freq=pd.Timedelta(seconds=step_s),
    )
    utc = wall.tz_localize(tz, ambiguous=True, nonexistent="shift_forward").as_unit("s")
    edges = np.clip(utc.asi8.astype(np.int64), start_s, end_s)
    edges[0], edges[-1] = start_s, end_s
    return np.maximum.accumulate(edges)


def _mask(n: int, idx: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    out = np.zeros(n, np.bool_)
    out[idx] = True
    return out


def _default_detail(reason: RejectReason, batch: ReadingBatch, i: int, eng: BalanceEngine) -> str:
    if reason is RejectReason.UNKNOWN_METER:
        return "meter is not in the topology"
    if reason is RejectReason.MALFORMED:
        return "value is not a finite number or timestamp outside 2000-2136"
    if reason is RejectReason.NEGATIVE_ENERGY:
        return f"interval energy {float(batch.value[i])} kWh is negative"
    if reason is RejectReason.IMPLAUSIBLE_VALUE:
        return f"register {float(batch.value[i])} kWh is negative"
    if reason is RejectReason.CLOCK_JUMP:
        return (
            f"timestamp more than {eng.config.max_clock_jump_s / 3600:.0f} h ahead of the "
            "rest of the stream"
        )
    if reason is RejectReason.TOO_LATE:
        return "its window is already final (past the re-collection horizon)"
    if reason is RejectReason.DUPLICATE:
        return "same meter, time and value as an earlier reading"
    return ""
