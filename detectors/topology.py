"""Customers recorded under the wrong transformer (户变关系错误).

A customer recorded in area A but supplied by area B makes A's loss lower (A bills
energy its meter never saw) and B's higher, both by that customer's consumption.
Over an area's history (hourly parts when profiles exist):

1. in an area whose loss runs low or negative, non-negative least squares of
   ``-(loss - usual technical loss)`` on its customers' consumptions picks the
   customer(s) whose consumption the area is "missing" (coefficient near 1);
2. each such customer is matched against every other area: the one whose loss
   rises with that customer's consumption (slope near 1, strong correlation) is
   named as the true area.

This is a grid-level detector: it sees all areas of a window at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import nnls

from detectors._stats import corr_columns, quiet_nanmedian, slope_through_origin
from detectors.base import Finding
from detectors.observations import AreaHistory
from lineloss.domain import SuspicionCategory, TargetKind


def _series(h: AreaHistory) -> tuple[np.ndarray, np.ndarray]:
    """(loss over time, customers' consumption over time), hourly parts when profiles
    exist; loss is NaN where unknown, a customer's gaps are filled by its median."""
    p, sp = h.profiles(), h.supply_profiles()
    if p is not None and sp is not None:
        x = p.transpose(0, 2, 1).reshape(-1, p.shape[1]).astype(np.float64)
        s = sp.reshape(-1).astype(np.float64)
    else:
        x, s = h.energy(), h.supply()
    with np.errstate(all="ignore"):
        med = np.nan_to_num(quiet_nanmedian(x, axis=0), nan=0.0)
    x = np.where(np.isnan(x), med, x)
    return s - x.sum(axis=1), x


@dataclass
class TopologyDetector:
    min_windows: int = 7
    coef_range: tuple[float, float] = (0.6, 1.5)
    min_corr: float = 0.5
    max_loss_rate: float = 0.01  # areas whose median loss rate is below this are examined
    name: str = "topology"

    def score_many(self, histories: dict[str, AreaHistory]) -> list[Finding]:
        series = {
            a: _series(h)
            for a, h in histories.items()
            if len(h) >= self.min_windows and h.windows[-1].has_supply
        }
        out = []
        lo, hi = self.coef_range
        for area, (loss, x) in series.items():
            h = histories[area]
            supply = h.supply()
            with np.errstate(all="ignore"):
                rate = quiet_nanmedian((supply - np.nansum(h.energy(), axis=1)) / supply)
            if not rate < self.max_loss_rate or x.shape[1] == 0:
                continue
            ok = np.isfinite(loss)
            if ok.sum() < 24:
                continue
            # Usual technical loss ~ a small positive level; the rest is "missing".
            target = -(loss[ok] - np.percentile(loss[ok], 90))
            coef, _ = nnls(x[ok], target.clip(min=0))
            for i in np.flatnonzero((coef >= lo) & (coef <= hi)):
                xi = x[:, i]
                if corr_columns(target, xi[ok][:, None])[0] < self.min_corr:
                    continue
                best, best_r, best_same = None, self.min_corr, False
                feeder = h.windows[-1].feeder_id
                for other, (loss_b, _) in series.items():
                    if other == area or len(loss_b) != len(xi):
                        continue
                    both = np.isfinite(loss_b)
                    if both.sum() < 24:
                        continue
                    lb = loss_b[both] - np.percentile(loss_b[both], 10)
                    r = corr_columns(lb, xi[both][:, None])[0]
                    slope = slope_through_origin(lb, xi[both][:, None])[0]
                    # Mapping errors are mostly between neighbours: an area on the
                    # same feeder wins over a better-correlated one elsewhere.
                    same = histories[other].windows[-1].feeder_id == feeder
                    if (
                        lo <= slope <= hi
                        and r > self.min_corr
                        and ((same and not best_same) or (same == best_same and r > best_r))
                    ):
                        best, best_r, best_same = other, r, same
                today = h.windows[-1]
                meter = h.windows[-1].meter_ids[i]
                reason = (
                    f"recorded in {area}, whose loss is short by this customer's consumption "
                    f"(coefficient {coef[i]:.2f})"
                    + (
                        f"; its load shows up as loss in {best} (r={best_r:.2f})"
                        if best
                        else "; no other area shows its load"
                    )
                )
                out.append(
                    Finding(
                        detector=self.name,
                        target_id=meter,
                        target_kind=TargetKind.METER,
                        category=SuspicionCategory.TOPOLOGY_ERROR,
                        score=0.9 if best else 0.6,
                        ts=today.window_end,
                        estimated_kwh=float(xi.sum()) / len(h),
                        reason=reason + (f" [true_area={best}]" if best else ""),
                        area_id=area,
                    )
                )
        return out

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None
