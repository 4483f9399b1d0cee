"""Versioned JSON messages and their codecs (docs/streaming.md#messages).

Decoding never raises on bad input: every message that cannot be used becomes a
``DeadLetter`` with its reason and where it came from (topic, partition, offset), and
the rest of the batch goes on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from lineloss.domain import (
    NO_INDEX,
    Balance,
    BalanceLevel,
    BalanceStatus,
    MeterEvent,
    ReadingBatch,
    Suspicion,
    SuspicionCategory,
    TargetKind,
    Topology,
)
from lineloss.timeline import MeterHistory, always, history_from_json, history_to_json

READING: Final = "lineloss.reading"
BATCH: Final = "lineloss.concentrator_batch"
CONTROL: Final = "lineloss.control"
BALANCE: Final = "lineloss.balance"
SUSPICION: Final = "lineloss.suspicion"
DEAD_LETTER: Final = "lineloss.dead_letter"
METER: Final = "lineloss.meter"
METER_WINDOWS: Final = "lineloss.meter_windows"
VERSION: Final = 1
SUPPORTED: Final = {READING: {1}, BATCH: {1}, CONTROL: {1}}

END_OF_STREAM: Final = "end_of_stream"
END_OF_FORWARDS: Final = "end_of_forwards"  # a partition forwarded all it will
WATERMARK: Final = "watermark"  # how far a partition has read its readings (null: idle)
IDLE: Final = "idle"  # the worker to its own partition: no readings for a while
DRAINED: Final = "drained"

_MIN_TS: Final = 946684800  # 2000-01-01 UTC, the data contract's plausible range
_MAX_TS: Final = 5206982400  # 2135-01-01 UTC


class MessageError(ValueError):
    """One message or one reading of a batch cannot be used; ``reason`` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Origin:
    """Where a message came from."""

    topic: str
    partition: int
    offset: int
    index: int = 0  # position of the reading in a concentrator batch


@dataclass(frozen=True)
class DeadLetter:
    """A refused message or reading. Reasons: ``malformed_json``, ``unknown_schema``,
    ``unsupported_version``, ``missing_field``, ``non_numeric``, ``bad_value``,
    ``unknown_meter`` (codec), or any engine ``RejectReason`` (``too_late``, ...)."""

    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    meter_id: str = ""
    raw: str = ""  # the message text, cut to 1000 characters
    index: int = 0  # position of the reading in a concentrator batch

    def encode(self) -> bytes:
        return _dumps({"schema": DEAD_LETTER, "version": VERSION, **asdict(self)})


@dataclass(frozen=True)
class ReadingRow:
    """One reading as it travels: ``value`` is a register [kWh, before the multiplier]
    or, with ``is_interval``, an interval energy [kWh, after the multiplier]."""

    meter_id: str
    ts: int  # end of interval [s since epoch]
    value: float
    is_interval: bool = False
    voltage_v: float = math.nan
    event: str = ""


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, default=_jsonable).encode()


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _iso(ts_s: int) -> str:
    return datetime.fromtimestamp(ts_s, tz=UTC).isoformat().replace("+00:00", "Z")


def _row_json(r: ReadingRow, with_ts: bool) -> dict[str, Any]:
    d: dict[str, Any] = {"meter_id": r.meter_id}
    if with_ts:
        d["ts"] = _iso(r.ts)
    d["interval_kwh" if r.is_interval else "register_kwh"] = r.value
    if not math.isnan(r.voltage_v):
        d["voltage_v"] = r.voltage_v
    if r.event:
        d["event"] = r.event
    return d


def encode_reading(r: ReadingRow) -> bytes:
    return _dumps({"schema": READING, "version": VERSION, **_row_json(r, True)})


def encode_batch(area_id: str, rows: Sequence[ReadingRow], *, sent_at: int | None = None) -> bytes:
    """A concentrator batch: readings of one area's meters. ``ts`` is given once when
    all rows share it, else per row."""
    ts_values = {r.ts for r in rows}
    common = len(ts_values) == 1
    msg: dict[str, Any] = {"schema": BATCH, "version": VERSION, "area_id": area_id}
    if common:
        msg["ts"] = _iso(next(iter(ts_values)))
    if sent_at is not None:
        msg["sent_at"] = _iso(sent_at)
    msg["readings"] = [_row_json(r, not common) for r in rows]
    return _dumps(msg)


def encode_control(kind: str, **fields: Any) -> bytes:
    return _dumps({"schema": CONTROL, "version": VERSION, "type": kind, **fields})


def parse_ts(value: Any) -> int:
    """ISO 8601 (offset or ``Z``; none means UTC) or epoch seconds -> epoch seconds."""
    if isinstance(value, bool):
        raise MessageError("bad_value", f"ts {value!r} is not a time")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise MessageError("non_numeric", f"ts {value!r} is not finite")
        ts = int(value)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise MessageError("bad_value", f"ts {value!r} is not ISO 8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        ts = int(dt.timestamp())
    else:
        raise MessageError("bad_value", f"ts {value!r} is not a time")
    if not _MIN_TS <= ts < _MAX_TS:
        raise MessageError("bad_value", f"ts {value!r} is outside 2000-2134")
    return ts


def _number(d: dict[str, Any], name: str) -> float:
    v = d[name]
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise MessageError("non_numeric", f"{name} {v!r} is not a number")
    try:
        x = float(v)
    except ValueError:
        raise MessageError("non_numeric", f"{name} {v!r} is not a number") from None
    if not math.isfinite(x):
        raise MessageError("non_numeric", f"{name} {v!r} is not finite")
    return x


def _row(d: Any, default_ts: Any) -> ReadingRow:
    if not isinstance(d, dict):
        raise MessageError("missing_field", "a reading must be a JSON object")
    meter_id = d.get("meter_id")
    if not isinstance(meter_id, str) or not meter_id.strip():
        raise MessageError("missing_field", "meter_id is missing or empty")
    ts_raw = d.get("ts", default_ts)
    if ts_raw is None:
        raise MessageError("missing_field", f"{meter_id}: ts is missing")
    has_reg, has_itv = "register_kwh" in d, "interval_kwh" in d
    if has_reg == has_itv:
        raise MessageError(
            "missing_field", f"{meter_id}: needs exactly one of register_kwh and interval_kwh"
        )
    value = _number(d, "register_kwh" if has_reg else "interval_kwh")
    voltage = _number(d, "voltage_v") if d.get("voltage_v") is not None else math.nan
    event = d.get("event") or ""
    if not isinstance(event, str):
        raise MessageError("bad_value", f"{meter_id}: event {event!r} is not a name")
    return ReadingRow(meter_id.strip(), parse_ts(ts_raw), value, has_itv, voltage, event)


def decode_rows(raw: bytes | None) -> list[ReadingRow | MessageError]:
    """The readings of one message (single or batch). A message-level problem is one
    ``MessageError``; a batch with one bad reading keeps the others."""
    if raw is None:
        return [MessageError("malformed_json", "empty message (tombstone)")]
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:  # (also bad UTF-8, NaN and Infinity literals)
        return [MessageError("malformed_json", str(exc))]
    return message_rows(msg)


def message_rows(msg: Any) -> list[ReadingRow | MessageError]:
    """``decode_rows`` of a message already parsed from JSON."""
    if not isinstance(msg, dict):
        return [MessageError("malformed_json", "message is not a JSON object")]
    schema, version = msg.get("schema"), msg.get("version")
    if schema not in SUPPORTED:
        return [MessageError("unknown_schema", f"schema {schema!r} is not a reading message")]
    if version not in SUPPORTED[schema]:
        return [
            MessageError(
                "unsupported_version",
                f"{schema} version {version!r}; this worker reads {sorted(SUPPORTED[schema])}",
            )
        ]
    if schema == CONTROL:
        return []
    if schema == READING:
        try:
            return [_row(msg, None)]
        except MessageError as exc:
            return [exc]
    readings = msg.get("readings")
    if not isinstance(readings, list):
        return [MessageError("missing_field", "a concentrator batch needs a readings list")]
    out: list[ReadingRow | MessageError] = []
    for d in readings:
        try:
            out.append(_row(d, msg.get("ts")))
        except MessageError as exc:
            out.append(exc)
    return out


def control_type(raw: bytes | None) -> str | None:
    """The ``type`` of a control message, None for any other message."""
    if raw is None or b'"' + CONTROL.encode() + b'"' not in raw:
        return None
    try:
        msg = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(msg, dict) and msg.get("schema") == CONTROL and msg.get("version") == 1:
        return str(msg.get("type"))
    return None


@dataclass
class Decoded:
    """Readings of many messages as one columnar batch, with where each came from.
    ``batch.source_pos`` is each row's source position: its index in ``meter_ids``
    and for ``origin``."""

    batch: ReadingBatch
    meter_ids: list[str]  # as written
    dead_letters: list[DeadLetter]
    messages: list[Origin]  # the origin of each decoded message (or forwarded reading)
    message_of: npt.NDArray[np.int64]  # reading -> its entry in ``messages``
    index: npt.NDArray[np.int64]  # reading -> its position in its message

    def origin(self, pos: int) -> Origin:
        """Where the reading at source position ``pos`` came from."""
        return replace(self.messages[int(self.message_of[pos])], index=int(self.index[pos]))

    def row(self, i: int) -> ReadingRow:
        """The reading in row ``i`` of ``batch`` as it travels (for forwarding).
        (Rows and source positions differ once unknown meters are taken out.)"""
        b = self.batch
        code = int(b.event[i])
        return ReadingRow(
            self.meter_ids[int(b.source_pos[i])],
            int(b.ts[i]),
            float(b.value[i]),
            bool(b.is_interval[i]),
            float(b.voltage_v[i]),
            MeterEvent(code).name.lower() if code else "",
        )


class ReadingColumns:
    """Collects decoded readings column by column. A concentrator batch in the common
    shape (one ``ts``, plain numbers) is taken whole, with no per-reading objects: that
    is most of the traffic. Any other message goes through ``decode_rows``, which
    checks every reading on its own; both give the same columns."""

    _FAST_OPTIONAL: Final = frozenset({"voltage_v", "event", "ts"})

    def __init__(self) -> None:
        self.meter_ids: list[str] = []
        self._ts: list[npt.NDArray[np.int64]] = []
        self._value: list[npt.NDArray[np.float64]] = []
        self._interval: list[npt.NDArray[np.bool_]] = []
        self._voltage: list[npt.NDArray[np.float32]] = []
        self._event: list[npt.NDArray[np.int16]] = []
        self._message_of: list[npt.NDArray[np.int64]] = []
        self._index: list[npt.NDArray[np.int64]] = []
        self.messages: list[Origin] = []
        self.dead: list[DeadLetter] = []

        self._ts_cache: dict[Any, int] = {}
        self._event_cache: dict[str, int] = {}

    def add_message(self, origin: Origin, raw: bytes | None) -> None:
        if raw is not None and b'"readings"' in raw:
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass  # decode_rows says why
            else:
                if not (isinstance(msg, dict) and self._add_fast(origin, msg)):
                    self.add_rows(origin, message_rows(msg), raw)
                return
        self.add_rows(origin, decode_rows(raw), raw)

    def add_rows(
        self,
        origin: Origin,
        items: Sequence[ReadingRow | MessageError],
        raw: bytes | None = None,
        origins: Sequence[Origin] | None = None,
    ) -> None:
        """Readings one by one (errors become dead letters); ``origins`` gives each
        its own origin (forwarded readings), else they share ``origin``."""
        rows: list[ReadingRow] = []
        index: list[int] = []
        first = len(self.messages)
        message_of: list[int] = []
        for k, item in enumerate(items):
            if isinstance(item, MessageError):
                at = replace(origin, index=k)
                self.dead.append(dead_letter(item.reason, item.detail, at, "", raw))
                continue
            rows.append(item)
            if origins is None:
                index.append(k)
                message_of.append(first)
            else:
                index.append(origins[k].index)
                message_of.append(len(self.messages))
                self.messages.append(origins[k])
        if origins is None:
            self.messages.append(origin)
        if not rows:
            return
        events = {name: MeterEvent.parse(name).value for name in {r.event for r in rows}}
        self.meter_ids.extend(r.meter_id for r in rows)
        self._ts.append(np.array([r.ts for r in rows], np.int64))
        self._value.append(np.array([r.value for r in rows], np.float64))
        self._interval.append(np.array([r.is_interval for r in rows], np.bool_))
        self._voltage.append(np.array([r.voltage_v for r in rows], np.float32))
        self._event.append(np.array([events[r.event] for r in rows], np.int16))
        self._message_of.append(np.array(message_of, np.int64))
        self._index.append(np.array(index, np.int64))

    def _add_fast(self, origin: Origin, msg: dict[str, Any]) -> bool:
        """A well-formed concentrator batch of plain numbers, taken whole with a few
        passes over its readings; False (nothing taken) for anything the one-by-one
        path must look at (it then finds the same values, or says what is wrong)."""
        readings = msg.get("readings")
        if (
            msg.get("schema") != BATCH
            or msg.get("version") not in SUPPORTED[BATCH]
            or not isinstance(readings, list)
            or not readings
            or not all(type(d) is dict for d in readings)
        ):
            return False
        fields = frozenset().union(*readings)
        kinds = fields & {"register_kwh", "interval_kwh"}
        if len(kinds) != 1 or not fields - kinds <= {"meter_id"} | self._FAST_OPTIONAL:
            return False
        value_key = next(iter(kinds))
        try:
            ids = [d["meter_id"] for d in readings]
            values = [d[value_key] for d in readings]
            ts_raw = [d["ts"] for d in readings] if "ts" in fields else None
            volts = [d["voltage_v"] for d in readings] if "voltage_v" in fields else None
        except KeyError:
            return False  # a reading lacks a field the others have
        if set(map(type, ids)) != {str} or "" in ids or [i.strip() for i in ids] != ids:
            return False
        if not set(map(type, values)) <= {float, int}:
            return False
        n = len(ids)
        value = np.array(values, np.float64)
        voltage = np.full(n, np.nan, np.float32)
        if volts is not None:
            if not set(map(type, volts)) <= {float, int}:
                return False
            v64 = np.array(volts, np.float64)
            if not np.isfinite(v64).all():
                return False
            voltage = v64.astype(np.float32)
        if not np.isfinite(value).all():
            return False
        try:
            if ts_raw is None:
                if msg.get("ts") is None:
                    return False
                ts = np.full(n, parse_ts(msg["ts"]), np.int64)
            else:
                ts = np.array([self._parse_ts(t) for t in ts_raw], np.int64)
        except (MessageError, TypeError):
            return False  # (TypeError: an unhashable ts, e.g. a list)
        event = np.zeros(n, np.int16)
        if "event" in fields:
            names = [d.get("event") or "" for d in readings]
            if set(map(type, names)) != {str}:
                return False
            event = np.array([self._event_code(e) for e in names], np.int16)
        self.meter_ids.extend(ids)
        self._ts.append(ts)
        self._value.append(value)
        self._interval.append(np.full(n, value_key == "interval_kwh", np.bool_))
        self._voltage.append(voltage)
        self._event.append(event)
        self._message_of.append(np.full(n, len(self.messages), np.int64))
        self._index.append(np.arange(n, dtype=np.int64))
        self.messages.append(origin)
        return True

    def _parse_ts(self, raw: Any) -> int:
        ts = self._ts_cache.get(raw)
        if ts is None:
            ts = self._ts_cache[raw] = parse_ts(raw)
        return ts

    def _event_code(self, name: str) -> int:
        code = self._event_cache.get(name)
        if code is None:
            code = self._event_cache[name] = MeterEvent.parse(name).value
        return code

    def decoded(self, topology: Topology) -> Decoded:
        """One batch indexed by ``topology``; unknown meters become dead letters."""

        def cat(parts: list[Any], dtype: Any) -> Any:
            return np.concatenate(parts) if parts else np.empty(0, dtype)

        idx = (
            topology.index_of(self.meter_ids) if self.meter_ids else np.empty(0, np.int64)
        ).astype(np.int64)
        message_of, index = cat(self._message_of, np.int64), cat(self._index, np.int64)
        out = Decoded(
            ReadingBatch(
                meter_idx=idx,
                ts=cat(self._ts, np.int64),
                value=cat(self._value, np.float64),
                is_interval=cat(self._interval, np.bool_),
                event=cat(self._event, np.int16),
                voltage_v=cat(self._voltage, np.float32),
                source_pos=np.arange(len(idx), dtype=np.int64),
            ),
            self.meter_ids,
            self.dead,
            self.messages,
            message_of,
            index,
        )
        unknown = np.flatnonzero(idx == NO_INDEX)
        for j in unknown.tolist():
            m = self.meter_ids[j]
            self.dead.append(
                dead_letter("unknown_meter", f"{m} is not in the topology", out.origin(j), m)
            )
        if len(unknown):
            out.batch = out.batch.take(idx != NO_INDEX)
        return out


def decode_messages(messages: Sequence[tuple[Origin, bytes | None]], topology: Topology) -> Decoded:
    """Many messages -> one columnar batch for the core, plus their dead letters."""
    cols = ReadingColumns()
    for origin, raw in messages:
        cols.add_message(origin, raw)
    return cols.decoded(topology)


def encode_forwarded(rows: Sequence[ReadingRow], origins: Sequence[Origin]) -> bytes:
    """Readings a worker passes on to the partition that owns their meters: a
    concentrator batch that also says where each reading first arrived, so that dead
    letters point at the original message and a re-sent forward is recognised."""
    msg = json.loads(encode_batch("", rows))
    msg["forwarded"] = [[o.topic, o.partition, o.offset, o.index] for o in origins]
    return _dumps(msg)


def forwarded_origins(raw: bytes | None) -> list[Origin] | None:
    """The original origins of a forwarded message's readings; None for any other."""
    if raw is None or b'"forwarded"' not in raw:
        return None
    try:
        msg = json.loads(raw)
        return [Origin(str(t), int(p), int(o), int(i)) for t, p, o, i in msg["forwarded"]]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def dead_letter(
    reason: str, detail: str, o: Origin, meter_id: str, raw: bytes | None = None
) -> DeadLetter:
    """A refused message or reading where it arrived (``raw``: the message text, for
    message-level errors)."""
    text = raw.decode("utf-8", "replace")[:1000] if raw else ""
    return DeadLetter(reason, detail, o.topic, o.partition, o.offset, meter_id, text, o.index)


def area_key(topology: Topology, meter_id: str) -> str:
    """The partition key of a meter's readings: its area, else its feeder, else itself."""
    i = int(topology.index_of([meter_id])[0])
    if i == NO_INDEX:
        return meter_id
    a, f = int(topology.meter_area[i]), int(topology.meter_feeder[i])
    if a != NO_INDEX:
        return topology.area_ids[a]
    return topology.feeder_ids[f] if f != NO_INDEX else meter_id


def encode_balance(b: Balance) -> bytes:
    d = asdict(b)
    d["level"], d["status"] = b.level.value, b.status.value
    if not math.isfinite(b.loss_rate):
        d["loss_rate"] = None
    return _dumps({"schema": BALANCE, "version": VERSION, **d})


def decode_balance(raw: bytes) -> Balance:
    d = json.loads(raw)
    d.pop("schema"), d.pop("version")
    d["loss_rate"] = math.nan if d["loss_rate"] is None else d["loss_rate"]
    return Balance(**{**d, "level": BalanceLevel(d["level"]), "status": BalanceStatus(d["status"])})


def encode_suspicion(s: Suspicion) -> bytes:
    d = asdict(s)
    d["target_kind"], d["category"] = s.target_kind.value, s.category.value
    return _dumps({"schema": SUSPICION, "version": VERSION, **d})


def decode_suspicion(raw: bytes) -> Suspicion:
    d = json.loads(raw)
    d.pop("schema"), d.pop("version")
    return Suspicion(
        **{
            **d,
            "target_kind": TargetKind(d["target_kind"]),
            "category": SuspicionCategory(d["category"]),
            "detector_scores": tuple(
                (str(name), float(score)) for name, score in d.get("detector_scores", ())
            ),
        }
    )


def suspicion_key(s: Suspicion) -> str:
    return f"{s.target_id}|{s.category.value}|{s.detector}"


def meter_message(topology: Topology, i: int) -> bytes:
    """A registry message for meter ``i`` that has always been what it is now."""
    m = topology.meter(i)
    return encode_meter(m.meter_id, always(m))


def encode_meter(meter_id: str, history: MeterHistory) -> bytes:
    """A registry message: the meter's state now (flat, as version 1 has always
    carried it) and its whole ``history`` (docs/streaming.md#topology-updates). The
    topic is compacted by meter id, so each message replaces the meter's history."""
    states = history_to_json(history)
    now = states[-1]
    flat = {k: v for k, v in now.items() if k != "effective_from"}
    return _dumps(
        {
            "schema": METER,
            "version": VERSION,
            "meter_id": meter_id,
            **flat,
            "effective_from": now["effective_from"],
            "history": states,
        }
    )


def decode_meter(raw: bytes) -> tuple[str, MeterHistory]:
    """The meter id and history of a registry message; a message without
    ``history`` is one state from its ``effective_from`` (absent: always).
    Raises MessageError on anything else."""
    try:
        d = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError("malformed", f"not JSON: {exc}") from exc
    if not isinstance(d, dict) or d.get("schema") != METER:
        raise MessageError("malformed", "not a lineloss.meter message")
    if d.get("version") != VERSION:
        raise MessageError("unsupported_version", f"lineloss.meter version {d.get('version')!r}")
    meter_id = d.get("meter_id")
    if not isinstance(meter_id, str) or not meter_id:
        raise MessageError("malformed", "meter_id must be a non-empty string")
    items = d.get("history") or [d]
    try:
        return meter_id, history_from_json(meter_id, items)
    except (KeyError, TypeError, ValueError) as exc:
        raise MessageError("malformed", f"bad meter state: {exc!r}") from exc


METER_WINDOWS_MAX: Final = 5000  # meters per message: about 300 kB, under Kafka's 1 MB


def encode_meter_windows(
    window_start_s: int,
    window_end_s: int,
    meter_ids: Sequence[str],
    energy_kwh: npt.NDArray[np.float64],
    reporting: npt.NDArray[np.bool_],
    flags: npt.NDArray[np.int8],
    events: npt.NDArray[np.int32],
) -> list[bytes]:
    """One final window's per-meter results as messages of at most
    ``METER_WINDOWS_MAX`` meters; ``energy_kwh`` null where not determined."""
    out = []
    for lo in range(0, len(meter_ids), METER_WINDOWS_MAX):
        hi = lo + METER_WINDOWS_MAX
        e = energy_kwh[lo:hi]
        out.append(
            _dumps(
                {
                    "schema": METER_WINDOWS,
                    "version": VERSION,
                    "window_start": int(window_start_s),
                    "window_end": int(window_end_s),
                    "meter_ids": list(meter_ids[lo:hi]),
                    "energy_kwh": [None if not math.isfinite(x) else x for x in e.tolist()],
                    "reporting": reporting[lo:hi].tolist(),
                    "flags": flags[lo:hi].tolist(),
                    "events": events[lo:hi].tolist(),
                }
            )
        )
    return out


def decode_meter_windows(raw: bytes) -> dict[str, Any]:
    """The fields of a ``lineloss.meter_windows`` message (energy None = unknown)."""
    d = json.loads(raw)
    if d.get("schema") != METER_WINDOWS or d.get("version") != VERSION:
        raise MessageError("unknown_schema", "not a lineloss.meter_windows v1 message")
    return dict(d)
