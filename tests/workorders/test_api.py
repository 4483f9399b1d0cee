"""The REST API: authentication, role checks, lifecycle over HTTP, clear 4xx errors,
evidence, hit rates, state counts and the OpenAPI document."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from workorder_factories import DAY_S, T0, suspicion

from workorders.api import TokenBook, create_app
from workorders.model import WorkOrder
from workorders.policy import Directory
from workorders.service import WorkOrderService
from workorders.store import WorkOrderStore

TOKENS = TokenBook.from_dict(
    {
        "tokens": {
            "t-li": {"name": "li", "role": "inspector", "team": "north"},
            "sha256:" + hashlib.sha256(b"t-chen").hexdigest(): {
                "name": "chen",
                "role": "inspector",
                "team": "south",
            },
            "t-zhang": {"name": "zhang", "role": "supervisor", "team": "north"},
            "t-zhao": {"name": "zhao", "role": "analyst"},
        }
    }
)


@dataclass(frozen=True)
class FakePack:
    png: bytes
    csv: bytes
    summary: dict[str, Any]


class Clock:
    def __init__(self) -> None:
        self.now_s = T0

    def __call__(self) -> int:
        return self.now_s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(clock: Clock, tmp_path) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    store = WorkOrderStore(f"sqlite:///{tmp_path / 'o.db'}")
    svc = WorkOrderService(store, directory=Directory(team_by_area={"A1": "north", "A3": "south"}))
    svc.ingest(
        [
            suspicion("C1", area_id="A1", estimated_kwh=800),
            suspicion("C2", area_id="A1", estimated_kwh=300),
            suspicion("C9", area_id="A3", estimated_kwh=500),
        ],
        now_s=T0,
    )

    def evidence(order: WorkOrder) -> FakePack:
        return FakePack(
            b"\x89PNG-" + order.order_id.encode(), b"a,b\n1,2\n", {"id": order.order_id}
        )

    with TestClient(create_app(svc, TOKENS, evidence=evidence, clock=clock)) as c:
        yield c
    store.close()


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def order_id(client: TestClient, target: str) -> str:
    orders = client.get("/api/v1/orders", headers=h("t-zhao")).json()
    return next(o["order_id"] for o in orders if o["target_id"] == target)


def test_authentication(client: TestClient) -> None:
    assert client.get("/api/v1/orders").status_code == 401
    r = client.get("/api/v1/orders", headers=h("nope"))
    assert r.status_code == 401 and r.json()["detail"] == "unknown token"
    assert client.get("/api/v1/me", headers=h("t-chen")).json() == {
        "name": "chen",
        "role": "inspector",
        "team": "south",
    }


def test_inspector_reads_only_their_team(client: TestClient) -> None:
    mine = client.get("/api/v1/orders", headers=h("t-li")).json()
    assert [o["target_id"] for o in mine] == ["C1", "C2"]
    c9 = order_id(client, "C9")
    r = client.get(f"/api/v1/orders/{c9}", headers=h("t-li"))
    assert r.status_code == 404
    assert client.get(f"/api/v1/orders/{c9}/evidence.png", headers=h("t-li")).status_code == 404
    assert client.get("/api/v1/orders?team=south", headers=h("t-li")).json() == []


def test_lifecycle_over_http(client: TestClient, clock: Clock) -> None:
    c1 = order_id(client, "C1")
    r = client.post(f"/api/v1/orders/{c1}/assign", json={"assignee": "li"}, headers=h("t-li"))
    assert r.status_code == 403 and "supervisor" in r.json()["detail"]
    r = client.post(f"/api/v1/orders/{c1}/assign", json={"assignee": "li"}, headers=h("t-zhao"))
    assert r.status_code == 403
    r = client.post(f"/api/v1/orders/{c1}/assign", json={"assignee": "li"}, headers=h("t-zhang"))
    assert r.status_code == 200 and r.json()["state"] == "assigned"
    plan = client.get("/api/v1/plan?mine=true", headers=h("t-li")).json()
    assert [(v["rank"], v["order"]["target_id"]) for v in plan] == [(1, "C1")]
    clock.now_s += 3600
    assert client.post(f"/api/v1/orders/{c1}/start", headers=h("t-li")).json()["state"] == (
        "in_progress"
    )
    r = client.post(
        f"/api/v1/orders/{c1}/close",
        json={"outcome": "theft_confirmed", "notes": "bypass", "recovered_kwh": 512.5},
        headers=h("t-li"),
    )
    body = r.json()
    assert r.status_code == 200 and body["state"] == "closed"
    assert body["outcome"] == "theft_confirmed" and body["recovered_kwh"] == 512.5
    # Illegal transition: 409 with the reason.
    r = client.post(f"/api/v1/orders/{c1}/start", headers=h("t-li"))
    assert r.status_code == 409 and "closed" in r.json()["detail"]
    audit = client.get(f"/api/v1/orders/{c1}/audit", headers=h("t-zhao")).json()
    assert [(a["action"], a["actor"]) for a in audit] == [
        ("create", "lineloss"),
        ("assign", "zhang"),
        ("start", "li"),
        ("close", "li"),
    ]
    assert audit[-1]["detail"]["recovered_kwh"] == 512.5
    rates = client.get("/api/v1/hit-rates", headers=h("t-zhao")).json()
    assert {
        "detector": "all",
        "month": "2025-10",
        "closed": 1,
        "inspected": 1,
        "confirmed": 1,
        "hit_rate": 1.0,
    } in rates


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("close", {"outcome": "stolen"}, 422),
        ("close", {"outcome": "no_finding", "recovered_kwh": -3}, 422),
        ("assign", {}, 422),
        ("assign", {"assignee": ""}, 422),
        ("notes", {"notes": ""}, 422),
        ("close", {"outcome": "no_finding"}, 409),  # open orders must be assigned first
    ],
)
def test_bad_requests_get_clear_4xx(client: TestClient, path: str, body: dict, status: int) -> None:  # type: ignore[type-arg]
    c2 = order_id(client, "C2")
    r = client.post(f"/api/v1/orders/{c2}/{path}", json=body, headers=h("t-zhang"))
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_unknown_order_and_bad_query(client: TestClient) -> None:
    assert client.get("/api/v1/orders/WO-NOPE", headers=h("t-zhao")).status_code == 404
    assert client.get("/api/v1/orders?state=lost", headers=h("t-zhao")).status_code == 422
    assert client.get("/api/v1/orders?limit=0", headers=h("t-zhao")).status_code == 422


def test_overdue_filter_and_state_counts(client: TestClient, clock: Clock) -> None:
    assert client.get("/api/v1/orders?overdue=true", headers=h("t-zhao")).json() == []
    clock.now_s = T0 + 20 * DAY_S
    overdue = client.get("/api/v1/orders?overdue=true", headers=h("t-zhao")).json()
    assert len(overdue) == 3 and all(o["overdue"] for o in overdue)
    assert client.get("/api/v1/state-counts", headers=h("t-li")).status_code == 403
    counts = client.get("/api/v1/state-counts", headers=h("t-zhang")).json()
    assert counts == [
        {"team": "north", "state": "open", "orders": 2, "overdue": 2, "oldest_age_s": 20 * DAY_S}
    ]


def test_evidence_endpoints(client: TestClient) -> None:
    c1 = order_id(client, "C1")
    png = client.get(f"/api/v1/orders/{c1}/evidence.png", headers=h("t-li"))
    assert png.headers["content-type"] == "image/png" and png.content == b"\x89PNG-" + c1.encode()
    csv = client.get(f"/api/v1/orders/{c1}/evidence.csv", headers=h("t-li"))
    assert csv.text == "a,b\n1,2\n" and "attachment" in csv.headers["content-disposition"]
    assert client.get(f"/api/v1/orders/{c1}/evidence.json", headers=h("t-li")).json() == {"id": c1}


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    for p in (
        "/api/v1/orders",
        "/api/v1/orders/{order_id}",
        "/api/v1/orders/{order_id}/assign",
        "/api/v1/orders/{order_id}/close",
        "/api/v1/orders/{order_id}/evidence.png",
        "/api/v1/plan",
        "/api/v1/hit-rates",
    ):
        assert p in paths
    outcome = spec["components"]["schemas"]["Outcome"]["enum"]
    assert set(outcome) == {
        "theft_confirmed",
        "meter_fault",
        "topology_error",
        "no_finding",
        "unreachable",
    }
    page = client.get("/")
    assert page.status_code == 200 and "viewport" in page.text
