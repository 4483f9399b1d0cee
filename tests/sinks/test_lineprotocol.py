"""Line-protocol encoding: escaping, value types, non-finite values, precision."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.lineprotocol import (
    EncodeStats,
    Point,
    encode_point,
    escape_measurement,
    escape_string_field,
    escape_tag,
    normalise_name,
)

T0_NS = 1_772_294_400 * 1_000_000_000


def line(point: Point, precision: str = "s") -> str | None:
    return encode_point(point, precision, EncodeStats())


def test_plain_point_sorts_tags_and_keeps_field_order() -> None:
    p = Point("area_balance", {"window": "1d", "area": "A1"}, {"b": 1.5, "a": 2}, T0_NS)
    assert line(p) == "area_balance,area=A1,window=1d b=1.5,a=2i 1772294400"


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a b", "a\\ b"),
        ("a,b", "a\\,b"),
        ("a=b", "a\\=b"),
        ('a"b', 'a"b'),  # quotes need no escape in tags
        ("东村1号台区", "东村1号台区"),
        ("a\\b", "a\\b"),  # a backslash before an ordinary character is literal
    ],
)
def test_tag_escaping(raw: str, escaped: str) -> None:
    assert escape_tag(raw) == escaped


def test_measurement_escapes_comma_and_space_only() -> None:
    assert escape_measurement("a b,c=d") == "a\\ b\\,c=d"


def test_string_field_escapes_quote_and_backslash() -> None:
    assert escape_string_field('say "hi" \\o/') == 'say \\"hi\\" \\\\o/'


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("line1\nline2", "line1 line2"),
        ("crlf\r\nx", "crlf x"),
        ("ends\\", "ends/"),
        ("before\\ space", "before/ space"),
        ("before\\,comma", "before/,comma"),
        ("before\\=eq", "before/=eq"),
        ("two\\\\x", "two/\\x"),
        ("ok\\x", "ok\\x"),
        ("tab\tand\rcr", "tab\tand cr"),
    ],
)
def test_text_that_line_protocol_cannot_carry_is_rewritten(raw: str, normalised: str) -> None:
    assert normalise_name(raw) == normalised


def test_rewrites_are_counted() -> None:
    stats = EncodeStats()
    p = Point("m", {"t": "a\nb"}, {"s": "x\ny", "ok": "fine"}, 0)
    assert encode_point(p, "s", stats) == 'm,t=a\\ b s="x y",ok="fine" 0'
    assert stats.text_rewritten == 2


def test_value_types() -> None:
    p = Point(
        "m",
        {},
        {
            "f": 0.1,
            "big": 1e300,
            "tiny": 1e-7,
            "i": -3,
            "b": True,
            "nf": np.float64(2.5),
            "ni": np.int64(7),
            "s": "",
        },
        0,
    )
    assert line(p) == 'm f=0.1,big=1e+300,tiny=1e-07,i=-3i,b=true,nf=2.5,ni=7i,s="" 0'


def test_nan_and_infinity_drop_the_field_not_the_point() -> None:
    stats = EncodeStats()
    p = Point("m", {"t": "x"}, {"a": math.nan, "b": math.inf, "c": -math.inf, "d": 1.0}, 0)
    assert encode_point(p, "s", stats) == "m,t=x d=1.0 0"
    assert stats.fields_dropped == 3
    assert stats.points_dropped == 0


def test_point_without_writable_field_is_dropped_and_counted() -> None:
    stats = EncodeStats()
    assert encode_point(Point("m", {}, {"a": math.nan}, 0), "s", stats) is None
    assert (stats.points_dropped, stats.fields_dropped) == (1, 1)


def test_integer_outside_int64_is_dropped() -> None:
    stats = EncodeStats()
    assert encode_point(Point("m", {}, {"a": 2**63, "b": 1}, 0), "s", stats) == "m b=1i 0"
    assert stats.fields_dropped == 1


def test_empty_tag_values_are_left_out() -> None:
    assert line(Point("m", {"feeder": "", "area": "A"}, {"x": 1}, 0)) == "m,area=A x=1i 0"


@pytest.mark.parametrize(
    ("precision", "ts"), [("s", "1772294400"), ("ms", "1772294400000"), ("ns", str(T0_NS))]
)
def test_precision(precision: str, ts: str) -> None:
    assert line(Point("m", {}, {"x": 1}, T0_NS), precision) == f"m x=1i {ts}"


def test_programming_errors_raise() -> None:
    with pytest.raises(ValueError, match="comment"):
        line(Point("#m", {}, {"x": 1}, 0))
    with pytest.raises(ValueError, match="precision"):
        line(Point("m", {}, {"x": 1}, 0), "minutes")
    with pytest.raises(TypeError):
        line(Point("m", {}, {"x": [1]}, 0))  # type: ignore[dict-item]


@given(
    name=st.text(min_size=1, max_size=20),
    tag=st.text(max_size=20),
    text=st.text(max_size=40),
    number=st.floats(allow_nan=True, allow_infinity=True),
)
def test_any_text_gives_exactly_one_line(name: str, tag: str, text: str, number: float) -> None:
    if name.startswith("#"):
        name = "_" + name
    out = line(Point(name, {"tag": tag}, {"s": text, "x": number}, 0))
    assert out is not None
    assert "\n" not in out
