"""Reading back with InfluxQL over the v1 ``/query`` endpoint, and quoting helpers.

The same endpoint and language serve Grafana's InfluxDB datasource (InfluxQL mode),
so the dashboard tests run their panel queries through this client.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sinks.influx.http import Transport, UrllibTransport, auth_headers
from sinks.influx.settings import InfluxSettings

_READ_ONLY = re.compile(r"^\s*(SELECT|SHOW)\b", re.IGNORECASE)
_REGEX_SPECIAL = re.compile(r"([\\^$.|?*+()\[\]{}/-])")


class InfluxQueryError(RuntimeError):
    """The server answered the query with an error (or not with JSON at all)."""


@dataclass(frozen=True)
class Series:
    """One result series: ``values`` rows follow ``columns`` (``time`` first)."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.values]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.values]


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes (measurement, tag or field name)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_literal(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def regex_escape(value: str) -> str:
    """Text to match literally inside an InfluxQL regex ``/^...$/``.

    Escapes the characters RE2 gives a meaning to and the ``/`` delimiter, as
    Grafana does when it substitutes a template variable into ``=~ /^$var$/``.
    """
    return _REGEX_SPECIAL.sub(r"\\\1", value)


class InfluxQLClient:
    """Runs InfluxQL statements; SELECT and SHOW as GET, everything else as POST."""

    def __init__(self, settings: InfluxSettings, *, transport: Transport | None = None) -> None:
        self.settings = settings
        self._transport = transport or UrllibTransport()

    def query(self, statement: str, *, epoch: str | None = "s") -> list[Series]:
        """Series of a single statement (``epoch``: time as integers in that unit)."""
        results = self.query_all(statement, epoch=epoch)
        return results[0] if results else []

    def query_all(self, statements: str, *, epoch: str | None = "s") -> list[list[Series]]:
        """Series per statement of a ``;``-separated list."""
        params = {"db": self.settings.database, "q": statements}
        if self.settings.retention_policy:
            params["rp"] = self.settings.retention_policy
        if epoch:
            params["epoch"] = epoch
        headers = auth_headers(self.settings)
        base = f"{self.settings.base_url}/query"
        if _READ_ONLY.match(statements):
            resp = self._transport.request(
                "GET",
                f"{base}?{urllib.parse.urlencode(params)}",
                body=None,
                headers=headers,
                timeout_s=self.settings.timeout_s,
            )
        else:
            resp = self._transport.request(
                "POST",
                base,
                body=urllib.parse.urlencode(params).encode("utf-8"),
                headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
                timeout_s=self.settings.timeout_s,
            )
        try:
            payload = json.loads(resp.body or b"{}")
        except json.JSONDecodeError as exc:
            raise InfluxQueryError(f"HTTP {resp.status}, not JSON: {resp.text[:200]}") from exc
        if resp.status >= 300 or "error" in payload:
            raise InfluxQueryError(f"HTTP {resp.status}: {payload.get('error', resp.text[:200])}")
        out: list[list[Series]] = []
        for result in payload.get("results", []):
            if "error" in result:
                raise InfluxQueryError(f"{result['error']} in: {statements[:300]}")
            out.append(_series(result.get("series", [])))
        return out


def _series(raw: Sequence[dict[str, Any]]) -> list[Series]:
    return [
        Series(
            name=s.get("name", ""),
            tags=dict(s.get("tags") or {}),
            columns=list(s.get("columns", [])),
            values=[list(v) for v in s.get("values", [])],
        )
        for s in raw
    ]
