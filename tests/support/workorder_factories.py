"""Work-order test factories: a suspicion with sensible defaults and a fixed "now"."""

from __future__ import annotations

from lineloss.domain import Suspicion, SuspicionCategory, TargetKind
from loaders.synthetic import SyntheticGridConfig

# Small enough to replay in about a second; thefts that lower the recorded
# consumption (h1 = scaled down, bypass) and always raise a tamper event, so an
# evidence pack has a drop and events to show; one dedicated customer (the feeder's
# unmetered part). Shared by the evidence and browser tests.
THEFT_GRID = SyntheticGridConfig(
    seed=4,
    n_feeders=1,
    areas_per_feeder=2,
    customers_per_area=(10, 16),
    dedicated_per_feeder=(1, 1),
    areas_without_meter_fraction=0.0,
    days=21,
    theft_fraction=0.1,
    theft_kinds=("h1", "bypass"),
    theft_event_probability=1.0,
)

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
