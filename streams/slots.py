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

    def widen(
        self,
        m: npt.NDArray[np.int64],
        run: Run,
        starts: npt.NDArray[np.int64],
        ends: npt.NDArray[np.int64],
    ) -> None:
        """Take a new run's first and last reading per meter where they extend ours.

        Kept up to date on every add (cheap, order-independent), because the
        neighbouring windows need them; the internal energies wait for
        ``update_from`` until this slot's own window is balanced.
        """
        ts = key_ts(run.key)
        had = self.has[m]
        earlier = ~had | (ts[starts] < self.first_ts[m])
        fm, fs = m[earlier], starts[earlier]
        self.first_ts[fm] = ts[fs]
        self.first_raw[fm] = run.value[fs]
        self.first_is_interval[fm] = run.is_interval[fs]
        later = ~had | (ts[ends] > self.last_ts[m])
        lm, le = m[later], ends[later]
        self.last_ts[lm] = ts[le]
        self.last_raw[lm] = run.value[le]
        self.last_is_interval[lm] = run.is_interval[le]
        self.has[m] = True

    def update_from(self, run: Run, multiplier: npt.NDArray[np.float64]) -> None:
        """Recompute the entries of every meter in ``run`` (which holds ALL of the
        slot's readings of those meters)."""
        if len(run) == 0:
            return
        meters = key_meter(run.key)
        ts = key_ts(run.key)
        starts = np.flatnonzero(np.concatenate(([True], meters[1:] != meters[:-1])))
        ends = np.concatenate((starts[1:], [len(run)])) - 1
        m = meters[starts]
        self.has[m] = True
        self.first_ts[m] = ts[starts]
        self.first_raw[m] = run.value[starts]
        self.first_is_interval[m] = run.is_interval[starts]
        self.last_ts[m] = ts[ends]
        self.last_raw[m] = run.value[ends]
        self.last_is_interval[m] = run.is_interval[ends]
        self.count[m] = (ends - starts + 1).astype(np.int32)

        # Deltas between consecutive readings of the same meter only.
        same = meters[1:] == meters[:-1]
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
        self.internal_ukwh[m] = csum[ends] - csum[starts]
        group = np.repeat(np.arange(len(m)), ends - starts + 1)
        group_flags = np.zeros(len(m), np.int8)
        nz = np.flatnonzero(flags)  # rare: rollovers, resets, step backs
        np.bitwise_or.at(group_flags, group[1:][nz], flags[nz])
        self.flags[m] = group_flags
        group_events = np.zeros(len(m), np.int32)
        ev_idx = np.flatnonzero(run.event)
        ev_bits = np.left_shift(1, run.event[ev_idx].astype(np.int32)).astype(np.int32)
        np.bitwise_or.at(group_events, group[ev_idx], ev_bits)
        self.events[m] = group_events


class Slot:
    """The readings of one window and their per-meter summary."""

    # Runs are merged when they become this many, and whenever most of the slot's
    # meters are summarised anyway; lookups cost one binary search per run.
    _MAX_RUNS: Final = 32

    def __init__(self, start_s: int, end_s: int, n_meters: int) -> None:
        self.start_s = start_s
        self.end_s = end_s
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
        self.runs.append(run)
        if len(self.runs) > self._MAX_RUNS:
            self.runs = [Run.merge(self.runs)]
        meters = key_meter(run.key)
        starts = np.flatnonzero(np.concatenate(([True], meters[1:] != meters[:-1])))
        ends = np.concatenate((starts[1:], [len(run)])) - 1
        self.summary.widen(meters[starts], run, starts, ends)
        self._stale[meters[starts]] = True
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
            return Run(
                np.empty(0, np.int64),
                np.empty(0),
                np.empty(0, np.bool_),
                np.empty(0, np.int16),
                np.empty(0, np.float32),
            )
        return Run.merge(parts)

    def refresh_summary(self, multiplier: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
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
        self.summary.update_from(rows, multiplier)
        return meters
