"""Reusable panel options: status colours, table columns, links between dashboards."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STATUS_COLOURS = {
    "normal": "green",
    "high_loss": "red",
    "negative_loss": "purple",
    "incomputable": "text",  # grey in both themes
}

AREA_URL = (
    "/d/lineloss-area/lineloss-area?var-area=${__value.raw:percentencode}&var-window=${window}"
    "&${__url_time_range}"
)


def colour(field_name: str, colour_name: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour_name}}],
    }


def status_colours() -> list[dict[str, Any]]:
    return [colour(name, c) for name, c in STATUS_COLOURS.items()]


def status_value_mappings() -> list[dict[str, Any]]:
    """Colours for the ``status`` string field in state timelines and tables."""
    return [
        {
            "type": "value",
            "options": {
                name: {"color": c, "index": i, "text": name.replace("_", " ")}
                for i, (name, c) in enumerate(STATUS_COLOURS.items())
            },
        }
    ]


def unit_of(field_name: str, unit: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [{"id": "unit", "value": unit}],
    }


def link_to_area(field_name: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [
            {"id": "links", "value": [{"title": "Open the area drill-down", "url": AREA_URL}]}
        ],
    }


def dashed(field_name: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "color", "value": {"mode": "fixed", "fixedColor": "orange"}},
        ],
    }


def hide_time() -> dict[str, Any]:
    """Table transformation: drop the ``Time`` column of aggregate-only results."""
    return {
        "id": "organize",
        "options": {"excludeByName": {"Time": True}, "indexByName": {}, "renameByName": {}},
    }


def sort_table(column: str, *, desc: bool = True) -> Mapping[str, Any]:
    return {
        "showHeader": True,
        "cellHeight": "sm",
        "sortBy": [{"displayName": column, "desc": desc}],
    }


STAT_OPTIONS: Mapping[str, Any] = {
    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    "orientation": "auto",
    "textMode": "value_and_name",
    "colorMode": "background",
    "graphMode": "none",
    "justifyMode": "auto",
}

BARS: Mapping[str, Any] = {
    "custom": {
        "drawStyle": "bars",
        "barAlignment": 1,  # a point is stamped at its window start: the bar covers the window
        "fillOpacity": 80,
        "lineWidth": 1,
        "stacking": {"mode": "normal", "group": "A"},
    }
}

LINES: Mapping[str, Any] = {
    "custom": {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 0, "showPoints": "auto"}
}

TIMESERIES_OPTIONS: Mapping[str, Any] = {
    "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
    "tooltip": {"mode": "multi", "sort": "desc"},
}
