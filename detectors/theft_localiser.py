"""Localise a thief inside an area: whose missing consumption is the area's new loss?

When a customer bypasses or slows a meter, its recorded consumption drops while the
area meter still sees the true load, so the area's unexplained loss rises by the
energy that stopped being recorded. Per area, over the recent windows (hourly parts
when profiles exist, so a week gives 168 observations):

1. technical loss is modelled on the reference period as ``a + b * supply**2``
   (fixed no-load part + load-dependent I^2 R part), fitted by least squares on the
   area's own history, so loss that merely follows load is not a signal;
2. the residual loss ``R_t`` of the recent period is what the model does not explain;
3. each customer's *deficit* ``D_it`` is its usual consumption for that part of the
   day (median of the reference period) minus what it recorded;
4. a thief is a customer whose deficit co-moves with ``R_t`` with a slope near 1:
   correlation, its significance (Fisher z over the effective number of
   observations, corrected for autocorrelation) and the share of
   the residual loss it explains make the score. A customer on holiday has a deficit
   too, but the area's loss does not move with it.

The deficit covers every way to under-record (h1 scaling, h2 zero hours, h3/h4
random scaling, bypass); h5 and h6 keep the daily total and are the shape
detector's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from detectors._stats import (
    corr_columns,
    fill_by_part,
    fisher_z,
    quiet_nanmedian,
    saturate,
    slope_through_origin,
)
from detectors.base import Finding, HistoryOnly
from detectors.observations import AreaHistory
from lineloss.domain import SuspicionCategory, TargetKind


@dataclass
class TheftLocaliser(HistoryOnly):
    recent_windows: int = 7
    min_reference_windows: int = 7
    min_z: float = 4.0  # significance (autocorrelation-corrected) of the deficit-loss correlation
    slope_range: tuple[float, float] = (0.4, 2.5)  # kWh of loss per kWh of deficit
    min_share: float = 0.15  # of the recent residual loss explained
    z_scale: float = 3.0
    name: str = "theft_localiser"

    def _analyse(self, h: AreaHistory) -> list[Finding]:
        today = h.windows[-1]
        if not today.has_supply or today.n_customers == 0:
            return []
        n = len(h)
        ref_n = n - self.recent_windows
        if ref_n < self.min_reference_windows:
            return []
        profiles = h.profiles()
        supply_p = h.supply_profiles()
        if profiles is None or supply_p is None:
            x = h.energy()[:, :, None]
            s = h.supply()[:, None]
        else:
            x = profiles.astype(np.float64)
            s = supply_p.astype(np.float64)
        ref, rec = slice(0, ref_n), slice(ref_n, n)
        with np.errstate(all="ignore"):
            typical = quiet_nanmedian(x[ref], axis=0)  # customers x parts
        typical = np.nan_to_num(typical, nan=0.0)
        x_filled = fill_by_part(x, typical)
        loss = s - x_filled.sum(axis=1)  # windows x parts
        ok_ref = np.isfinite(loss[ref]).ravel()
        ok_rec = np.isfinite(loss[rec]).ravel()
        if ok_ref.sum() < 24 or ok_rec.sum() < 12:
            return []
        s_ref, l_ref = s[ref].ravel()[ok_ref], loss[ref].ravel()[ok_ref]
        design = np.column_stack([np.ones_like(s_ref), s_ref**2])
        coef, *_ = np.linalg.lstsq(design, l_ref, rcond=None)
        a, b = float(coef[0]), max(float(coef[1]), 0.0)
        s_rec = s[rec].ravel()[ok_rec]
        resid = loss[rec].ravel()[ok_rec] - (a + b * s_rec**2)
        deficit = (typical[None, :, :] - x_filled[rec]).transpose(0, 2, 1).reshape(-1, x.shape[1])
        deficit = deficit[ok_rec]
        t = len(resid)
        r = corr_columns(resid, deficit)
        # Hourly series are autocorrelated, which inflates a plain correlation test.
        # Bartlett: the effective number of observations for two AR(1) series is
        # n (1 - a b) / (1 + a b), with a, b their lag-1 autocorrelations.
        rho_resid = _lag1(resid[:, None])[0]
        rho_deficit = _lag1(deficit)
        ab = np.clip(rho_resid * rho_deficit, 0.0, 0.95)
        n_eff = t * (1 - ab) / (1 + ab)
        z = fisher_z(r, n_eff)
        slope = slope_through_origin(resid, deficit)
        explained = slope * deficit.clip(min=0).sum(axis=0)
        excess = float(resid.clip(min=0).sum())
        lo, hi = self.slope_range
        candidates = np.flatnonzero(
            (z >= self.min_z)
            & (slope >= lo)
            & (slope <= hi)
            & (explained > max(0.15, self.min_share * excess))
        )
        if len(candidates) > 1:
            # Joint fit: when one thief explains the loss, customers whose deficits
            # merely resemble its own (same weather, same habits) drop out.
            joint, _ = nnls(deficit[:, candidates], resid.clip(min=0))
            slope[candidates] = joint
            explained[candidates] = joint * deficit[:, candidates].clip(min=0).sum(axis=0)
            keep = (
                (joint >= lo)
                & (joint <= hi)
                & (explained[candidates] > max(0.15, self.min_share * excess))
            )
            candidates = candidates[keep]
        out = []
        for i in candidates:
            share = min(1.0, float(explained[i]) / excess) if excess > 0 else 0.0
            score = saturate(float(z[i]) - self.min_z + 1.0, self.z_scale) * (0.6 + 0.4 * share)
            start = _deficit_start(x_filled[:, i, :].sum(axis=1), typical[i].sum(), ref_n)
            out.append(
                Finding(
                    detector=self.name,
                    target_id=today.meter_ids[i],
                    target_kind=TargetKind.METER,
                    category=SuspicionCategory.THEFT,
                    score=round(0.5 + 0.5 * score, 6),
                    ts=today.window_end,
                    estimated_kwh=float(explained[i]) / self.recent_windows,
                    reason=(
                        f"consumption deficit tracks the area's unexplained loss "
                        f"(r={r[i]:.2f}, z={z[i]:.1f}, {slope[i]:.2f} kWh loss per kWh "
                        f"missing, {share:.0%} of the excess loss)"
                    ),
                    area_id=today.area_id,
                    start_s=h.windows[start].window_start if start is not None else None,
                )
            )
        return out

    def score_one(self, x: AreaHistory) -> list[Finding]:
        return self._analyse(x)


def _lag1(x: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation of each column."""
    xc = x - x.mean(axis=0)
    den = (xc * xc).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (xc[1:] * xc[:-1]).sum(axis=0) / den, 0.0)


def _deficit_start(daily: np.ndarray, usual: float, ref_n: int) -> int | None:
    """Window index where the customer's daily deficit began (CUSUM leaving zero)."""
    if usual <= 0:
        return None
    c, start = 0.0, None
    for k, v in enumerate(daily):
        c = max(0.0, c + (usual - float(v)) / usual - 0.15)
        if c > 0 and start is None:
            start = k
        elif c == 0:
            start = None
    return start if start is not None else max(ref_n, 0)
