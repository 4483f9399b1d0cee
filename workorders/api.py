"""REST API and the inspectors' web page, over the work-order service.

Thin: every rule lives in the service and the pure model; this module maps HTTP to
calls and errors to status codes (401 no or bad token, 403 role or team forbids,
404 no such order (or not yours to see), 409 the order's state forbids the action
or it changed meanwhile, 422 a malformed request). The OpenAPI document is at
``/openapi.json`` and browsable at ``/docs``.

Authentication is a bearer token per person, mapped to a name, a role and a team by
a tokens file (docs/workorders.md). The clock is injected, so tests control time.
"""

import hashlib
import hmac
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from workorders.feedback import hit_rates
from workorders.model import ALL_TEAMS, AuditEntry, IllegalTransition, OrderState, Outcome, Role
from workorders.model import WorkOrder as Order
from workorders.policy import PlannedVisit
from workorders.service import Forbidden, OrderNotFound, Principal, WorkOrderService
from workorders.store import ConcurrentUpdate, OrderQuery

WEB_PAGE = Path(__file__).with_name("web") / "index.html"


@dataclass(frozen=True)
class TokenBook:
    """Tokens -> principals. Entries may hold the token itself or ``sha256:<hex>`` of
    it, so the file on disk need not contain usable secrets."""

    entries: Mapping[str, Principal]

    def principal(self, token: str) -> Principal | None:
        digest = "sha256:" + hashlib.sha256(token.encode()).hexdigest()
        for key, who in self.entries.items():
            if hmac.compare_digest(key, token) or hmac.compare_digest(key, digest):
                return who
        return None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TokenBook":
        """``{"tokens": {"<token or sha256:hex>": {"name": "li", "role": "inspector",
        "team": "north"}}}``"""
        entries = {}
        for key, spec in data["tokens"].items():
            role = Role(spec["role"])
            if role == Role.SYSTEM:
                raise ValueError("the system role is not for people")
            entries[str(key)] = Principal(str(spec["name"]), role, str(spec.get("team", ALL_TEAMS)))
        return cls(entries)

    @classmethod
    def from_file(cls, path: Path) -> "TokenBook":
        return cls.from_dict(json.loads(path.read_text()))


# ----------------------------------------------------------------- schemas


class EvidenceOut(BaseModel):
    category: str
    score: float
    estimated_kwh: float
    estimated_value: float
    priority: float = Field(description="expected value: score x estimated_value")
    priority_class: str
    reason: str
    detector: str
    detector_scores: dict[str, float]
    start: str | None
    first_detected: str


class OrderOut(BaseModel):
    order_id: str
    target_id: str
    target_kind: str
    area_id: str | None
    team: str
    customer_class: str | None
    state: OrderState
    assignee: str | None
    outcome: Outcome | None
    notes: str
    recovered_kwh: float | None
    created: str
    updated: str
    due: str
    overdue: bool
    closed: str | None
    reopen_count: int
    version: int
    evidence: EvidenceOut


class VisitOut(BaseModel):
    rank: int = Field(description="1 = the team's most valuable open order")
    visit_day: int = Field(description="0 = today at the team's daily capacity")
    order: OrderOut


class AuditOut(BaseModel):
    at: str
    actor: str
    action: str
    from_state: str | None
    to_state: str
    detail: dict[str, Any]


class AssignIn(BaseModel):
    assignee: str = Field(min_length=1, max_length=200)
    notes: str | None = Field(default=None, max_length=4000)


class CloseIn(BaseModel):
    outcome: Outcome
    notes: str | None = Field(default=None, max_length=4000)
    recovered_kwh: float | None = Field(default=None, ge=0)


class NoteIn(BaseModel):
    notes: str = Field(min_length=1, max_length=4000)


class ReopenIn(BaseModel):
    notes: str | None = Field(default=None, max_length=4000)


class HitRateOut(BaseModel):
    detector: str
    month: str
    closed: int
    inspected: int
    confirmed: int
    hit_rate: float | None


class StateCountOut(BaseModel):
    team: str
    state: OrderState
    orders: int
    overdue: int
    oldest_age_s: int


class MeOut(BaseModel):
    name: str
    role: Role
    team: str


def _iso(ts_s: int | None) -> str | None:
    if ts_s is None:
        return None
    return datetime.fromtimestamp(ts_s, UTC).isoformat().replace("+00:00", "Z")


def order_out(o: Order, now_s: int) -> OrderOut:
    ev = o.evidence
    return OrderOut(
        order_id=o.order_id,
        target_id=o.target_id,
        target_kind=o.target_kind,
        area_id=o.area_id,
        team=o.team,
        customer_class=o.customer_class,
        state=o.state,
        assignee=o.assignee,
        outcome=o.outcome,
        notes=o.notes,
        recovered_kwh=o.recovered_kwh,
        created=_iso(o.created_s) or "",
        updated=_iso(o.updated_s) or "",
        due=_iso(o.due_s) or "",
        overdue=o.is_overdue(now_s),
        closed=_iso(o.closed_s),
        reopen_count=o.reopen_count,
        version=o.version,
        evidence=EvidenceOut(
            category=ev.category,
            score=ev.score,
            estimated_kwh=ev.estimated_kwh,
            estimated_value=ev.estimated_value,
            priority=ev.priority,
            priority_class=ev.priority_class,
            reason=ev.reason,
            detector=ev.detector,
            detector_scores=dict(ev.detector_scores),
            start=_iso(ev.start_s),
            first_detected=_iso(ev.first_detected_s) or "",
        ),
    )


def _audit_out(a: AuditEntry) -> AuditOut:
    return AuditOut(
        at=_iso(a.at_s) or "",
        actor=a.actor,
        action=a.action.value,
        from_state=a.from_state.value if a.from_state else None,
        to_state=a.to_state.value,
        detail=a.detail_dict(),
    )


# ---------------------------------------------------------------------- app

EvidenceFn = Callable[[Order], Any]  # -> an EvidencePack (png, csv, summary)


def create_app(
    service: WorkOrderService,
    tokens: TokenBook,
    *,
    evidence: EvidenceFn | None = None,
    clock: Callable[[], int] = lambda: int(time.time()),
    tz: str = "Asia/Shanghai",
) -> FastAPI:
    app = FastAPI(
        title="lineloss work orders",
        version="1",
        description=(
            "Ranked suspicion work orders for inspectors (用电检查): list, assign, work, "
            "close with an outcome, fetch the evidence. Bearer token per person; roles "
            "inspector (own team), supervisor (assigns), analyst (reads all)."
        ),
    )

    def principal(authorization: Annotated[str | None, Header()] = None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
        who = tokens.principal(authorization[7:].strip())
        if who is None:
            raise HTTPException(401, "unknown token", {"WWW-Authenticate": "Bearer"})
        return who

    Who = Annotated[Principal, Depends(principal)]

    @app.exception_handler(OrderNotFound)
    async def _not_found(_: Request, exc: OrderNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(IllegalTransition)
    async def _illegal(_: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(ConcurrentUpdate)
    async def _conflict(_: Request, exc: ConcurrentUpdate) -> JSONResponse:
        return JSONResponse({"detail": f"{exc}; reload and retry"}, status_code=409)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(WEB_PAGE.read_text(encoding="utf-8"))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "store": service.store.kind}

    @app.get("/api/v1/me", response_model=MeOut)
    def me(who: Who) -> MeOut:
        return MeOut(name=who.name, role=who.role, team=who.team)

    @app.get("/api/v1/orders", response_model=list[OrderOut])
    def list_orders(
        who: Who,
        state: Annotated[list[OrderState] | None, Query()] = None,
        team: str | None = None,
        assignee: str | None = None,
        category: str | None = None,
        area_id: str | None = None,
        overdue: bool = False,
        limit: Annotated[int, Query(ge=1, le=10000)] = 500,
    ) -> list[OrderOut]:
        now_s = clock()
        q = OrderQuery(
            teams=frozenset({team}) if team else None,
            states=frozenset(state) if state else None,
            assignee=assignee,
            category=category,
            area_id=area_id,
            overdue_at_s=now_s if overdue else None,
            limit=limit,
        )
        return [order_out(o, now_s) for o in service.find(who, q)]

    @app.get("/api/v1/plan", response_model=list[VisitOut])
    def plan(who: Who, mine: bool = False) -> list[VisitOut]:
        """Open orders ranked by expected value, spread over days at each team's
        capacity. ``mine=true``: only the orders assigned to the caller."""
        now_s = clock()
        visits: list[PlannedVisit] = service.plan(who)
        if mine:
            visits = [v for v in visits if v.order.assignee == who.name]
        return [
            VisitOut(rank=v.rank, visit_day=v.visit_day, order=order_out(v.order, now_s))
            for v in visits
        ]

    @app.get("/api/v1/orders/{order_id}", response_model=OrderOut)
    def get_order(who: Who, order_id: str) -> OrderOut:
        return order_out(service.get(who, order_id), clock())

    @app.get("/api/v1/orders/{order_id}/audit", response_model=list[AuditOut])
    def get_audit(who: Who, order_id: str) -> list[AuditOut]:
        return [_audit_out(a) for a in service.audit(who, order_id)]

    @app.post("/api/v1/orders/{order_id}/assign", response_model=OrderOut)
    def assign(who: Who, order_id: str, body: AssignIn) -> OrderOut:
        now_s = clock()
        o = service.assign(who, order_id, body.assignee, now_s=now_s, notes=body.notes)
        return order_out(o, now_s)

    @app.post("/api/v1/orders/{order_id}/start", response_model=OrderOut)
    def start(who: Who, order_id: str) -> OrderOut:
        now_s = clock()
        return order_out(service.start(who, order_id, now_s=now_s), now_s)

    @app.post("/api/v1/orders/{order_id}/close", response_model=OrderOut)
    def close(who: Who, order_id: str, body: CloseIn) -> OrderOut:
        now_s = clock()
        o = service.close(
            who,
            order_id,
            body.outcome,
            now_s=now_s,
            notes=body.notes,
            recovered_kwh=body.recovered_kwh,
        )
        return order_out(o, now_s)

    @app.post("/api/v1/orders/{order_id}/reopen", response_model=OrderOut)
    def reopen(who: Who, order_id: str, body: ReopenIn) -> OrderOut:
        now_s = clock()
        return order_out(service.reopen(who, order_id, now_s=now_s, notes=body.notes), now_s)

    @app.post("/api/v1/orders/{order_id}/notes", response_model=OrderOut)
    def note(who: Who, order_id: str, body: NoteIn) -> OrderOut:
        now_s = clock()
        return order_out(service.note(who, order_id, body.notes, now_s=now_s), now_s)

    def _pack(who: Principal, order_id: str) -> Any:
        order = service.get(who, order_id)
        if evidence is None:
            raise HTTPException(404, "no evidence source configured for this server")
        return evidence(order)

    @app.get(
        "/api/v1/orders/{order_id}/evidence.png",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def evidence_png(who: Who, order_id: str) -> Response:
        return Response(_pack(who, order_id).png, media_type="image/png")

    @app.get(
        "/api/v1/orders/{order_id}/evidence.csv",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}},
    )
    def evidence_csv(who: Who, order_id: str) -> Response:
        return Response(
            _pack(who, order_id).csv,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{order_id}.csv"'},
        )

    @app.get("/api/v1/orders/{order_id}/evidence.json")
    def evidence_json(who: Who, order_id: str) -> dict[str, Any]:
        summary: dict[str, Any] = _pack(who, order_id).summary
        return summary

    @app.get("/api/v1/hit-rates", response_model=list[HitRateOut])
    def get_hit_rates(who: Who) -> list[HitRateOut]:
        """Share of inspected orders confirmed as theft or a meter fault, per detector
        and month of closing, over the orders the caller can see."""
        closed = service.find(who, OrderQuery.closed())
        return [
            HitRateOut(
                detector=h.detector,
                month=h.month,
                closed=h.closed,
                inspected=h.inspected,
                confirmed=h.confirmed,
                hit_rate=None if math.isnan(h.hit_rate) else h.hit_rate,
            )
            for h in hit_rates(closed, tz=tz)
        ]

    @app.get("/api/v1/state-counts", response_model=list[StateCountOut])
    def state_counts(who: Who) -> list[StateCountOut]:
        if who.role == Role.INSPECTOR:
            raise Forbidden("state counts are for supervisors and analysts")
        return [
            StateCountOut(**vars(c))
            for c in service.store.state_counts(clock())
            if who.role == Role.ANALYST or who.covers(c.team)
        ]

    return app
