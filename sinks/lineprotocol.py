"""InfluxDB line protocol: one point per line, escaped so any name survives the trip.

Line protocol is the one write format InfluxDB 1.x, 2.x (through its v1
compatibility API) and 3.x all accept. The escaping rules below were checked
against a real InfluxDB 1.x server (see tests/sinks/influx/test_integration.py):

- measurement: ``,`` and space are escaped with a backslash;
- tag keys, tag values, field keys: ``,``, ``=`` and space are escaped;
- string field values: ``"`` and ``\\`` are escaped.

Some text cannot be expressed at all, so it is rewritten and counted instead of
breaking the whole batch:

- a newline ends the line (the line-protocol reference says it is not supported in
  tag or field values, even where a 1.x server happens to accept it inside quotes),
  so a line break (LF, CR or CR LF) becomes a space, in names, tags and string
  fields alike; every point is then exactly one line, also in the spill files, and
  every name can be written in an InfluxQL query (which cannot quote a CR);
- in a name or tag, a backslash that ends the text or stands before a space, comma, equals sign or
  another backslash is read by the server as an escape (1.x keeps ``\\\\`` literally,
  2.x unescapes it), so it becomes ``/``. Any other backslash is kept.

Non-finite floats (NaN, +-inf) have no line-protocol form: the field is dropped and
counted; a point left without fields is dropped and counted. Nothing here raises
on data, so one odd value never poisons the batch it travels in.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

FieldValue = bool | int | float | str

PRECISION_NS: Final[dict[str, int]] = {"ns": 1, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
"""Nanoseconds per unit of each ``precision`` the /write endpoint accepts."""

MAX_STRING_BYTES: Final = 64_000
"""InfluxDB 1.x refuses string fields over 64 KB; longer ones are cut to this size."""

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_AMBIGUOUS_AFTER_BACKSLASH: Final = frozenset("\\ ,=")


@dataclass(frozen=True)
class Point:
    """One InfluxDB point. ``time_ns`` is the timestamp [ns since epoch, UTC].

    Tags identify the series (keep their values few: every distinct combination is
    a new series in the index); fields carry the numbers.
    """

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ns: int


@dataclass
class EncodeStats:
    """What encoding had to change or leave out, for the sink's health metrics."""

    fields_dropped: int = 0  # NaN, +-inf, or an integer outside int64
    points_dropped: int = 0  # no writable field left
    text_rewritten: int = 0  # a newline, or an ambiguous backslash in a name or tag
    strings_truncated: int = 0
    dropped_examples: list[str] = field(default_factory=list)  # first few, for the log

    def merge(self, other: EncodeStats) -> None:
        self.fields_dropped += other.fields_dropped
        self.points_dropped += other.points_dropped
        self.text_rewritten += other.text_rewritten
        self.strings_truncated += other.strings_truncated
        room = 5 - len(self.dropped_examples)
        if room > 0:
            self.dropped_examples.extend(other.dropped_examples[:room])


def _one_line(text: str) -> str:
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def normalise_name(text: str) -> str:
    """The text a name or tag value will read back as (newlines, odd backslashes fixed)."""
    text = _one_line(text)
    if "\\" not in text:
        return text
    out = []
    for i, ch in enumerate(text):
        if ch == "\\" and (i + 1 == len(text) or text[i + 1] in _AMBIGUOUS_AFTER_BACKSLASH):
            out.append("/")
        else:
            out.append(ch)
    return "".join(out)


def escape_measurement(name: str) -> str:
    """Escape a measurement name (after ``normalise_name``)."""
    return name.replace(",", "\\,").replace(" ", "\\ ")


def escape_tag(text: str) -> str:
    """Escape a tag key, tag value or field key (after ``normalise_name``)."""
    return text.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def normalise_string(text: str) -> str:
    """The text a string field will read back as (before truncation)."""
    return _one_line(text)


def escape_string_field(text: str) -> str:
    """Escape a string field value; the caller adds the surrounding quotes."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _name(text: str, what: str, stats: EncodeStats) -> str:
    fixed = normalise_name(text)
    if fixed != text:
        stats.text_rewritten += 1
    if not fixed:
        raise ValueError(f"{what} must not be empty")
    return fixed


def _truncate_utf8(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", errors="ignore")


def format_field_value(value: object, stats: EncodeStats) -> str | None:
    """The line-protocol form of one field value, or None when it cannot be written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):  # int and numpy integers
        v = int(value)
        if not _INT64_MIN <= v <= _INT64_MAX:
            stats.fields_dropped += 1
            return None
        return f"{v}i"
    if isinstance(value, numbers.Real):  # float and numpy floats
        f = float(value)
        if not math.isfinite(f):
            stats.fields_dropped += 1
            return None
        return repr(f)
    if isinstance(value, str):
        flat = _one_line(value)
        if flat != value:
            stats.text_rewritten += 1
        cut = _truncate_utf8(flat, MAX_STRING_BYTES)
        if cut != flat:
            stats.strings_truncated += 1
        return f'"{escape_string_field(cut)}"'
    raise TypeError(f"unsupported field value type {type(value).__name__}: {value!r}")


def encode_point(point: Point, precision: str, stats: EncodeStats) -> str | None:
    """One line of line protocol (no newline), or None when no field is writable.

    Tags with an empty value are left out (line protocol has no empty tag value);
    tags are sorted by key, as InfluxDB recommends for write performance.
    """
    if precision not in PRECISION_NS:
        raise ValueError(f"precision must be one of {sorted(PRECISION_NS)}, not {precision!r}")
    if point.measurement.startswith("#"):
        raise ValueError(f"measurement {point.measurement!r} would be read as a comment")
    parts = [escape_measurement(_name(point.measurement, "measurement", stats))]
    for key in sorted(point.tags, key=lambda k: k.encode("utf-8")):
        tag_value = point.tags[key]
        if tag_value == "":
            continue
        parts.append(
            f"{escape_tag(_name(key, 'tag key', stats))}="
            f"{escape_tag(_name(tag_value, 'tag', stats))}"
        )
    fields = []
    for key, field_value in point.fields.items():
        text = format_field_value(field_value, stats)
        if text is None:
            if len(stats.dropped_examples) < 5:
                stats.dropped_examples.append(f"{point.measurement}.{key}={field_value!r}")
            continue
        fields.append(f"{escape_tag(_name(key, 'field key', stats))}={text}")
    if not fields:
        stats.points_dropped += 1
        return None
    ts = point.time_ns // PRECISION_NS[precision]
    return f"{','.join(parts)} {','.join(fields)} {ts}"
