"""Fixtures for integration tests against the real InfluxDB that scripts/test starts.

``influx_url`` is the server from ``LINELOSS_INFLUX_URL`` (default
http://127.0.0.1:8086). If it does not answer, the test fails: integration tests
are never skipped, because a skipped test would hide a broken deployment.

Each test gets its own database (``influx_settings``), dropped afterwards, so tests
and concurrent runs never see each other's points. ``LocalInflux`` starts a second,
private instance (own port, own state dir) through scripts/influxdb-local, for tests
that stop and restart the server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sinks.influx import InfluxQLClient, InfluxSettings

REPO = Path(__file__).resolve().parents[2]
INFLUX_LOCAL = REPO / "scripts" / "influxdb-local"
DEFAULT_URL = "http://127.0.0.1:8086"


def ping(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/ping", timeout=timeout_s) as resp:
            return resp.status == 204
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture(scope="session")
def influx_url() -> str:
    url = os.environ.get("LINELOSS_INFLUX_URL", DEFAULT_URL)
    if not ping(url):
        pytest.fail(
            f"InfluxDB does not answer at {url} (LINELOSS_INFLUX_URL). Integration tests need "
            "the real server: run them through scripts/test, which starts it with "
            "scripts/influxdb-local start.",
            pytrace=False,
        )
    return url


def fresh_database(url: str, prefix: str = "lineloss_test") -> InfluxSettings:
    settings = InfluxSettings(url=url, database=f"{prefix}_{uuid.uuid4().hex[:10]}")
    InfluxQLClient(settings).query(f'CREATE DATABASE "{settings.database}"')
    return settings


def drop_database(settings: InfluxSettings) -> None:
    InfluxQLClient(settings).query(f'DROP DATABASE "{settings.database}"')


@pytest.fixture
def influx_settings(influx_url: str) -> Iterator[InfluxSettings]:
    """A new, empty database on the test server; dropped after the test."""
    settings = fresh_database(influx_url)
    yield settings
    drop_database(settings)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalInflux:
    """A private influxd started by scripts/influxdb-local (port and state of its own)."""

    state_dir: Path
    port: int
    rpc_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, command: str) -> str:
        env = {
            **os.environ,
            "LINELOSS_VAR": str(self.state_dir),
            "INFLUXDB_PORT": str(self.port),
            "INFLUXDB_RPC_PORT": str(self.rpc_port),
        }
        done = subprocess.run(
            [str(INFLUX_LOCAL), command],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"influxdb-local {command} failed: {done.stderr[-2000:]}")
        return done.stdout.strip()

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")


@pytest.fixture
def second_influx(tmp_path: Path) -> Iterator[LocalInflux]:
    """A second InfluxDB, ours to stop and restart in the middle of a stream."""
    port = free_port()
    rpc_port = free_port()
    while rpc_port == port:
        rpc_port = free_port()
    server = LocalInflux(tmp_path / "influx-var", port, rpc_port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
