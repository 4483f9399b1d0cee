"""The InfluxDB sink against the real server that scripts/test starts.

Writes land and read back; a revision overwrites its provisional point; an outage
in the middle of a stream loses nothing; every special character survives; NaN and
infinities never poison a batch.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from influx_server import LocalInflux, drop_database, fresh_database

from lineloss.config import EngineConfig, LossBand
from lineloss.domain import (
    Balance,
    BalanceLevel,
    BalanceStatus,
    Suspicion,
    SuspicionCategory,
    TargetKind,
)
from sinks.influx import InfluxQLClient, InfluxReplaySink, InfluxSettings, InfluxWriter
from sinks.influx.query import quote_ident, quote_literal
from sinks.influx.schema import AREA_BALANCE, balance_point
from sinks.lineprotocol import Point, normalise_name, normalise_string

pytestmark = pytest.mark.integration

DAY0 = 1772294400  # 2026-03-01T00:00:00+08:00
DAY = 86400
BAND = LossBand(-0.01, 0.10)


def area_balance(area: str = "A1", day: int = 0, **changes: object) -> Balance:
    b = Balance(
        level=BalanceLevel.AREA,
        target_id=area,
        feeder_id="F1",
        window_start=DAY0 + day * DAY,
        window_end=DAY0 + (day + 1) * DAY,
        supply_kwh=400.0,
        billed_kwh=380.0,
        loss_kwh=20.0,
        loss_rate=0.05,
        coverage=1.0,
        meters_expected=10,
        meters_reporting=10,
        status=BalanceStatus.NORMAL,
        reason="",
        revision=0,
        final=False,
    )
    return replace(b, **changes)  # type: ignore[arg-type]


def write_balances(settings: InfluxSettings, balances: list[Balance]) -> None:
    with InfluxWriter(settings) as w:
        w.write(balance_point(b, window_s=DAY, band=BAND) for b in balances)


def one(client: InfluxQLClient, q: str) -> dict[str, object]:
    series = client.query(q)
    assert len(series) == 1 and len(series[0].values) == 1, series
    return series[0].records()[0]


def test_balances_land_and_read_back(influx_settings: InfluxSettings) -> None:
    write_balances(influx_settings, [area_balance(day=d, final=True) for d in range(3)])
    c = InfluxQLClient(influx_settings)
    [s] = c.query(f"SELECT * FROM {AREA_BALANCE} WHERE time >= 0s")
    rows = s.records()
    assert [r["time"] for r in rows] == [DAY0, DAY0 + DAY, DAY0 + 2 * DAY]
    r = rows[0]
    assert (r["area"], r["feeder"], r["window"]) == ("A1", "F1", "1d")
    assert (r["supply_kwh"], r["billed_kwh"], r["loss_kwh"], r["loss_rate"]) == (
        400.0,
        380.0,
        20.0,
        0.05,
    )
    assert (r["status"], r["status_normal"], r["status_high_loss"]) == ("normal", 1, 0)
    assert (r["revision"], r["final"], r["meters_expected"]) == (0, True, 10)
    assert (r["band_lower_rate"], r["band_upper_rate"]) == (-0.01, 0.10)


def test_revision_overwrites_the_provisional_point(influx_settings: InfluxSettings) -> None:
    provisional = area_balance(day=0)
    revised = area_balance(
        day=0,
        supply_kwh=400.0,
        billed_kwh=300.0,
        loss_kwh=100.0,
        loss_rate=0.25,
        status=BalanceStatus.HIGH_LOSS,
        reason="loss rate 25.00% above 10.00%",
        revision=1,
        final=True,
    )
    other_area = area_balance(area="A2", day=0)
    write_balances(influx_settings, [provisional, other_area])
    write_balances(influx_settings, [revised])
    c = InfluxQLClient(influx_settings)
    where = "WHERE \"area\" = 'A1' AND time >= 0s"
    got = one(
        c, f'SELECT count("supply_kwh") AS n, sum("loss_kwh") AS loss FROM {AREA_BALANCE} {where}'
    )
    assert (got["n"], got["loss"]) == (1, 100.0)
    got = one(
        c,
        f'SELECT sum("status_normal") AS normal, sum("status_high_loss") AS high '
        f"FROM {AREA_BALANCE} {where}",
    )
    assert (got["normal"], got["high"]) == (0, 1)
    got = one(c, f'SELECT "status", "reason", "revision", "final" FROM {AREA_BALANCE} {where}')
    assert got["status"] == "high_loss" and got["revision"] == 1 and got["final"] is True
    # Counting over all areas sees two area-windows, never three.
    got = one(c, f'SELECT count("status") AS n FROM {AREA_BALANCE} WHERE time >= 0s')
    assert got["n"] == 2


def test_status_as_a_tag_would_double_count(influx_settings: InfluxSettings) -> None:
    """The control experiment behind the schema: why status is a field, not a tag."""
    with InfluxWriter(influx_settings) as w:
        w.write(
            [
                Point("status_as_tag", {"area": "A1", "status": "normal"}, {"loss_kwh": 20.0}, 0),
                Point(
                    "status_as_tag", {"area": "A1", "status": "high_loss"}, {"loss_kwh": 100.0}, 0
                ),
            ]
        )
    got = one(
        InfluxQLClient(influx_settings),
        'SELECT count("loss_kwh") AS n, sum("loss_kwh") AS loss FROM status_as_tag',
    )
    assert (got["n"], got["loss"]) == (2, 120.0)  # the revised window counted twice


def test_revision_to_incomputable_keeps_loss_rate_out_of_panels(
    influx_settings: InfluxSettings,
) -> None:
    """A NaN loss rate cannot overwrite the old value; the status filter hides it."""
    write_balances(influx_settings, [area_balance(day=0)])
    dead_meter = area_balance(
        day=0,
        supply_kwh=0.0,
        billed_kwh=380.0,
        loss_kwh=-380.0,
        loss_rate=math.nan,
        status=BalanceStatus.INCOMPUTABLE,
        reason="supply is zero or negative (0.000 kWh)",
        revision=1,
    )
    write_balances(influx_settings, [dead_meter])
    c = InfluxQLClient(influx_settings)
    assert (
        c.query(
            f'SELECT mean("loss_rate") FROM {AREA_BALANCE} '
            "WHERE \"status\" <> 'incomputable' AND time >= 0s"
        )
        == []
    )
    got = one(c, f'SELECT "status", "supply_kwh" FROM {AREA_BALANCE} WHERE time >= 0s')
    assert (got["status"], got["supply_kwh"]) == ("incomputable", 0.0)


SPECIAL = [
    "东村1号台区",
    "with space",
    "com,ma",
    "equals=sign",
    'double"quote',
    "single'quote",
    "back\\slash",
    "trailing\\",
    "new\nline",
    "tab\tand\rcr",
    "mix 东 ,=\"'\\x",
    "#hash",
]


def test_every_special_character_survives(influx_settings: InfluxSettings) -> None:
    w = InfluxWriter(influx_settings)
    w.write(
        Point(
            f"m {text}",
            {f"tag {text}": text},
            {f"field {text}": text, "i": i},
            i * 1_000_000_000,
        )
        for i, text in enumerate(SPECIAL)
    )
    health = w.close()
    assert health.points_written_total == len(SPECIAL)
    assert health.lines_rejected_total == 0
    c = InfluxQLClient(influx_settings)
    measurements = {row[0] for s in c.query("SHOW MEASUREMENTS") for row in s.values}
    assert measurements == {normalise_name(f"m {t}") for t in SPECIAL}
    for i, text in enumerate(SPECIAL):
        name, tag, field = (normalise_name(f"{p} {text}") for p in ("m", "tag", "field"))
        [s] = c.query(
            f"SELECT {quote_ident(field)}, {quote_ident(tag)} FROM {quote_ident(name)} "
            f"WHERE {quote_ident(tag)} = {quote_literal(normalise_name(text))}"
        )
        assert s.values == [[i, normalise_string(text), normalise_name(text)]], text
    # names that carry nothing special come back exactly as written
    assert normalise_name("mix 东 ,=\"'\\x") == "mix 东 ,=\"'\\x"


@settings(
    max_examples=int(os.environ.get("LINELOSS_HYPOTHESIS_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=st.text(min_size=1, max_size=24))
def test_random_text_round_trips(influx_settings: InfluxSettings, text: str) -> None:
    """Whatever a meter id or area name holds reads back as ``normalise_*`` predicts."""
    ts = abs(hash(text)) % 10**9 * 1_000_000_000
    w = InfluxWriter(influx_settings)
    w.write([Point("names", {"area": text}, {"name": text}, ts)])
    assert w.close().lines_rejected_total == 0
    c = InfluxQLClient(influx_settings)
    [s] = c.query(f'SELECT "name", "area" FROM names WHERE time = {ts // 10**9}s')
    assert s.values[0][1:] == [normalise_string(text), normalise_name(text) or None]


def test_nan_and_infinity_never_poison_a_batch(influx_settings: InfluxSettings) -> None:
    pts = [Point("m", {"k": str(i)}, {"x": float(i), "y": 1.0}, i * 10**9) for i in range(50)]
    pts[10] = Point("m", {"k": "10"}, {"x": math.nan, "y": 1.0}, 10 * 10**9)
    pts[20] = Point("m", {"k": "20"}, {"x": math.inf}, 20 * 10**9)
    pts[30] = Point("m", {"k": "30"}, {"x": -math.inf, "y": math.nan}, 30 * 10**9)
    w = InfluxWriter(influx_settings)
    w.write(pts)
    h = w.close()
    assert (h.points_written_total, h.points_dropped_total, h.fields_dropped_total) == (48, 2, 4)
    got = one(InfluxQLClient(influx_settings), 'SELECT count("y") AS y, count("x") AS x FROM m')
    assert (got["y"], got["x"]) == (48, 47)


def test_a_refused_line_does_not_take_its_batch_down(
    influx_settings: InfluxSettings, tmp_path: Path
) -> None:
    """A field type conflict (int, then float) is isolated; the rest of the batch lands."""
    settings = replace(influx_settings, spill_dir=tmp_path / "spill")
    w = InfluxWriter(settings)
    w.write([Point("m", {}, {"x": 1}, 0)])
    w.flush()
    w.write(Point("m", {"k": str(i)}, {"x": 2 if i != 7 else 2.5}, i * 10**9) for i in range(1, 20))
    h = w.close()
    assert h.lines_rejected_total == 1
    got = one(InfluxQLClient(settings), 'SELECT count("x") AS n FROM m')
    assert got["n"] == 19
    assert "x=2.5 7" in (tmp_path / "spill" / "rejected.lp").read_text()


def test_outage_in_mid_stream_loses_nothing(second_influx: LocalInflux, tmp_path: Path) -> None:
    settings = replace(
        fresh_database(second_influx.url),
        batch_points=50,
        max_buffer_points=200,
        spill_dir=tmp_path / "spill",
        timeout_s=2.0,
        retry_base_s=0.05,
    )
    c = InfluxQLClient(settings)
    w = InfluxWriter(settings)
    n_points = 3000
    provisional = [
        Point("area_balance", {"area": f"A{i % 20}"}, {"loss_kwh": -1.0, "revision": 0}, i * 10**9)
        for i in range(n_points)
    ]
    revised = [
        replace(p, fields={"loss_kwh": float(i), "revision": 1}) for i, p in enumerate(provisional)
    ]
    slowest_s = 0.0
    for lo in range(0, n_points, 100):
        if lo == 1000:
            second_influx.stop()  # mid-stream
        if lo == 2500:
            second_influx.start()
        t0 = time.monotonic()
        w.write(provisional[lo : lo + 100])
        # revisions of earlier windows arrive during the outage too
        w.write(revised[max(0, lo - 300) : max(0, lo - 200)])
        slowest_s = max(slowest_s, time.monotonic() - t0)
        if lo == 2000:
            during = w.health()
    assert not during.available and during.spill_pending_points > 0
    # the stream never waited long on the dead server
    assert slowest_s < 3.0
    w.write(revised[n_points - 300 :])
    health = w.close(drain_timeout_s=60)
    assert (health.buffer_points, health.spill_pending_points) == (0, 0), health
    assert health.spilled_points_total > 0 and health.replayed_points_total > 0
    got = one(
        c,
        'SELECT count("loss_kwh") AS n, sum("loss_kwh") AS s, min("revision") AS r '
        "FROM area_balance",
    )
    # every window present once, each with its revision (a spilled provisional
    # replayed after the outage never overwrote a newer revision)
    assert (got["n"], got["s"], got["r"]) == (n_points, sum(range(n_points)), 1)
    assert not list((tmp_path / "spill").glob("spill-*.lp"))
    drop_database(settings)


def test_spill_left_by_a_stopped_process_is_replayed_by_the_next(
    second_influx: LocalInflux, tmp_path: Path
) -> None:
    settings = replace(
        fresh_database(second_influx.url), spill_dir=tmp_path / "spill", retry_base_s=0.05
    )
    second_influx.stop()
    w = InfluxWriter(settings)
    w.write(Point("m", {}, {"x": i}, i * 10**9) for i in range(500))
    health = w.close(drain_timeout_s=0.5)
    assert health.spill_pending_points == 500
    assert len(list((tmp_path / "spill").glob("spill-*.lp"))) == 1
    second_influx.start()
    w2 = InfluxWriter(settings)
    w2.write([Point("m", {}, {"x": 500}, 500 * 10**9)])
    assert w2.close().spill_pending_points == 0
    got = one(InfluxQLClient(settings), 'SELECT count("x") AS n, sum("x") AS s FROM m')
    assert (got["n"], got["s"]) == (501, sum(range(501)))
    drop_database(settings)


def test_replay_sink_writes_suspicions_once_per_change(influx_settings: InfluxSettings) -> None:
    config = EngineConfig()
    s = Suspicion(
        target_id="东村1号台区",
        target_kind=TargetKind.AREA,
        category=SuspicionCategory.AREA_LOSS,
        score=0.7,
        first_detected=DAY0,
        estimated_kwh=12.5,
        evidence='high loss 25% "band 10%"',
        area_id="东村1号台区",
        detector="loss_band",
    )
    with InfluxWriter(influx_settings) as w:
        sink = InfluxReplaySink(w, config)
        sink.suspicions([s], DAY0 + DAY)
        sink.suspicions([s], DAY0 + 2 * DAY)  # unchanged: no new point
        sink.suspicions([replace(s, score=0.9)], DAY0 + 3 * DAY)
    [series] = InfluxQLClient(influx_settings).query(
        'SELECT "score", "evidence", "target" FROM "suspicion" WHERE time >= 0s'
    )
    assert series.values == [
        [DAY0 + DAY, 0.7, 'high loss 25% "band 10%"', "东村1号台区"],
        [DAY0 + 3 * DAY, 0.9, 'high loss 25% "band 10%"', "东村1号台区"],
    ]
