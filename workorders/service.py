"""The work-order service: who may see and do what, on top of the pure rules and a store.

Roles (docs/workorders.md): an inspector reads their own team's orders and works
the ones assigned to them; a supervisor assigns, reopens and may work the orders of
their team (team ``*``: every team); an analyst reads everything and changes
nothing; the system (the detection pipeline) creates and updates orders from
suspicions. Time comes in as an argument: the service owns no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from lineloss.domain import Suspicion
from workorders.model import (
    ALL_TEAMS,
    Action,
    AuditEntry,
    OrderState,
    Outcome,
    Role,
    WorkOrder,
    transition,
)
from workorders.policy import (
    Directory,
    PlannedVisit,
    WorkOrderPolicy,
    daily_plan,
    plan,
)
from workorders.store import ConcurrentUpdate, OrderQuery, WorkOrderStore
from workorders.tariff import TariffBook


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    team: str = ALL_TEAMS

    def covers(self, team: str) -> bool:
        return self.team == ALL_TEAMS or self.team == team


SYSTEM = Principal("lineloss", Role.SYSTEM)


class Forbidden(PermissionError):
    """The principal's role or team does not allow this."""


class OrderNotFound(LookupError):
    pass


class OrderSink(Protocol):
    """Somewhere orders go after every change (a Kafka topic for the utility's own
    workforce system)."""

    def publish(self, orders: Sequence[WorkOrder]) -> None: ...


@dataclass(frozen=True)
class IngestReport:
    created: int
    updated: int
    reopened: int
    skipped: dict[str, int]


@dataclass
class WorkOrderService:
    store: WorkOrderStore
    policy: WorkOrderPolicy = field(default_factory=WorkOrderPolicy)
    tariffs: TariffBook = field(default_factory=TariffBook)
    directory: Directory = field(default_factory=Directory)
    sinks: Sequence[OrderSink] = ()

    def _publish(self, orders: Sequence[WorkOrder]) -> None:
        if orders:
            for sink in self.sinks:
                sink.publish(orders)

    # ------------------------------------------------------------- ingest

    def ingest(self, suspicions: Iterable[Suspicion], *, now_s: int) -> IngestReport:
        """Turn the detectors' current suspicions into created, updated and reopened
        orders. Idempotent: the same suspicions ingested twice change nothing."""
        suspicions = list(suspicions)
        for attempt in range(3):
            latest = self.store.by_targets([s.target_id for s in suspicions])
            decided = plan(
                suspicions,
                latest,
                now_s=now_s,
                directory=self.directory,
                tariffs=self.tariffs,
                policy=self.policy,
            )
            done: list[WorkOrder] = []
            try:
                for ch in decided.changes:
                    if ch.previous is None:
                        self.store.insert(ch.order, ch.audit)
                        done.append(ch.order)
                    else:
                        done.append(
                            self.store.update(
                                ch.order, ch.audit, expected_version=ch.previous.version
                            )
                        )
            except ConcurrentUpdate:
                # An inspector changed an order between our read and write: the
                # changes already stored are idempotent, so plan again.
                self._publish(done)
                if attempt == 2:
                    raise
                continue
            self._publish(done)
            kinds = [c.kind for c in decided.changes]
            skipped: dict[str, int] = {}
            for s in decided.skipped:
                skipped[s.reason] = skipped.get(s.reason, 0) + 1
            return IngestReport(
                created=kinds.count("create"),
                updated=kinds.count("update"),
                reopened=kinds.count("reopen"),
                skipped=skipped,
            )
        raise AssertionError("unreachable")

    # -------------------------------------------------------------- reads

    def can_read(self, who: Principal, order: WorkOrder) -> bool:
        if who.role in (Role.ANALYST, Role.SYSTEM):
            return True
        return who.covers(order.team)

    def get(self, who: Principal, order_id: str) -> WorkOrder:
        order = self.store.get(order_id)
        if order is None:
            raise OrderNotFound(f"no work order {order_id}")
        if not self.can_read(who, order):
            # Same answer as a missing order: an inspector learns nothing about
            # another team's suspects, not even that one exists.
            raise OrderNotFound(f"no work order {order_id}")
        return order

    def find(self, who: Principal, query: OrderQuery | None = None) -> list[WorkOrder]:
        query = query or OrderQuery()
        if who.role not in (Role.ANALYST, Role.SYSTEM) and who.team != ALL_TEAMS:
            teams = {who.team} if query.teams is None else set(query.teams) & {who.team}
            query = replace(query, teams=frozenset(teams))
        return self.store.find(query)

    def audit(self, who: Principal, order_id: str) -> list[AuditEntry]:
        self.get(who, order_id)
        return self.store.audit(order_id)

    def plan(self, who: Principal) -> list[PlannedVisit]:
        """The ranked visits of every team the principal can see, at team capacity."""
        states = frozenset({OrderState.OPEN, OrderState.ASSIGNED, OrderState.IN_PROGRESS})
        orders = self.find(who, OrderQuery(states=states, limit=1_000_000))
        return daily_plan(orders, self.policy)

    # ------------------------------------------------------------- writes

    def _act(
        self, who: Principal, order_id: str, action: Action, *, now_s: int, **kwargs: object
    ) -> WorkOrder:
        order = self.get(who, order_id)
        self._check(who, order, action)
        new, entry = transition(order, action, actor=who.name, now_s=now_s, **kwargs)  # type: ignore[arg-type]
        stored = self.store.update(new, entry, expected_version=order.version)
        self._publish([stored])
        return stored

    def _check(self, who: Principal, order: WorkOrder, action: Action) -> None:
        if who.role == Role.SYSTEM:
            return
        if who.role == Role.ANALYST:
            raise Forbidden("analysts read work orders; they do not change them")
        if not who.covers(order.team):
            raise Forbidden(f"{who.name} does not work for team {order.team}")
        if who.role == Role.SUPERVISOR:
            return
        # An inspector works only the orders assigned to them, and assigns nothing.
        if action in (Action.ASSIGN, Action.REOPEN):
            raise Forbidden(f"only a supervisor may {action.value} an order")
        if order.assignee != who.name:
            raise Forbidden(f"order {order.order_id} is assigned to {order.assignee or 'nobody'}")

    def assign(
        self, who: Principal, order_id: str, assignee: str, *, now_s: int, notes: str | None = None
    ) -> WorkOrder:
        return self._act(who, order_id, Action.ASSIGN, now_s=now_s, assignee=assignee, notes=notes)

    def start(self, who: Principal, order_id: str, *, now_s: int) -> WorkOrder:
        return self._act(who, order_id, Action.START, now_s=now_s)

    def close(
        self,
        who: Principal,
        order_id: str,
        outcome: Outcome,
        *,
        now_s: int,
        notes: str | None = None,
        recovered_kwh: float | None = None,
    ) -> WorkOrder:
        return self._act(
            who,
            order_id,
            Action.CLOSE,
            now_s=now_s,
            outcome=outcome,
            notes=notes,
            recovered_kwh=recovered_kwh,
        )

    def note(self, who: Principal, order_id: str, notes: str, *, now_s: int) -> WorkOrder:
        if not notes.strip():
            raise ValueError("a note needs text")
        return self._act(who, order_id, Action.NOTE, now_s=now_s, notes=notes)

    def reopen(
        self, who: Principal, order_id: str, *, now_s: int, notes: str | None = None
    ) -> WorkOrder:
        """A supervisor reopens a closed order by hand (a wrong close): the evidence
        stays, the due date restarts at its class's SLA."""
        order = self.get(who, order_id)
        sla_s = self.policy.priority_class(order.evidence.priority).sla_s
        return self._act(
            who,
            order_id,
            Action.REOPEN,
            now_s=now_s,
            evidence=order.evidence,
            due_s=now_s + sla_s,
            notes=notes,
        )
