"""Small numeric helpers shared by the meter-level detectors (NaN-aware)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def corr_columns(y: FloatArray, x: FloatArray) -> FloatArray:
    """Pearson correlation of ``y`` (T) with each column of ``x`` (T x N); 0 where a
    column is constant."""
    yc = y - y.mean()
    xc = x - x.mean(axis=0)
    num = yc @ xc
    den = math.sqrt(float(yc @ yc)) * np.sqrt((xc * xc).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, num / den, 0.0)
    return np.clip(r, -1.0, 1.0)


def slope_through_origin(y: FloatArray, x: FloatArray) -> FloatArray:
    """Least-squares slope of ``y`` on each column of ``x`` without intercept."""
    den = (x * x).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (y @ x) / den, 0.0)


def fisher_z(r: FloatArray, n: float | FloatArray) -> FloatArray:
    """Significance of correlations over ``n`` (effective) observations, approx.
    N(0, 1) when there is no correlation."""
    return np.arctanh(np.clip(r, -0.999999, 0.999999)) * np.sqrt(np.maximum(np.asarray(n) - 3, 1))


def saturate(x: float, scale: float) -> float:
    """0 at x <= 0, rising to 1: 1 - exp(-x / scale)."""
    return 1.0 - math.exp(-max(x, 0.0) / scale)


def fill_by_part(values: FloatArray, reference: FloatArray) -> FloatArray:
    """Replace NaN in ``values`` (W x N x K) by the reference mean of the same meter
    and part of the day (``reference``: N x K), then by 0."""
    out = np.where(np.isnan(values), reference[None, :, :], values)
    return np.nan_to_num(out, nan=0.0)


def long_run_var(u: FloatArray, lag: int) -> float:
    """Newey-West variance of ``sum(u)`` with Bartlett weights up to ``lag``."""
    v = float(u @ u)
    for k in range(1, min(lag, len(u) - 1) + 1):
        v += 2.0 * (1.0 - k / (lag + 1)) * float(u[k:] @ u[:-k])
    return max(v, 0.0)


def quiet_nanmedian(a: npt.NDArray[np.floating], axis: int = 0) -> FloatArray:
    """``np.nanmedian`` without the warning for all-NaN slices (they give NaN, which
    the detectors treat as 'no history')."""
    return _quiet(np.nanmedian, a, axis)


def quiet_nanmean(a: npt.NDArray[np.floating], axis: int = 0) -> FloatArray:
    """``np.nanmean`` without the warnings for all-NaN slices (NaN) and divisions by
    a zero usual level (inf / NaN), both read as 'no evidence' by the detectors."""
    return _quiet(np.nanmean, a, axis)


def quiet_nan_spread(a: npt.NDArray[np.floating], axis: int = 0) -> FloatArray:
    """Coefficient of variation along ``axis`` over the finite values (standard
    deviation over mean), quietly NaN for an all-NaN slice or a zero mean."""
    return _quiet(_spread, a, axis)


def _spread(a: npt.NDArray[np.floating], axis: int) -> Any:
    return np.nanstd(a, axis=axis) / np.nanmean(a, axis=axis)


def _quiet(reduce: Callable[..., Any], a: npt.NDArray[np.floating], axis: int) -> FloatArray:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        out: FloatArray = np.asarray(reduce(a, axis=axis), dtype=np.float64)
        return out
