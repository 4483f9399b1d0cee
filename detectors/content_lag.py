"""A fast meter clock seen in what the meter records, not in when it reports.

A meter whose clock runs fast freezes its 15-minute readings at its own marks, which
come earlier and earlier in true time, and reports them stamped with those marks:
the reading times stay on the grid (nothing for ``MeterFaultDetector``'s phase test)
but the recorded profile lags the true one by a delay that grows day after day. Two
pieces of evidence, both needed:

1. **The customer's own day slides later.** Each window's profile (a short trailing
   mean of windows) is cross-correlated, circularly, with the customer's usual day
   from the first windows of the history; the best lag is fitted with a hinge: flat,
   then growing at a steady rate from a start window. Honest households slide too
   (evening lighting follows the sunset; routines change), so this only names
   candidates.
2. **The area meter sees the true profile.** The area meter's clock is right, so the
   area's loss per part carries the candidate's true-minus-recorded energy: with the
   fitted lag, ``z = recorded(t + lag) - recorded(t)``; the loss regressed on ``z``
   (besides a technical-loss base of supply and supply squared, and the customer's
   own recording) has a coefficient near 1 at a Newey-West t. A household that
   merely changed its habits leaves the loss untouched.

Pure functions over arrays: windows x customers x parts profiles, as
``AreaHistory.profiles`` returns them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors._stats import long_run_var, quiet_nanmean

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class GrowingLag:
    """A customer's hinge fit: lag = level + rate * max(0, centre - start)."""

    customer: int
    start: float  # [windows, continuous: 0 = start of the history's first window]
    rate_parts: float  # [parts per window]
    t: float  # the rate's t statistic
    final_lag_parts: float
    level_parts: float = 0.0  # the lag before the start; about 0 for a clock


def daily_lags_parts(
    profiles: npt.NDArray[np.floating],
    ref_windows: int,
    span: int,
    max_lag_parts: int,
    min_corr: float = 0.3,
) -> FloatArray:
    """Windows x customers: the lag [parts] of each window's trailing ``span``-window
    mean profile against the mean of the first ``ref_windows`` windows, where the
    recorded profile at part p matches the usual one at p - lag. NaN where unknown
    (too few known parts, no daily rhythm, or the best shifted usual day correlating
    under ``min_corr`` with the window: a home left empty runs its fridge, whose
    flat profile has no lag to read).
    Parabolic interpolation between the best lag and its neighbours."""
    p = np.asarray(profiles, dtype=np.float64)
    n, c, parts = p.shape
    out = np.full((n, c), np.nan)
    if n < max(ref_windows, span) or parts < 4:
        return out
    known = np.isfinite(p)
    ref = _centred(np.nan_to_num(quiet_nanmean(p[:ref_windows], axis=0)))  # c x parts
    rhythm = np.sqrt((ref**2).mean(axis=1))
    lags = np.arange(-max_lag_parts, max_lag_parts + 1)
    rolled = np.stack([np.roll(ref, int(k), axis=1) for k in lags])  # lags x c x parts
    for d in range(span - 1, n):
        sl = slice(d - span + 1, d + 1)
        enough = known[sl].mean(axis=(0, 2)) >= 0.75
        w = _centred(np.nan_to_num(quiet_nanmean(p[sl], axis=0)))
        cc = np.einsum("lcp,cp->lc", rolled, w)  # lags x c
        k = np.argmax(cc, axis=0)
        best = cc[k, np.arange(c)]
        inner = (k > 0) & (k < len(lags) - 1)
        lo = cc[np.clip(k - 1, 0, len(lags) - 1), np.arange(c)]
        hi = cc[np.clip(k + 1, 0, len(lags) - 1), np.arange(c)]
        den = lo - 2 * best + hi
        with np.errstate(all="ignore"):
            off = np.where(inner & (den < 0), 0.5 * (lo - hi) / den, 0.0)
        with np.errstate(all="ignore"):
            corr = best / (rhythm * np.sqrt((w**2).mean(axis=1)) * parts)
        ok = enough & (corr >= min_corr)
        out[d] = np.where(ok, lags[k] + np.clip(off, -0.5, 0.5), np.nan)
    return out


def fit_growing_lags(
    lags_parts: FloatArray,
    span: int,
    first_start: int,
    min_windows_after: int,
    rate_bounds_parts: tuple[float, float],
    max_ramp_over_step: float,
) -> list[GrowingLag]:
    """The best hinge per customer (largest rate t within the bounds), over starts
    from ``first_start`` to ``min_windows_after`` windows before the end. Only
    customers whose lag could be read in three quarters of the windows; only a
    ramp seen in at least ``min_windows_after`` windows after its start, and in at
    least half of them; and only where the ramp's residual is under
    ``max_ramp_over_step`` times the best step's (a level that jumps once, at any
    window): a day played backwards (h6) or a household that moved its hours
    overnight jumps, a clock drifts.

    A window's lag is that of its trailing ``span``-window mean, so it is placed at
    the centre of those windows."""
    n, c = lags_parts.shape
    centre = np.arange(n) + 0.5 - (span - 1) / 2.0
    y = lags_parts
    ok = np.isfinite(y)
    y0 = np.where(ok, y, 0.0)
    m = ok.sum(axis=0).astype(np.float64)
    # A lag is read only off windows that match the usual day (shifted): a clock's
    # windows keep matching, an irregular household's mostly do not, and a ramp
    # through its few readable windows is no evidence.
    regular = (m >= 6) & (m >= 0.75 * (n - (span - 1)))
    best_t = np.full(c, -np.inf)
    best = np.zeros((c, 4))  # start, rate, level, sse
    step_sse = np.full(c, np.inf)
    for s in range(first_start, n):
        # A jump can come in the last windows too: a step may start anywhere.
        _, _, sse_step, sxx_step = _line_fits((centre > s).astype(np.float64), y0, ok)
        step_sse = np.where(sxx_step > 0, np.minimum(step_sse, sse_step), step_sse)
        if s > n - min_windows_after:
            continue
        b, a, sse, sxx = _line_fits(np.maximum(0.0, centre - s), y0, ok)
        with np.errstate(all="ignore"):
            t = b / np.sqrt(sse / (m - 2) * m / sxx)
        # The ramp must be seen, not extrapolated: lags known in enough windows
        # after its start, and in most of them (a lagging clock's days still match
        # its usual day, shifted; a home whose days stopped matching any is not one).
        after = centre > s
        known_after = (after[:, None] & ok).sum(axis=0)
        seen = (known_after >= min_windows_after) & (known_after >= 0.5 * after.sum())
        valid = (
            regular & seen & (sxx > 0) & (b >= rate_bounds_parts[0]) & (b <= rate_bounds_parts[1])
        )
        better = valid & np.isfinite(t) & (t > best_t)
        best_t = np.where(better, t, best_t)
        best[better] = np.column_stack([np.full(c, float(s)), b, a, sse])[better]
    ramp = np.isfinite(best_t) & (best[:, 3] < max_ramp_over_step * step_sse)
    return [
        GrowingLag(
            customer=int(i),
            start=float(best[i, 0]),
            rate_parts=float(best[i, 1]),
            t=float(best_t[i]),
            final_lag_parts=float(best[i, 1] * max(0.0, n - best[i, 0])),
            level_parts=float(best[i, 2]),
        )
        for i in np.flatnonzero(ramp)
    ]


def _line_fits(
    x: FloatArray, y0: FloatArray, ok: npt.NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per column of ``y0`` (its known entries ``ok``): slope, intercept, residual
    sum of squares and m * Sxx of the least-squares line on ``x``."""
    h = x[:, None] * ok
    m = ok.sum(axis=0).astype(np.float64)
    sh, shh, sy = h.sum(0), (h * h).sum(0), y0.sum(0)
    shy, syy = (h * y0).sum(0), (y0 * y0).sum(0)
    with np.errstate(all="ignore"):
        sxx = m * shh - sh * sh
        b = (m * shy - sh * sy) / sxx
        a = (sy - b * sh) / m
        sse = np.maximum(syy - a * sy - b * shy, 1e-12)
    return b, a, sse, sxx


def true_minus_recorded(profile: npt.NDArray[np.floating], fit: GrowingLag) -> FloatArray:
    """Per part of the flattened history (windows x parts): the customer's true
    energy less its recorded energy if its content lags as ``fit`` says. NaN where
    a part the estimate leans on is unknown or lies beyond the end."""
    e = np.asarray(profile, dtype=np.float64)
    parts = e.shape[1]
    flat = e.ravel()
    cum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(flat))])
    holes = np.concatenate([[0.0], np.cumsum(~np.isfinite(flat))])
    bounds = np.arange(len(flat) + 1, dtype=np.float64)
    lag = fit.rate_parts * np.maximum(0.0, bounds / parts - fit.start)
    at = bounds + lag
    inside = at <= len(flat)
    true_cum = np.interp(at, bounds, cum)
    hole_cum = np.interp(np.floor(at), bounds, holes), np.interp(np.ceil(at), bounds, holes)
    true = np.diff(true_cum)
    touched = (hole_cum[1][1:] - hole_cum[0][:-1]) > 0
    z = true - flat
    z[~(inside[1:] & ~touched & np.isfinite(flat))] = np.nan
    return z


def loss_coefficient(
    loss: FloatArray,
    supply: FloatArray,
    recorded: FloatArray,
    z: FloatArray,
    hac_lags: int = 6,
) -> tuple[float, float]:
    """Coefficient of ``z`` and its t in loss ~ 1 + supply + supply^2 + recorded + z
    (parts where all are known). The customer's recorded energy is a column of its
    own: a customer wired to another area (loss -1 x recorded) or a thief taking a
    share (loss +k x recorded) must not pass for a lag, whose recorded-less-true
    difference is correlated with the recording itself. The t is Newey-West's over
    ``hac_lags`` parts: the loss's residual keeps other customers' hourly habits
    (thieves' and unmodelled loads'), which would make an ordinary t too sure."""
    ok = np.isfinite(loss) & np.isfinite(supply) & np.isfinite(z) & np.isfinite(recorded)
    if ok.sum() < 48 or not np.any(z[ok]):
        return 0.0, 0.0
    s = supply[ok]
    base = np.column_stack([np.ones_like(s), s, s * s, recorded[ok]])
    y = loss[ok]
    # Frisch-Waugh: z and the loss cleared of the base columns.
    zt = z[ok] - base @ np.linalg.lstsq(base, z[ok], rcond=None)[0]
    yt = y - base @ np.linalg.lstsq(base, y, rcond=None)[0]
    szz = float(zt @ zt)
    if szz <= 0:
        return 0.0, 0.0
    coef = float(zt @ yt) / szz
    s_hac = long_run_var(zt * (yt - coef * zt), hac_lags)
    if s_hac <= 0:
        return coef, 0.0
    return coef, coef / (np.sqrt(s_hac) / szz)


def _centred(a: FloatArray) -> FloatArray:
    return a - a.mean(axis=-1, keepdims=True)
