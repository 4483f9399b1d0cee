"""The one detector protocol, and the decision step kept apart from scoring.

A detector is pure and free of I/O: it scores an observation against what it has
learned (``score_one``), learns from it (``learn_one``), and its whole state
round-trips through a plain dict (``state_dict`` / ``load_state_dict``) so a
streaming worker can keep it in a changelogged table. Deciding what is worth an
inspector's time (a threshold on the score) is a separate object, so tuning a
threshold never touches a detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from lineloss.domain import SuspicionCategory, TargetKind

ObsT_contra = TypeVar("ObsT_contra", contravariant=True)


@dataclass(frozen=True)
class Finding:
    """One detector's view of one target in one window."""

    detector: str
    target_id: str
    target_kind: TargetKind
    category: SuspicionCategory
    score: float  # [0, 1], higher = more suspicious
    ts: int  # stream time the finding refers to: the window end [s since epoch]
    estimated_kwh: float  # unbilled (or mis-attributed) energy in this window [kWh]
    reason: str
    area_id: str | None = None
    start_s: int | None = None  # estimated start of the anomaly [s since epoch]
    window_start: int | None = None  # start of the window ``ts`` ends [s since epoch]


@runtime_checkable
class Detector(Protocol[ObsT_contra]):
    name: str

    def score_one(self, x: ObsT_contra) -> Finding | None:
        """Score ``x`` against the learned state without changing it."""
        ...

    def learn_one(self, x: ObsT_contra) -> None:
        """Update the state with ``x``."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class HistoryOnly:
    """For detectors whose only memory is the shared per-area history they are
    given: learning is a no-op and the state is empty, so a detector re-reads its
    reference period each time and follows seasons and network changes."""

    def learn_one(self, x: Any) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


@dataclass(frozen=True)
class ThresholdDecider:
    """Turns scores into decisions: a finding counts when its score reaches
    ``min_score``."""

    min_score: float = 0.5

    def __call__(self, finding: Finding) -> bool:
        return finding.score >= self.min_score
