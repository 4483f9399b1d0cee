"""Readings of one event-time window, kept sorted by (meter, time).

A slot holds the readings whose timestamps fall in one window ``(start, end]``. It is
a small log-structured store: each ingested batch becomes a sorted run, and runs are
merged size-tiered, so appending is cheap and looking up a key (to spot a duplicate)
or gathering one meter's readings is a binary search per run.

Each reading is addressed by an int64 key, meter index in the high 32 bits and
seconds since ``TS_BASE`` in the low 32, so "sorted by key" means "sorted by meter,
then by time" and one ``np.searchsorted`` serves both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from streams.registers import clean_deltas, to_ukwh

TS_BASE: Final = 946_684_800  # 2000-01-01T00:00:00Z [s since epoch]
TS_LIMIT: Final = TS_BASE + 2**32  # keys hold 32 bits of seconds (until 2136)
_LOW_MASK: Final = np.int64(0xFFFFFFFF)


def make_keys(meter_idx: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return (meter_idx.astype(np.int64) << 32) | (ts - TS_BASE)


def key_meter(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return keys >> 32


def key_ts(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return (keys & _LOW_MASK) + TS_BASE


@dataclass(frozen=True)
class Run:
    """Readings sorted by key, without duplicate keys."""

    key: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    is_interval: npt.NDArray[np.bool_]
    event: npt.NDArray[np.int16]
    voltage_v: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        # A run never changes once made (merging makes a new one): read-only arrays
        # enforce it, and let an incremental checkpoint (kafka_io.pieces) skip
        # re-reading a run it has already saved.
        for a in (self.key, self.value, self.is_interval, self.event, self.voltage_v):
            a.flags.writeable = False

    def __len__(self) -> int:
        return len(self.key)

    def take(self, idx: npt.NDArray[np.int64] | npt.NDArray[np.bool_]) -> Run:
        return Run(
            self.key[idx],
            self.value[idx],
            self.is_interval[idx],
            self.event[idx],
            self.voltage_v[idx],
        )

    @staticmethod
    def empty() -> Run:
        return Run(
            np.empty(0, np.int64),
            np.empty(0),
            np.empty(0, np.bool_),
            np.empty(0, np.int16),
            np.empty(0, np.float32),
        )

    @staticmethod
    def merge(runs: list[Run]) -> Run:
        """Merge sorted runs into one. Keys are unique across runs by construction."""
        if len(runs) == 1:
            return runs[0]
        key = np.concatenate([r.key for r in runs])
        order = np.argsort(key, kind="stable")
        return Run(
            key[order],
            np.concatenate([r.value for r in runs])[order],
            np.concatenate([r.is_interval for r in runs])[order],
            np.concatenate([r.event for r in runs])[order],
            np.concatenate([r.voltage_v for r in runs])[order],
        )


def sorted_unique(x: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Unique values of an already sorted array, in O(n)."""
    if len(x) == 0:
        return x
    return x[np.concatenate(([True], x[1:] != x[:-1]))]


def _ranges_to_index(lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Concatenation of ``arange(lo[i], hi[i])`` for all i, without a Python loop."""
    lengths = hi - lo
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    keep = lengths > 0
    lo, lengths = lo[keep], lengths[keep]
    offsets = np.repeat(lo - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return np.arange(total, dtype=np.int64) + offsets


@dataclass
class SlotSummary:
    """Per-meter facts of one slot, dense over all meters.

    ``internal_ukwh`` is the energy between consecutive readings inside the slot
    [1e-6 kWh]; the energy from the previous slot's last reading to this slot's first
    depends on that other slot and is computed when the window is balanced.
    """

    has: npt.NDArray[np.bool_]
    first_ts: npt.NDArray[np.int64]
    first_raw: npt.NDArray[np.float64]
    first_is_interval: npt.NDArray[np.bool_]
    last_ts: npt.NDArray[np.int64]
    last_raw: npt.NDArray[np.float64]
    last_is_interval: npt.NDArray[np.bool_]
    internal_ukwh: npt.NDArray[np.int64]
    flags: npt.NDArray[np.int8]
    events: npt.NDArray[np.int32]  # bit (1 << event code) for each event seen
    count: npt.NDArray[np.int32]

    @classmethod
    def empty(cls, n_meters: int) -> SlotSummary:
        return cls(
            has=np.zeros(n_meters, np.bool_),
            first_ts=np.zeros(n_meters, np.int64),
            first_raw=np.zeros(n_meters, np.float64),
            first_is_interval=np.zeros(n_meters, np.bool_),
            last_ts=np.zeros(n_meters, np.int64),
            last_raw=np.zeros(n_meters, np.float64),
            last_is_interval=np.zeros(n_meters, np.bool_),
            internal_ukwh=np.zeros(n_meters, np.int64),
            flags=np.zeros(n_meters, np.int8),
            events=np.zeros(n_meters, np.int32),
            count=np.zeros(n_meters, np.int32),
        )

    def absorb(self, run: Run, multiplier: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Fold a new run into the summary; return the meters it could not fold.

        First and last readings are always updated (order-independent min/max by
        time), because neighbouring windows need them. Internal energies are
        accumulated for meters whose new readings all come after the ones already
        here, the streaming common case; for the others (a late reading landing
        before or between stored ones) they must be recomputed from the rows, and
        those meters are returned.
        """
        g = _Groups.of(run, multiplier)
        m = g.meters
        had = self.has[m]
        in_order = ~had | (g.first_ts > self.last_ts[m])
        # Energy from the last reading already here to the run's first one.
        bridge, bridge_flags = clean_deltas(
            self.last_raw[m],
            self.last_is_interval[m],
            g.first_raw,
            g.first_is_interval,
            multiplier[m],
        )
        bridge = np.where(had, bridge, 0)
        bridge_flags = np.where(had, bridge_flags, 0).astype(np.int8)
        io = m[in_order]
        self.internal_ukwh[io] += (g.internal_ukwh + bridge)[in_order]
        self.flags[io] |= (g.flags | bridge_flags)[in_order]
        self.events[io] |= g.events[in_order]
        self.count[io] += g.count[in_order]

        earlier = ~had | (g.first_ts < self.first_ts[m])
        fm = m[earlier]
        self.first_ts[fm] = g.first_ts[earlier]
        self.first_raw[fm] = g.first_raw[earlier]
        self.first_is_interval[fm] = g.first_is_interval[earlier]
        later = ~had | (g.last_ts > self.last_ts[m])
        lm = m[later]
        self.last_ts[lm] = g.last_ts[later]
        self.last_raw[lm] = g.last_raw[later]
        self.last_is_interval[lm] = g.last_is_interval[later]
        self.has[m] = True
        return m[~in_order]

    def update_from(self, run: Run, multiplier: npt.NDArray[np.float64]) -> None:
        """Recompute the entries of every meter in ``run`` (which holds ALL of the
        slot's readings of those meters)."""
        if len(run) == 0:
            return
        g = _Groups.of(run, multiplier)
        m = g.meters
        self.has[m] = True
        self.first_ts[m] = g.first_ts
        self.first_raw[m] = g.first_raw
        self.first_is_interval[m] = g.first_is_interval
        self.last_ts[m] = g.last_ts
        self.last_raw[m] = g.last_raw
        self.last_is_interval[m] = g.last_is_interval
        self.count[m] = g.count
        self.internal_ukwh[m] = g.internal_ukwh
        self.flags[m] = g.flags
        self.events[m] = g.events


@dataclass
class _RefArrays:
    """One stored reading per query (or none): its value and kind."""

    has: npt.NDArray[np.bool_]
    raw: npt.NDArray[np.float64]
    is_interval: npt.NDArray[np.bool_]

    @classmethod
    def none(cls, n: int) -> _RefArrays:
        return cls(np.zeros(n, np.bool_), np.zeros(n), np.zeros(n, np.bool_))

    def set(self, mask: npt.NDArray[np.bool_], run: Run, pos: npt.NDArray[np.int64]) -> None:
        self.has |= mask
        self.raw = np.where(mask, run.value[pos], self.raw)
        self.is_interval = np.where(mask, run.is_interval[pos], self.is_interval)


@dataclass(frozen=True)
class _Groups:
    """Per-meter facts of a sorted run: one entry per meter present."""

    meters: npt.NDArray[np.int64]
    first_ts: npt.NDArray[np.int64]
    first_raw: npt.NDArray[np.float64]
    first_is_interval: npt.NDArray[np.bool_]
    last_ts: npt.NDArray[np.int64]
    last_raw: npt.NDArray[np.float64]
    last_is_interval: npt.NDArray[np.bool_]
    count: npt.NDArray[np.int32]
    internal_ukwh: npt.NDArray[np.int64]
    flags: npt.NDArray[np.int8]
    events: npt.NDArray[np.int32]

    @classmethod
    def of(cls, run: Run, multiplier: npt.NDArray[np.float64]) -> _Groups:
        meters = key_meter(run.key)
        ts = key_ts(run.key)
        same = meters[1:] == meters[:-1]
        starts = np.flatnonzero(np.concatenate(([True], ~same)))
        ends = np.concatenate((starts[1:], [len(run)])) - 1
        m = meters[starts]

        # Deltas between consecutive readings of the same meter only.
        step = run.value[1:] - run.value[:-1]
        if not run.is_interval.any() and not (same & (step < 0)).any():
            # Fast path: registers only, all moving forward.
            energy = np.where(same, to_ukwh(step * multiplier[meters[1:]]), 0)
            flags = np.zeros(len(run) - 1, np.int8)
        else:
            # Pair each reading with its predecessor; across a meter boundary pair
            # it with itself (a zero step), then zero those pairs out.
            prev_value = np.where(same, run.value[:-1], run.value[1:])
            prev_interval = np.where(same, run.is_interval[:-1], run.is_interval[1:])
            energy, flags = clean_deltas(
                prev_value,
                prev_interval,
                run.value[1:],
                run.is_interval[1:],
                multiplier[meters[1:]],
            )
            energy = np.where(same, energy, 0)
            flags = np.where(same, flags, 0).astype(np.int8)
        # Prefix sums make per-meter totals exact integer sums over contiguous groups.
        csum = np.concatenate(([0], np.cumsum(energy)))
        group_flags = np.zeros(len(m), np.int8)
        nz = np.flatnonzero(flags)  # rare: rollovers, resets, step backs
        np.bitwise_or.at(group_flags, np.searchsorted(starts, nz + 1, "right") - 1, flags[nz])
        group_events = np.zeros(len(m), np.int32)
        ev_idx = np.flatnonzero(run.event)
        ev_bits = np.left_shift(1, run.event[ev_idx].astype(np.int32)).astype(np.int32)
        np.bitwise_or.at(group_events, np.searchsorted(starts, ev_idx, "right") - 1, ev_bits)
        return cls(
            meters=m,
            first_ts=ts[starts],
            first_raw=run.value[starts],
            first_is_interval=run.is_interval[starts],
            last_ts=ts[ends],
            last_raw=run.value[ends],
            last_is_interval=run.is_interval[ends],
            count=(ends - starts + 1).astype(np.int32),
            internal_ukwh=csum[ends] - csum[starts],
            flags=group_flags,
            events=group_events,
        )


class Slot:
    """The readings of one window and their per-meter summary."""

    # Runs are merged when they become this many, and whenever most of the slot's
    # meters are summarised anyway; lookups cost one binary search per run.
    _MAX_RUNS: Final = 64

    def __init__(self, start_s: int, end_s: int, multiplier: npt.NDArray[np.float64]) -> None:
        n_meters = len(multiplier)
        self.start_s = start_s
        self.end_s = end_s
        self._multiplier = multiplier
        self.runs: list[Run] = []
        self.summary = SlotSummary.empty(n_meters)
        self._stale = np.zeros(n_meters, np.bool_)
        self._any_stale = False

    def __len__(self) -> int:
        return sum(len(r) for r in self.runs)

    def add(self, run: Run) -> None:
        """Add a sorted run of new keys (the caller has removed duplicates)."""
        if len(run) == 0:
            return
        late_meters = self.summary.absorb(run, self._multiplier)
        if len(late_meters):
            self._insert_late(run.take(np.isin(key_meter(run.key), late_meters)))
        self.runs.append(run)
        if len(self.runs) > self._MAX_RUNS:
            self.runs = [Run.merge(self.runs)]

    def _neighbours(
        self, keys: npt.NDArray[np.int64]
    ) -> tuple[_RefArrays, npt.NDArray[np.int64], _RefArrays, npt.NDArray[np.int64]]:
        """Each key's stored predecessor and successor of the same meter (and keys)."""
        n = len(keys)
        meters = key_meter(keys)
        pred, succ = _RefArrays.none(n), _RefArrays.none(n)
        pred_key = np.full(n, np.iinfo(np.int64).min)
        succ_key = np.full(n, np.iinfo(np.int64).max)
        for run in self.runs:
            pos = np.searchsorted(run.key, keys)
            before = np.maximum(pos - 1, 0)
            ok = (pos > 0) & (key_meter(run.key[before]) == meters) & (run.key[before] > pred_key)
            pred.set(ok, run, before)
            pred_key = np.where(ok, run.key[before], pred_key)
            after = np.minimum(pos, len(run) - 1)
            ok = (
                (pos < len(run))
                & (key_meter(run.key[after]) == meters)
                & (run.key[after] < succ_key)
            )
            succ.set(ok, run, after)
            succ_key = np.where(ok, run.key[after], succ_key)
        return pred, pred_key, succ, succ_key

    def _insert_late(self, rows: Run) -> None:
        """Fold readings that land before or between stored ones, by local edits.

        Inserting readings into a gap ``(p, n)`` replaces the energy of that pair
        with the energies of the new consecutive pairs; each edit is the same
        deterministic per-pair arithmetic a full recomputation would do, so the
        result is identical and costs O(late readings), not O(slot).
        """
        k = rows.key
        m = key_meter(k)
        mult = self._multiplier[m]
        pred, pred_key, succ, succ_key = self._neighbours(k)
        same_prev = np.concatenate(([False], m[1:] == m[:-1]))
        same_next = np.concatenate((m[1:] == m[:-1], [False]))
        prev_key = np.roll(k, 1)
        next_key = np.roll(k, -1)
        # Predecessor in the merged sequence: the previous late reading, when closer.
        prev_late = same_prev & (~pred.has | (prev_key > pred_key))
        p_has = pred.has | prev_late
        p_val = np.where(prev_late, np.roll(rows.value, 1), pred.raw)
        p_int = np.where(prev_late, np.roll(rows.is_interval, 1), pred.is_interval)
        e_add, f_add = clean_deltas(p_val, p_int, rows.value, rows.is_interval, mult)
        # Pair to the stored successor, for the last late reading before it.
        next_late = same_next & (~succ.has | (next_key < succ_key))
        tail = succ.has & ~next_late
        e_tail, f_tail = clean_deltas(
            rows.value, rows.is_interval, succ.raw, succ.is_interval, mult
        )
        # The stored pair (p, n) that the first late reading of a gap breaks.
        gap_first = pred.has & ~prev_late & succ.has
        e_rm, f_rm = clean_deltas(pred.raw, pred.is_interval, succ.raw, succ.is_interval, mult)

        delta = np.where(p_has, e_add, 0) + np.where(tail, e_tail, 0) - np.where(gap_first, e_rm, 0)
        summary = self.summary
        np.add.at(summary.internal_ukwh, m, delta)
        np.bitwise_or.at(
            summary.flags,
            m,
            (np.where(p_has, f_add, 0) | np.where(tail, f_tail, 0)).astype(np.int8),
        )
        ev = rows.event.astype(np.int32)
        np.bitwise_or.at(
            summary.events, m, np.where(ev > 0, np.left_shift(1, ev), 0).astype(np.int32)
        )
        np.add.at(summary.count, m, 1)
        # A removed pair's flag cannot be taken back by an edit: recompute those meters.
        unflag = gap_first & (f_rm != 0)
        if unflag.any():
            self._stale[m[unflag]] = True
            self._any_stale = True

    def lookup(
        self, keys: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Which keys are stored, with the stored value and kind where found."""
        found = np.zeros(len(keys), np.bool_)
        value = np.full(len(keys), np.nan)
        is_interval = np.zeros(len(keys), np.bool_)
        for run in self.runs:
            pos = np.searchsorted(run.key, keys)
            pos_c = np.minimum(pos, len(run) - 1)
            hit = run.key[pos_c] == keys
            found |= hit
            value[hit] = run.value[pos_c[hit]]
            is_interval[hit] = run.is_interval[pos_c[hit]]
        return found, value, is_interval

    def rows_for(self, meters: npt.NDArray[np.int64]) -> Run:
        """All readings of the given (sorted, unique) meters, sorted by key."""
        parts = []
        lo_keys = meters.astype(np.int64) << 32
        hi_keys = (meters.astype(np.int64) + 1) << 32
        for run in self.runs:
            lo = np.searchsorted(run.key, lo_keys)
            hi = np.searchsorted(run.key, hi_keys)
            parts.append(run.take(_ranges_to_index(lo, hi)))
        if not parts:
            return Run.empty()
        return Run.merge(parts)

    def all_rows(self) -> Run:
        """Every reading of the slot, sorted by key (consolidates the runs)."""
        if not self.runs:
            return Run.empty()
        self.runs = [Run.merge(self.runs)]
        return self.runs[0]

    def refresh_summary(self) -> npt.NDArray[np.int64]:
        """Recompute internal energies, flags and events of meters that got readings
        since the last refresh; return them. Needed only to balance this slot's own
        window (first and last readings are always current)."""
        if not self._any_stale:
            return np.empty(0, np.int64)
        meters = np.flatnonzero(self._stale)
        self._stale[:] = False
        self._any_stale = False
        if len(self.runs) > 1 and 2 * len(meters) >= len(self._stale):
            # Most meters change anyway: consolidate the slot into one run first.
            self.runs = [Run.merge(self.runs)]
        rows = self.rows_for(meters)
        self.summary.update_from(rows, self._multiplier)
        return meters
