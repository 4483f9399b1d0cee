"""The lifecycle: every legal transition, every illegal one rejected, the audit entry."""

from __future__ import annotations

import itertools

import pytest

from workorders.model import (
    Action,
    Evidence,
    IllegalTransition,
    OrderState,
    Outcome,
    WorkOrder,
    transition,
)

EV = Evidence(
    category="theft",
    score=0.9,
    estimated_kwh=100.0,
    estimated_value=60.0,
    priority=54.0,
    priority_class="P3",
    reason="r",
    detector="d",
    detector_scores=(("d", 0.9),),
    start_s=0,
    first_detected_s=10,
)


def order(state: OrderState, assignee: str | None = None) -> WorkOrder:
    return WorkOrder(
        order_id="WO-1",
        target_id="C1",
        target_kind="meter",
        area_id="A1",
        team="A1",
        customer_class="residential",
        evidence=EV,
        state=state,
        created_s=100,
        updated_s=100,
        due_s=1000,
        assignee=assignee,
    )


KWARGS = {
    Action.ASSIGN: {"assignee": "li"},
    Action.START: {},
    Action.CLOSE: {"outcome": Outcome.NO_FINDING},
    Action.REOPEN: {"evidence": EV, "due_s": 5000},
    Action.NOTE: {"notes": "gate locked"},
    Action.UPDATE_EVIDENCE: {"evidence": EV},
}
LEGAL = {
    (OrderState.OPEN, Action.ASSIGN): OrderState.ASSIGNED,
    (OrderState.ASSIGNED, Action.ASSIGN): OrderState.ASSIGNED,
    (OrderState.IN_PROGRESS, Action.ASSIGN): OrderState.ASSIGNED,
    (OrderState.ASSIGNED, Action.START): OrderState.IN_PROGRESS,
    (OrderState.ASSIGNED, Action.CLOSE): OrderState.CLOSED,
    (OrderState.IN_PROGRESS, Action.CLOSE): OrderState.CLOSED,
    (OrderState.CLOSED, Action.REOPEN): OrderState.OPEN,
    **{(s, Action.NOTE): s for s in OrderState},
    **{(s, Action.UPDATE_EVIDENCE): s for s in OrderState if s != OrderState.CLOSED},
}


@pytest.mark.parametrize(("state", "action"), list(itertools.product(OrderState, KWARGS)))
def test_every_transition_is_legal_or_rejected(state: OrderState, action: Action) -> None:
    o = order(state, assignee="li" if state != OrderState.OPEN else None)
    if (state, action) in LEGAL:
        new, entry = transition(o, action, actor="wang", now_s=500, **KWARGS[action])
        assert new.state == LEGAL[(state, action)]
        assert (entry.from_state, entry.to_state) == (state, new.state)
        assert (entry.actor, entry.at_s, entry.action) == ("wang", 500, action)
        assert new.updated_s == 500
    else:
        with pytest.raises(IllegalTransition, match=state.value):
            transition(o, action, actor="wang", now_s=500, **KWARGS[action])


def test_close_records_outcome_and_reopen_clears_it() -> None:
    o = order(OrderState.IN_PROGRESS, assignee="li")
    closed, entry = transition(
        o,
        Action.CLOSE,
        actor="li",
        now_s=700,
        outcome=Outcome.THEFT_CONFIRMED,
        notes="bypass at the meter box",
        recovered_kwh=420.0,
    )
    assert closed.outcome == Outcome.THEFT_CONFIRMED and closed.closed_s == 700
    assert closed.recovered_kwh == 420.0
    assert closed.notes == "li: bypass at the meter box"
    assert entry.detail_dict() == {
        "notes": "bypass at the meter box",
        "outcome": "theft_confirmed",
        "recovered_kwh": 420.0,
    }
    reopened, _ = transition(closed, Action.REOPEN, actor="sys", now_s=900, evidence=EV, due_s=2000)
    assert reopened.state == OrderState.OPEN
    assert (reopened.outcome, reopened.closed_s, reopened.assignee) == (None, None, None)
    assert reopened.reopen_count == 1 and reopened.due_s == 2000


@pytest.mark.parametrize(
    ("state", "action", "kwargs", "match"),
    [
        (OrderState.OPEN, Action.ASSIGN, {}, "assignee"),
        (OrderState.ASSIGNED, Action.CLOSE, {}, "outcome"),
        (
            OrderState.ASSIGNED,
            Action.CLOSE,
            {"outcome": Outcome.THEFT_CONFIRMED, "recovered_kwh": -1.0},
            "negative",
        ),
        (OrderState.CLOSED, Action.REOPEN, {}, "evidence"),
        (OrderState.OPEN, Action.CREATE, {}, "created once"),
    ],
)
def test_actions_missing_what_they_need_are_rejected(
    state: OrderState, action: Action, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(IllegalTransition, match=match):
        transition(order(state, "li"), action, actor="x", now_s=1, **kwargs)  # type: ignore[arg-type]


def test_overdue_only_while_open() -> None:
    assert order(OrderState.ASSIGNED).is_overdue(1001)
    assert not order(OrderState.ASSIGNED).is_overdue(1000)
    closed, _ = transition(
        order(OrderState.ASSIGNED, "li"),
        Action.CLOSE,
        actor="li",
        now_s=2000,
        outcome=Outcome.NO_FINDING,
    )
    assert not closed.is_overdue(5000)
    assert closed.age_s(99999) == 1900
