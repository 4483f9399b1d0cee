"""Roles and the whole flow: suspicions in, orders assigned, worked, closed, fed back."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from workorder_factories import DAY_S, T0, suspicion

from workorders.feedback import feedback_labels, hit_rates
from workorders.model import Action, IllegalTransition, OrderState, Outcome, Role, WorkOrder
from workorders.policy import Directory
from workorders.service import Forbidden, OrderNotFound, Principal, WorkOrderService
from workorders.store import OrderQuery, WorkOrderStore

SUP_N = Principal("zhang", Role.SUPERVISOR, "north")
LI = Principal("li", Role.INSPECTOR, "north")
WANG = Principal("wang", Role.INSPECTOR, "north")
CHEN = Principal("chen", Role.INSPECTOR, "south")
ANALYST = Principal("zhao", Role.ANALYST)
DIRECTORY = Directory(team_by_area={"A1": "north", "A3": "south"})


class Recorder:
    def __init__(self) -> None:
        self.published: list[WorkOrder] = []

    def publish(self, orders: Sequence[WorkOrder]) -> None:
        self.published.extend(orders)


@pytest.fixture
def svc(store: WorkOrderStore) -> WorkOrderService:
    s = WorkOrderService(store, directory=DIRECTORY, sinks=[Recorder()])
    report = s.ingest(
        [
            suspicion("C1", area_id="A1", estimated_kwh=800),
            suspicion("C2", area_id="A1", estimated_kwh=300, detector="meter_shape"),
            suspicion("C9", area_id="A3", estimated_kwh=500),
            suspicion("C5", area_id="A1", score=0.2),
        ],
        now_s=T0,
    )
    assert (report.created, report.updated, report.reopened) == (3, 0, 0)
    assert report.skipped == {"below_threshold": 1}
    return s


def oid(svc: WorkOrderService, target: str) -> str:
    return svc.store.by_targets([target])[target].order_id


def test_ingest_is_idempotent_and_publishes_changes(svc: WorkOrderService) -> None:
    rec = svc.sinks[0]
    assert isinstance(rec, Recorder)
    assert sorted(o.target_id for o in rec.published) == ["C1", "C2", "C9"]
    again = svc.ingest([suspicion("C1", area_id="A1", estimated_kwh=800)], now_s=T0 + 60)
    assert (again.created, again.updated, again.skipped) == (0, 0, {"unchanged": 1})
    more = svc.ingest([suspicion("C1", area_id="A1", estimated_kwh=900)], now_s=T0 + 60)
    assert more.updated == 1 and rec.published[-1].evidence.estimated_kwh == 900
    assert len(svc.store.find()) == 3


def test_inspectors_see_only_their_team(svc: WorkOrderService) -> None:
    assert {o.target_id for o in svc.find(LI)} == {"C1", "C2"}
    assert {o.target_id for o in svc.find(CHEN)} == {"C9"}
    assert {o.target_id for o in svc.find(ANALYST)} == {"C1", "C2", "C9"}
    # Asking for another team's orders gives nothing, not an error that leaks them.
    assert svc.find(CHEN, OrderQuery(teams=frozenset({"north"}))) == []
    with pytest.raises(OrderNotFound):
        svc.get(CHEN, oid(svc, "C1"))
    with pytest.raises(OrderNotFound):
        svc.audit(CHEN, oid(svc, "C1"))


def test_only_supervisors_assign_and_only_the_assignee_works_the_order(
    svc: WorkOrderService,
) -> None:
    c1 = oid(svc, "C1")
    with pytest.raises(Forbidden, match="supervisor"):
        svc.assign(LI, c1, "li", now_s=T0 + 1)
    with pytest.raises(Forbidden, match="analysts"):
        svc.assign(ANALYST, c1, "li", now_s=T0 + 1)
    with pytest.raises(OrderNotFound):  # a south supervisor cannot even see it
        svc.assign(Principal("sun", Role.SUPERVISOR, "south"), c1, "chen", now_s=T0 + 1)
    svc.assign(SUP_N, c1, "li", now_s=T0 + 60, notes="start with this one")
    with pytest.raises(Forbidden, match="assigned to li"):
        svc.start(WANG, c1, now_s=T0 + 120)
    svc.start(LI, c1, now_s=T0 + 120)
    with pytest.raises(Forbidden):
        svc.close(ANALYST, c1, Outcome.NO_FINDING, now_s=T0 + 130)
    done = svc.close(
        LI, c1, Outcome.THEFT_CONFIRMED, now_s=T0 + DAY_S, notes="bypass", recovered_kwh=650
    )
    assert done.state == OrderState.CLOSED and done.version == 4
    with pytest.raises(IllegalTransition):
        svc.close(LI, c1, Outcome.NO_FINDING, now_s=T0 + DAY_S + 1)
    with pytest.raises(Forbidden, match="supervisor"):
        svc.reopen(LI, c1, now_s=T0 + 2 * DAY_S)
    reopened = svc.reopen(SUP_N, c1, now_s=T0 + 2 * DAY_S, notes="closed by mistake")
    assert reopened.state == OrderState.OPEN and reopened.reopen_count == 1
    trail = svc.audit(ANALYST, c1)
    assert [(a.action, a.actor) for a in trail] == [
        (Action.CREATE, "lineloss"),
        (Action.ASSIGN, "zhang"),
        (Action.START, "li"),
        (Action.CLOSE, "li"),
        (Action.REOPEN, "zhang"),
    ]


def test_supervisor_plan_covers_the_team_at_capacity(svc: WorkOrderService) -> None:
    visits = svc.plan(SUP_N)
    assert [(v.order.target_id, v.rank, v.visit_day) for v in visits] == [
        ("C1", 1, 0),
        ("C2", 2, 0),
    ]
    assert [v.order.target_id for v in svc.plan(ANALYST)] == ["C1", "C9", "C2"]


def test_outcomes_become_labels_and_hit_rates(svc: WorkOrderService) -> None:
    for target, outcome in (
        ("C1", Outcome.THEFT_CONFIRMED),
        ("C2", Outcome.NO_FINDING),
        ("C9", Outcome.UNREACHABLE),
    ):
        sup = SUP_N if target != "C9" else Principal("sun", Role.SUPERVISOR, "south")
        svc.assign(sup, oid(svc, target), "x", now_s=T0 + 10)
        svc.close(sup, oid(svc, target), outcome, now_s=T0 + DAY_S, recovered_kwh=100)
    orders = svc.find(ANALYST)
    labels = feedback_labels(orders)
    assert labels[["meter_id", "label"]].values.tolist() == [["C1", "theft"], ["C2", "normal"]]
    assert labels.loc[0, "stolen_kwh"] == 100 and labels.loc[0, "start"].startswith("2025-09")
    rates = {(h.detector, h.month): h for h in hit_rates(orders)}
    month = "2025-10"
    assert rates[("all", month)].closed == 3
    assert rates[("all", month)].inspected == 2
    assert rates[("all", month)].hit_rate == pytest.approx(0.5)
    assert rates[("theft_localiser", month)].hit_rate == pytest.approx(1.0)
    assert rates[("meter_shape", month)].hit_rate == 0.0
    assert all(not math.isnan(h.hit_rate) for h in rates.values())
