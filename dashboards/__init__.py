"""Grafana dashboards as code: built in Python, committed as JSON, provisioned or published.

``build_dashboards()`` returns the four dashboards (overview, area drill-down,
suspects, pipeline health); ``dashboards.generate`` writes them to
``dashboards/generated/`` (what Grafana's file provisioning reads, see
deploy/grafana/provisioning) and ``dashboards.publish`` uploads them to an existing
Grafana. See docs/dashboards.md.
"""

from __future__ import annotations

from dashboards import area, health, overview, suspects
from dashboards.model import Dashboard


def build_dashboards() -> list[Dashboard]:
    """All dashboards, in the order they are listed in the docs."""
    return [overview.build(), area.build(), suspects.build(), health.build()]


__all__ = ["Dashboard", "build_dashboards"]
