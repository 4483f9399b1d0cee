"""Work orders: what an inspector (用电检查) receives, and the only legal ways it changes.

The lifecycle is a small state machine, ``open -> assigned -> in_progress -> closed``
(a closed order may be reopened), kept pure: every change is a function of the
order, the action, who acts and when, and returns the new order together with the
audit entry that records it. Nothing here reads a clock or a database, so the rules
are tested exhaustively and the stores only persist what these functions decide.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, replace
from typing import Any


class OrderState(enum.StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"


class Outcome(enum.StrEnum):
    """What the inspector found on site."""

    THEFT_CONFIRMED = "theft_confirmed"
    METER_FAULT = "meter_fault"
    TOPOLOGY_ERROR = "topology_error"
    NO_FINDING = "no_finding"
    UNREACHABLE = "unreachable"


# Outcomes that confirm the suspicion (the hit rate's numerator); an unreachable
# site says nothing either way and leaves the denominator too.
CONFIRMING_OUTCOMES = frozenset({Outcome.THEFT_CONFIRMED, Outcome.METER_FAULT})
INSPECTED_OUTCOMES = frozenset(set(Outcome) - {Outcome.UNREACHABLE})


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE_EVIDENCE = "update_evidence"
    ASSIGN = "assign"
    START = "start"
    CLOSE = "close"
    REOPEN = "reopen"
    NOTE = "note"


class Role(enum.StrEnum):
    INSPECTOR = "inspector"  # sees and works the orders of their own team
    SUPERVISOR = "supervisor"  # assigns and reopens orders of their team ("*" = all teams)
    ANALYST = "analyst"  # reads everything, changes nothing
    SYSTEM = "system"  # the detection pipeline creating and updating orders


ALL_TEAMS = "*"

# From which states each lifecycle action may be taken, and where it leads.
# Re-assigning an order that is assigned or already being worked is allowed (an
# inspector falls ill); starting needs an assignee; closing needs the order to have
# been assigned, so every closed order names who went.
_TRANSITIONS: dict[Action, tuple[frozenset[OrderState], OrderState | None]] = {
    Action.ASSIGN: (
        frozenset({OrderState.OPEN, OrderState.ASSIGNED, OrderState.IN_PROGRESS}),
        OrderState.ASSIGNED,
    ),
    Action.START: (frozenset({OrderState.ASSIGNED}), OrderState.IN_PROGRESS),
    Action.CLOSE: (frozenset({OrderState.ASSIGNED, OrderState.IN_PROGRESS}), OrderState.CLOSED),
    Action.REOPEN: (frozenset({OrderState.CLOSED}), OrderState.OPEN),
    Action.NOTE: (frozenset(set(OrderState)), None),
    Action.UPDATE_EVIDENCE: (
        frozenset({OrderState.OPEN, OrderState.ASSIGNED, OrderState.IN_PROGRESS}),
        None,
    ),
}


class IllegalTransition(ValueError):
    """An action that the order's current state does not allow."""


@dataclass(frozen=True)
class Evidence:
    """What the detectors currently say about the target, as the order records it."""

    category: str
    score: float  # [0, 1]
    estimated_kwh: float  # estimated unbilled (or mis-attributed) energy [kWh]
    estimated_value: float  # its value at the customer's tariff [currency]
    priority: float  # expected value: score x estimated_value [currency]
    priority_class: str  # P1 / P2 / P3, sets the due date
    reason: str
    detector: str
    detector_scores: tuple[tuple[str, float], ...]
    start_s: int | None  # estimated start of the anomaly [s since epoch]
    first_detected_s: int  # stream time the detectors first reported it [s]


@dataclass(frozen=True)
class WorkOrder:
    order_id: str
    target_id: str
    target_kind: str  # meter | area
    area_id: str | None
    team: str
    customer_class: str | None
    evidence: Evidence
    state: OrderState
    created_s: int
    updated_s: int
    due_s: int
    assignee: str | None = None
    outcome: Outcome | None = None
    notes: str = ""
    recovered_kwh: float | None = None
    closed_s: int | None = None
    reopen_count: int = 0
    version: int = 1  # optimistic concurrency: bumped on every stored change

    @property
    def is_open(self) -> bool:
        return self.state != OrderState.CLOSED

    def is_overdue(self, now_s: int) -> bool:
        return self.is_open and now_s > self.due_s

    def age_s(self, now_s: int) -> int:
        return max(0, (self.closed_s if self.closed_s is not None else now_s) - self.created_s)


@dataclass(frozen=True)
class AuditEntry:
    """One change of one order: who did what, when, and from which state to which."""

    order_id: str
    at_s: int
    actor: str
    action: Action
    from_state: OrderState | None
    to_state: OrderState
    detail: str = "{}"  # JSON object: the fields the action set

    def detail_dict(self) -> dict[str, Any]:
        data = json.loads(self.detail)
        assert isinstance(data, dict)
        return data


def _detail(**fields: Any) -> str:
    return json.dumps({k: v for k, v in fields.items() if v is not None}, sort_keys=True)


def created(order: WorkOrder, *, actor: str) -> AuditEntry:
    """The audit entry of a new order."""
    ev = order.evidence
    return AuditEntry(
        order_id=order.order_id,
        at_s=order.created_s,
        actor=actor,
        action=Action.CREATE,
        from_state=None,
        to_state=order.state,
        detail=_detail(category=ev.category, score=ev.score, priority=ev.priority),
    )


def transition(
    order: WorkOrder,
    action: Action,
    *,
    actor: str,
    now_s: int,
    assignee: str | None = None,
    outcome: Outcome | None = None,
    notes: str | None = None,
    recovered_kwh: float | None = None,
    evidence: Evidence | None = None,
    due_s: int | None = None,
) -> tuple[WorkOrder, AuditEntry]:
    """Apply ``action`` to ``order``; raises IllegalTransition if the state forbids it
    or the action lacks what it needs (an assignee, an outcome)."""
    if action == Action.CREATE:
        raise IllegalTransition("an order is created once, not transitioned into being")
    allowed_from, to_state = _TRANSITIONS[action]
    if order.state not in allowed_from:
        raise IllegalTransition(
            f"cannot {action.value} order {order.order_id} in state {order.state.value}"
        )
    new = replace(order, updated_s=now_s, state=to_state or order.state)
    if action == Action.ASSIGN:
        if not assignee:
            raise IllegalTransition("assign needs an assignee")
        new = replace(new, assignee=assignee)
    elif action == Action.CLOSE:
        if outcome is None:
            raise IllegalTransition("close needs an outcome")
        if recovered_kwh is not None and recovered_kwh < 0:
            raise IllegalTransition("recovered_kwh cannot be negative")
        new = replace(new, outcome=outcome, recovered_kwh=recovered_kwh, closed_s=now_s)
    elif action == Action.REOPEN:
        if evidence is None or due_s is None:
            raise IllegalTransition("reopen needs the new evidence and a due date")
        new = replace(
            new,
            evidence=evidence,
            due_s=due_s,
            assignee=None,
            outcome=None,
            recovered_kwh=None,
            closed_s=None,
            reopen_count=order.reopen_count + 1,
        )
    elif action == Action.UPDATE_EVIDENCE:
        if evidence is None:
            raise IllegalTransition("update_evidence needs the evidence")
        new = replace(new, evidence=evidence)
    if notes:
        stamped = f"{actor}: {notes.strip()}"
        new = replace(new, notes=f"{order.notes}\n{stamped}" if order.notes else stamped)
    entry = AuditEntry(
        order_id=order.order_id,
        at_s=now_s,
        actor=actor,
        action=action,
        from_state=order.state,
        to_state=new.state,
        detail=_detail(
            assignee=assignee,
            outcome=outcome.value if outcome else None,
            notes=notes,
            recovered_kwh=recovered_kwh,
            score=evidence.score if evidence else None,
            estimated_kwh=evidence.estimated_kwh if evidence else None,
            priority=evidence.priority if evidence else None,
            reason=evidence.reason if evidence else None,
        ),
    )
    return new, entry
