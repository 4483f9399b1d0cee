"""InfluxDB output: the batching writer, InfluxQL reads, and the measurement schema.

One path for every InfluxDB version: line protocol to the v1 ``/write`` endpoint and
InfluxQL on ``/query`` (native in 1.x, the v1 compatibility API in 2.x and 3.x).
See docs/influxdb.md for the schema and the fault behaviour.
"""

from sinks.influx.http import HttpResponse, Transport, TransportError, UrllibTransport
from sinks.influx.query import (
    InfluxQLClient,
    InfluxQueryError,
    Series,
    quote_ident,
    quote_literal,
    regex_escape,
)
from sinks.influx.replay_sink import InfluxReplaySink
from sinks.influx.settings import InfluxSettings
from sinks.influx.spill import SinkBackpressure, SpillStore
from sinks.influx.writer import InfluxWriter, SinkHealth

__all__ = [
    "HttpResponse",
    "InfluxQLClient",
    "InfluxQueryError",
    "InfluxReplaySink",
    "InfluxSettings",
    "InfluxWriter",
    "Series",
    "SinkBackpressure",
    "SinkHealth",
    "SpillStore",
    "Transport",
    "TransportError",
    "UrllibTransport",
    "quote_ident",
    "quote_literal",
    "regex_escape",
]
