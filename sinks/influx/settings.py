"""Where and how the InfluxDB sink writes, read once at the edge (CLI, worker config)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sinks.lineprotocol import PRECISION_NS


@dataclass(frozen=True)
class InfluxSettings:
    """Connection and batching settings of the InfluxDB sink.

    The sink speaks the v1 HTTP API (``/write`` with line protocol, ``/query`` with
    InfluxQL), which InfluxDB 1.x serves natively and 2.x / 3.x serve as their v1
    compatibility API. Authentication is either a token (2.x/3.x: sent as
    ``Authorization: Token ...``) or a user name and password (1.x with auth on:
    HTTP basic auth), never both.

    Durations are in seconds, sizes in points (lines) or bytes as named.
    """

    url: str
    database: str
    retention_policy: str | None = None
    token: str | None = None
    username: str | None = None
    password: str | None = None
    precision: str = "s"
    # Each HTTP request gives up after this long: a slow server must not stall the stream.
    timeout_s: float = 10.0
    # Points per /write request; InfluxDB's own advice is 5,000 to 10,000 lines.
    batch_points: int = 5_000
    # Points held in memory while InfluxDB is down before they go to the spill directory.
    max_buffer_points: int = 50_000
    # A partly filled batch is sent once it is this old (streaming workers call tick()).
    flush_interval_s: float = 1.0
    # Retries of one request before the server is declared down, with exponential
    # backoff from retry_base_s (doubling, jittered) capped at retry_max_s.
    max_retries: int = 3
    retry_base_s: float = 0.2
    retry_max_s: float = 2.0
    # While down, the next attempt waits 1 s, doubling up to this cap.
    reconnect_max_s: float = 30.0
    # Where points go when the buffer is full and InfluxDB is down; None keeps them in
    # memory only and raises SinkBackpressure when the buffer is full.
    spill_dir: Path | None = None
    max_spill_bytes: int = 1 << 30
    # Send `CREATE DATABASE` (idempotent) before the first write; harmless to refuse.
    create_database: bool = True
    gzip: bool = False

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"influx url must start with http:// or https://, got {self.url!r}")
        if not self.database:
            raise ValueError("influx database must not be empty")
        if self.precision not in PRECISION_NS:
            raise ValueError(f"precision must be one of {sorted(PRECISION_NS)}")
        if self.token and (self.username or self.password):
            raise ValueError("give either an influx token or a user and password, not both")
        if self.password and not self.username:
            raise ValueError("an influx password needs a user name")
        if self.batch_points < 1 or self.max_buffer_points < self.batch_points:
            raise ValueError("need 1 <= batch_points <= max_buffer_points")
        if self.timeout_s <= 0 or self.max_retries < 0:
            raise ValueError("timeout_s must be > 0 and max_retries >= 0")

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")

    def redacted(self) -> str:
        """A description safe for logs: no token, no password."""
        auth = "token" if self.token else ("user " + self.username if self.username else "no auth")
        rp = f", rp {self.retention_policy}" if self.retention_policy else ""
        return f"{self.base_url} db {self.database}{rp} ({auth})"
