"""The store on SQLite and on the real PostgreSQL: round trip, one order per target,
no lost update, the audit trail, queries and state counts."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from workorder_factories import DAY_S, T0, suspicion

from workorders.model import Action, OrderState, Outcome, WorkOrder, transition
from workorders.policy import Directory, WorkOrderPolicy, plan
from workorders.store import ConcurrentUpdate, DuplicateOrder, OrderQuery, WorkOrderStore
from workorders.tariff import TariffBook


def new_orders(*specs: tuple[str, str, float]) -> list[tuple[WorkOrder, object]]:
    sus = [suspicion(t, area_id=a, estimated_kwh=kwh) for t, a, kwh in specs]
    p = plan(
        sus,
        {},
        now_s=T0,
        directory=Directory(),
        tariffs=TariffBook(),
        policy=WorkOrderPolicy(),
    )
    return [(c.order, c.audit) for c in p.changes]


def test_round_trip_and_unique_target(store: WorkOrderStore) -> None:
    ((order, audit),) = new_orders(("C1", "A1", 250.0))
    store.insert(order, audit)  # type: ignore[arg-type]
    assert store.get(order.order_id) == order
    assert store.by_targets(["C1", "nope"]) == {"C1": order}
    assert store.get("WO-missing") is None
    with pytest.raises(DuplicateOrder):
        store.insert(replace(order, order_id="WO-OTHER"), audit)  # type: ignore[arg-type]
    # The failed insert left nothing behind (neither order nor audit row).
    assert [o.order_id for o in store.find()] == [order.order_id]
    assert len(store.audit(order.order_id)) == 1


def test_every_change_is_audited_and_versions_guard_lost_updates(store: WorkOrderStore) -> None:
    ((order, audit),) = new_orders(("C1", "A1", 250.0))
    store.insert(order, audit)  # type: ignore[arg-type]
    o1, e1 = transition(order, Action.ASSIGN, actor="sup", now_s=T0 + 60, assignee="li")
    stored = store.update(o1, e1, expected_version=1)
    assert stored.version == 2
    # A second writer that read version 1 loses, loudly, and changes nothing.
    o_stale, e_stale = transition(order, Action.ASSIGN, actor="sup2", now_s=T0 + 61, assignee="x")
    with pytest.raises(ConcurrentUpdate):
        store.update(o_stale, e_stale, expected_version=1)
    o2, e2 = transition(stored, Action.START, actor="li", now_s=T0 + 3600)
    stored = store.update(o2, e2, expected_version=2)
    o3, e3 = transition(
        stored,
        Action.CLOSE,
        actor="li",
        now_s=T0 + 7200,
        outcome=Outcome.THEFT_CONFIRMED,
        notes="bypass cable, 电表箱",
        recovered_kwh=310.5,
    )
    stored = store.update(o3, e3, expected_version=3)
    assert store.get(order.order_id) == stored
    trail = store.audit(order.order_id)
    assert [(a.action, a.actor, a.from_state, a.to_state) for a in trail] == [
        (Action.CREATE, "lineloss", None, OrderState.OPEN),
        (Action.ASSIGN, "sup", OrderState.OPEN, OrderState.ASSIGNED),
        (Action.START, "li", OrderState.ASSIGNED, OrderState.IN_PROGRESS),
        (Action.CLOSE, "li", OrderState.IN_PROGRESS, OrderState.CLOSED),
    ]
    assert [a.at_s for a in trail] == [T0, T0 + 60, T0 + 3600, T0 + 7200]
    assert trail[-1].detail_dict()["notes"] == "bypass cable, 电表箱"
    assert stored.recovered_kwh == 310.5 and stored.outcome == Outcome.THEFT_CONFIRMED


def test_concurrent_writers_one_wins(store_url: str) -> None:
    """Two connections racing on the same version: exactly one update lands."""
    with WorkOrderStore(store_url) as a, WorkOrderStore(store_url) as b:
        ((order, audit),) = new_orders(("C1", "A1", 250.0))
        a.insert(order, audit)  # type: ignore[arg-type]
        results: list[str] = []

        def assign(store: WorkOrderStore, who: str) -> None:
            o, e = transition(order, Action.ASSIGN, actor=who, now_s=T0 + 1, assignee=who)
            try:
                store.update(o, e, expected_version=1)
                results.append("ok")
            except ConcurrentUpdate:
                results.append("lost")

        threads = [threading.Thread(target=assign, args=(s, n)) for s, n in ((a, "x"), (b, "y"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["lost", "ok"]
        assert len(a.audit(order.order_id)) == 2


def test_queries_filter_and_rank(store: WorkOrderStore) -> None:
    for o, a in new_orders(("C1", "A1", 100.0), ("C2", "A1", 900.0), ("C3", "A2", 500.0)):
        store.insert(o, a)  # type: ignore[arg-type]
    assert [o.target_id for o in store.find()] == ["C2", "C3", "C1"]  # priority order
    assert [o.target_id for o in store.find(OrderQuery(teams=frozenset({"A1"})))] == ["C2", "C1"]
    assert store.find(OrderQuery(teams=frozenset())) == []
    assert [o.target_id for o in store.find(OrderQuery(area_id="A2"))] == ["C3"]
    assert store.find(OrderQuery(states=frozenset({OrderState.CLOSED}))) == []
    assert len(store.find(OrderQuery(limit=2))) == 2
    c2 = store.by_targets(["C2"])["C2"]
    o, e = transition(c2, Action.ASSIGN, actor="s", now_s=T0 + 1, assignee="li")
    store.update(o, e, expected_version=c2.version)
    assert [o.target_id for o in store.find(OrderQuery(assignee="li"))] == ["C2"]
    due = c2.due_s
    assert {o.target_id for o in store.find(OrderQuery(overdue_at_s=due + 1))} >= {"C2"}
    assert store.find(OrderQuery(overdue_at_s=T0)) == []


def test_state_counts_by_team_with_overdue_and_age(store: WorkOrderStore) -> None:
    for o, a in new_orders(("C1", "A1", 100.0), ("C2", "A1", 900.0), ("C3", "A2", 500.0)):
        store.insert(o, a)  # type: ignore[arg-type]
    c2 = store.by_targets(["C2"])["C2"]
    o, e = transition(c2, Action.ASSIGN, actor="s", now_s=T0 + 1, assignee="li")
    store.update(o, e, expected_version=c2.version)
    now = T0 + 30 * DAY_S  # everything open is overdue by now
    counts = {
        (c.team, c.state): (c.orders, c.overdue, c.oldest_age_s) for c in store.state_counts(now)
    }
    assert counts == {
        ("A1", OrderState.ASSIGNED): (1, 1, 30 * DAY_S),
        ("A1", OrderState.OPEN): (1, 1, 30 * DAY_S),
        ("A2", OrderState.OPEN): (1, 1, 30 * DAY_S),
    }


def test_unsupported_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="sqlite:///PATH or postgresql://"):
        WorkOrderStore("mysql://x")


def test_sqlite_store_survives_reopening_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'o.db'}"
    ((order, audit),) = new_orders(("C1", "A1", 250.0))
    with WorkOrderStore(url) as s:
        s.insert(order, audit)  # type: ignore[arg-type]
    with WorkOrderStore(url) as s:
        assert s.get(order.order_id) == order
