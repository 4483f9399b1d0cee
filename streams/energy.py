"""Energy of each meter in one window, by the proration rule.

The rule (documented in docs/data-contract.md): a register reading marks the energy
consumed in the interval since the meter's previous reading. When an interval
crosses a window edge, its energy is split in proportion to time, which is the same
as interpolating the register linearly at the edge. So a window's energy is

    E = (energy of the readings inside the window)
        - (part of the first one's interval before the window start)
        + (part of the next reading's interval before the window end)

Each edge part is computed from the same two readings, with the same rounding, by
both windows that share the edge, so energy is conserved exactly across windows:
nothing lost, nothing counted twice.

A meter's window energy is *determined* when a reading at or before the window start
and one at or after the window end are known; it *reports* when, in addition, the
readings bracketing each edge are no further apart than ``max_bracket_gap_s``
(a longer interpolation is a guess, counted but not trusted for coverage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streams.registers import clean_deltas
from streams.slots import SlotSummary


@dataclass
class ReadingRef:
    """One reading per meter (e.g. the last before a window), for a set of meters."""

    has: npt.NDArray[np.bool_]
    ts: npt.NDArray[np.int64]
    raw: npt.NDArray[np.float64]
    is_interval: npt.NDArray[np.bool_]

    @classmethod
    def none(cls, n: int) -> ReadingRef:
        return cls(np.zeros(n, np.bool_), np.zeros(n, np.int64), np.zeros(n), np.zeros(n, np.bool_))

    def copy(self) -> ReadingRef:
        return ReadingRef(self.has.copy(), self.ts.copy(), self.raw.copy(), self.is_interval.copy())

    def grown(self, n: int) -> ReadingRef:
        """The same readings over ``n`` meters (new meters have none)."""
        extra = ReadingRef.none(n - len(self.has))
        return ReadingRef(
            np.concatenate((self.has, extra.has)),
            np.concatenate((self.ts, extra.ts)),
            np.concatenate((self.raw, extra.raw)),
            np.concatenate((self.is_interval, extra.is_interval)),
        )

    def take_last_of(self, summary: SlotSummary, meters: npt.NDArray[np.int64]) -> None:
        """Move forward over a slot: its last reading replaces ours where it has one."""
        h = summary.has[meters]
        self.has |= h
        self.ts = np.where(h, summary.last_ts[meters], self.ts)
        self.raw = np.where(h, summary.last_raw[meters], self.raw)
        self.is_interval = np.where(h, summary.last_is_interval[meters], self.is_interval)

    def take_first_of(self, summary: SlotSummary, meters: npt.NDArray[np.int64]) -> None:
        """Move backward over a slot: its first reading replaces ours where it has one."""
        h = summary.has[meters]
        self.has |= h
        self.ts = np.where(h, summary.first_ts[meters], self.ts)
        self.raw = np.where(h, summary.first_raw[meters], self.raw)
        self.is_interval = np.where(h, summary.first_is_interval[meters], self.is_interval)


@dataclass
class MeterWindowEnergy:
    """Per-meter results for one window, for a set of meters."""

    energy_ukwh: npt.NDArray[np.int64]  # [1e-6 kWh], 0 where not determined
    determined: npt.NDArray[np.bool_]
    reporting: npt.NDArray[np.bool_]
    flags: npt.NDArray[np.int8]
    events: npt.NDArray[np.int32]


def _part_before(
    energy_ukwh: npt.NDArray[np.int64],
    from_ts: npt.NDArray[np.int64],
    to_ts: npt.NDArray[np.int64],
    edge_s: int,
) -> npt.NDArray[np.int64]:
    """The share of an interval's energy that lies before ``edge_s`` [1e-6 kWh]."""
    span = np.maximum(to_ts - from_ts, 1)
    frac = np.clip((edge_s - from_ts) / span, 0.0, 1.0)
    return np.rint(energy_ukwh.astype(np.float64) * frac).astype(np.int64)


def window_energy(
    *,
    window_start_s: int,
    window_end_s: int,
    meters: npt.NDArray[np.int64],
    carry: ReadingRef,
    slot: SlotSummary | None,
    following: ReadingRef,
    multiplier: npt.NDArray[np.float64],
    max_bracket_gap_s: int,
) -> MeterWindowEnergy:
    """Energy of ``meters`` in the window ``(window_start_s, window_end_s]``.

    ``carry`` is each meter's last reading at or before the window start,
    ``following`` its first reading after the window end, ``slot`` the summary of
    the readings inside the window; all three are restricted to ``meters``.
    """
    n = len(meters)
    mult = multiplier[meters]
    ws, we = window_start_s, window_end_s
    if slot is None:
        in_slot = np.zeros(n, np.bool_)
        s = SlotSummary.empty(1)
        idx = np.zeros(n, np.int64)
    else:
        in_slot = slot.has[meters]
        s = slot
        idx = meters

    # Meters with readings inside the window.
    d_first, f_first = clean_deltas(
        carry.raw, carry.is_interval, s.first_raw[idx], s.first_is_interval[idx], mult
    )
    before_ws = np.where(carry.ts >= ws, 0, _part_before(d_first, carry.ts, s.first_ts[idx], ws))
    last_ts = s.last_ts[idx]
    d_next, f_next = clean_deltas(
        s.last_raw[idx], s.last_is_interval[idx], following.raw, following.is_interval, mult
    )
    ends_on_edge = last_ts >= we
    before_we = np.where(ends_on_edge, 0, _part_before(d_next, last_ts, following.ts, we))
    energy_in = d_first - before_ws + s.internal_ukwh[idx] + np.where(ends_on_edge, 0, before_we)
    determined_in = carry.has & (ends_on_edge | following.has)
    gap_in = np.maximum(
        np.where(carry.ts >= ws, 0, s.first_ts[idx] - carry.ts),
        np.where(ends_on_edge, 0, following.ts - last_ts),
    )
    flags_in = (
        s.flags[idx]
        | np.where(carry.has, f_first, 0)
        | np.where(ends_on_edge | ~following.has, 0, f_next)
    )

    # Meters silent inside the window: one interval spans it.
    d_span, f_span = clean_deltas(
        carry.raw, carry.is_interval, following.raw, following.is_interval, mult
    )
    energy_out = _part_before(d_span, carry.ts, following.ts, we) - _part_before(
        d_span, carry.ts, following.ts, ws
    )
    determined_out = carry.has & following.has
    gap_out = following.ts - carry.ts

    determined = np.where(in_slot, determined_in, determined_out)
    energy = np.where(determined, np.where(in_slot, energy_in, energy_out), 0).astype(np.int64)
    gap = np.where(in_slot, gap_in, gap_out)
    flags = np.where(determined, np.where(in_slot, flags_in, f_span), 0).astype(np.int8)
    events = np.where(in_slot, s.events[idx], 0).astype(np.int32)
    return MeterWindowEnergy(
        energy_ukwh=energy,
        determined=determined,
        reporting=determined & (gap <= max_bracket_gap_s),
        flags=flags,
        events=events,
    )
