"""Work-order storage: SQLite by default, PostgreSQL in production, same code.

Both speak DB-API; the only differences are the parameter marker and how a
transaction is opened, kept in :class:`_Dialect`. The store persists what the pure
model decided and enforces two invariants the database can guard better than the
application: one order per target (a unique index), and no lost update (every
change names the version it replaces; a concurrent writer makes it fail with
:class:`ConcurrentUpdate` instead of silently overwriting). Every change is written
with its audit entry in one transaction, keyed by (order, version), so the trail
has exactly one entry per version.

URLs: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``,
``sqlite:///:memory:``, ``postgresql://user@host:port/db`` (psycopg 3).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from workorders.model import (
    Action,
    AuditEntry,
    Evidence,
    OrderState,
    Outcome,
    WorkOrder,
)

_SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS work_orders (
        order_id TEXT PRIMARY KEY,
        target_id TEXT NOT NULL,
        target_kind TEXT NOT NULL,
        area_id TEXT,
        team TEXT NOT NULL,
        customer_class TEXT,
        category TEXT NOT NULL,
        score DOUBLE PRECISION NOT NULL,
        estimated_kwh DOUBLE PRECISION NOT NULL,
        estimated_value DOUBLE PRECISION NOT NULL,
        priority DOUBLE PRECISION NOT NULL,
        priority_class TEXT NOT NULL,
        reason TEXT NOT NULL,
        detector TEXT NOT NULL,
        detector_scores TEXT NOT NULL,
        start_s BIGINT,
        first_detected_s BIGINT NOT NULL,
        state TEXT NOT NULL,
        created_s BIGINT NOT NULL,
        updated_s BIGINT NOT NULL,
        due_s BIGINT NOT NULL,
        assignee TEXT,
        outcome TEXT,
        notes TEXT NOT NULL,
        recovered_kwh DOUBLE PRECISION,
        closed_s BIGINT,
        reopen_count INTEGER NOT NULL,
        version INTEGER NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX IF NOT EXISTS work_orders_target ON work_orders (target_id)",
    "CREATE INDEX IF NOT EXISTS work_orders_team_state ON work_orders (team, state)",
    """
    CREATE TABLE IF NOT EXISTS work_order_audit (
        order_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        at_s BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (order_id, version)
    )
    """,
]

_COLUMNS = [
    "order_id",
    "target_id",
    "target_kind",
    "area_id",
    "team",
    "customer_class",
    "category",
    "score",
    "estimated_kwh",
    "estimated_value",
    "priority",
    "priority_class",
    "reason",
    "detector",
    "detector_scores",
    "start_s",
    "first_detected_s",
    "state",
    "created_s",
    "updated_s",
    "due_s",
    "assignee",
    "outcome",
    "notes",
    "recovered_kwh",
    "closed_s",
    "reopen_count",
    "version",
]


class ConcurrentUpdate(RuntimeError):
    """The order changed since it was read; re-read it and try again."""


class DuplicateOrder(RuntimeError):
    """An order for this target already exists."""


@dataclass(frozen=True)
class OrderQuery:
    teams: frozenset[str] | None = None  # None = every team
    states: frozenset[OrderState] | None = None
    assignee: str | None = None
    category: str | None = None
    area_id: str | None = None
    overdue_at_s: int | None = None  # only orders overdue at this time
    limit: int = 1000

    @classmethod
    def closed(cls) -> OrderQuery:
        """Every closed order: what feedback labels and hit rates are made of."""
        return cls(states=frozenset({OrderState.CLOSED}), limit=10**9)


@dataclass(frozen=True)
class StateCount:
    team: str
    state: OrderState
    orders: int
    overdue: int
    oldest_age_s: int


def _to_row(o: WorkOrder) -> tuple[Any, ...]:
    ev = o.evidence
    return (
        o.order_id,
        o.target_id,
        o.target_kind,
        o.area_id,
        o.team,
        o.customer_class,
        ev.category,
        ev.score,
        ev.estimated_kwh,
        ev.estimated_value,
        ev.priority,
        ev.priority_class,
        ev.reason,
        ev.detector,
        json.dumps([list(p) for p in ev.detector_scores]),
        ev.start_s,
        ev.first_detected_s,
        o.state.value,
        o.created_s,
        o.updated_s,
        o.due_s,
        o.assignee,
        o.outcome.value if o.outcome else None,
        o.notes,
        o.recovered_kwh,
        o.closed_s,
        o.reopen_count,
        o.version,
    )


def _from_row(row: Sequence[Any]) -> WorkOrder:
    r = dict(zip(_COLUMNS, row, strict=True))
    return WorkOrder(
        order_id=r["order_id"],
        target_id=r["target_id"],
        target_kind=r["target_kind"],
        area_id=r["area_id"],
        team=r["team"],
        customer_class=r["customer_class"],
        evidence=Evidence(
            category=r["category"],
            score=float(r["score"]),
            estimated_kwh=float(r["estimated_kwh"]),
            estimated_value=float(r["estimated_value"]),
            priority=float(r["priority"]),
            priority_class=r["priority_class"],
            reason=r["reason"],
            detector=r["detector"],
            detector_scores=tuple((str(n), float(v)) for n, v in json.loads(r["detector_scores"])),
            start_s=None if r["start_s"] is None else int(r["start_s"]),
            first_detected_s=int(r["first_detected_s"]),
        ),
        state=OrderState(r["state"]),
        created_s=int(r["created_s"]),
        updated_s=int(r["updated_s"]),
        due_s=int(r["due_s"]),
        assignee=r["assignee"],
        outcome=Outcome(r["outcome"]) if r["outcome"] else None,
        notes=r["notes"],
        recovered_kwh=None if r["recovered_kwh"] is None else float(r["recovered_kwh"]),
        closed_s=None if r["closed_s"] is None else int(r["closed_s"]),
        reopen_count=int(r["reopen_count"]),
        version=int(r["version"]),
    )


class _Dialect:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            self.kind = "sqlite"
            path = url[len("sqlite:///") :]
            self.conn: Any = sqlite3.connect(
                path or ":memory:", check_same_thread=False, isolation_level=None
            )
            if path not in ("", ":memory:"):
                self.conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            self.conn.execute("PRAGMA busy_timeout=10000")
            self.integrity_error: type[Exception] = sqlite3.IntegrityError
        elif url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.kind = "postgresql"
            self.conn = psycopg.connect(url, autocommit=True)
            self.integrity_error = psycopg.errors.UniqueViolation
        else:
            raise ValueError(
                f"unsupported work-order store URL {url!r}: use sqlite:///PATH or postgresql://..."
            )

    def sql(self, text: str) -> str:
        return text if self.kind == "sqlite" else text.replace("?", "%s")

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        if self.kind == "sqlite":
            cur = self.conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
        else:
            with self.conn.transaction(), self.conn.cursor() as cur:
                yield cur


class WorkOrderStore:
    """Thread-safe (one connection behind a lock: the API's request threads share it)."""

    def __init__(self, url: str) -> None:
        self._db = _Dialect(url)
        self._lock = threading.RLock()
        self.url = url
        with self._lock, self._db.transaction() as cur:
            for stmt in _SCHEMA:
                cur.execute(stmt)

    @property
    def kind(self) -> str:
        return self._db.kind

    def close(self) -> None:
        self._db.conn.close()

    def __enter__(self) -> WorkOrderStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reads

    def _select(
        self, where: str = "", params: Sequence[Any] = (), tail: str = ""
    ) -> list[WorkOrder]:
        q = f"SELECT {', '.join(_COLUMNS)} FROM work_orders {where} {tail}"
        with self._lock, self._db.transaction() as cur:
            cur.execute(self._db.sql(q), tuple(params))
            return [_from_row(r) for r in cur.fetchall()]

    def get(self, order_id: str) -> WorkOrder | None:
        rows = self._select("WHERE order_id = ?", (order_id,))
        return rows[0] if rows else None

    def by_targets(self, target_ids: Sequence[str]) -> dict[str, WorkOrder]:
        out: dict[str, WorkOrder] = {}
        ids = list(dict.fromkeys(target_ids))
        for lo in range(0, len(ids), 500):
            chunk = ids[lo : lo + 500]
            marks = ", ".join("?" * len(chunk))
            for o in self._select(f"WHERE target_id IN ({marks})", chunk):
                out[o.target_id] = o
        return out

    def find(self, query: OrderQuery | None = None) -> list[WorkOrder]:
        query = query or OrderQuery()
        where: list[str] = []
        params: list[Any] = []
        if query.teams is not None:
            if not query.teams:
                return []
            where.append(f"team IN ({', '.join('?' * len(query.teams))})")
            params.extend(sorted(query.teams))
        if query.states is not None:
            if not query.states:
                return []
            where.append(f"state IN ({', '.join('?' * len(query.states))})")
            params.extend(sorted(s.value for s in query.states))
        for col in ("assignee", "category", "area_id"):
            value = getattr(query, col)
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        if query.overdue_at_s is not None:
            where.append("state <> ? AND due_s < ?")
            params.extend([OrderState.CLOSED.value, query.overdue_at_s])
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        return self._select(
            clause,
            params,
            f"ORDER BY priority DESC, due_s, order_id LIMIT {int(query.limit)}",
        )

    def audit(self, order_id: str) -> list[AuditEntry]:
        q = (
            "SELECT order_id, at_s, actor, action, from_state, to_state, detail "
            "FROM work_order_audit WHERE order_id = ? ORDER BY version"
        )
        with self._lock, self._db.transaction() as cur:
            cur.execute(self._db.sql(q), (order_id,))
            rows = cur.fetchall()
        return [
            AuditEntry(
                order_id=r[0],
                at_s=int(r[1]),
                actor=r[2],
                action=Action(r[3]),
                from_state=OrderState(r[4]) if r[4] else None,
                to_state=OrderState(r[5]),
                detail=r[6],
            )
            for r in rows
        ]

    def state_counts(self, now_s: int) -> list[StateCount]:
        q = "SELECT team, state, due_s, created_s FROM work_orders"
        with self._lock, self._db.transaction() as cur:
            cur.execute(q)
            rows = cur.fetchall()
        acc: dict[tuple[str, str], list[int]] = {}
        for team, state, due_s, created_s in rows:
            a = acc.setdefault((team, state), [0, 0, 0])
            a[0] += 1
            is_open = state != OrderState.CLOSED.value
            a[1] += int(is_open and now_s > due_s)
            if is_open:
                a[2] = max(a[2], now_s - int(created_s))
        return [
            StateCount(team, OrderState(state), n, overdue, oldest)
            for (team, state), (n, overdue, oldest) in sorted(acc.items())
        ]

    # ----------------------------------------------------------------- writes

    def _audit_row(self, cur: Any, order: WorkOrder, entry: AuditEntry) -> None:
        cur.execute(
            self._db.sql(
                "INSERT INTO work_order_audit (order_id, version, at_s, actor, action, "
                "from_state, to_state, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            (
                entry.order_id,
                order.version,
                entry.at_s,
                entry.actor,
                entry.action.value,
                entry.from_state.value if entry.from_state else None,
                entry.to_state.value,
                entry.detail,
            ),
        )

    def insert(self, order: WorkOrder, entry: AuditEntry) -> None:
        cols = ", ".join(_COLUMNS)
        marks = ", ".join("?" * len(_COLUMNS))
        try:
            with self._lock, self._db.transaction() as cur:
                cur.execute(
                    self._db.sql(f"INSERT INTO work_orders ({cols}) VALUES ({marks})"),
                    _to_row(order),
                )
                self._audit_row(cur, order, entry)
        except self._db.integrity_error as e:
            raise DuplicateOrder(f"an order for {order.target_id} already exists") from e

    def update(self, order: WorkOrder, entry: AuditEntry, *, expected_version: int) -> WorkOrder:
        """Store ``order`` as the next version of ``expected_version``; returns it with
        its new version."""
        stored = replace(order, version=expected_version + 1)
        sets = ", ".join(f"{c} = ?" for c in _COLUMNS[1:])
        with self._lock, self._db.transaction() as cur:
            cur.execute(
                self._db.sql(f"UPDATE work_orders SET {sets} WHERE order_id = ? AND version = ?"),
                (*_to_row(stored)[1:], order.order_id, expected_version),
            )
            if cur.rowcount != 1:
                raise ConcurrentUpdate(
                    f"order {order.order_id} changed since version {expected_version}"
                )
            self._audit_row(cur, stored, entry)
        return stored
