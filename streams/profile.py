"""Per-meter load profiles inside a window (e.g. hourly energies of a day).

Detectors need the shape of a day, not only its total: a flat day (h5) or a day
played backwards (h6) keeps the daily total and is invisible to a daily balance.
A profile is computed by the same proration rule as the window balance, at
sub-window edges, so the parts of a profile add up exactly to the window's energy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from lineloss.domain import UKWH_PER_KWH
from streams.energy import ReadingRef
from streams.registers import clean_deltas
from streams.slots import Run, key_meter, key_ts, make_keys


def _with_brackets(
    rows: Run, carry: ReadingRef, following: ReadingRef
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Each meter's readings with its carry before and its following reading after,
    as one key-sorted sequence (built by offsets, no sort)."""
    n_meters = len(carry.has)
    row_meters = key_meter(rows.key)
    per_meter = np.bincount(row_meters, minlength=n_meters)
    sizes = per_meter + carry.has + following.has
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    total = int(offsets[-1])
    keys = np.empty(total, np.int64)
    value = np.empty(total, np.float64)
    is_interval = np.empty(total, np.bool_)

    c = np.flatnonzero(carry.has)
    pos = offsets[c]
    keys[pos] = make_keys(c, carry.ts[c])
    value[pos] = carry.raw[c]
    is_interval[pos] = carry.is_interval[c]

    first_row = np.concatenate(([0], np.cumsum(per_meter)))[row_meters]
    row_pos = offsets[row_meters] + carry.has[row_meters] + (np.arange(len(rows)) - first_row)
    keys[row_pos] = rows.key
    value[row_pos] = rows.value
    is_interval[row_pos] = rows.is_interval

    f = np.flatnonzero(following.has)
    pos = offsets[f + 1] - 1
    keys[pos] = make_keys(f, following.ts[f])
    value[pos] = following.raw[f]
    is_interval[pos] = following.is_interval[f]
    return keys, value, is_interval


def profile_energies(
    *,
    rows: Run,
    carry: ReadingRef,
    following: ReadingRef,
    edges: Sequence[npt.NDArray[np.int64]],
    multiplier: npt.NDArray[np.float64],
    max_interval_ratio: float = 1.5,
) -> list[npt.NDArray[np.float32]]:
    """Energy [kWh] of every meter between consecutive edges, for each set of
    ``edges`` (hours and quarter hours) in one pass: arrays of meters x
    (len(edges_s) - 1), NaN where a part is not determined.

    A meter whose readings come less often than its parts (no more than half of the
    intervals between its readings in the window within ``max_interval_ratio`` x the
    part length) has no profile in that set: NaN throughout. Prorating a daily
    frozen reading spreads the day evenly over its hours, a flat day the meter never
    recorded (an independent grid read once a day: every household a "scaled drop",
    86 false thefts per 1,000 customers a month). A lost reading or two in a
    15-minute day are still prorated across their gap.

    ``rows`` are all readings inside the window, sorted by key; ``carry`` and
    ``following`` the readings bracketing it, dense over all meters. A meter's
    cumulative energy at an edge depends on that edge alone (the readings
    bracketing it), so it is computed once at the union of the edges and every set
    takes its differences from there: an hour is exactly the sum of its quarters, in
    whole micro-kWh, and unknown exactly when one of them is."""
    n_meters = len(carry.has)
    union = np.unique(np.concatenate(edges))
    keys, value, is_interval = _with_brackets(rows, carry, following)
    meters = key_meter(keys)
    ts = key_ts(keys)
    same = np.concatenate(([False], meters[1:] == meters[:-1]))
    prev_value = np.concatenate((value[:1], value[:-1]))
    prev_interval = np.concatenate((is_interval[:1], is_interval[:-1]))
    delta, _ = clean_deltas(
        np.where(same, prev_value, value),
        np.where(same, prev_interval, is_interval),
        value,
        is_interval,
        multiplier[meters],
    )
    delta = np.where(same, delta, 0)
    cum = np.cumsum(delta)
    # Each meter's intervals between consecutive readings [s] (counted, not
    # sorted: a median per meter would sort every reading of the window).
    gap_meter = meters[same]
    gap_s = (ts[1:] - ts[:-1])[same[1:]]
    n_gaps = np.bincount(gap_meter, minlength=n_meters)

    m = np.repeat(np.arange(n_meters, dtype=np.int64), len(union))
    e = np.tile(union, n_meters)
    q = make_keys(m, e)
    left = np.searchsorted(keys, q, side="right") - 1
    left_c = np.maximum(left, 0)
    has_left = (left >= 0) & (meters[left_c] == m)
    exact = has_left & (ts[left_c] == e)
    right = np.minimum(left + 1, len(keys) - 1)
    has_right = (left + 1 < len(keys)) & (meters[right] == m)
    span = np.maximum(ts[right] - ts[left_c], 1)
    frac = np.clip((e - ts[left_c]) / span, 0.0, 1.0)
    part = np.rint(delta[right].astype(np.float64) * frac).astype(np.int64)
    cum_e = np.where(exact, cum[left_c], cum[left_c] + part).reshape(n_meters, len(union))
    ok = (has_left & (exact | has_right)).reshape(n_meters, len(union))

    out = []
    for edges_s in edges:
        at = np.searchsorted(union, edges_s)
        c, k = cum_e[:, at], ok[:, at]
        energy = (np.diff(c, axis=1) / UKWH_PER_KWH).astype(np.float32)
        energy[~(k[:, 1:] & k[:, :-1])] = np.nan
        if len(edges_s) > 1:
            part_s = float(np.median(np.diff(edges_s)))
            short = gap_s <= max_interval_ratio * part_s
            n_short = np.bincount(gap_meter[short], minlength=n_meters)
            energy[2 * n_short <= n_gaps] = np.nan
        out.append(energy)
    return out


def top_parts(energy_kwh: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.float32]:
    """Each meter's ``k`` largest parts, largest first, NaN-padded when fewer are
    known: what a ceiling needs of a day (how high its peaks go and how many reach
    the top) in a sixth of the quarter-hour profile's room."""
    filled = np.where(np.isnan(energy_kwh), -np.inf, energy_kwh)
    top = -np.sort(-filled, axis=1)[:, :k]
    if top.shape[1] < k:
        top = np.pad(top, ((0, 0), (0, k - top.shape[1])), constant_values=-np.inf)
    return np.where(np.isinf(top), np.nan, top).astype(np.float32)


def profile_voltage(
    *, rows: Run, n_meters: int, edges_s: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Mean voltage [V] of every meter in each part ``(edges[j], edges[j+1]]``;
    NaN where the meter reported no voltage there."""
    parts = len(edges_s) - 1
    v = rows.voltage_v.astype(np.float64)
    ok = np.isfinite(v)
    meters = key_meter(rows.key)[ok]
    part = np.searchsorted(edges_s, key_ts(rows.key)[ok], side="left") - 1
    part = np.clip(part, 0, parts - 1)
    cell = meters * parts + part
    total = np.bincount(cell, weights=v[ok], minlength=n_meters * parts)
    count = np.bincount(cell, minlength=n_meters * parts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
    return mean.reshape(n_meters, parts).astype(np.float32)


def reading_phase(*, rows: Run, n_meters: int, grid_s: int = 900) -> npt.NDArray[np.float32]:
    """Where each meter's readings fall against the ``grid_s`` clock grid [s]: the
    circular mean of ``ts mod grid_s``, in ``[-grid_s/2, grid_s/2)``; NaN without
    readings. A healthy meter reads on the grid (0) or at a constant offset; a
    drifting clock makes this move from day to day."""
    ts = key_ts(rows.key)
    meters = key_meter(rows.key)
    angle = 2 * np.pi * (ts % grid_s) / grid_s
    sin = np.bincount(meters, weights=np.sin(angle), minlength=n_meters)
    cos = np.bincount(meters, weights=np.cos(angle), minlength=n_meters)
    count = np.bincount(meters, minlength=n_meters)
    phase = np.arctan2(sin, cos) / (2 * np.pi) * grid_s
    return np.where(count > 0, phase, np.nan).astype(np.float32)
