"""Area drill-down: one transformer area (variable ``area``), window by window.

Supply against billed energy and the loss between them, the loss rate against the
area's own target band, how many customer meters reported, the status of every
window with its reason and revision, and the suspicions raised in the area.
"""

from __future__ import annotations

from dashboards.influxql import (
    AREA,
    COMPUTABLE,
    TIME,
    WINDOW,
    area_variable,
    where,
    window_variable,
)
from dashboards.model import Dashboard, Link, Panel, Query, datasource_variable
from dashboards.styles import (
    LINES,
    TIMESERIES_OPTIONS,
    colour,
    dashed,
    hide_time,
    sort_table,
    status_value_mappings,
    unit_of,
)
from sinks.influx.schema import AREA_BALANCE, SUSPICION

_AREA_WINDOWS = where(AREA, WINDOW, TIME)


def build() -> Dashboard:
    return Dashboard(
        uid="lineloss-area",
        title="Line loss: area drill-down",
        description=(
            "One transformer area (台区): its balance, band, coverage, status and suspects."
        ),
        variables=(datasource_variable(), window_variable(), area_variable()),
        links=(
            Link("Overview", "/d/lineloss-overview/lineloss-overview"),
            Link("Suspects", "/d/lineloss-suspects/lineloss-suspects"),
        ),
        panels=(
            Panel(
                "Supply, billed and loss",
                "timeseries",
                "Energy through the area meter (supply), the sum of its customer meters "
                "(billed) and the difference (loss), per window [kWh]. Incomputable windows "
                "are shown too: a supply of zero there means no trustworthy area reading.",
                (
                    Query(
                        "A",
                        'SELECT "supply_kwh" AS "supply", "billed_kwh" AS "billed", '
                        f'"loss_kwh" AS "loss" FROM "{AREA_BALANCE}" {_AREA_WINDOWS}',
                        ("time", "supply", "billed", "loss"),
                    ),
                ),
                width=24,
                height=9,
                unit="kwatth",
                options=TIMESERIES_OPTIONS,
                defaults=LINES,
                overrides=(
                    colour("loss", "red"),
                    colour("supply", "blue"),
                    colour("billed", "green"),
                ),
            ),
            Panel(
                "Loss rate against its band",
                "timeseries",
                "Loss / supply per computable window, with the area's qualified band "
                "(lower and upper bound from the engine configuration).",
                (
                    Query(
                        "A",
                        'SELECT "loss_rate", "band_lower_rate", "band_upper_rate" '
                        f'FROM "{AREA_BALANCE}" {where(AREA, WINDOW, COMPUTABLE, TIME)}',
                        ("time", "loss_rate", "band_lower_rate", "band_upper_rate"),
                    ),
                ),
                width=12,
                height=8,
                unit="percentunit",
                options=TIMESERIES_OPTIONS,
                defaults=LINES,
                overrides=(dashed("band_lower_rate"), dashed("band_upper_rate")),
            ),
            Panel(
                "Coverage",
                "timeseries",
                "Share of the area's customer meters that reported for the window "
                "(采集成功率). Below the minimum (default 90 %) the balance is incomputable.",
                (
                    Query(
                        "A",
                        f'SELECT "coverage" FROM "{AREA_BALANCE}" {_AREA_WINDOWS}',
                        ("time", "coverage"),
                    ),
                ),
                width=12,
                height=8,
                unit="percentunit",
                options=TIMESERIES_OPTIONS,
                defaults={
                    # the minimum coverage drawn as a line (engine default 90 %)
                    "custom": {**LINES["custom"], "thresholdsStyle": {"mode": "line"}},
                    "min": 0,
                    "max": 1,
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [
                            {"color": "red", "value": None},
                            {"color": "green", "value": 0.9},
                        ],
                    },
                },
            ),
            Panel(
                "Status",
                "state-timeline",
                "Status of each window: normal, high loss (高损), negative loss (负损) or "
                "incomputable.",
                (
                    Query(
                        "A",
                        f'SELECT "status" FROM "{AREA_BALANCE}" {_AREA_WINDOWS}',
                        ("time", "status"),
                    ),
                ),
                width=24,
                height=4,
                options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
                defaults={"mappings": status_value_mappings(), "color": {"mode": "thresholds"}},
            ),
            Panel(
                "Windows",
                "table",
                "Every window's balance as it stands: the latest revision (a late reading "
                "re-issues a window; the re-issue replaces the earlier numbers).",
                (
                    Query(
                        "A",
                        'SELECT "status", "reason", "supply_kwh", "billed_kwh", "loss_kwh", '
                        '"coverage", "meters_reporting", "meters_expected", "revision", "final" '
                        f'FROM "{AREA_BALANCE}" {_AREA_WINDOWS}',
                        (
                            "time",
                            "status",
                            "reason",
                            "supply_kwh",
                            "billed_kwh",
                            "loss_kwh",
                            "coverage",
                            "meters_reporting",
                            "meters_expected",
                            "revision",
                            "final",
                        ),
                        result_format="table",
                    ),
                ),
                width=24,
                height=9,
                options=sort_table("Time"),
                defaults={"mappings": status_value_mappings()},
                overrides=(
                    unit_of("supply_kwh", "kwatth"),
                    unit_of("billed_kwh", "kwatth"),
                    unit_of("loss_kwh", "kwatth"),
                    unit_of("coverage", "percentunit"),
                ),
            ),
            Panel(
                "Suspicions in this area",
                "table",
                "Suspects whose area is this one (the area itself, or meters in it), as "
                "they stand now.",
                (
                    Query(
                        "A",
                        'SELECT last("score") AS "score", last("estimated_kwh") AS '
                        '"estimated_kwh", last("evidence") AS "evidence", '
                        'last("first_detected_s") * 1000 AS "first_detected" '
                        f'FROM "{SUSPICION}" {where(AREA, TIME)} '
                        'GROUP BY "target", "category", "target_kind"',
                        ("time", "score", "estimated_kwh", "evidence", "first_detected"),
                        tags=("target", "category", "target_kind"),
                        result_format="table",
                    ),
                ),
                width=24,
                height=8,
                options=sort_table("score"),
                overrides=(
                    unit_of("estimated_kwh", "kwatth"),
                    unit_of("first_detected", "dateTimeAsIso"),
                ),
                transformations=(hide_time(),),
            ),
        ),
    )
