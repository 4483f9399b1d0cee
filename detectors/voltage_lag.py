"""A meter's voltage curve lagging its neighbours': its clock, not its household.

A meter freezes its whole load curve (负荷曲线: energy, voltage, current) at the marks
of its own clock. When that clock runs fast, every record is taken earlier in true
time than its stamp says, so the voltage it reports lags the voltage its neighbours
report by the same delay as its energy does. The neighbours' voltage is the
transformer's tap, the 10 kV swing and the shared cable's drop, none of which a
household's habits can move: a lag there is the clock's.

``ContentLag`` candidates (``detectors.content_lag``) are households whose day slides
later; most are habits. This module measures, for one candidate, how far its voltage
lags its peers' in the last few windows and in the first few: a clock lags there by
about what its energy does, a household not at all.

The lag is read at sub-part resolution: the peers' reference (the median of the
``peers`` customers whose part-to-part voltage changes follow the candidate's best in
the first windows, so one drifting peer cannot move it) is shifted by linear
interpolation over a grid of lags, and the candidate's voltage regressed on it (level
and scale free: a house further down the cable sees a deeper drop) together with its
own recorded energy (its own load's drop across its service cable, recorded with the
same lag). The best lag must fit clearly better than no lag (``min_gain``, a ratio of
residual sums of squares): a voltage with little in common with its peers' fits every
lag about equally and says nothing.

Pure functions over arrays: customers x (windows x parts) voltages, as
``AreaHistory.voltages`` returns them, and windows x customers x parts profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors._stats import quiet_nanmedian

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class VoltageLagParams:
    peers: int = 5
    min_peers: int = 3
    # A peer's part-to-part voltage changes must follow the candidate's at least this
    # well in the reference windows to stand for its network.
    min_peer_corr: float = 0.2
    block_windows: int = 3  # windows per lag estimate
    max_lag_parts: float = 8.0
    lag_step_parts: float = 0.25
    min_gain: float = 1.2  # residual SSE at no lag / at the best lag
    min_known_share: float = 0.75


@dataclass(frozen=True)
class BlockLag:
    lag_parts: float  # the candidate's voltage at part p matches its peers' at p - lag
    gain: float  # SSE at lag 0 over SSE at the best lag (1: no evidence of any lag)

    def clear(self, min_gain: float) -> bool:
        return bool(np.isfinite(self.gain) and self.gain >= min_gain)


@dataclass(frozen=True)
class VoltageLag:
    """One customer's voltage lag against its peers, at the start and now."""

    first: BlockLag  # over the first block_windows windows with voltages
    last: BlockLag  # over its last block_windows windows
    peers: int


def voltage_lag(
    voltages: npt.NDArray[np.floating],
    profiles: npt.NDArray[np.floating],
    customer: int,
    ref_windows: int,
    params: VoltageLagParams,
) -> VoltageLag | None:
    """The voltage lag of ``customer`` against its peers in the first and the last
    ``params.block_windows`` windows; None without enough peers or readings."""
    v = np.asarray(voltages, dtype=np.float64)
    e = np.asarray(profiles, dtype=np.float64)
    n, _, parts = e.shape
    block = params.block_windows * parts
    if v.shape[1] != n * parts or n < max(ref_windows, 2 * params.block_windows):
        return None
    peers = _peers(v, customer, ref_windows * parts, params)
    if len(peers) < params.min_peers:
        return None
    ref = quiet_nanmedian(v[peers], axis=0)
    own_v = v[customer]
    own_e = e[:, customer, :].ravel()
    last = _block_lag(own_v, own_e, ref, slice(n * parts - block, n * parts), params)
    # The first block with enough voltages among the reference windows (the oldest
    # window of a history may hold none: a partial first day, a meter read late).
    first = None
    for w0 in range(max(1, ref_windows - params.block_windows + 1)):
        first = _block_lag(own_v, own_e, ref, slice(w0 * parts, w0 * parts + block), params)
        if first is not None:
            break
    if first is None or last is None:
        return None
    return VoltageLag(first=first, last=last, peers=len(peers))


def _peers(
    v: FloatArray, customer: int, ref_parts: int, params: VoltageLagParams
) -> npt.NDArray[np.int64]:
    """The customers whose part-to-part voltage changes follow ``customer``'s best
    over the first ``ref_parts`` parts (at least ``min_peer_corr``)."""
    d = np.diff(v[:, :ref_parts], axis=1)
    ok = np.isfinite(d)
    d0 = np.where(ok, d - _nanmean_rows(d)[:, None], 0.0)
    mine = d0[customer] * ok[customer]
    both = ok & ok[customer][None, :]
    num = (d0 * mine[None, :] * both).sum(axis=1)
    den = np.sqrt(((d0**2) * both).sum(axis=1) * ((mine[None, :] ** 2) * both).sum(axis=1))
    with np.errstate(all="ignore"):
        corr = np.where((den > 0) & (both.sum(axis=1) >= 24), num / den, -np.inf)
    corr[customer] = -np.inf
    order = np.argsort(-corr)[: params.peers]
    return order[corr[order] >= params.min_peer_corr].astype(np.int64)


def _nanmean_rows(a: FloatArray) -> FloatArray:
    ok = np.isfinite(a)
    with np.errstate(all="ignore"):
        out: FloatArray = np.where(ok, a, 0.0).sum(axis=1) / ok.sum(axis=1)
    return np.nan_to_num(out)


def _block_lag(
    own_v: FloatArray,
    own_e: FloatArray,
    ref: FloatArray,
    block: slice,
    params: VoltageLagParams,
) -> BlockLag | None:
    """Best lag of ``own_v`` against ``ref`` over the parts of ``block``, the
    reference shifted by interpolation over the whole history (a lagging block
    reads the reference before its own start)."""
    pos = np.arange(len(ref), dtype=np.float64)
    known = np.isfinite(ref)
    if known.sum() < 2:
        return None
    idx = np.arange(len(ref))[block]
    y = own_v[idx]
    x_e = np.nan_to_num(own_e[idx])
    step = params.lag_step_parts
    lags = np.arange(-params.max_lag_parts, params.max_lag_parts + step / 2, step)
    sse = np.full(len(lags), np.inf)
    for k, lag in enumerate(lags):
        r = np.interp(idx - lag, pos[known], ref[known], left=np.nan, right=np.nan)
        ok = np.isfinite(y) & np.isfinite(r)
        if ok.sum() < params.min_known_share * len(idx):
            continue
        a = np.column_stack([np.ones(int(ok.sum())), r[ok], x_e[ok]])
        coef, *_ = np.linalg.lstsq(a, y[ok], rcond=None)
        sse[k] = float(np.mean((y[ok] - a @ coef) ** 2))
    best = int(np.argmin(sse))
    zero = int(np.argmin(np.abs(lags)))
    if not np.isfinite(sse[best]) or not np.isfinite(sse[zero]):
        return None
    gain = sse[zero] / sse[best] if sse[best] > 0 else (1.0 if sse[zero] == 0 else np.inf)
    return BlockLag(lag_parts=float(lags[best]), gain=float(gain))
