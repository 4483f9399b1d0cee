"""Fixtures of the sink tests: the real InfluxDB server (see tests/support/influx_server.py)."""

from influx_server import influx_settings, influx_url, second_influx

__all__ = ["influx_settings", "influx_url", "second_influx"]
