"""Dedupe, reopen after cooling-off, thresholds, priority, SLA and daily capacity."""

from __future__ import annotations

from dataclasses import replace

import pytest
from workorder_factories import DAY_S, T0, suspicion

from workorders.model import Action, OrderState, Outcome, WorkOrder, transition
from workorders.policy import (
    Directory,
    WorkOrderPolicy,
    daily_plan,
    order_id_for,
    plan,
)
from workorders.tariff import FlatTariff, TariffBook

POLICY = WorkOrderPolicy()
FLAT = TariffBook(by_class={}, default=FlatTariff(1.0))
DIRECTORY = Directory(team_by_area={"A1": "north", "A2": "north", "A3": "south"})


def run(sus, latest=None, now_s=T0, policy=POLICY, tariffs=FLAT, directory=DIRECTORY):
    return plan(sus, latest or {}, now_s=now_s, directory=directory, tariffs=tariffs, policy=policy)


def closed(o: WorkOrder, at_s: int, outcome: Outcome = Outcome.NO_FINDING) -> WorkOrder:
    o, _ = transition(o, Action.ASSIGN, actor="s", now_s=at_s - 10, assignee="li")
    o, _ = transition(o, Action.CLOSE, actor="li", now_s=at_s, outcome=outcome)
    return o


def test_creates_one_order_per_target_from_its_strongest_suspicion() -> None:
    p = run(
        [
            suspicion("C1", category="theft", score=0.6, estimated_kwh=100),
            suspicion("C1", category="meter_fault", score=0.9, estimated_kwh=200),
            suspicion("C2", area_id="A3"),
        ]
    )
    assert [(c.kind, c.order.target_id) for c in p.changes] == [("create", "C1"), ("create", "C2")]
    c1 = p.changes[0].order
    assert c1.evidence.category == "meter_fault"
    assert c1.order_id == order_id_for("C1") and c1.order_id.startswith("WO-")
    assert c1.state == OrderState.OPEN and c1.team == "north"
    assert p.changes[1].order.team == "south"
    assert p.changes[0].audit.action == Action.CREATE


def test_below_threshold_and_unknown_categories_open_nothing() -> None:
    p = run([suspicion("C1", score=0.4), suspicion("A1", category="area_loss", score=0.7)])
    assert p.changes == []
    assert [s.reason for s in p.skipped] == ["below_threshold", "below_threshold"]
    p = run([suspicion("C1", score=0.4)], policy=replace(POLICY, min_score={"theft": 0.3}))
    assert len(p.changes) == 1


def test_new_evidence_updates_the_open_order_instead_of_opening_another() -> None:
    first = run([suspicion("C1", estimated_kwh=100)]).changes[0].order
    same = run([suspicion("C1", estimated_kwh=100)], {"C1": first}, now_s=T0 + DAY_S)
    assert same.changes == [] and same.skipped[0].reason == "unchanged"
    more = run([suspicion("C1", estimated_kwh=150)], {"C1": first}, now_s=T0 + DAY_S)
    (ch,) = more.changes
    assert ch.kind == "update" and ch.order.order_id == first.order_id
    assert ch.order.evidence.estimated_kwh == 150 and ch.order.created_s == T0
    assert ch.previous is first and ch.audit.action == Action.UPDATE_EVIDENCE


def test_closed_order_reopens_only_on_new_evidence_after_cooling_off() -> None:
    o = run([suspicion("C1", estimated_kwh=100)]).changes[0].order
    c = closed(o, T0 + 2 * DAY_S)
    later = T0 + 2 * DAY_S + POLICY.cooling_off_s
    # The same suspicion listed again, even long after: nothing new, nothing reopened.
    p = run([suspicion("C1", estimated_kwh=110)], {"C1": c}, now_s=later + 1)
    assert p.changes == [] and p.skipped[0].reason == "no_new_evidence"
    # Grown evidence inside the cooling-off period: not yet.
    p = run([suspicion("C1", estimated_kwh=200)], {"C1": c}, now_s=later - 1)
    assert p.changes == [] and p.skipped[0].reason == "cooling_off"
    # Grown evidence after it: the same order reopens with a fresh due date.
    p = run([suspicion("C1", estimated_kwh=200)], {"C1": c}, now_s=later)
    (ch,) = p.changes
    assert ch.kind == "reopen" and ch.order.order_id == o.order_id
    assert ch.order.state == OrderState.OPEN and ch.order.reopen_count == 1
    assert ch.order.due_s > later and ch.order.outcome is None
    assert "reopened" in ch.order.notes


def test_priority_is_score_times_value_at_the_customers_tariff() -> None:
    tariffs = TariffBook(
        by_class={"commercial": FlatTariff(1.0), "residential": FlatTariff(0.5)},
        default=FlatTariff(0.1),
    )
    directory = replace(DIRECTORY, customer_class={"C1": "commercial", "C2": "residential"})
    p = run(
        [
            suspicion("C1", score=0.6, estimated_kwh=1000),  # 0.6 x 1000 x 1.0 = 600
            suspicion("C2", score=0.95, estimated_kwh=1000),  # 0.95 x 1000 x 0.5 = 475
            suspicion("C3", score=0.99, estimated_kwh=1000),  # 0.99 x 1000 x 0.1 = 99
        ],
        tariffs=tariffs,
        directory=directory,
    )
    by_id = {c.order.target_id: c.order.evidence for c in p.changes}
    assert by_id["C1"].priority == pytest.approx(600.0)
    assert by_id["C2"].priority == pytest.approx(475.0)
    assert by_id["C3"].priority == pytest.approx(99.0)
    assert by_id["C1"].estimated_value == pytest.approx(1000.0)
    visits = daily_plan([c.order for c in p.changes], POLICY)
    assert [v.order.target_id for v in visits] == ["C1", "C2", "C3"]


def test_due_date_follows_the_priority_class_sla_and_only_tightens() -> None:
    p = run(
        [
            suspicion("C1", score=1.0, estimated_kwh=5000),  # P1
            suspicion("C2", score=1.0, estimated_kwh=500),  # P2
            suspicion("C3", score=1.0, estimated_kwh=50),  # P3
        ]
    )
    due = {
        c.order.target_id: (c.order.evidence.priority_class, c.order.due_s - T0) for c in p.changes
    }
    assert due == {"C1": ("P1", 3 * DAY_S), "C2": ("P2", 7 * DAY_S), "C3": ("P3", 14 * DAY_S)}
    c3 = next(c.order for c in p.changes if c.order.target_id == "C3")
    up = run([suspicion("C3", score=1.0, estimated_kwh=5000)], {"C3": c3}, now_s=T0 + DAY_S)
    assert up.changes[0].order.due_s == T0 + DAY_S + 3 * DAY_S
    p1 = next(c.order for c in p.changes if c.order.target_id == "C1")
    down = run([suspicion("C1", score=1.0, estimated_kwh=50)], {"C1": p1}, now_s=T0 + DAY_S)
    assert down.changes[0].order.due_s == p1.due_s


def test_daily_plan_respects_each_teams_capacity() -> None:
    policy = replace(POLICY, daily_capacity=2, team_capacity={"south": 1})
    sus = [suspicion(f"N{i}", estimated_kwh=100 + i, area_id="A1") for i in range(5)]
    sus += [suspicion(f"S{i}", estimated_kwh=100 + i, area_id="A3") for i in range(3)]
    orders = [c.order for c in run(sus, policy=policy).changes]
    visits = daily_plan(orders, policy)
    today = [v.order.target_id for v in visits if v.visit_day == 0]
    assert today == ["N4", "N3", "S2"]  # the two most valuable in north, one in south
    north = [(v.order.target_id, v.rank, v.visit_day) for v in visits if v.order.team == "north"]
    assert north == [("N4", 1, 0), ("N3", 2, 0), ("N2", 3, 1), ("N1", 4, 1), ("N0", 5, 2)]
    closed_one = closed(orders[0], T0 + 1)
    assert closed_one.target_id not in [v.order.target_id for v in daily_plan([closed_one], policy)]


def test_bad_policy_rejected() -> None:
    with pytest.raises(ValueError, match="capacity"):
        WorkOrderPolicy(daily_capacity=0)
