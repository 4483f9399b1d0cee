"""Fixtures of the dashboard tests (see tests/support/replayed_grid.py)."""

from replayed_grid import influx_url, replayed

__all__ = ["influx_url", "replayed"]
