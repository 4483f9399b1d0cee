"""Message codecs: round trips, and every bad message becomes a dead letter with a reason."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from factories import DAY0, make_topology
from hypothesis import given
from hypothesis import strategies as st

from kafka_io.schema import (
    END_OF_STREAM,
    MessageError,
    Origin,
    ReadingRow,
    area_key,
    control_type,
    decode_balance,
    decode_messages,
    decode_meter,
    decode_rows,
    encode_balance,
    encode_batch,
    encode_control,
    encode_meter,
    encode_reading,
    meter_message,
    parse_ts,
)
from lineloss.domain import Balance, BalanceLevel, BalanceStatus, MeterEvent

TOPO = make_topology(
    [
        ("F", "feeder", None, "F1", 1.0),
        ("T1", "area", "A1", "F1", 40.0),
        ("C1", "customer", "A1", "F1", 1.0),
        ("C2", "customer", "A1", "F1", 1.0),
    ]
)
AT = Origin("readings", 2, 41)


def test_single_reading_round_trip() -> None:
    row = ReadingRow("C1", DAY0 + 900, 123.45, False, 229.5, "cover_open")
    assert decode_rows(encode_reading(row)) == [row]


@given(
    values=st.lists(
        st.tuples(
            st.sampled_from(["T1", "C1", "C2"]),
            st.integers(0, 10_000),
            st.floats(0, 1e6, allow_nan=False),
            st.booleans(),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_batch_round_trip(values: list[tuple[str, int, float, bool]]) -> None:
    rows = [ReadingRow(m, DAY0 + 900 * k, v, i) for m, k, v, i in values]
    decoded = decode_rows(encode_batch("A1", rows))
    assert decoded == rows


def test_batch_with_a_common_ts_states_it_once() -> None:
    rows = [ReadingRow("C1", DAY0, 1.0), ReadingRow("C2", DAY0, 2.0)]
    msg = json.loads(encode_batch("A1", rows))
    assert msg["ts"] == "2026-02-28T16:00:00Z" and "ts" not in msg["readings"][0]
    assert decode_rows(encode_batch("A1", rows)) == rows


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (None, "malformed_json"),
        (b'{"schema": "other", "version": 1}', "unknown_schema"),
        (b'{"schema": "lineloss.reading", "version": 9, "meter_id": "C1"}', "unsupported_version"),
        (b'{"schema": "lineloss.reading", "version": 1, "ts": 1772294400}', "missing_field"),
        (
            b'{"schema": "lineloss.reading", "version": 1, "meter_id": "C1", "register_kwh": 1}',
            "missing_field",
        ),
        (
            b'{"schema": "lineloss.reading", "version": 1, "meter_id": "C1", "ts": 1772294400}',
            "missing_field",
        ),
        (
            b'{"schema": "lineloss.reading", "version": 1, "meter_id": "C1", "ts": 1772294400, '
            b'"register_kwh": "lots"}',
            "non_numeric",
        ),
        (
            b'{"schema": "lineloss.reading", "version": 1, "meter_id": "C1", "ts": "yesterday", '
            b'"register_kwh": 1}',
            "bad_value",
        ),
        (
            b'{"schema": "lineloss.reading", "version": 1, "meter_id": "C1", "ts": 5, '
            b'"register_kwh": 1}',
            "bad_value",
        ),
        (b'{"schema": "lineloss.concentrator_batch", "version": 1}', "missing_field"),
    ],
)
def test_bad_messages_become_dead_letters(raw: bytes | None, reason: str) -> None:
    d = decode_messages([(AT, raw)], TOPO)
    assert len(d.batch) == 0
    [dead] = d.dead_letters
    assert (dead.reason, dead.topic, dead.partition, dead.offset) == (reason, "readings", 2, 41)
    assert dead.detail


def test_one_bad_reading_of_a_batch_keeps_the_others() -> None:
    msg = json.loads(encode_batch("A1", [ReadingRow("C1", DAY0, 1.0), ReadingRow("C2", DAY0, 2.0)]))
    msg["readings"].insert(1, {"meter_id": "C2", "register_kwh": "NaN"})
    msg["readings"].append({"meter_id": "C9", "register_kwh": 5})
    d = decode_messages([(AT, json.dumps(msg).encode())], TOPO)
    assert [TOPO.meter_ids[i] for i in d.batch.meter_idx] == ["C1", "C2"]
    assert sorted((x.reason, x.index) for x in d.dead_letters) == [
        ("non_numeric", 1),
        ("unknown_meter", 3),
    ]
    assert d.origin(1).index == 2


def test_decoded_columns() -> None:
    rows = [
        ReadingRow("C1", DAY0, 10.0, False, 231.0, "magnetic"),
        ReadingRow("T1", DAY0 + 900, 0.5, True),
    ]
    d = decode_messages([(AT, encode_batch("A1", rows))], TOPO)
    b = d.batch
    assert b.ts.tolist() == [DAY0, DAY0 + 900]
    assert b.is_interval.tolist() == [False, True]
    assert b.event.tolist() == [MeterEvent.MAGNETIC, 0]
    assert b.voltage_v[0] == np.float32(231.0) and math.isnan(b.voltage_v[1])
    assert b.source_pos.tolist() == [0, 1]


def test_control_messages_are_not_readings() -> None:
    eos = encode_control(END_OF_STREAM, readings=3)
    assert control_type(eos) == END_OF_STREAM
    assert decode_rows(eos) == []
    assert control_type(encode_reading(ReadingRow("C1", DAY0, 1.0))) is None


def test_parse_ts() -> None:
    assert parse_ts("2026-03-01T00:15:00+08:00") == parse_ts("2026-02-28T16:15:00Z")
    assert parse_ts("2026-02-28T16:15:00") == parse_ts(1772295300) == 1772295300
    with pytest.raises(MessageError):
        parse_ts(float("nan"))


def test_keys_route_meters_to_their_area() -> None:
    assert area_key(TOPO, "C2") == "A1"
    assert area_key(TOPO, "T1") == "A1"
    assert area_key(TOPO, "F") == "F1"
    assert area_key(TOPO, "nobody") == "nobody"


def test_balance_round_trip_keeps_nan_loss_rate() -> None:
    b = Balance(
        BalanceLevel.AREA,
        "A1",
        "F1",
        DAY0,
        DAY0 + 86400,
        0.0,
        1.0,
        -1.0,
        math.nan,
        0.5,
        2,
        1,
        BalanceStatus.INCOMPUTABLE,
        "no area meter in the topology",
        0,
        True,
    )
    back = decode_balance(encode_balance(b))
    assert repr(back) == repr(b)


def test_registry_messages_carry_the_meters_whole_history() -> None:
    from lineloss.domain import Meter, MeterRole
    from lineloss.timeline import BEGINNING_S, MeterState, always

    history = (
        MeterState(BEGINNING_S, TOPO.meter(2)),
        MeterState(DAY0, Meter("C1", MeterRole.CUSTOMER, "A2", "F1", 2.0)),
        MeterState(DAY0 + 86400, None),
    )
    raw = encode_meter("C1", history)
    d = json.loads(raw)
    # The flat fields say what the meter is now (here: out of service).
    assert d["removed"] is True and d["effective_from"] == DAY0 + 86400
    assert decode_meter(raw) == ("C1", history)
    assert decode_meter(meter_message(TOPO, 1)) == ("T1", always(TOPO.meter(1)))
    # A version-1 message without a history (as published before): one state.
    flat = b'{"schema":"lineloss.meter","version":1,"meter_id":"C9","role":"customer",'
    flat += b'"area_id":"A1","feeder_id":"F1","multiplier":1.0,"effective_from":1000}'
    assert decode_meter(flat) == (
        "C9",
        (MeterState(1000, Meter("C9", MeterRole.CUSTOMER, "A1", "F1", 1.0)),),
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{nope", "malformed"),
        (b'{"schema":"lineloss.reading","version":1}', "malformed"),
        (b'{"schema":"lineloss.meter","version":7,"meter_id":"C1"}', "unsupported_version"),
        (b'{"schema":"lineloss.meter","version":1,"meter_id":""}', "malformed"),
        (b'{"schema":"lineloss.meter","version":1,"meter_id":"C1","role":"boss"}', "malformed"),
        (
            b'{"schema":"lineloss.meter","version":1,"meter_id":"C1","role":"customer",'
            b'"multiplier":0}',
            "malformed",
        ),
    ],
)
def test_bad_registry_messages_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(MessageError) as err:
        decode_meter(raw)
    assert err.value.reason == reason


def test_meter_windows_messages_split_and_round_trip() -> None:
    import numpy as np

    from kafka_io.schema import METER_WINDOWS_MAX, decode_meter_windows, encode_meter_windows

    n = METER_WINDOWS_MAX + 3
    ids = [f"C{i}" for i in range(n)]
    energy = np.arange(n, dtype=np.float64) / 4
    energy[1] = np.nan
    msgs = encode_meter_windows(
        DAY0,
        DAY0 + 86400,
        ids,
        energy,
        np.arange(n) % 2 == 0,
        np.zeros(n, np.int8),
        np.full(n, 4, np.int32),
    )
    assert len(msgs) == 2
    parts = [decode_meter_windows(m) for m in msgs]
    assert parts[0]["meter_ids"] + parts[1]["meter_ids"] == ids
    assert parts[0]["energy_kwh"][:3] == [0.0, None, 0.5]
    assert parts[1]["window_start"] == DAY0 and parts[1]["events"] == [4, 4, 4]
    with pytest.raises(MessageError):
        decode_meter_windows(encode_control(END_OF_STREAM))
