"""Area-level detectors on final daily (or windowed) balances.

* ``LossBandDetector``: the loss rate left its qualified band (高损 / 负损).
* ``LossRiseDetector``: the loss rate rose against the area's own history (a
  one-sided CUSUM), which catches a new thief long before the rate crosses a 10 %
  band, and a rebound after an inspection.

Both learn each area's usual loss rate from its own history, because technical loss
differs by area (length of the LV network, transformer size) and a rate that is
normal for one area is a theft signal in another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from detectors.base import Finding
from lineloss.config import BalanceConfig
from lineloss.domain import Balance, BalanceLevel, BalanceStatus, SuspicionCategory, TargetKind

_PRIOR_LOSS_RATE = 0.04  # typical LV technical loss before an area has history


def _usable(b: Balance) -> bool:
    return (
        b.level == BalanceLevel.AREA
        and b.status != BalanceStatus.INCOMPUTABLE
        and math.isfinite(b.loss_rate)
        and b.supply_kwh > 0
    )


def _saturating(excess: float, scale: float) -> float:
    """Map an excess >= 0 to a score in [0.5, 1): 0.5 at the boundary."""
    return 0.5 + 0.5 * (1.0 - math.exp(-max(excess, 0.0) / scale))


@dataclass
class _AreaBaseline:
    mean_rate: float = _PRIOR_LOSS_RATE
    abs_dev: float = 0.01
    n: int = 0


@dataclass
class LossBandDetector:
    """Scores windows whose loss rate is outside the configured band."""

    balance_config: BalanceConfig = field(default_factory=BalanceConfig)
    scale_rate: float = 0.05  # excess [fraction] that takes the score to ~0.82
    alpha: float = 0.1  # EWMA weight of the baseline
    name: str = "loss_band"
    _baseline: dict[str, _AreaBaseline] = field(default_factory=dict)

    def score_one(self, x: Balance) -> Finding | None:
        if not _usable(x):
            return None
        band = self.balance_config.band_for_area(x.target_id)
        base = self._baseline.get(x.target_id, _AreaBaseline())
        if x.loss_rate > band.upper_rate:
            expected = min(base.mean_rate, band.upper_rate)
            return Finding(
                detector=self.name,
                target_id=x.target_id,
                target_kind=TargetKind.AREA,
                category=SuspicionCategory.AREA_LOSS,
                score=_saturating(x.loss_rate - band.upper_rate, self.scale_rate),
                ts=x.window_end,
                estimated_kwh=max(x.loss_rate - expected, 0.0) * x.supply_kwh,
                reason=(
                    f"high loss {x.loss_rate:.1%} (band {band.upper_rate:.0%}, "
                    f"usual {expected:.1%}), {x.loss_kwh:.0f} kWh lost"
                ),
                area_id=x.target_id,
                start_s=x.window_start,
            )
        if x.loss_rate < band.lower_rate:
            return Finding(
                detector=self.name,
                target_id=x.target_id,
                target_kind=TargetKind.AREA,
                category=SuspicionCategory.AREA_LOSS,
                score=_saturating(band.lower_rate - x.loss_rate, self.scale_rate),
                ts=x.window_end,
                estimated_kwh=-x.loss_kwh,
                reason=(
                    f"negative loss {x.loss_rate:.1%}: billed exceeds supply by "
                    f"{-x.loss_kwh:.0f} kWh; check customer-to-area mapping and multipliers"
                ),
                area_id=x.target_id,
                start_s=x.window_start,
            )
        return None

    def learn_one(self, x: Balance) -> None:
        if not _usable(x) or x.status != BalanceStatus.NORMAL:
            return
        base = self._baseline.setdefault(x.target_id, _AreaBaseline())
        a = self.alpha if base.n else 1.0
        base.abs_dev = (1 - a) * base.abs_dev + a * abs(x.loss_rate - base.mean_rate)
        base.mean_rate = (1 - a) * base.mean_rate + a * x.loss_rate
        base.n += 1

    def state_dict(self) -> dict[str, Any]:
        return {k: vars(v).copy() for k, v in self._baseline.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._baseline = {k: _AreaBaseline(**v) for k, v in state.items()}


@dataclass
class _CusumState:
    mean_rate: float = 0.0
    abs_dev: float = 0.0
    n: int = 0
    cusum: float = 0.0
    run_start_s: int | None = None
    run_excess_kwh: float = 0.0


@dataclass
class LossRiseDetector:
    """One-sided CUSUM on the standardised loss rate of each area.

    ``S_t = max(0, S_{t-1} + (x_t - mean) / sigma - slack)``; the score is
    ``S / (S + threshold)``, 0.5 exactly when S reaches the classic alarm threshold.
    The baseline learns only while no rise is under way, so a sustained theft is
    not absorbed into "normal".
    """

    slack: float = 0.5  # [sigma]
    threshold: float = 5.0  # [sigma]
    warmup: int = 5  # windows of history before scoring
    min_sigma_rate: float = 0.003  # floor of the loss-rate scale [fraction]
    alpha: float = 0.1
    name: str = "loss_rise"
    _state: dict[str, _CusumState] = field(default_factory=dict)

    def _sigma(self, st: _CusumState) -> float:
        # Mean absolute deviation x 1.25 estimates sigma for a normal distribution.
        return max(1.25 * st.abs_dev, self.min_sigma_rate)

    def _step(self, st: _CusumState, x: Balance) -> float:
        z = (x.loss_rate - st.mean_rate) / self._sigma(st)
        return max(0.0, st.cusum + z - self.slack)

    def score_one(self, x: Balance) -> Finding | None:
        st = self._state.get(x.target_id)
        if not _usable(x) or st is None or st.n < self.warmup:
            return None
        s = self._step(st, x)
        if s <= 0:
            return None
        start = st.run_start_s if st.cusum > 0 and st.run_start_s is not None else x.window_start
        excess = st.run_excess_kwh + max(x.loss_rate - st.mean_rate, 0.0) * x.supply_kwh
        return Finding(
            detector=self.name,
            target_id=x.target_id,
            target_kind=TargetKind.AREA,
            category=SuspicionCategory.AREA_LOSS,
            score=s / (s + self.threshold),
            ts=x.window_end,
            estimated_kwh=max(x.loss_rate - st.mean_rate, 0.0) * x.supply_kwh,
            reason=(
                f"loss rate rose to {x.loss_rate:.1%} from a usual {st.mean_rate:.1%} "
                f"(CUSUM {s:.1f} sigma, {excess:.0f} kWh above usual since the rise began)"
            ),
            area_id=x.target_id,
            start_s=start,
        )

    def learn_one(self, x: Balance) -> None:
        if not _usable(x):
            return
        st = self._state.setdefault(x.target_id, _CusumState())
        if st.n < self.warmup:
            a = 1.0 / (st.n + 1)  # plain mean over the warm-up
            st.abs_dev = (1 - a) * st.abs_dev + a * abs(x.loss_rate - st.mean_rate)
            st.mean_rate = (1 - a) * st.mean_rate + a * x.loss_rate
            st.n += 1
            return
        s = self._step(st, x)
        if s > 0:
            if st.cusum == 0:
                st.run_start_s, st.run_excess_kwh = x.window_start, 0.0
            st.run_excess_kwh += max(x.loss_rate - st.mean_rate, 0.0) * x.supply_kwh
        else:
            st.run_start_s, st.run_excess_kwh = None, 0.0
        st.cusum = s
        if s < self.threshold:
            st.abs_dev = (1 - self.alpha) * st.abs_dev + self.alpha * abs(
                x.loss_rate - st.mean_rate
            )
            st.mean_rate = (1 - self.alpha) * st.mean_rate + self.alpha * x.loss_rate
            st.n += 1

    def state_dict(self) -> dict[str, Any]:
        return {k: vars(v).copy() for k, v in self._state.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._state = {k: _CusumState(**v) for k, v in state.items()}
