"""Work-order test factories: a suspicion with sensible defaults and a fixed "now"."""

from __future__ import annotations

from lineloss.domain import Suspicion, SuspicionCategory, TargetKind

DAY_S = 86400
T0 = 1_760_000_000  # 2025-10-09, a fixed "now" for the pure rules


def suspicion(
    target_id: str = "C001",
    *,
    category: str = "theft",
    score: float = 0.9,
    estimated_kwh: float = 300.0,
    area_id: str = "A1",
    first_detected: int = T0 - 5 * DAY_S,
    start_s: int | None = T0 - 20 * DAY_S,
    detector: str = "theft_localiser",
    reason: str = "loss follows the customer's deficit",
) -> Suspicion:
    kind = TargetKind.AREA if category == "area_loss" else TargetKind.METER
    return Suspicion(
        target_id=target_id,
        target_kind=kind,
        category=SuspicionCategory(category),
        score=score,
        first_detected=first_detected,
        estimated_kwh=estimated_kwh,
        evidence=reason,
        area_id=area_id,
        detector=detector,
        detector_scores=((detector, score),),
        start_s=start_s,
    )
