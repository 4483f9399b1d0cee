"""Evidence packs for work orders: the glue between an order and the evidence module.

The API and the command line ask for an order's pack; this builds the subject
from the order's current evidence and serves it from the on-disk cache, so a pack
is generated once per version of the evidence and on demand only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workorders.evidence import (
    EvidenceCache,
    EvidencePack,
    EvidenceSource,
    EvidenceSubject,
    ReplayOutputSource,
)
from workorders.model import WorkOrder


def subject_of(order: WorkOrder, *, currency: str) -> EvidenceSubject:
    ev = order.evidence
    return EvidenceSubject(
        order_id=order.order_id,
        target_id=order.target_id,
        target_kind=order.target_kind,
        category=ev.category,
        area_id=order.area_id,
        score=ev.score,
        estimated_kwh=ev.estimated_kwh,
        estimated_value=ev.estimated_value,
        currency=currency,
        reason=ev.reason,
        detector_scores=ev.detector_scores,
        start_s=ev.start_s,
        first_detected_s=ev.first_detected_s,
    )


@dataclass
class EvidenceProvider:
    source: EvidenceSource
    cache: EvidenceCache
    currency: str = "CNY"

    def __call__(self, order: WorkOrder) -> EvidencePack:
        return self.cache.get_or_build(self.source, subject_of(order, currency=self.currency))

    @classmethod
    def for_replay(
        cls, out_dir: Path, *, currency: str = "CNY", cache_dir: Path | None = None
    ) -> EvidenceProvider:
        """Evidence from a replay's output directory, cached in ``OUT_DIR/evidence``."""
        return cls(
            ReplayOutputSource(out_dir),
            EvidenceCache(cache_dir or out_dir / "evidence"),
            currency,
        )
