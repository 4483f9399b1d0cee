"""Plain builders for Grafana dashboards: typed Python in, Grafana's JSON model out.

Why plain builders rather than grafana-foundation-sdk: four dashboards of InfluxQL
panels need a few dozen lines of model, the output must be byte-stable (it is
committed and compared in a test), and the SDK's versioning (one release line per
Grafana version, epoch-prefixed) would be one more pin to keep in step with the
Grafana image. The JSON follows Grafana 11's dashboard model (schemaVersion 39).

Every panel query is raw InfluxQL against the datasource chosen by the
``datasource`` variable, and declares the columns it must return, so the tests can
run it against a real InfluxDB and check them (Grafana cannot run in our CI).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

DATASOURCE_UID = "lineloss-influxdb"
"""The uid the provisioned InfluxDB datasource gets (deploy/grafana/provisioning)."""
DATASOURCE_NAME = "lineloss InfluxDB"

DATASOURCE = {"type": "influxdb", "uid": "${datasource}"}
SCHEMA_VERSION = 39
GRID_COLUMNS = 24

ResultFormat = Literal["time_series", "table"]


@dataclass(frozen=True)
class Query:
    """One raw InfluxQL target.

    ``columns`` is the header InfluxDB returns (``time`` first) and ``tags`` the
    GROUP BY tags each series carries; Grafana shows both as columns of a table.
    """

    ref_id: str
    influxql: str
    columns: tuple[str, ...]
    tags: tuple[str, ...] = ()
    result_format: ResultFormat = "time_series"
    alias: str | None = None  # legend, e.g. "$tag_area"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "refId": self.ref_id,
            "datasource": DATASOURCE,
            "query": self.influxql,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias:
            out["alias"] = self.alias
        return out


@dataclass(frozen=True)
class Panel:
    """A panel; ``kind`` is Grafana's panel type (timeseries, table, stat, ...)."""

    title: str
    kind: str
    description: str
    queries: tuple[Query, ...] = ()
    width: int = 12
    height: int = 8
    unit: str | None = None
    decimals: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # extra fieldConfig.defaults
    overrides: Sequence[Mapping[str, Any]] = ()
    transformations: Sequence[Mapping[str, Any]] = ()

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {}
        if self.unit:
            defaults["unit"] = self.unit
        if self.decimals is not None:
            defaults["decimals"] = self.decimals
        defaults.update(self.defaults)
        out: dict[str, Any] = {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "options": dict(self.options),
            "fieldConfig": {"defaults": defaults, "overrides": [dict(o) for o in self.overrides]},
        }
        if self.queries:
            out["datasource"] = DATASOURCE
            out["targets"] = [q.to_json() for q in self.queries]
        if self.transformations:
            out["transformations"] = [dict(t) for t in self.transformations]
        return out


@dataclass(frozen=True)
class Variable:
    """A template variable: the datasource picker, a tag-value query, or a constant."""

    name: str
    label: str
    kind: Literal["datasource", "query", "constant"]
    query: str
    default: str | None = None
    default_text: str | None = None  # shown for ``default`` (e.g. a datasource's name)
    multi: bool = False
    include_all: bool = False
    hidden: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.kind,
            "query": self.query,
            "hide": 2 if self.hidden else 0,
            "skipUrlSync": False,
            "options": [],
        }
        if self.default is not None:
            text = self.default_text or self.default
            out["current"] = {"selected": False, "text": text, "value": self.default}
        elif self.include_all:
            out["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
        else:
            out["current"] = {}
        if self.kind == "datasource":
            out.update({"refresh": 1, "regex": ""})
        elif self.kind == "query":
            out.update(
                {
                    "datasource": DATASOURCE,
                    "definition": self.query,
                    "refresh": 2,  # on time range change: areas come and go
                    "regex": "",
                    "sort": 1,
                    "multi": self.multi,
                    "includeAll": self.include_all,
                }
            )
            if self.include_all:
                out["allValue"] = ".*"  # used inside =~ /^$var$/
        return out


def datasource_variable() -> Variable:
    return Variable(
        "datasource",
        "InfluxDB",
        "datasource",
        "influxdb",
        default=DATASOURCE_UID,
        default_text=DATASOURCE_NAME,
    )


@dataclass(frozen=True)
class Link:
    title: str
    url: str

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "type": "link",
            "url": self.url,
            "icon": "dashboard",
            "keepTime": True,
            "includeVars": False,
            "targetBlank": False,
            "asDropdown": False,
            "tags": [],
            "tooltip": "",
        }


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    variables: tuple[Variable, ...]
    tags: tuple[str, ...] = ("lineloss",)
    time_from: str = "now-30d"
    refresh: str = "5m"
    links: tuple[Link, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Grafana's dashboard model; panels laid out left to right, then down."""
        panels = []
        x = y = row_height = 0
        for i, panel in enumerate(self.panels, start=1):
            if x + panel.width > GRID_COLUMNS:
                x, y, row_height = 0, y + row_height, 0
            panels.append(panel.to_json(i, x, y))
            x += panel.width
            row_height = max(row_height, panel.height)
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "timezone": "browser",
            "time": {"from": self.time_from, "to": "now"},
            "refresh": self.refresh,
            "annotations": {"list": []},
            "links": [link.to_json() for link in self.links],
            "templating": {"list": [v.to_json() for v in self.variables]},
            "panels": panels,
        }

    def queries(self) -> list[tuple[Panel, Query]]:
        return [(p, q) for p in self.panels for q in p.queries]
