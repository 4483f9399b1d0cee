"""`lineloss dashboards publish` against a FAKE Grafana: request shapes only.

Grafana cannot run here. ``FakeGrafana`` is a tiny local HTTP server that answers
the few API calls publish makes the way Grafana documents them, and records the
requests; these tests check paths, methods, auth header and JSON bodies, nothing
about how a real Grafana would render the dashboards (the query tests cover what
the panels ask InfluxDB).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dashboards.generate import GENERATED_DIR
from dashboards.publish import InfluxDatasource, publish
from lineloss.cli import main


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGrafana:
    """State of the fake: which folder and datasource exist, what was requested."""

    folder_exists: bool = False
    datasource_exists: bool = False
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/api/folders/lineloss":
            if self.folder_exists:
                return 200, {"uid": "lineloss", "title": "Line loss"}
            return 404, {"message": "folder not found"}
        if method == "POST" and path == "/api/folders":
            self.folder_exists = True
            return 200, {"uid": body["uid"], "title": body["title"]}
        if method == "GET" and path == "/api/datasources/uid/lineloss-influxdb":
            if self.datasource_exists:
                return 200, {"uid": "lineloss-influxdb", "id": 7}
            return 404, {"message": "Data source not found"}
        if method == "POST" and path == "/api/datasources":
            self.datasource_exists = True
            return 200, {"id": 7, "message": "Datasource added"}
        if method == "PUT" and path == "/api/datasources/uid/lineloss-influxdb":
            return 200, {"id": 7, "message": "Datasource updated"}
        if method == "POST" and path == "/api/dashboards/db":
            uid = body["dashboard"]["uid"]
            return 200, {"status": "success", "uid": uid, "url": f"/d/{uid}/x", "version": 1}
        return 404, {"message": f"fake Grafana has no {method} {path}"}


@pytest.fixture
def fake_grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            fake.requests.append(Recorded(self.command, self.path, dict(self.headers), body))
            status, payload = fake.answer(self.command, self.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


def committed() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in GENERATED_DIR.glob("*.json")}


def test_publish_creates_folder_and_uploads_every_dashboard(fake_grafana: FakeGrafana) -> None:
    result = publish(fake_grafana.url, token="glsa_test")
    calls = [(r.method, r.path) for r in fake_grafana.requests]
    assert calls[:2] == [("GET", "/api/folders/lineloss"), ("POST", "/api/folders")]
    assert calls[2:] == [("POST", "/api/dashboards/db")] * len(committed())
    assert all(r.headers["Authorization"] == "Bearer glsa_test" for r in fake_grafana.requests)
    assert fake_grafana.requests[1].body == {"title": "Line loss", "uid": "lineloss"}
    uploads = {r.body["dashboard"]["uid"]: r.body for r in fake_grafana.requests[2:]}
    for uid, model in committed().items():
        body = uploads[uid]
        assert (body["folderUid"], body["overwrite"]) == ("lineloss", True)
        assert body["dashboard"] == {**model, "id": None}
    assert sorted(uid for uid, _ in result.dashboards) == sorted(committed())
    assert result.datasource_uid is None


def test_publish_again_reuses_folder_and_updates_datasource(fake_grafana: FakeGrafana) -> None:
    fake_grafana.folder_exists = fake_grafana.datasource_exists = True
    publish(
        fake_grafana.url,
        token="t",
        datasource=InfluxDatasource("http://influxdb:8086", "lineloss", token="influx-secret"),
    )
    calls = [(r.method, r.path) for r in fake_grafana.requests]
    assert ("POST", "/api/folders") not in calls
    put = next(r for r in fake_grafana.requests if r.method == "PUT")
    assert put.path == "/api/datasources/uid/lineloss-influxdb"
    assert put.body["type"] == "influxdb" and put.body["url"] == "http://influxdb:8086"
    assert put.body["jsonData"]["dbName"] == "lineloss"
    assert put.body["jsonData"]["httpHeaderName1"] == "Authorization"
    assert put.body["secureJsonData"] == {"httpHeaderValue1": "Token influx-secret"}


def test_cli_publish_creates_the_datasource(
    fake_grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "dashboards",
            "publish",
            "--url",
            fake_grafana.url,
            "--token",
            "tok",
            "--influx-url",
            "http://influxdb:8086",
            "--influx-db",
            "lineloss",
        ]
    )
    assert code == 0
    post = next(r for r in fake_grafana.requests if r.path == "/api/datasources")
    assert post.method == "POST" and post.body["uid"] == "lineloss-influxdb"
    out = capsys.readouterr().out
    assert "lineloss-overview" in out and fake_grafana.url in out


def test_cli_generate_writes_the_committed_files(tmp_path: Any) -> None:
    assert main(["dashboards", "generate", "--out", str(tmp_path)]) == 0
    for path in GENERATED_DIR.glob("*.json"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()
