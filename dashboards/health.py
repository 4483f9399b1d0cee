"""Pipeline health: is the pipeline keeping up, what does it refuse, is InfluxDB taking it.

Health points carry wall-clock time (they describe the process, not the data), so
this dashboard's time range is "the last hours", unlike the analysts' dashboards.
"""

from __future__ import annotations

from dashboards.influxql import TIME, where
from dashboards.model import Dashboard, Link, Panel, Query, datasource_variable
from dashboards.styles import LINES, STAT_OPTIONS, TIMESERIES_OPTIONS, hide_time, sort_table
from sinks.influx.replay_sink import SINK_COMPONENT
from sinks.influx.schema import PARTITION_ALIGNMENT, PIPELINE_HEALTH, PIPELINE_REJECTS

_PIPELINE = f"\"component\" <> '{SINK_COMPONENT}'"
_SINK = f"\"component\" = '{SINK_COMPONENT}'"
_PER_INTERVAL = 'GROUP BY time($__interval), "component" fill(none)'


def _pipeline_series(title: str, field: str, unit: str, description: str) -> Panel:
    return Panel(
        title,
        "timeseries",
        description,
        (
            Query(
                "A",
                f'SELECT last("{field}") AS "{field}" FROM "{PIPELINE_HEALTH}" '
                f"{where(_PIPELINE, TIME)} {_PER_INTERVAL}",
                ("time", field),
                tags=("component",),
                alias="$tag_component",
            ),
        ),
        width=12,
        height=8,
        unit=unit,
        options=TIMESERIES_OPTIONS,
        defaults=LINES,
    )


_SINK_STATE = (
    "available",
    "buffer_points",
    "spill_pending_points",
    "spilled_points_total",
    "replayed_points_total",
    "lines_rejected_total",
    "points_dropped_total",
    "fields_dropped_total",
    "write_failures_total",
    "consecutive_failures",
)


_ALIGNMENT = ("source_watermark_s", "finals_held_s", "waiting_for", "holding_all", "idle")


def _alignment_panels() -> tuple[Panel, ...]:
    """Kafka workers: finals wait for the slowest readings partition
    (docs/streaming.md#event-time-across-partitions); these say which one."""
    return (
        Panel(
            "Finals held back by slower partitions",
            "timeseries",
            "Per readings partition (Kafka workers): how far behind its own readings "
            "its finals are held, waiting for the slowest other partition's watermark. "
            "Zero when nothing holds. A partition not heard from yet holds every final "
            "(see the table).",
            (
                Query(
                    "A",
                    f'SELECT last("finals_held_s") AS "finals_held_s" FROM "{PARTITION_ALIGNMENT}" '
                    f'{where(TIME)} GROUP BY time($__interval), "partition" fill(none)',
                    ("time", "finals_held_s"),
                    tags=("partition",),
                    alias="partition $tag_partition",
                ),
            ),
            width=12,
            height=8,
            unit="s",
            options=TIMESERIES_OPTIONS,
            defaults=LINES,
        ),
        Panel(
            "Partition alignment",
            "table",
            "Per readings partition, the latest: how far its own readings are read "
            "(event time), how far its finals are held, the partitions it waits for, "
            "whether it waits for one not heard from yet (every final held), whether "
            "its own readings are idle.",
            (
                Query(
                    "A",
                    "SELECT "
                    + ", ".join(f'last("{f}") AS "{f}"' for f in _ALIGNMENT)
                    + f' FROM "{PARTITION_ALIGNMENT}" {where(TIME)} GROUP BY "partition"',
                    ("time", *_ALIGNMENT),
                    tags=("partition",),
                    result_format="table",
                ),
            ),
            width=12,
            height=8,
            options=sort_table("finals_held_s"),
            transformations=(hide_time(),),
        ),
    )


def build() -> Dashboard:
    return Dashboard(
        uid="lineloss-health",
        title="Line loss: pipeline health",
        description="Lag, throughput, refused readings and the InfluxDB sink's own state.",
        variables=(datasource_variable(),),
        time_from="now-6h",
        refresh="30s",
        links=(Link("Overview", "/d/lineloss-overview/lineloss-overview"),),
        panels=(
            _pipeline_series(
                "Event-time lag",
                "event_lag_s",
                "s",
                "Wall clock minus the newest reading's time. A live worker should stay "
                "near the head-end's upload delay; a replay of old data shows its age.",
            ),
            _pipeline_series(
                "Throughput",
                "readings_per_s",
                "short",
                "Readings balanced per second of processing.",
            ),
            Panel(
                "Readings accepted and refused",
                "timeseries",
                "Cumulative counts since the process started.",
                (
                    Query(
                        "A",
                        'SELECT last("accepted_total") AS "accepted", last("rejected_total") AS '
                        f'"rejected" FROM "{PIPELINE_HEALTH}" {where(_PIPELINE, TIME)} '
                        f"{_PER_INTERVAL}",
                        ("time", "accepted", "rejected"),
                        tags=("component",),
                        alias="$tag_component $col",
                    ),
                ),
                width=12,
                height=8,
                unit="short",
                options=TIMESERIES_OPTIONS,
                defaults=LINES,
            ),
            Panel(
                "Refused readings by reason (dead letters)",
                "table",
                "Every refused reading has a reason (see the data contract's Rejects); "
                "counts of the latest run of each component.",
                (
                    Query(
                        "A",
                        f'SELECT last("rejected_total") AS "rejected" FROM "{PIPELINE_REJECTS}" '
                        f'{where(TIME)} GROUP BY "component", "reason"',
                        ("time", "rejected"),
                        tags=("component", "reason"),
                        result_format="table",
                    ),
                ),
                width=12,
                height=8,
                options=sort_table("rejected"),
                transformations=(hide_time(),),
            ),
            Panel(
                "InfluxDB sink",
                "stat",
                "The writer's state: points waiting in memory and on disk (spill), points "
                "replayed after an outage, lines InfluxDB refused (dead letters in "
                "rejected.lp), values that cannot be written (NaN, infinity).",
                (
                    Query(
                        "A",
                        "SELECT "
                        + ", ".join(f'last("{f}") AS "{f}"' for f in _SINK_STATE)
                        + f' FROM "{PIPELINE_HEALTH}" {where(_SINK, TIME)}',
                        ("time", *_SINK_STATE),
                    ),
                ),
                width=24,
                height=5,
                options={**STAT_OPTIONS, "textMode": "value_and_name", "colorMode": "value"},
                defaults={"decimals": 0},
            ),
            Panel(
                "Sink buffer and spill",
                "timeseries",
                "Points waiting for InfluxDB. A rising spill means InfluxDB is down or slow; "
                "it drains, oldest first, when InfluxDB answers again.",
                (
                    Query(
                        "A",
                        'SELECT last("buffer_points") AS "buffer_points", '
                        'last("spill_pending_points") AS "spill_pending_points" '
                        f'FROM "{PIPELINE_HEALTH}" {where(_SINK, TIME)} '
                        "GROUP BY time($__interval) fill(none)",
                        ("time", "buffer_points", "spill_pending_points"),
                    ),
                ),
                width=12,
                height=8,
                unit="short",
                options=TIMESERIES_OPTIONS,
                defaults=LINES,
            ),
            Panel(
                "Sink last error",
                "table",
                "The latest write error, if any, and how many writes failed in a row.",
                (
                    Query(
                        "A",
                        'SELECT last("last_error") AS "last_error", last("consecutive_failures") '
                        f'AS "consecutive_failures" FROM "{PIPELINE_HEALTH}" {where(_SINK, TIME)}',
                        ("time", "last_error", "consecutive_failures"),
                        result_format="table",
                    ),
                ),
                width=12,
                height=8,
                transformations=(hide_time(),),
            ),
            *_alignment_panels(),
        ),
    )
