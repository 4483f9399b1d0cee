"""Outputs of the pipeline: where balances, suspicions and health go after the core.

The streaming core (``streams``) knows none of these modules; a runner hands it a
sink that satisfies ``streams.replay.ReplaySink``. ``sinks.lineprotocol`` is the
wire format, ``sinks.influx`` the InfluxDB writer, reader and measurement schema.
"""

from sinks.lineprotocol import EncodeStats, Point, encode_point, escape_tag

__all__ = ["EncodeStats", "Point", "encode_point", "escape_tag"]
