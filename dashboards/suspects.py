"""Suspects: for the supervisors of inspectors deciding where to send a crew.

Ranked suspects with their evidence, how their scores evolved, and the unbilled
energy they are estimated to hide, work orders by state and age, and how often an
inspection confirmed what the detectors said.
"""

from __future__ import annotations

from dashboards.influxql import CATEGORY, TIME, category_variable, where
from dashboards.model import Dashboard, Link, Panel, Query, datasource_variable
from dashboards.styles import (
    LINES,
    STAT_OPTIONS,
    TIMESERIES_OPTIONS,
    hide_time,
    link_to_area,
    sort_table,
    unit_of,
)
from sinks.influx.schema import SUSPICION, WORKORDER_HIT_RATE, WORKORDER_STATE

_LATEST = (
    'SELECT last("estimated_kwh") AS "estimated_kwh", last("score") AS "score" '
    f'FROM "{SUSPICION}" {where(CATEGORY, TIME)} GROUP BY "target", "category"'
)


def build() -> Dashboard:
    return Dashboard(
        uid="lineloss-suspects",
        title="Line loss: suspects",
        description="Ranked suspects, their scores over time and the unbilled energy at stake.",
        variables=(datasource_variable(), category_variable()),
        links=(
            Link("Overview", "/d/lineloss-overview/lineloss-overview"),
            Link("Area drill-down", "/d/lineloss-area/lineloss-area"),
        ),
        panels=(
            Panel(
                "Suspects",
                "stat",
                "Targets (areas or meters) with at least one suspicion in the time range.",
                (
                    Query(
                        "A",
                        f'SELECT count("score") AS "suspects" FROM ({_LATEST})',
                        ("time", "suspects"),
                    ),
                ),
                width=8,
                height=5,
                decimals=0,
                options=STAT_OPTIONS,
            ),
            Panel(
                "Estimated unbilled energy",
                "stat",
                "Sum over suspects of their current estimate of energy lost to them [kWh].",
                (
                    Query(
                        "A",
                        f'SELECT sum("estimated_kwh") AS "estimated_kwh" FROM ({_LATEST})',
                        ("time", "estimated_kwh"),
                    ),
                ),
                width=8,
                height=5,
                unit="kwatth",
                options=STAT_OPTIONS,
            ),
            Panel(
                "Estimated unbilled energy by category",
                "bargauge",
                "Theft, meter faults, wrong customer-to-area records, area-level loss [kWh].",
                (
                    Query(
                        "A",
                        f'SELECT sum("estimated_kwh") AS "estimated_kwh" FROM ({_LATEST}) '
                        'GROUP BY "category"',
                        ("time", "estimated_kwh"),
                        tags=("category",),
                        alias="$tag_category",
                    ),
                ),
                width=8,
                height=5,
                unit="kwatth",
                options={
                    "orientation": "horizontal",
                    "displayMode": "basic",
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                },
            ),
            Panel(
                "Ranked suspects",
                "table",
                "Most suspicious first: score in [0, 1] (0.5 = the alarm threshold), "
                "estimated unbilled energy, when it was first detected (stream time) and "
                "the one-line evidence. Click an area to open its drill-down.",
                (
                    Query(
                        "A",
                        'SELECT last("score") AS "score", last("estimated_kwh") AS '
                        '"estimated_kwh", last("evidence") AS "evidence", last("detector") AS '
                        '"detector", last("first_detected_s") * 1000 AS "first_detected" '
                        f'FROM "{SUSPICION}" {where(CATEGORY, TIME)} '
                        'GROUP BY "target", "area", "category", "target_kind"',
                        (
                            "time",
                            "score",
                            "estimated_kwh",
                            "evidence",
                            "detector",
                            "first_detected",
                        ),
                        tags=("target", "area", "category", "target_kind"),
                        result_format="table",
                    ),
                ),
                width=24,
                height=12,
                options=sort_table("score"),
                defaults={
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [
                            {"color": "green", "value": None},
                            {"color": "orange", "value": 0.5},
                            {"color": "red", "value": 0.8},
                        ],
                    }
                },
                overrides=(
                    unit_of("estimated_kwh", "kwatth"),
                    unit_of("first_detected", "dateTimeAsIso"),
                    {
                        "matcher": {"id": "byName", "options": "score"},
                        "properties": [
                            {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                            {"id": "decimals", "value": 3},
                        ],
                    },
                    link_to_area("area"),
                ),
                transformations=(hide_time(),),
            ),
            Panel(
                "Scores over time",
                "timeseries",
                "Each suspect's score as detections accumulated (stream time).",
                (
                    Query(
                        "A",
                        f'SELECT max("score") AS "score" FROM "{SUSPICION}" '
                        f'{where(CATEGORY, TIME)} GROUP BY time($__interval), "target" fill(none)',
                        ("time", "score"),
                        tags=("target",),
                        alias="$tag_target",
                    ),
                ),
                width=24,
                height=9,
                options=TIMESERIES_OPTIONS,
                defaults={
                    **LINES,
                    "min": 0,
                    "max": 1,
                    "custom": {**LINES["custom"], "showPoints": "always"},
                },
            ),
            Panel(
                "Work orders by state and age",
                "table",
                "Inspectors' work orders now, all teams: how many in each state, how many "
                "past their due date, and the age of the oldest (from the latest snapshot "
                "that `lineloss workorders metrics` wrote in the time range).",
                (
                    Query(
                        "A",
                        'SELECT sum("orders") AS "orders", sum("overdue") AS "overdue", '
                        'max("oldest_age_s") AS "oldest_age_s" FROM (SELECT last("orders") AS '
                        '"orders", last("overdue") AS "overdue", last("oldest_age_s") AS '
                        f'"oldest_age_s" FROM "{WORKORDER_STATE}" {where(TIME)} '
                        'GROUP BY "team", "state") GROUP BY "state"',
                        ("time", "orders", "overdue", "oldest_age_s"),
                        tags=("state",),
                        result_format="table",
                    ),
                ),
                width=12,
                height=8,
                options=sort_table("orders"),
                overrides=(unit_of("oldest_age_s", "s"),),
                transformations=(hide_time(),),
            ),
            Panel(
                "Inspection hit rate by detector",
                "timeseries",
                "Share of inspected work orders (closed, site reached) confirmed as theft or "
                "a meter fault, per detector that flagged them and month of closing; "
                "`all` counts every order once.",
                (
                    Query(
                        "A",
                        f'SELECT "hit_rate" FROM "{WORKORDER_HIT_RATE}" {where(TIME)} '
                        'GROUP BY "detector"',
                        ("time", "hit_rate"),
                        tags=("detector",),
                        alias="$tag_detector",
                    ),
                ),
                width=12,
                height=8,
                options=TIMESERIES_OPTIONS,
                defaults={
                    **LINES,
                    "unit": "percentunit",
                    "min": 0,
                    "max": 1,
                    "custom": {**LINES["custom"], "showPoints": "always"},
                },
            ),
        ),
    )
