"""Overview of all areas: for the loss-reduction analyst's morning look.

How many areas are in each status, which are worst by rate and by energy, how loss
rates are spread, which areas cannot be balanced and why, and the trend.
"""

from __future__ import annotations

from dashboards.influxql import (
    COMPUTABLE,
    INCOMPUTABLE,
    TIME,
    WINDOW,
    tz_variable,
    where,
    window_variable,
)
from dashboards.model import Dashboard, Link, Panel, Query, datasource_variable
from dashboards.styles import (
    BARS,
    LINES,
    STAT_OPTIONS,
    TIMESERIES_OPTIONS,
    hide_time,
    link_to_area,
    sort_table,
    status_colours,
    unit_of,
)
from sinks.influx.schema import AREA_BALANCE, FEEDER_BALANCE

TOP_N = 15

_STATUS_SUMS = (
    'sum("status_normal") AS "normal", sum("status_high_loss") AS "high_loss", '
    'sum("status_negative_loss") AS "negative_loss", '
    'sum("status_incomputable") AS "incomputable"'
)
_STATUS_COLUMNS = ("time", "normal", "high_loss", "negative_loss", "incomputable")
_PER_AREA = (
    f'SELECT sum("loss_kwh") / sum("supply_kwh") AS "loss_rate", sum("loss_kwh") AS "loss_kwh", '
    f'sum("supply_kwh") AS "supply_kwh", count("supply_kwh") AS "windows" '
    f'FROM "{AREA_BALANCE}" {where(WINDOW, COMPUTABLE, TIME)} GROUP BY "area", "feeder"'
)


def _worst(by: str, other: str, ref: str) -> Query:
    return Query(
        ref,
        f'SELECT top("{by}", "area", {TOP_N}) AS "{by}", "feeder", "{other}", "supply_kwh", '
        f'"windows" FROM ({_PER_AREA})',
        ("time", by, "area", "feeder", other, "supply_kwh", "windows"),
        result_format="table",
    )


def _worst_table(title: str, by: str, other: str, description: str) -> Panel:
    return Panel(
        title,
        "table",
        description,
        (_worst(by, other, "A"),),
        width=12,
        height=10,
        options=sort_table(by),
        overrides=(
            unit_of("loss_rate", "percentunit"),
            unit_of("loss_kwh", "kwatth"),
            unit_of("supply_kwh", "kwatth"),
            link_to_area("area"),
        ),
        transformations=(hide_time(),),
    )


def build() -> Dashboard:
    return Dashboard(
        uid="lineloss-overview",
        title="Line loss: overview of all areas",
        description=(
            "Status of every transformer area (台区) per window, the worst areas, the "
            "loss-rate distribution, areas that cannot be balanced, and the trend."
        ),
        variables=(datasource_variable(), window_variable(), tz_variable()),
        links=(
            Link("Area drill-down", "/d/lineloss-area/lineloss-area"),
            Link("Suspects", "/d/lineloss-suspects/lineloss-suspects"),
            Link("Pipeline health", "/d/lineloss-health/lineloss-health"),
        ),
        panels=(
            Panel(
                "Area-windows by status",
                "stat",
                "Balances in the time range, one per area and window, by status. A revised "
                "window counts once, with its latest status.",
                (
                    Query(
                        "A",
                        f'SELECT {_STATUS_SUMS} FROM "{AREA_BALANCE}" {where(WINDOW, TIME)}',
                        _STATUS_COLUMNS,
                    ),
                ),
                width=24,
                height=4,
                options=STAT_OPTIONS,
                overrides=tuple(status_colours()),
            ),
            Panel(
                "Areas by status per window",
                "timeseries",
                "How many areas were normal, high-loss (高损), negative-loss (负损) or "
                "incomputable in each window.",
                (
                    Query(
                        "A",
                        f'SELECT {_STATUS_SUMS} FROM "{AREA_BALANCE}" {where(WINDOW, TIME)} '
                        "GROUP BY time($window) fill(none) tz('$tz')",
                        _STATUS_COLUMNS,
                    ),
                ),
                width=24,
                height=8,
                decimals=0,
                options=TIMESERIES_OPTIONS,
                defaults=BARS,
                overrides=tuple(status_colours()),
            ),
            _worst_table(
                f"Worst {TOP_N} areas by loss rate",
                "loss_rate",
                "loss_kwh",
                "Energy-weighted loss rate over the time range (total loss / total supply "
                "of the computable windows). Click an area to open its drill-down.",
            ),
            _worst_table(
                f"Worst {TOP_N} areas by lost energy",
                "loss_kwh",
                "loss_rate",
                "Total loss [kWh] over the computable windows of the time range: where the "
                "most energy disappears, whatever the rate.",
            ),
            Panel(
                "Loss-rate distribution",
                "histogram",
                "Loss rate of every computable area-window in the time range.",
                (
                    Query(
                        "A",
                        f'SELECT "loss_rate" FROM "{AREA_BALANCE}" '
                        f"{where(WINDOW, COMPUTABLE, TIME)}",
                        ("time", "loss_rate"),
                    ),
                ),
                width=12,
                height=9,
                unit="percentunit",
                options={"combine": True, "legend": {"showLegend": False}},
            ),
            Panel(
                "Incomputable areas and why",
                "table",
                "Areas with windows that cannot be balanced: no area meter, no reading "
                "bracketing the window, no supply, or too few customer meters reporting "
                "(coverage). The reason is the one of the latest such window.",
                (
                    Query(
                        "A",
                        'SELECT count("status") AS "windows", last("reason") AS "reason", '
                        'last("coverage") AS "coverage" '
                        f'FROM "{AREA_BALANCE}" {where(WINDOW, INCOMPUTABLE, TIME)} '
                        'GROUP BY "area"',
                        ("time", "windows", "reason", "coverage"),
                        tags=("area",),
                        result_format="table",
                    ),
                ),
                width=12,
                height=9,
                options=sort_table("windows"),
                overrides=(unit_of("coverage", "percentunit"), link_to_area("area")),
                transformations=(hide_time(),),
            ),
            Panel(
                "Loss rate over time",
                "timeseries",
                "Energy-weighted loss rate of all computable areas per window.",
                (
                    Query(
                        "A",
                        'SELECT sum("loss_kwh") / sum("supply_kwh") AS "loss_rate" '
                        f'FROM "{AREA_BALANCE}" {where(WINDOW, COMPUTABLE, TIME)} '
                        "GROUP BY time($window) fill(none) tz('$tz')",
                        ("time", "loss_rate"),
                    ),
                ),
                width=12,
                height=8,
                unit="percentunit",
                options=TIMESERIES_OPTIONS,
                defaults=LINES,
            ),
            Panel(
                "Supply, billed and lost energy",
                "timeseries",
                "Totals over the computable areas per window [kWh].",
                (
                    Query(
                        "A",
                        'SELECT sum("supply_kwh") AS "supply_kwh", sum("billed_kwh") AS '
                        '"billed_kwh", sum("loss_kwh") AS "loss_kwh" '
                        f'FROM "{AREA_BALANCE}" {where(WINDOW, COMPUTABLE, TIME)} '
                        "GROUP BY time($window) fill(none) tz('$tz')",
                        ("time", "supply_kwh", "billed_kwh", "loss_kwh"),
                    ),
                ),
                width=12,
                height=8,
                unit="kwatth",
                options=TIMESERIES_OPTIONS,
                defaults=LINES,
            ),
            Panel(
                "Feeder loss rate (10 kV)",
                "timeseries",
                "Each feeder's head meter against its areas and dedicated customers.",
                (
                    Query(
                        "A",
                        f'SELECT "loss_rate" FROM "{FEEDER_BALANCE}" '
                        f'{where(WINDOW, COMPUTABLE, TIME)} GROUP BY "feeder"',
                        ("time", "loss_rate"),
                        tags=("feeder",),
                        alias="$tag_feeder",
                    ),
                ),
                width=24,
                height=8,
                unit="percentunit",
                options=TIMESERIES_OPTIONS,
                defaults=LINES,
            ),
        ),
    )
