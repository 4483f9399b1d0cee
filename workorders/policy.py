"""From suspicions to work orders, and from work orders to each team's day.

Pure decisions, no storage and no clock: given the detectors' current suspicions,
the latest order of each target and the time, :func:`plan` says which orders to
create, which open orders get new evidence, and which closed orders to reopen.
:func:`daily_plan` ranks a team's open orders by expected value and spreads them
over days at the team's capacity, so the first visit of the day is the most
valuable one and nobody is handed more than they can do.

Rules:
- one order per target, ever: an open order absorbs new evidence; a closed one is
  reopened (same id, audit trail kept) when the evidence has grown materially and
  the cooling-off period since it was closed has passed;
- an order is opened only for a suspicion at or above its category's threshold;
- priority = score x value of the estimated unbilled energy at the customer's tariff;
  its class (P1..P3) sets the due date (SLA); new evidence that raises the class
  pulls the due date in, never pushes it out.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from lineloss.domain import Suspicion
from workorders.model import (
    Action,
    AuditEntry,
    Evidence,
    OrderState,
    WorkOrder,
    created,
    transition,
)
from workorders.tariff import TariffBook

DAY_S = 86400
SYSTEM_ACTOR = "lineloss"


@dataclass(frozen=True)
class PriorityClass:
    name: str
    min_priority: float  # expected value from which an order is in this class [currency]
    sla_s: int  # time from creation (or reopening) to the due date


@dataclass(frozen=True)
class WorkOrderPolicy:
    # Suspicions below their category's score open no order. Area-level loss with no
    # localised suspect is a lead too, but a weaker one: a higher bar.
    min_score: Mapping[str, float] = field(
        default_factory=lambda: {
            "theft": 0.5,
            "meter_fault": 0.5,
            "topology_error": 0.5,
            "area_loss": 0.8,
        }
    )
    cooling_off_s: int = 30 * DAY_S
    # After a close, evidence is "new" when the estimated kWh grew by this share or
    # the score rose by this much: the same suspicion listed again reopens nothing.
    reopen_kwh_growth: float = 0.25
    reopen_score_rise: float = 0.05
    priority_classes: tuple[PriorityClass, ...] = (
        PriorityClass("P1", 1000.0, 3 * DAY_S),
        PriorityClass("P2", 200.0, 7 * DAY_S),
        PriorityClass("P3", 0.0, 14 * DAY_S),
    )
    daily_capacity: int = 5  # visits per team per day unless team_capacity says otherwise
    team_capacity: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        mins = [c.min_priority for c in self.priority_classes]
        if not mins or mins != sorted(mins, reverse=True) or mins[-1] > 0:
            raise ValueError("priority classes must go from highest to a last one at 0")
        if self.daily_capacity < 1 or any(c < 1 for c in self.team_capacity.values()):
            raise ValueError("a team's daily capacity is at least one visit")

    def priority_class(self, priority: float) -> PriorityClass:
        for c in self.priority_classes:
            if priority >= c.min_priority:
                return c
        return self.priority_classes[-1]

    def capacity(self, team: str) -> int:
        return self.team_capacity.get(team, self.daily_capacity)


@dataclass(frozen=True)
class Directory:
    """Who a target is: the team that inspects its area, its customer class (for the
    tariff) and what it is normally billed per month (for the stepped tariff)."""

    team_by_area: Mapping[str, str] = field(default_factory=dict)
    customer_class: Mapping[str, str] = field(default_factory=dict)
    billed_kwh_per_month: Mapping[str, float] = field(default_factory=dict)
    default_team: str = "unassigned"

    def team(self, area_id: str | None) -> str:
        if area_id is None:
            return self.default_team
        return self.team_by_area.get(area_id, area_id)


@dataclass(frozen=True)
class Change:
    kind: Literal["create", "update", "reopen"]
    order: WorkOrder
    audit: AuditEntry
    previous: WorkOrder | None = None  # the stored version this change replaces


@dataclass(frozen=True)
class Skipped:
    target_id: str
    reason: Literal["below_threshold", "unchanged", "cooling_off", "no_new_evidence"]


@dataclass(frozen=True)
class Plan:
    changes: list[Change]
    skipped: list[Skipped]


def order_id_for(target_id: str) -> str:
    """Stable id: one order per target, the same in every replay of the same data."""
    return "WO-" + hashlib.sha1(target_id.encode()).hexdigest()[:16].upper()


def evidence_of(
    s: Suspicion,
    *,
    now_s: int,
    directory: Directory,
    tariffs: TariffBook,
    policy: WorkOrderPolicy,
) -> Evidence:
    """Value the suspicion: its kWh spread over the months since the anomaly began,
    priced on top of the customer's usual monthly bill."""
    since_s = s.start_s if s.start_s is not None else s.first_detected
    months = max(now_s - since_s, DAY_S) / (30 * DAY_S)
    value = tariffs.value(
        directory.customer_class.get(s.target_id),
        s.estimated_kwh,
        billed_kwh_per_month=directory.billed_kwh_per_month.get(s.target_id, 0.0),
        months=months,
    )
    priority = round(s.score * value, 2)
    return Evidence(
        category=s.category.value,
        score=s.score,
        estimated_kwh=s.estimated_kwh,
        estimated_value=value,
        priority=priority,
        priority_class=policy.priority_class(priority).name,
        reason=s.evidence,
        detector=s.detector,
        detector_scores=s.detector_scores,
        start_s=s.start_s,
        first_detected_s=s.first_detected,
    )


def _strongest_per_target(
    valued: Iterable[tuple[Suspicion, Evidence]],
) -> dict[str, tuple[Suspicion, Evidence]]:
    best: dict[str, tuple[Suspicion, Evidence]] = {}
    for s, ev in valued:
        cur = best.get(s.target_id)
        if cur is None or (ev.priority, ev.score, ev.category) > (
            cur[1].priority,
            cur[1].score,
            cur[1].category,
        ):
            best[s.target_id] = (s, ev)
    return best


def _is_new_evidence(old: Evidence, new: Evidence, policy: WorkOrderPolicy) -> bool:
    return (
        new.category != old.category
        or new.estimated_kwh > old.estimated_kwh * (1 + policy.reopen_kwh_growth) + 1e-9
        or new.score >= old.score + policy.reopen_score_rise
    )


def _changed(old: Evidence, new: Evidence) -> bool:
    return (old.category, old.score, old.estimated_kwh, old.reason, old.detector_scores) != (
        new.category,
        new.score,
        new.estimated_kwh,
        new.reason,
        new.detector_scores,
    )


def plan(
    suspicions: Iterable[Suspicion],
    latest: Mapping[str, WorkOrder],
    *,
    now_s: int,
    directory: Directory,
    tariffs: TariffBook,
    policy: WorkOrderPolicy,
) -> Plan:
    """Decide what the current suspicions do to the orders. ``latest`` holds the
    stored order of each target that has one (open or closed)."""
    kept: list[Suspicion] = []
    skipped: list[Skipped] = []
    for s in suspicions:
        threshold = policy.min_score.get(s.category.value)
        if threshold is None or s.score < threshold:
            skipped.append(Skipped(s.target_id, "below_threshold"))
        else:
            kept.append(s)
    valued = [
        (s, evidence_of(s, now_s=now_s, directory=directory, tariffs=tariffs, policy=policy))
        for s in kept
    ]
    changes: list[Change] = []
    for target_id, (s, ev) in sorted(_strongest_per_target(valued).items()):
        sla_s = policy.priority_class(ev.priority).sla_s
        old = latest.get(target_id)
        if old is None:
            order = WorkOrder(
                order_id=order_id_for(target_id),
                target_id=target_id,
                target_kind=s.target_kind.value,
                area_id=s.area_id,
                team=directory.team(s.area_id),
                customer_class=directory.customer_class.get(target_id),
                evidence=ev,
                state=OrderState.OPEN,
                created_s=now_s,
                updated_s=now_s,
                due_s=now_s + sla_s,
            )
            changes.append(Change("create", order, created(order, actor=SYSTEM_ACTOR)))
        elif old.is_open:
            if not _changed(old.evidence, ev):
                skipped.append(Skipped(target_id, "unchanged"))
                continue
            order, entry = transition(
                old, Action.UPDATE_EVIDENCE, actor=SYSTEM_ACTOR, now_s=now_s, evidence=ev
            )
            order = replace(order, due_s=min(old.due_s, now_s + sla_s))
            changes.append(Change("update", order, entry, previous=old))
        elif not _is_new_evidence(old.evidence, ev, policy):
            skipped.append(Skipped(target_id, "no_new_evidence"))
        elif old.closed_s is not None and now_s < old.closed_s + policy.cooling_off_s:
            skipped.append(Skipped(target_id, "cooling_off"))
        else:
            order, entry = transition(
                old,
                Action.REOPEN,
                actor=SYSTEM_ACTOR,
                now_s=now_s,
                evidence=ev,
                due_s=now_s + sla_s,
                notes=f"reopened: new evidence after {old.outcome or 'close'}",
            )
            changes.append(Change("reopen", order, entry, previous=old))
    return Plan(changes, skipped)


@dataclass(frozen=True)
class PlannedVisit:
    order: WorkOrder
    rank: int  # 1 = the team's most valuable open order
    visit_day: int  # 0 = today, 1 = tomorrow, ... at the team's daily capacity


def rank_key(order: WorkOrder) -> tuple[float, int, str]:
    """Most valuable first; equal value: the earlier due date, then the id."""
    return (-order.evidence.priority, order.due_s, order.order_id)


def daily_plan(orders: Iterable[WorkOrder], policy: WorkOrderPolicy) -> list[PlannedVisit]:
    """Every open order with its rank in its team and the day it fits in."""
    by_team: dict[str, list[WorkOrder]] = defaultdict(list)
    for o in orders:
        if o.is_open:
            by_team[o.team].append(o)
    visits = []
    for team in sorted(by_team):
        cap = policy.capacity(team)
        for i, o in enumerate(sorted(by_team[team], key=rank_key)):
            visits.append(PlannedVisit(o, rank=i + 1, visit_day=i // cap))
    visits.sort(key=lambda v: (v.visit_day, rank_key(v.order)))
    return visits
