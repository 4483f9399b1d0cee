"""The replay's results into InfluxDB: a ``streams.replay.ReplaySink`` over InfluxWriter."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from lineloss.config import EngineConfig
from lineloss.domain import Balance, BalanceLevel, Suspicion
from sinks.influx.schema import (
    balance_point,
    health_point,
    rejects_point,
    suspicion_point,
    window_label,
)
from sinks.influx.writer import InfluxWriter, SinkHealth
from sinks.lineprotocol import FieldValue, Point
from streams.replay import ReplayProgress

SINK_COMPONENT = "influx_sink"


def sink_health_fields(health: SinkHealth) -> dict[str, FieldValue]:
    """The writer's own health as fields of ``pipeline_health,component=influx_sink``."""
    fields: dict[str, FieldValue] = {
        "available": health.available,
        "points_added_total": health.points_added_total,
        "points_written_total": health.points_written_total,
        "points_dropped_total": health.points_dropped_total,
        "fields_dropped_total": health.fields_dropped_total,
        "text_rewritten_total": health.text_rewritten_total,
        "lines_rejected_total": health.lines_rejected_total,
        "buffer_points": health.buffer_points,
        "spill_pending_points": health.spill_pending_points,
        "spilled_points_total": health.spilled_points_total,
        "replayed_points_total": health.replayed_points_total,
        "write_requests_total": health.write_requests_total,
        "write_failures_total": health.write_failures_total,
        "retries_total": health.retries_total,
        "consecutive_failures": health.consecutive_failures,
        "last_error": health.last_error,
    }
    if health.last_success_unix_s is not None:
        fields["last_success_unix_s"] = health.last_success_unix_s
    return fields


class InfluxReplaySink:
    """Writes balances, suspicions and pipeline health as the replay produces them.

    Health points are stamped with the wall clock (they describe the process, not
    the data); balances with their window start and suspicions with the stream time
    at which they were seen, both event time.
    """

    def __init__(
        self,
        writer: InfluxWriter,
        config: EngineConfig,
        *,
        component: str = "replay",
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.writer = writer
        self.config = config
        self.component = component
        self._wall_clock = wall_clock
        self._last_suspicion: dict[tuple[str, str], tuple[float, float, str]] = {}
        self.window = window_label(config.window_s)

    def balances(self, balances: Sequence[Balance]) -> None:
        bands = self.config.balance
        self.writer.write(
            balance_point(
                b,
                window_s=self.config.window_s,
                band=(
                    bands.band_for_area(b.target_id)
                    if b.level == BalanceLevel.AREA
                    else bands.band_for_feeder(b.target_id)
                ),
            )
            for b in balances
        )

    def suspicions(self, suspicions: Sequence[Suspicion], stream_time_s: int) -> None:
        """Write the suspicions that are new or changed since the last call."""
        changed: list[Point] = []
        for s in suspicions:
            key = (s.target_id, s.category.value)
            state = (s.score, s.estimated_kwh, s.evidence)
            if self._last_suspicion.get(key) != state:
                self._last_suspicion[key] = state
                changed.append(suspicion_point(s, stream_time_s=stream_time_s))
        self.writer.write(changed)

    def progress(self, progress: ReplayProgress) -> None:
        now_s = self._wall_clock()
        now_ns = int(now_s * 1e9)
        rejected = sum(progress.rejected_by_reason.values())
        fields: dict[str, FieldValue] = {
            "readings_total": progress.readings_fed,
            "accepted_total": progress.accepted,
            "rejected_total": rejected,
            "balances_total": progress.balances_emitted,
            "readings_per_s": progress.readings_fed / max(progress.elapsed_s, 1e-9),
            "elapsed_s": float(progress.elapsed_s),
            "done": progress.done,
        }
        if progress.stream_time_s is not None:
            fields["stream_time_s"] = progress.stream_time_s
            fields["event_lag_s"] = now_s - progress.stream_time_s
        points = [health_point(self.component, fields, time_ns=now_ns)]
        points += [
            rejects_point(self.component, reason, count, time_ns=now_ns)
            for reason, count in sorted(progress.rejected_by_reason.items())
        ]
        self.writer.write(points)
        if progress.done:
            # flush first, so the last health point says what is really left waiting
            self.writer.flush()
        self.write_sink_health(time_ns=now_ns)
        if progress.done:
            self.writer.flush()

    def write_sink_health(self, *, time_ns: int) -> None:
        """Queue the writer's health (it travels with the data, so it may lag an outage)."""
        fields = sink_health_fields(self.writer.health())
        self.writer.write([health_point(SINK_COMPONENT, fields, time_ns=time_ns)])
