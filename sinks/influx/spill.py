"""Spill to disk: line protocol that could not be written yet, replayed oldest first.

When InfluxDB is down and the in-memory buffer is full, lines go to append-only
segment files (``spill-<seq>-<precision>.lp``, one point per line, exactly what
/write takes, so an operator can also replay a segment with curl). Order matters:
a revised balance must land after the provisional one it replaces, so the writer
always drains the spill before anything newer, and segments are replayed in
sequence order. Re-sending a line twice is harmless (same series and timestamp
overwrite), which is why a crash in the middle of a replay loses nothing.

Lines the server refuses for good (HTTP 400 after isolating them) go to
``rejected.lp`` with a ``#`` comment line saying why: dead letters, never silently
dropped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_SEGMENT = re.compile(r"^spill-(\d{12})-(ns|u|ms|s)\.lp$")


class SinkBackpressure(RuntimeError):
    """The destination is down and both the buffer and the spill directory are full.

    The caller decides: pause the input (a Kafka consumer stops polling) or stop.
    """


@dataclass(frozen=True)
class Segment:
    path: Path
    precision: str
    lines: list[str]


def _count_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


class SpillStore:
    """Segments of line protocol in ``directory``; survives restarts of the process."""

    def __init__(
        self,
        directory: Path,
        precision: str,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 8 << 20,
    ) -> None:
        self.directory = directory
        self.precision = precision
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._segments: list[tuple[int, Path, str]] = []
        for p in directory.iterdir():
            m = _SEGMENT.match(p.name)
            if m:
                self._segments.append((int(m.group(1)), p, m.group(2)))
        self._segments.sort()
        self._pending_points = sum(_count_lines(p) for _, p, _ in self._segments)
        self._pending_bytes = sum(p.stat().st_size for _, p, _ in self._segments)
        self._next_seq = self._segments[-1][0] + 1 if self._segments else 1
        self._open_seq: int | None = None  # the segment appends go to, if still open

    @property
    def pending_points(self) -> int:
        return self._pending_points

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def append(self, lines: Sequence[str]) -> None:
        """Append lines (durably: flushed and fsynced); raise SinkBackpressure when full."""
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8")
        if self._pending_bytes + len(data) > self.max_bytes:
            raise SinkBackpressure(
                f"spill directory {self.directory} would exceed {self.max_bytes} bytes "
                f"({self._pending_points} points waiting for InfluxDB)"
            )
        seq, path = self._append_target()
        with path.open("ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not self._segments or self._segments[-1][0] != seq:
            self._segments.append((seq, path, self.precision))
        self._pending_points += len(lines)
        self._pending_bytes += len(data)

    def _append_target(self) -> tuple[int, Path]:
        if self._segments and self._segments[-1][0] == self._open_seq:
            seq, path, precision = self._segments[-1]
            if precision == self.precision and path.stat().st_size < self.segment_bytes:
                return seq, path
        seq = self._next_seq
        self._next_seq += 1
        self._open_seq = seq
        return seq, self.directory / f"spill-{seq:012d}-{self.precision}.lp"

    def oldest(self) -> Segment | None:
        """The oldest segment with its lines; appends go to a new segment from now on."""
        if not self._segments:
            return None
        seq, path, precision = self._segments[0]
        if seq == self._open_seq:
            self._open_seq = None  # never append to a segment being replayed
        # split on "\n" only: str.splitlines would also cut at \r, \x1e, \u2028 ...,
        # which may legitimately appear inside a tag or string field.
        lines = path.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return Segment(path=path, precision=precision, lines=lines)

    def consume(self, segment: Segment, n_sent: int) -> None:
        """Forget the first ``n_sent`` lines of ``segment`` (all: delete the file)."""
        size_before = segment.path.stat().st_size
        rest = segment.lines[n_sent:]
        if rest:
            tmp = segment.path.with_suffix(".tmp")
            tmp.write_text("\n".join(rest) + "\n", encoding="utf-8")
            os.replace(tmp, segment.path)
            size_after = segment.path.stat().st_size
        else:
            segment.path.unlink()
            self._segments = [s for s in self._segments if s[1] != segment.path]
            size_after = 0
        self._pending_points -= n_sent
        self._pending_bytes -= size_before - size_after

    def dead_letter(self, line: str, reason: str) -> None:
        """Keep a line the server refused for good, with the reason as a comment."""
        with (self.directory / "rejected.lp").open("a", encoding="utf-8") as f:
            f.write(f"# {' '.join(reason.split())}\n{line}\n")
