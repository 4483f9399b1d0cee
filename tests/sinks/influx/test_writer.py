"""The batching writer against a scripted transport: batching, retries, outage, spill.

No server here: ``FakeServer`` answers like InfluxDB's /write (204, 400, 5xx, refused
connections) and a fake clock makes backoff and reconnect delays exact. The real
server is exercised in test_integration.py.
"""

from __future__ import annotations

import gzip
import itertools
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from sinks.influx import (
    HttpResponse,
    InfluxSettings,
    InfluxWriter,
    SinkBackpressure,
    TransportError,
)
from sinks.influx.http import auth_headers
from sinks.lineprotocol import Point

Answer = Callable[[list[str]], HttpResponse | Exception]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


class FakeServer:
    """Records the lines of every /write that succeeds; ``answer`` decides each reply."""

    def __init__(self) -> None:
        self.answer: Answer = lambda lines: HttpResponse(204, b"")
        self.written: list[str] = []
        self.requests: list[tuple[str, str, Mapping[str, str]]] = []

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout_s: float,
    ) -> HttpResponse:
        self.requests.append((method, url, headers))
        if "/query" in url:
            return HttpResponse(200, b'{"results":[{"statement_id":0}]}')
        raw = body or b""
        if headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        lines = raw.decode().splitlines()
        reply = self.answer(lines)
        if isinstance(reply, Exception):
            raise reply
        if 200 <= reply.status < 300:
            self.written.extend(lines)
        return reply

    @property
    def writes(self) -> int:
        return sum(1 for _, url, _ in self.requests if "/write" in url)


def down(lines: list[str]) -> Exception:
    return TransportError("connection refused")


def points(n: int, start: int = 0, measurement: str = "m") -> list[Point]:
    return [Point(measurement, {"k": "v"}, {"x": i}, i * 1_000_000_000) for i in range(start, n)]


def lines_of(values: range) -> list[str]:
    return [f"m,k=v x={i}i {i}" for i in values]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


def make_writer(
    server: FakeServer, clock: FakeClock, tmp_path: Path | None = None, **changes: object
) -> InfluxWriter:
    settings = InfluxSettings(
        url="http://influx.test:8086",
        database="db",
        spill_dir=(tmp_path / "spill") if tmp_path else None,
        **{"batch_points": 3, "max_buffer_points": 6, **changes},  # type: ignore[arg-type]
    )
    return InfluxWriter(settings, transport=server, monotonic=clock.monotonic, sleep=clock.sleep)


def test_sends_full_batches_in_order(server: FakeServer, clock: FakeClock) -> None:
    w = make_writer(server, clock)
    w.write(points(7))
    assert server.written == lines_of(range(7))
    assert server.writes == 3  # 3 + 3 + 1
    _, url, _ = server.requests[1]
    assert url == "http://influx.test:8086/write?db=db&precision=s"


def test_partial_batch_waits_for_the_flush_interval(server: FakeServer, clock: FakeClock) -> None:
    w = make_writer(server, clock, flush_interval_s=5.0)
    w.write(points(2))
    assert server.written == []
    clock.now += 5.0
    w.tick()
    assert server.written == lines_of(range(2))


def test_retention_policy_and_database_creation(server: FakeServer, clock: FakeClock) -> None:
    w = make_writer(server, clock, retention_policy="one year")
    w.write(points(3))
    method, url, _ = server.requests[0]
    assert (method, url) == ("POST", "http://influx.test:8086/query")
    assert server.requests[1][1].endswith("/write?db=db&precision=s&rp=one+year")


def test_transient_errors_are_retried_with_growing_backoff(
    server: FakeServer, clock: FakeClock
) -> None:
    replies = iter([HttpResponse(503, b"busy"), TransportError("reset"), HttpResponse(204, b"")])
    server.answer = lambda lines: next(replies)
    w = make_writer(server, clock, retry_base_s=0.2, retry_max_s=2.0)
    w.write(points(3))
    assert server.written == lines_of(range(3))
    h = w.health()
    assert (h.retries_total, h.write_failures_total, h.available) == (2, 2, True)
    # jittered in [0.5, 1] x 0.2 s, then x 0.4 s
    assert 0.1 <= clock.sleeps[0] <= 0.2 and 0.2 <= clock.sleeps[1] <= 0.4


def test_outage_spills_and_recovery_replays_in_order(
    server: FakeServer, clock: FakeClock, tmp_path: Path
) -> None:
    w = make_writer(server, clock, tmp_path, max_retries=1)
    w.write(points(3))  # written
    server.answer = down
    for lo in range(3, 30, 3):
        before = len(server.requests)
        w.write(points(lo + 3, lo))
        # while down, at most one probe per reconnect delay: the stream is not held up
        assert len(server.requests) - before <= 2
        clock.now += 0.5
    h = w.health()
    assert not h.available
    assert h.spilled_points_total >= 18 and h.spill_pending_points + h.buffer_points == 27
    server.answer = lambda lines: HttpResponse(204, b"")
    clock.now += 60
    assert w.flush()
    assert server.written == lines_of(range(30))  # nothing lost, nothing reordered
    h = w.health()
    assert (h.available, h.spill_pending_points, h.buffer_points) == (True, 0, 0)
    assert h.replayed_points_total == h.spilled_points_total
    assert not list((tmp_path / "spill").glob("spill-*.lp"))


def test_reconnect_delay_doubles_up_to_the_cap(server: FakeServer, clock: FakeClock) -> None:
    server.answer = down
    w = make_writer(server, clock, max_retries=0, reconnect_max_s=4.0, max_buffer_points=100)
    w.write(points(3))
    probes = []
    for _ in range(40):
        before = server.writes
        clock.now += 0.5
        w.flush()
        if server.writes > before:
            probes.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert gaps[:3] == [2.0, 4.0, 4.0]


def test_timeout_is_not_retried_at_once(server: FakeServer, clock: FakeClock) -> None:
    server.answer = lambda lines: TransportError("timed out", timed_out=True)
    w = make_writer(server, clock, max_buffer_points=100)
    w.write(points(3))
    assert server.writes == 1 and clock.sleeps == []
    assert not w.health().available


def test_refused_lines_are_isolated_and_dead_lettered(
    server: FakeServer, clock: FakeClock, tmp_path: Path
) -> None:
    def answer(lines: list[str]) -> HttpResponse:
        if any("x=4i" in line for line in lines):
            return HttpResponse(400, b'{"error":"partial write: field type conflict dropped=1"}')
        return HttpResponse(204, b"")

    server.answer = answer
    w = make_writer(server, clock, tmp_path, batch_points=6, max_buffer_points=12)
    w.write(points(6))
    assert server.written == [ln for ln in lines_of(range(6)) if "x=4i" not in ln]
    assert w.health().lines_rejected_total == 1
    rejected = (tmp_path / "spill" / "rejected.lp").read_text().splitlines()
    assert rejected[0].startswith("# HTTP 400: ") and rejected[1] == "m,k=v x=4i 4"


def test_a_400_about_the_request_is_an_outage_not_bad_data(
    server: FakeServer, clock: FakeClock
) -> None:
    server.answer = lambda lines: HttpResponse(400, b'{"error":"database is required"}')
    w = make_writer(server, clock, max_buffer_points=100)
    w.write(points(3))
    h = w.health()
    assert (h.available, h.lines_rejected_total, h.buffer_points) == (False, 0, 3)
    assert "database is required" in h.last_error


def test_missing_database_is_created_again(server: FakeServer, clock: FakeClock) -> None:
    replies = iter([HttpResponse(404, b'{"error":"database not found: \\"db\\""}')])
    server.answer = lambda lines: next(replies, HttpResponse(204, b""))
    w = make_writer(server, clock, max_buffer_points=100)
    w.write(points(3))
    clock.now += 2
    assert w.flush()
    queries = [url for _, url, _ in server.requests if url.endswith("/query")]
    assert len(queries) == 2


def test_full_buffer_without_spill_dir_is_backpressure(
    server: FakeServer, clock: FakeClock
) -> None:
    server.answer = down
    w = make_writer(server, clock)
    w.write(points(3))
    with pytest.raises(SinkBackpressure, match="no spill directory"):
        w.write(points(9, 3))


def test_full_spill_is_backpressure(server: FakeServer, clock: FakeClock, tmp_path: Path) -> None:
    server.answer = down
    w = make_writer(server, clock, tmp_path, max_spill_bytes=200)
    with pytest.raises(SinkBackpressure, match="would exceed"):
        for lo in range(0, 60, 3):
            w.write(points(lo + 3, lo))


def test_close_keeps_unsent_points_for_the_next_writer(
    server: FakeServer, clock: FakeClock, tmp_path: Path
) -> None:
    server.answer = down
    w = make_writer(server, clock, tmp_path, max_buffer_points=100)
    w.write(points(5))
    h = w.close(drain_timeout_s=3.0)
    assert (h.buffer_points, h.spill_pending_points) == (0, 5)
    server.answer = lambda lines: HttpResponse(204, b"")
    w2 = make_writer(server, clock, tmp_path)
    assert w2.health().spill_pending_points == 5
    w2.write(points(7, 5))
    assert w2.flush()
    assert server.written == lines_of(range(7))


def test_close_waits_for_a_short_outage(server: FakeServer, clock: FakeClock) -> None:
    calls = {"n": 0}

    def answer(lines: list[str]) -> HttpResponse | Exception:
        calls["n"] += 1
        return TransportError("refused") if calls["n"] <= 4 else HttpResponse(204, b"")

    server.answer = answer
    w = make_writer(server, clock, max_retries=0, max_buffer_points=100)
    w.write(points(2))
    w.tick()
    h = w.close(drain_timeout_s=30.0)
    assert (h.buffer_points, h.points_written_total) == (0, 2)


def test_non_finite_values_never_poison_a_batch(server: FakeServer, clock: FakeClock) -> None:
    w = make_writer(server, clock)
    w.write(
        [
            Point("m", {"k": "v"}, {"x": 1.0, "bad": math.nan}, 0),
            Point("m", {"k": "v"}, {"bad": math.inf}, 1_000_000_000),
            Point("m", {"k": "v"}, {"x": 3.0}, 2_000_000_000),
        ]
    )
    w.flush()
    assert server.written == ["m,k=v x=1.0 0", "m,k=v x=3.0 2"]
    h = w.health()
    assert (h.points_added_total, h.points_dropped_total, h.fields_dropped_total) == (3, 1, 2)


def test_gzip(server: FakeServer, clock: FakeClock) -> None:
    w = make_writer(server, clock, gzip=True)
    w.write(points(3))
    assert server.written == lines_of(range(3))
    assert server.requests[-1][2]["Content-Encoding"] == "gzip"


def test_auth_headers() -> None:
    token = InfluxSettings(url="http://x", database="d", token="s3cret")
    assert auth_headers(token) == {"Authorization": "Token s3cret"}
    basic = InfluxSettings(url="http://x", database="d", username="u", password="p")
    assert auth_headers(basic) == {"Authorization": "Basic dTpw"}
    assert "s3cret" not in token.redacted()
    with pytest.raises(ValueError, match="not both"):
        InfluxSettings(url="http://x", database="d", token="t", username="u")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts and never answers: the slowest InfluxDB there is."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(sock.accept()[0])
            except TimeoutError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield int(sock.getsockname()[1])
    stop.set()
    t.join()
    for c in conns:
        c.close()
    sock.close()


def test_a_hanging_server_costs_one_timeout_then_the_stream_goes_on(silent_server: int) -> None:
    settings = InfluxSettings(
        url=f"http://127.0.0.1:{silent_server}",
        database="db",
        timeout_s=0.3,
        batch_points=10,
        max_buffer_points=1000,
        create_database=False,
        reconnect_max_s=30.0,
    )
    w = InfluxWriter(settings)
    t0 = time.monotonic()
    for lo in range(0, 200, 10):
        w.write(points(lo + 10, lo))
    elapsed = time.monotonic() - t0
    h = w.health()
    assert not h.available and "timed out" in h.last_error
    # one timeout, not one per batch: then no request until the reconnect delay (1 s)
    assert h.write_requests_total <= 2
    assert elapsed < 2.0
    assert h.buffer_points == 200
