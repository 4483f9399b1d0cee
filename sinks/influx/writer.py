"""The batching InfluxDB writer: never loses a point, never stalls the stream for long.

Points are encoded to line protocol as they arrive (bad values are dropped and
counted there, so they never reach the server) and buffered. A batch goes out when
``batch_points`` lines are waiting or the oldest is ``flush_interval_s`` old.

Faults, and what the writer does about them:

- **Server down, refusing, 5xx, 429**: the request is retried ``max_retries`` times
  with jittered exponential backoff, then the server is declared down. While it is
  down no request is made at all until the reconnect delay has passed (1 s doubling
  to ``reconnect_max_s``), so the stream keeps its pace; the buffer fills, and when
  it is full its lines are appended to the spill directory. When the server answers
  again, the spill is replayed first, then the buffer, in the order the points were
  produced: a revision written later must overwrite the provisional point, never the
  other way round.
- **Server slow**: every request has a ``timeout_s``; a timeout is not retried at once
  (another full timeout would only stall the caller longer), the server is declared
  down and probed again after the reconnect delay.
- **A line the server refuses** (HTTP 400 "unable to parse", "partial write",
  "field type conflict"): the batch is split in halves until the offending lines are
  isolated; they go to the spill directory's ``rejected.lp`` with the reason and are
  counted. The rest of the batch is written.
- **Spill directory full** (``max_spill_bytes``) or none configured with a full
  buffer: ``SinkBackpressure`` is raised; the caller pauses its input or stops.

The writer is synchronous and single-threaded by design: it runs on the pipeline's
own thread between batches, which keeps point order exact and the behaviour
deterministic under test; every blocking call is bounded by ``timeout_s``.
"""

from __future__ import annotations

import contextlib
import enum
import gzip
import itertools
import logging
import random
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType

from sinks.influx.http import Transport, TransportError, UrllibTransport, auth_headers
from sinks.influx.settings import InfluxSettings
from sinks.influx.spill import SinkBackpressure, SpillStore
from sinks.lineprotocol import EncodeStats, Point, encode_point

log = logging.getLogger(__name__)

# Bodies of HTTP 400 answers that blame the lines, not the request (1.x and 2.x wording).
_LINE_ERRORS = (
    "unable to parse",
    "partial write",
    "field type conflict",
    "invalid field",
    "invalid tag",
    "invalid number",
    "invalid boolean",
    "max-values-per-tag",
)


@dataclass(frozen=True)
class SinkHealth:
    """Counters of the writer since it started (``*_total``) and its current state."""

    available: bool  # False while the server is considered down
    points_added_total: int
    points_written_total: int
    points_dropped_total: int  # no writable field left (all NaN / inf)
    fields_dropped_total: int  # NaN, +-inf, integer outside int64
    text_rewritten_total: int  # newline or ambiguous backslash replaced
    lines_rejected_total: int  # refused by the server for good: dead letters
    buffer_points: int  # waiting in memory
    spill_pending_points: int  # waiting on disk
    spilled_points_total: int
    replayed_points_total: int  # sent from the spill after an outage
    write_requests_total: int
    write_failures_total: int
    retries_total: int
    consecutive_failures: int
    last_error: str
    last_success_unix_s: float | None


class _Outcome(enum.Enum):
    OK = "ok"
    BAD_LINES = "bad_lines"  # 400 caused by the content: isolate and dead-letter
    TOO_LARGE = "too_large"  # 413: split
    DOWN = "down"


class InfluxWriter:
    """Batching writer to the v1 ``/write`` endpoint, with retries and spill to disk."""

    def __init__(
        self,
        settings: InfluxSettings,
        *,
        transport: Transport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._transport = transport or UrllibTransport()
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._headers = {"Content-Type": "text/plain; charset=utf-8", **auth_headers(settings)}
        if settings.gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._buffer: deque[str] = deque()
        self._spill = (
            SpillStore(settings.spill_dir, settings.precision, max_bytes=settings.max_spill_bytes)
            if settings.spill_dir is not None
            else None
        )
        self._encode = EncodeStats()
        self._db_ready = not settings.create_database
        self._down_until: float | None = None
        self._reconnect_s = 1.0
        self._last_flush = monotonic()
        self._added = 0
        self._written = 0
        self._rejected = 0
        self._spilled = 0
        self._replayed = 0
        self._requests = 0
        self._failures = 0
        self._retries = 0
        self._consecutive_failures = 0
        self._last_error = ""
        self._last_success: float | None = None
        self._closed = False

    # ------------------------------------------------------------------ public API
    def write(self, points: Iterable[Point]) -> None:
        """Queue points; sends when a batch is full or the flush interval has passed."""
        if self._closed:
            raise RuntimeError("InfluxWriter is closed")
        for p in points:
            self._added += 1
            line = encode_point(p, self.settings.precision, self._encode)
            if line is not None:
                self._buffer.append(line)
        if self._encode.dropped_examples:
            examples = "; ".join(self._encode.dropped_examples)
            log.warning("dropped fields that have no line-protocol form, e.g. %s", examples)
            self._encode.dropped_examples.clear()
        if len(self._buffer) >= self.settings.batch_points:
            self.flush()
        else:
            self.tick()

    def tick(self) -> None:
        """Send what is waiting if the flush interval has passed (call it when idle)."""
        if self._monotonic() - self._last_flush >= self.settings.flush_interval_s:
            self.flush()

    def flush(self) -> bool:
        """Try to write everything waiting, spill first. True when nothing is left."""
        self._last_flush = self._monotonic()
        done = self._has_nothing_waiting()
        if not done and not self._waiting_to_reconnect():
            done = self._drain()
        self._bound_buffer()
        return done

    def close(self, drain_timeout_s: float = 30.0) -> SinkHealth:
        """Write what is left, waiting up to ``drain_timeout_s`` for a down server.

        Whatever still cannot be written goes to the spill directory, where the next
        writer with the same ``spill_dir`` picks it up. Without a spill directory it
        is lost, and ``buffer_points`` in the returned health says how much.
        """
        if self._closed:
            return self.health()
        deadline = self._monotonic() + drain_timeout_s
        while not self._has_nothing_waiting():
            if self._down_until is not None:
                wait_s = self._down_until - self._monotonic()
                if self._monotonic() + max(wait_s, 0.0) > deadline:
                    break
                if wait_s > 0:
                    self._sleep(wait_s)
            if self._drain():
                break
        if self._buffer and self._spill is not None:
            with contextlib.suppress(SinkBackpressure):
                self._spill_buffer()
        if not self._has_nothing_waiting():
            log.warning(
                "InfluxDB %s unavailable at close: %d points in memory, %d in the spill (%s)",
                self.settings.redacted(),
                len(self._buffer),
                self._spill.pending_points if self._spill else 0,
                self._last_error,
            )
        self._closed = True
        return self.health()

    def __enter__(self) -> InfluxWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def health(self) -> SinkHealth:
        return SinkHealth(
            available=self._down_until is None,
            points_added_total=self._added,
            points_written_total=self._written,
            points_dropped_total=self._encode.points_dropped,
            fields_dropped_total=self._encode.fields_dropped,
            text_rewritten_total=self._encode.text_rewritten,
            lines_rejected_total=self._rejected,
            buffer_points=len(self._buffer),
            spill_pending_points=self._spill.pending_points if self._spill else 0,
            spilled_points_total=self._spilled,
            replayed_points_total=self._replayed,
            write_requests_total=self._requests,
            write_failures_total=self._failures,
            retries_total=self._retries,
            consecutive_failures=self._consecutive_failures,
            last_error=self._last_error,
            last_success_unix_s=self._last_success,
        )

    # ------------------------------------------------------------------ internals
    def _has_nothing_waiting(self) -> bool:
        return not self._buffer and (self._spill is None or self._spill.pending_points == 0)

    def _waiting_to_reconnect(self) -> bool:
        return self._down_until is not None and self._monotonic() < self._down_until

    def _bound_buffer(self) -> None:
        if len(self._buffer) < self.settings.max_buffer_points:
            return
        if self._spill is None:
            raise SinkBackpressure(
                f"InfluxDB {self.settings.redacted()} is unavailable ({self._last_error}) and "
                f"{len(self._buffer)} points fill the buffer; no spill directory is configured"
            )
        self._spill_buffer()

    def _spill_buffer(self) -> None:
        assert self._spill is not None
        lines = list(self._buffer)
        self._spill.append(lines)  # raises SinkBackpressure when the spill is full
        self._buffer.clear()
        self._spilled += len(lines)
        log.warning(
            "InfluxDB unavailable: spilled %d points to %s", len(lines), self._spill.directory
        )

    def _drain(self) -> bool:
        """Send the spill (oldest first), then the buffer. False at the first outage."""
        if not self._ensure_database():
            return False
        if self._spill is not None:
            while (segment := self._spill.oldest()) is not None:
                sent = self._send_lines(segment.lines, segment.precision)
                self._spill.consume(segment, sent)
                self._replayed += sent
                if sent < len(segment.lines):
                    return False
        size = self.settings.batch_points
        while self._buffer:
            batch = list(itertools.islice(self._buffer, size))
            if not self._send_batch(batch, self.settings.precision):
                return False
            for _ in batch:
                self._buffer.popleft()
        return True

    def _send_lines(self, lines: Sequence[str], precision: str) -> int:
        """Send in batches; the number of lines done before an outage stopped it."""
        size = self.settings.batch_points
        for lo in range(0, len(lines), size):
            if not self._send_batch(lines[lo : lo + size], precision):
                return lo
        return len(lines)

    def _send_batch(self, lines: Sequence[str], precision: str) -> bool:
        """One batch, splitting it to isolate refused lines. False when the server is down."""
        outcome, detail = self._post(lines, precision)
        if outcome is _Outcome.OK:
            self._written += len(lines)
            self._mark_up()
            return True
        if outcome is _Outcome.DOWN:
            self._mark_down()
            return False
        if len(lines) == 1:
            self._rejected += 1
            log.error("InfluxDB refused a line (%s): %.200s", detail, lines[0])
            if self._spill is not None:
                self._spill.dead_letter(lines[0], detail)
            self._mark_up()
            return True
        mid = len(lines) // 2
        return self._send_batch(lines[:mid], precision) and self._send_batch(lines[mid:], precision)

    def _post(self, lines: Sequence[str], precision: str) -> tuple[_Outcome, str]:
        params = {"db": self.settings.database, "precision": precision}
        if self.settings.retention_policy:
            params["rp"] = self.settings.retention_policy
        url = f"{self.settings.base_url}/write?{urllib.parse.urlencode(params)}"
        body = ("\n".join(lines) + "\n").encode("utf-8")
        if self.settings.gzip:
            body = gzip.compress(body)
        attempt = 0
        while True:
            self._requests += 1
            retryable = True
            try:
                resp = self._transport.request(
                    "POST", url, body=body, headers=self._headers, timeout_s=self.settings.timeout_s
                )
            except TransportError as exc:
                error = str(exc)
                retryable = not exc.timed_out
            else:
                if 200 <= resp.status < 300:
                    return _Outcome.OK, ""
                text = resp.text.strip()
                if resp.status == 400 and any(m in text.lower() for m in _LINE_ERRORS):
                    return _Outcome.BAD_LINES, f"HTTP 400: {text[:300]}"
                if resp.status == 413:
                    return _Outcome.TOO_LARGE, "HTTP 413: request too large"
                if resp.status == 404:
                    self._db_ready = not self.settings.create_database  # recreate it next time
                error = f"HTTP {resp.status}: {text[:300]}"
                retryable = resp.status >= 500 or resp.status in (408, 429)
            self._failures += 1
            self._last_error = error
            if not retryable or attempt >= self.settings.max_retries:
                return _Outcome.DOWN, error
            backoff = min(self.settings.retry_max_s, self.settings.retry_base_s * 2**attempt)
            self._sleep(backoff * (0.5 + 0.5 * self._rng.random()))
            self._retries += 1
            attempt += 1

    def _ensure_database(self) -> bool:
        """CREATE DATABASE once (idempotent in 1.x). Any HTTP answer will do: on 2.x and
        3.x, or without admin rights, it is refused, and the writes will tell."""
        if self._db_ready:
            return True
        db = self.settings.database.replace("\\", "\\\\").replace('"', '\\"')
        body = urllib.parse.urlencode({"q": f'CREATE DATABASE "{db}"'}).encode("ascii")
        self._requests += 1
        try:
            self._transport.request(
                "POST",
                f"{self.settings.base_url}/query",
                body=body,
                headers={
                    **auth_headers(self.settings),
                    "Content-Type": "application/x-www-form-urlencoded",
                },
                timeout_s=self.settings.timeout_s,
            )
        except TransportError as exc:
            self._failures += 1
            self._last_error = str(exc)
            self._mark_down()
            return False
        self._db_ready = True
        return True

    def _mark_down(self) -> None:
        if self._down_until is None:
            log.warning("InfluxDB %s unavailable: %s", self.settings.redacted(), self._last_error)
        self._consecutive_failures += 1
        self._down_until = self._monotonic() + self._reconnect_s
        self._reconnect_s = min(self._reconnect_s * 2, self.settings.reconnect_max_s)

    def _mark_up(self) -> None:
        if self._down_until is not None:
            log.warning("InfluxDB %s available again", self.settings.redacted())
        self._down_until = None
        self._reconnect_s = 1.0
        self._consecutive_failures = 0
        self._last_success = self._wall_clock()
