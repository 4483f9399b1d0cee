"""A meter's voltage curve lagging its neighbours': its clock, not its household.

A meter freezes its whole load curve (负荷曲线: energy, voltage, current) at the marks
of its own clock. When that clock runs fast, every record is taken earlier in true
time than its stamp says, so the voltage it reports lags the voltage its neighbours
report by the same delay as its energy does. The neighbours' voltage is the
transformer's tap, the 10 kV swing and the shared cable's drop, none of which a
household's habits can move: a lag there is the clock's.

Content-lag candidates (``detectors.content_lag``) are households whose day slides
later; most are habits. This module measures how far each meter's voltage lags its
peers' in the last few windows, and where it clearly does, in the first few: a clock
lags there by about what its energy does, a household not at all.

The lag is read at sub-part resolution: the peers' reference (the median of the
``peers`` customers whose part-to-part voltage changes follow the meter's best in
the first windows, so one drifting peer cannot move it) is shifted by linear
interpolation over a grid of lags, and the meter's voltage regressed on it (level
and scale free: a house further down the cable sees a deeper drop) together with its
own recorded energy (its own load's drop across its service cable, recorded with the
same lag). The best lag must fit clearly better than no lag (``min_gain``, a ratio of
residual sums of squares): a voltage with little in common with its peers' fits every
lag about equally and says nothing.

A second reading needs no peer selection (``day_curve_lag``): the meter's mean day
of voltage against the median day of every other meter of its area, cross-correlated
around the clock. Averaged over a few windows, a voltage's day is the 10 kV swing
and the transformer's load, which every meter of the area shares; a household's own
appliances average out. Where no peer's hour-to-hour changes follow the meter's (its
own load dominates them, or its lag had already begun in the windows peers are
chosen in), its day still shows the shift.

The same fit read window by window (``voltage_lag_series``) gives a lag's history:
0 and then growing for a fast clock, which names one without any help from the
household's day once it fits clearly (``MeterFaultDetector._voltage_led_clocks``).

Pure functions over arrays: customers x (windows x parts) voltages, as
``AreaHistory.voltages`` returns them, and windows x customers x parts profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors._stats import quiet_nanmean, quiet_nanmedian

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class VoltageLagParams:
    peers: int = 5
    # A reference of fewer peers is thin: the one false fast clock the voltage has
    # confirmed on the independent grids (seed 24, 45-60 min at 2.1 x) had 3, the
    # true ones 5 (docs/detection.md, session 21).
    min_peers: int = 5
    # A peer's part-to-part voltage changes must follow the candidate's at least this
    # well in the reference windows to stand for its network.
    min_peer_corr: float = 0.2
    block_windows: int = 3  # windows per lag estimate
    max_lag_parts: float = 8.0
    lag_step_parts: float = 0.25
    min_gain: float = 1.3  # residual SSE at no lag / at the best lag
    min_known_share: float = 0.75


@dataclass(frozen=True)
class BlockLag:
    lag_parts: float  # the customer's voltage at part p matches its peers' at p - lag
    gain: float  # SSE at lag 0 over SSE at the best lag (1: no evidence of any lag)

    def clear(self, min_gain: float) -> bool:
        return bool(np.isfinite(self.gain) and self.gain >= min_gain)


@dataclass(frozen=True)
class VoltageLag:
    """One customer's voltage lag against its peers, at the start and now."""

    first: BlockLag  # over the first block_windows windows with voltages
    last: BlockLag  # over its last block_windows windows
    peers: int


@dataclass(frozen=True)
class VoltageLags:
    """Every customer's voltage lag against its peers: lags [parts] and gains of the
    last block, and of the first block with voltages where the last one is clear
    (``min_gain``); NaN where unknown or not needed."""

    first_lag: FloatArray
    first_gain: FloatArray
    last_lag: FloatArray
    last_gain: FloatArray
    peers: npt.NDArray[np.int64]
    parts_per_window: int

    def of(self, customer: int) -> VoltageLag | None:
        c = customer
        if not (np.isfinite(self.first_gain[c]) and np.isfinite(self.last_gain[c])):
            return None
        return VoltageLag(
            first=BlockLag(float(self.first_lag[c]), float(self.first_gain[c])),
            last=BlockLag(float(self.last_lag[c]), float(self.last_gain[c])),
            peers=int(self.peers[c]),
        )


def voltage_lags(
    voltages: npt.NDArray[np.floating],
    profiles: npt.NDArray[np.floating],
    ref_windows: int,
    params: VoltageLagParams,
) -> VoltageLags | None:
    """Every customer's voltage lag against its own peers, in the first block of
    ``params.block_windows`` windows with voltages (among the first
    ``ref_windows``; the oldest window of a history may hold none) and in the last
    block. None when the history is too short or its shapes disagree."""
    v = np.asarray(voltages, dtype=np.float64)
    e = np.asarray(profiles, dtype=np.float64)
    n, c, parts = e.shape
    block = params.block_windows * parts
    if v.shape != (c, n * parts) or n < max(ref_windows, 2 * params.block_windows):
        return None
    peers = _peers(v, ref_windows * parts, params)
    n_peers = (peers >= 0).sum(axis=1)
    # The reference where the blocks read it: the first windows and the last block,
    # each with the largest lag's margin (a median over the whole history is most of
    # the cost otherwise).
    margin = int(np.ceil(params.max_lag_parts)) + 1
    ref = _reference(
        v,
        peers,
        params.min_peers,
        [(0, ref_windows * parts + margin), (n * parts - block - margin, n * parts)],
    )
    own_e = e.transpose(1, 0, 2).reshape(c, n * parts)
    last_lag, last_gain = _block_lags(v, own_e, ref, n * parts - block, block, params)
    # The start matters only where the voltage lags clearly now.
    rows = np.flatnonzero(last_gain >= params.min_gain)
    first_lag = np.full(c, np.nan)
    first_gain = np.full(c, np.nan)
    for w0 in range(max(1, ref_windows - params.block_windows + 1)):
        if len(rows) == 0:
            break
        lag, gain = _block_lags(v[rows], own_e[rows], ref[rows], w0 * parts, block, params)
        found = np.isfinite(gain)
        first_lag[rows[found]], first_gain[rows[found]] = lag[found], gain[found]
        rows = rows[~found]
    return VoltageLags(first_lag, first_gain, last_lag, last_gain, n_peers.astype(np.int64), parts)


def voltage_lag_series(
    voltages: npt.NDArray[np.floating],
    profiles: npt.NDArray[np.floating],
    ref_windows: int,
    params: VoltageLagParams,
    customers: npt.NDArray[np.int64],
) -> FloatArray:
    """Windows x ``customers``: the lag [parts] of each customer's voltage against
    its peers' over the ``params.block_windows`` windows ending at each window; 0
    where no lag fits ``params.min_gain`` x better than none (on time, as far as
    the voltage can tell), NaN where unknown (the first windows, too few peers or
    readings). A fast clock's series is 0 and then grows; an honest meter's stays 0,
    and a voltage that follows no peer reads 0 throughout."""
    v = np.asarray(voltages, dtype=np.float64)
    e = np.asarray(profiles, dtype=np.float64)
    n, c, parts = e.shape
    out = np.full((n, len(customers)), np.nan)
    if v.shape != (c, n * parts) or n < ref_windows or len(customers) == 0:
        return out
    peers = _peers(v, ref_windows * parts, params)[customers]
    ref = _reference(v, peers, params.min_peers, [(0, n * parts)])
    own_e = e.transpose(1, 0, 2).reshape(c, n * parts)[customers]
    block = params.block_windows * parts
    for w in range(params.block_windows - 1, n):
        lag, gain = _block_lags(v[customers], own_e, ref, (w + 1) * parts - block, block, params)
        out[w] = np.where(np.isfinite(gain), np.where(gain >= params.min_gain, lag, 0.0), np.nan)
    return out


def _reference(
    v: FloatArray,
    peers: npt.NDArray[np.int64],
    min_peers: int,
    spans: list[tuple[int, int]],
) -> FloatArray:
    """Rows of ``peers`` x parts: the median of each row's peers' voltages over the
    ``spans`` of parts (NaN elsewhere, and for a row with fewer than ``min_peers``)."""
    out = np.full((len(peers), v.shape[1]), np.nan)
    ok = peers >= 0
    enough = ok.sum(axis=1) >= min_peers
    for lo, hi in spans:
        lo, hi = max(0, lo), min(v.shape[1], hi)
        if hi <= lo:
            continue
        gathered = np.where(ok[:, :, None], v[np.maximum(peers, 0), lo:hi], np.nan)
        out[:, lo:hi] = quiet_nanmedian(gathered, axis=1)
    out[~enough] = np.nan
    return out


def _peers(v: FloatArray, ref_parts: int, params: VoltageLagParams) -> npt.NDArray[np.int64]:
    """Customers x ``params.peers``: for each customer, the others whose part-to-part
    voltage changes follow its own best over the first ``ref_parts`` parts (at
    least ``min_peer_corr``, on 24 parts known to both or more); -1 pads."""
    d = np.diff(v[:, :ref_parts], axis=1)
    ok = np.isfinite(d).astype(np.float64)
    d0 = np.where(ok > 0, d - np.nan_to_num(quiet_nanmean(d, axis=1))[:, None], 0.0)
    num = d0 @ d0.T
    sq = d0**2
    den = np.sqrt((sq @ ok.T) * (ok @ sq.T))
    both = ok @ ok.T
    with np.errstate(all="ignore"):
        corr = np.where((den > 0) & (both >= 24), num / den, -np.inf)
    np.fill_diagonal(corr, -np.inf)
    k = min(params.peers, max(0, len(v) - 1))
    order = np.argsort(-corr, axis=1)[:, :k]
    good = np.take_along_axis(corr, order, axis=1) >= params.min_peer_corr
    return np.where(good, order, -1).astype(np.int64)


def _shifted(ref: FloatArray, lags_parts: FloatArray, start: int, stop: int) -> FloatArray:
    """Rows x lags x parts: ``ref`` at p - lag for each lag and the parts p from
    ``start`` to ``stop``, linear between parts (NaN outside the history)."""
    k = np.floor(lags_parts).astype(np.int64)
    f = (lags_parts - k)[None, :, None]
    idx = np.arange(start, stop)[None, :] - k[:, None]  # lags x parts
    t = ref.shape[1]

    def at(i: npt.NDArray[np.int64]) -> FloatArray:
        inside = (i >= 0) & (i < t)
        out: FloatArray = np.where(inside[None], ref[:, np.clip(i, 0, t - 1)], np.nan)
        return out

    here = at(idx)
    # A whole-part lag reads one part: its neighbour may be unknown.
    return np.where(f == 0, here, (1.0 - f) * here + f * at(idx - 1))


def _block_lags(
    own_v: FloatArray,
    own_e: FloatArray,
    ref: FloatArray,
    start: int,
    length: int,
    params: VoltageLagParams,
) -> tuple[FloatArray, FloatArray]:
    """Per customer, the best lag of its voltage against its reference over the
    parts ``start`` to ``start + length`` and its gain; the reference shifted over
    the whole history (a lagging block reads the reference before its own start).
    Each lag's fit is the customer's voltage on its shifted reference and its own
    energy, centred (a free level). All lags at once (customers x lags x parts)."""
    stop = start + length
    step = params.lag_step_parts
    lags = np.arange(-params.max_lag_parts, params.max_lag_parts + step / 2, step)
    r = _shifted(ref, lags, start, stop)
    y_all = own_v[:, None, start:stop]
    ok = np.isfinite(y_all) & np.isfinite(r)
    m = ok.sum(axis=2)
    cols = [np.where(ok, a, 0.0) for a in (y_all, r, np.nan_to_num(own_e[:, None, start:stop]))]
    with np.errstate(all="ignore"):
        # Centred column by column (exactly 0 for a constant reading, which raw sums
        # would leave as rounding noise to divide by).
        y, x1, x2 = (a - (a.sum(axis=2) / m)[:, :, None] * ok for a in cols)
        s11, s22, s12 = (x1 * x1).sum(2), (x2 * x2).sum(2), (x1 * x2).sum(2)
        s1y, s2y, syy = (x1 * y).sum(2), (x2 * y).sum(2), (y * y).sum(2)
        det = s11 * s22 - s12 * s12
        two = det > 1e-9 * np.maximum(s11 * s22, 1e-300)
        # Both columns where they are independent; the reference alone where the
        # customer's own energy is flat (an empty home: nothing to separate).
        explained = np.where(
            two,
            (s22 * s1y * s1y - 2 * s12 * s1y * s2y + s11 * s2y * s2y) / det,
            np.where(s11 > 0, s1y * s1y / s11, 0.0),
        )
        res = (syy - explained) / m
    need = params.min_known_share * (stop - start)
    sse = np.where(m >= need, np.maximum(res, 1e-12), np.inf)  # customers x lags
    best = np.argmin(sse, axis=1)
    rows = np.arange(len(own_v))
    best_sse = sse[rows, best]
    zero_sse = sse[rows, int(np.argmin(np.abs(lags)))]
    known = np.isfinite(best_sse) & np.isfinite(zero_sse)
    with np.errstate(all="ignore"):
        gain = np.where(known, zero_sse / best_sse, np.nan)
    return np.where(known, lags[best], np.nan), gain


@dataclass(frozen=True)
class DayCurveLag:
    """A meter's mean day of voltage against its area's median day, at the start and
    now: the best circular lag [parts] (its voltage at part p matches the area's at
    p - lag) and the correlation there; now, also the correlation at no lag."""

    first_lag_parts: float
    first_corr: float
    last_lag_parts: float
    last_corr: float
    last_corr_on_time: float


def day_curve_lag(
    voltages: npt.NDArray[np.floating],
    customer: int,
    parts: int,
    first_windows: int,
    last_windows: int,
    max_lag_parts: int,
) -> DayCurveLag | None:
    """``customer``'s mean-day voltage over the first ``first_windows`` and the last
    ``last_windows`` windows against the median of every other meter's, each pair
    cross-correlated at circular lags up to ``max_lag_parts`` either way (parabolic
    between parts). None when a mean day has an unknown part, is flat, or the
    history is shorter than both blocks."""
    v = np.asarray(voltages, dtype=np.float64)
    c, total = v.shape
    n = total // parts
    if c < 2 or n * parts != total or n < first_windows + last_windows:
        return None
    days = v.reshape(c, n, parts)
    others = quiet_nanmedian(np.delete(days, customer, axis=0), axis=0)  # windows x parts
    blocks = []
    for sl in (slice(0, first_windows), slice(n - last_windows, n)):
        own = quiet_nanmean(days[customer, sl], axis=0)
        ref = quiet_nanmean(others[sl], axis=0)
        lagged = _circular_lag(own, ref, max_lag_parts)
        if lagged is None:
            return None
        blocks.append(lagged)
    (first_lag, first_corr, _), (last_lag, last_corr, last_on_time) = blocks
    return DayCurveLag(first_lag, first_corr, last_lag, last_corr, last_on_time)


def _circular_lag(
    own: FloatArray, ref: FloatArray, max_lag_parts: int
) -> tuple[float, float, float] | None:
    """The best lag of ``own`` against ``ref`` (two mean days), its correlation, and
    the correlation at no lag."""
    if not (np.all(np.isfinite(own)) and np.all(np.isfinite(ref))):
        return None
    a = own - own.mean()
    lags = np.arange(-max_lag_parts, max_lag_parts + 1)
    shifted = np.stack([np.roll(ref, int(k)) for k in lags])
    shifted -= shifted.mean(axis=1, keepdims=True)
    den = np.sqrt((a @ a) * (shifted * shifted).sum(axis=1))
    if not np.all(den > 0):
        return None
    corr = shifted @ a / den
    j = int(np.argmax(corr))
    off = 0.0
    if 0 < j < len(lags) - 1:
        curve = corr[j - 1] - 2 * corr[j] + corr[j + 1]
        if curve < 0:
            off = float(np.clip(0.5 * (corr[j - 1] - corr[j + 1]) / curve, -0.5, 0.5))
    return float(lags[j] + off), float(corr[j]), float(corr[max_lag_parts])
