"""Every panel query of every committed dashboard, run against a real InfluxDB.

Grafana cannot run in CI, so this is the dashboards' test: a small synthetic grid
(area names with Chinese characters, spaces, commas, quotes, slashes) is replayed
into InfluxDB through the sink, then each query of the committed JSON is run the
way Grafana would send it (template variables substituted, Grafana's regex escape
for ``$area``, a bounded ``$timeFilter``). It must return the declared columns, and
the numbers must equal the replay's own CSV results.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from replayed_grid import AREA_NAMES, Replayed

from dashboards import build_dashboards
from dashboards.generate import GENERATED_DIR
from dashboards.model import Query
from dashboards.overview import TOP_N
from sinks.influx import InfluxQLClient, Series, regex_escape

pytestmark = pytest.mark.integration

KNOWN_AREA = "东村1号台区"
APPROX = {"rel": 1e-9, "abs": 1e-9}

# (dashboard uid, panel title, refId) -> the builder's Query (declared columns)
MODEL: dict[tuple[str, str, str], Query] = {
    (d.uid, p.title, q.ref_id): q for d in build_dashboards() for p, q in d.queries()
}


def committed_targets() -> Iterator[tuple[str, str, str, str]]:
    for path in sorted(GENERATED_DIR.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                yield dashboard["uid"], panel["title"], target["refId"], target["query"]


def committed_variables() -> Iterator[tuple[str, str, str]]:
    for path in sorted(GENERATED_DIR.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for var in dashboard["templating"]["list"]:
            if var["type"] == "query":
                yield dashboard["uid"], var["name"], var["query"]


TARGETS = list(committed_targets())


def test_every_panel_has_a_query_model() -> None:
    assert {(u, t, r) for u, t, r, _ in TARGETS} == set(MODEL)
    assert len(TARGETS) >= 20


def time_range_ms(replayed: Replayed) -> tuple[int, int]:
    b = replayed.csv("balances.csv")
    first_s = int(pd.to_datetime(b["window_start"], utc=True).min().timestamp())
    return (first_s - 86400) * 1000, int(replayed.finished_s + 3600) * 1000


def substitute(query: str, replayed: Replayed, *, area: str = KNOWN_AREA) -> str:
    """The query as Grafana sends it for the given variables and time range."""
    lo_ms, hi_ms = time_range_ms(replayed)
    values = {
        "timeFilter": f"time >= {lo_ms}ms and time <= {hi_ms}ms",
        "__interval": "1h",
        "window": "1d",
        "tz": "Asia/Shanghai",
        "area": regex_escape(area),  # Grafana regex-escapes a single-value variable
        "category": ".*",  # the "All" value
    }
    out = re.sub(r"\$(\w+)", lambda m: values[m.group(1)], query)
    assert not re.search(r"\$\w", out), out  # what is left is a regex's end anchor
    return out


def run(replayed: Replayed, uid: str, title: str, *, area: str = KNOWN_AREA) -> list[Series]:
    [query] = [q for u, t, _, q in TARGETS if (u, t) == (uid, title)]
    return InfluxQLClient(replayed.settings).query(substitute(query, replayed, area=area))


def rows(series: list[Series]) -> list[dict[str, Any]]:
    """Table rows as Grafana builds them: tags become columns."""
    return [{**s.tags, **r} for s in series for r in s.records()]


def epoch_s(iso: pd.Series) -> pd.Series:
    return pd.to_datetime(iso, utc=True).map(lambda t: int(t.timestamp()))


@pytest.fixture(scope="module")
def balances(replayed: Replayed) -> pd.DataFrame:
    b = replayed.csv("balances.csv")
    b["reason"] = b["reason"].fillna("")
    b["start_s"] = epoch_s(b["window_start"])
    return b


@pytest.fixture(scope="module")
def computable(balances: pd.DataFrame) -> pd.DataFrame:
    return balances[balances["status"] != "incomputable"]


@pytest.fixture(scope="module")
def suspicions(replayed: Replayed) -> pd.DataFrame:
    s = replayed.csv("suspicions.csv")
    s["first_detected_ms"] = epoch_s(s["first_detected"]) * 1000
    return s


# ------------------------------------------------------------------ generic


@pytest.mark.parametrize(("uid", "title", "ref", "query"), TARGETS)
def test_panel_query_returns_declared_columns_and_data(
    replayed: Replayed, uid: str, title: str, ref: str, query: str
) -> None:
    declared = MODEL[(uid, title, ref)]
    series = InfluxQLClient(replayed.settings).query(substitute(query, replayed))
    assert series, f"{uid} / {title}: no data"
    for s in series:
        assert tuple(s.columns) == declared.columns, (title, s.columns)
        assert tuple(sorted(s.tags)) == tuple(sorted(declared.tags)), (title, s.tags)
        assert s.values
        values = [v for row in s.values for v in row[1:]]
        assert any(v is not None for v in values), title


@pytest.mark.parametrize(("uid", "name", "query"), list(committed_variables()))
def test_variable_queries(replayed: Replayed, uid: str, name: str, query: str) -> None:
    series = InfluxQLClient(replayed.settings).query(query)
    found = {row[1] for s in series for row in s.values}
    expected = {"area": set(AREA_NAMES), "window": {"1d"}}.get(name)
    if name == "category":
        expected = set(replayed.csv("suspicions.csv")["category"])
    assert found == expected, (uid, name)


# ------------------------------------------------------------------ numbers


def test_revisions_overwrote_provisional_points(replayed: Replayed, balances: pd.DataFrame) -> None:
    history = replayed.csv("balance_history.csv")
    assert (history["revision"] > 0).any(), "the grid should produce revisions"
    assert len(history[history["level"] == "area"]) > len(balances)
    [s] = InfluxQLClient(replayed.settings).query(
        substitute(
            'SELECT count("supply_kwh") AS "n" FROM "area_balance" WHERE $timeFilter', replayed
        )
    )
    assert s.values[0][1] == len(balances)  # one point per area-window: no double count
    assert replayed.health.lines_rejected_total == 0
    assert replayed.health.points_written_total == replayed.health.points_added_total


def test_overview_status_counts(replayed: Replayed, balances: pd.DataFrame) -> None:
    [s] = run(replayed, "lineloss-overview", "Area-windows by status")
    got = s.records()[0]
    expected = balances["status"].value_counts()
    for status in ("normal", "high_loss", "negative_loss", "incomputable"):
        assert got[status] == expected.get(status, 0), status
    [s] = run(replayed, "lineloss-overview", "Areas by status per window")
    per_window = balances.groupby("start_s")["status"].value_counts().unstack(fill_value=0)
    assert [r["time"] for r in s.records()] == list(per_window.index)
    for r in s.records():
        for status in per_window.columns:
            assert r[status] == per_window.loc[r["time"], status]


@pytest.mark.parametrize(("title", "by"), [("loss rate", "loss_rate"), ("lost energy", "loss_kwh")])
def test_overview_worst_areas(
    replayed: Replayed, computable: pd.DataFrame, title: str, by: str
) -> None:
    got = rows(run(replayed, "lineloss-overview", f"Worst {TOP_N} areas by {title}"))
    per_area = computable.groupby("area_id").agg(
        loss_kwh=("loss_kwh", "sum"), supply_kwh=("supply_kwh", "sum"), windows=("status", "size")
    )
    per_area["loss_rate"] = per_area["loss_kwh"] / per_area["supply_kwh"]
    assert {r["area"] for r in got} == set(per_area.nlargest(TOP_N, by).index)
    assert KNOWN_AREA in {r["area"] for r in got}
    for r in got:
        e = per_area.loc[r["area"]]
        assert r["loss_rate"] == pytest.approx(e["loss_rate"], **APPROX)
        assert r["loss_kwh"] == pytest.approx(e["loss_kwh"], **APPROX)
        assert r["supply_kwh"] == pytest.approx(e["supply_kwh"], **APPROX)
        assert r["windows"] == e["windows"]
        assert r["feeder"] == "FD01"


def test_overview_distribution_and_trend(replayed: Replayed, computable: pd.DataFrame) -> None:
    [s] = run(replayed, "lineloss-overview", "Loss-rate distribution")
    # balances.csv rounds loss_rate to 8 decimals
    assert sorted(s.column("loss_rate")) == pytest.approx(sorted(computable["loss_rate"]), abs=1e-8)
    per_window = computable.groupby("start_s")[["loss_kwh", "supply_kwh", "billed_kwh"]].sum()
    [s] = run(replayed, "lineloss-overview", "Loss rate over time")
    assert s.column("time") == list(per_window.index)  # tz('$tz') buckets = the windows
    expected = per_window["loss_kwh"] / per_window["supply_kwh"]
    assert s.column("loss_rate") == pytest.approx(list(expected), **APPROX)
    [s] = run(replayed, "lineloss-overview", "Supply, billed and lost energy")
    for column in ("supply_kwh", "billed_kwh", "loss_kwh"):
        assert s.column(column) == pytest.approx(list(per_window[column]), **APPROX)


def test_overview_incomputable_areas(replayed: Replayed, balances: pd.DataFrame) -> None:
    got = {
        r["area"]: r for r in rows(run(replayed, "lineloss-overview", "Incomputable areas and why"))
    }
    bad = balances[balances["status"] == "incomputable"].sort_values("start_s")
    assert set(got) == set(bad["area_id"])
    for area, group in bad.groupby("area_id"):
        assert got[area]["windows"] == len(group)
        assert got[area]["reason"] == group["reason"].iloc[-1]
        assert got[area]["coverage"] == pytest.approx(group["coverage"].iloc[-1], abs=1e-6)


def test_overview_feeder_loss_rate(replayed: Replayed) -> None:
    f = replayed.csv("feeder_balances.csv")
    f = f[f["status"] != "incomputable"]
    series = run(replayed, "lineloss-overview", "Feeder loss rate (10 kV)")
    got = {s.tags["feeder"]: s.column("loss_rate") for s in series}
    assert set(got) == set(f["feeder_id"])
    for feeder, group in f.groupby("feeder_id"):
        assert got[feeder] == pytest.approx(list(group["loss_rate"]), abs=1e-8)


@pytest.mark.parametrize("area", AREA_NAMES)
def test_area_drill_down_numbers(replayed: Replayed, balances: pd.DataFrame, area: str) -> None:
    mine = balances[balances["area_id"] == area].sort_values("start_s")
    assert len(mine) > 0
    [s] = run(replayed, "lineloss-area", "Supply, billed and loss", area=area)
    assert s.column("time") == list(mine["start_s"])
    assert s.column("supply") == pytest.approx(list(mine["supply_kwh"]), **APPROX)
    assert s.column("billed") == pytest.approx(list(mine["billed_kwh"]), **APPROX)
    assert s.column("loss") == pytest.approx(list(mine["loss_kwh"]), **APPROX)
    [s] = run(replayed, "lineloss-area", "Coverage", area=area)
    assert s.column("coverage") == pytest.approx(list(mine["coverage"]), abs=1e-6)
    [s] = run(replayed, "lineloss-area", "Status", area=area)
    assert s.column("status") == list(mine["status"])
    [s] = run(replayed, "lineloss-area", "Windows", area=area)
    assert s.column("reason") == list(mine["reason"])
    assert s.column("revision") == list(mine["revision"])
    assert set(s.column("final")) == {True}
    ok = mine[mine["status"] != "incomputable"]
    series = run(replayed, "lineloss-area", "Loss rate against its band", area=area)
    if ok.empty:
        assert series == []
    else:
        [s] = series
        assert s.column("loss_rate") == pytest.approx(list(ok["loss_rate"]), abs=1e-8)
        assert set(s.column("band_upper_rate")) == {0.10}
        assert set(s.column("band_lower_rate")) == {-0.01}


def test_area_suspicions(replayed: Replayed, suspicions: pd.DataFrame) -> None:
    expected = suspicions[suspicions["area_id"] == KNOWN_AREA]
    assert len(expected) > 0, "the known area should be a suspect in this grid"
    got = rows(run(replayed, "lineloss-area", "Suspicions in this area"))
    assert sorted((r["target"], r["category"]) for r in got) == sorted(
        zip(expected["target_id"], expected["category"], strict=True)
    )
    for r in got:
        e = expected[
            (expected["target_id"] == r["target"]) & (expected["category"] == r["category"])
        ]
        assert r["score"] == pytest.approx(e["score"].iloc[0], abs=1e-6)
        assert r["estimated_kwh"] == pytest.approx(e["estimated_kwh"].iloc[0], abs=1e-3)
        assert r["evidence"] == e["evidence"].iloc[0]
        assert r["first_detected"] == e["first_detected_ms"].iloc[0]


def test_suspects_dashboard(replayed: Replayed, suspicions: pd.DataFrame) -> None:
    assert len(suspicions) > 0
    got = rows(run(replayed, "lineloss-suspects", "Ranked suspects"))
    assert len(got) == len(suspicions)
    by_key = {(r["target"], r["category"]): r for r in got}
    for s in suspicions.itertuples():
        r = by_key[(s.target_id, s.category)]
        assert r["score"] == pytest.approx(s.score, abs=1e-6)
        assert r["estimated_kwh"] == pytest.approx(s.estimated_kwh, abs=1e-3)
        assert (r["evidence"], r["detector"], r["target_kind"]) == (
            s.evidence,
            s.detector,
            s.target_kind,
        )
        assert r["area"] == (s.area_id if isinstance(s.area_id, str) else "")
    [s] = run(replayed, "lineloss-suspects", "Suspects")
    assert s.values[0][1] == len(suspicions)
    [s] = run(replayed, "lineloss-suspects", "Estimated unbilled energy")
    assert s.values[0][1] == pytest.approx(suspicions["estimated_kwh"].sum(), abs=1e-3)
    by_cat = {
        x.tags["category"]: x.values[0][1]
        for x in run(replayed, "lineloss-suspects", "Estimated unbilled energy by category")
    }
    expected_by_cat = suspicions.groupby("category")["estimated_kwh"].sum()
    assert by_cat == pytest.approx(expected_by_cat.to_dict(), abs=1e-3)
    series = run(replayed, "lineloss-suspects", "Scores over time")
    best = {s.tags["target"]: max(s.column("score")) for s in series}
    assert best == pytest.approx(suspicions.groupby("target_id")["score"].max().to_dict(), abs=1e-6)


def test_work_order_panels(replayed: Replayed) -> None:
    orders = pd.read_csv(replayed.out_dir / "workorders.csv")
    assert len(orders) > 1
    got = {
        r["state"]: r
        for r in rows(run(replayed, "lineloss-suspects", "Work orders by state and age"))
    }
    assert set(got) == {"open", "assigned", "in_progress", "closed"}
    assert sum(r["orders"] for r in got.values()) == len(orders)
    assert (got["closed"]["orders"], got["open"]["orders"]) == (1, len(orders) - 1)
    assert got["closed"]["overdue"] == 0 and got["closed"]["oldest_age_s"] == 0
    assert (
        3600
        <= got["open"]["oldest_age_s"]
        <= 3600 + (replayed.finished_s - replayed.started_s) + 60
    )
    series = run(replayed, "lineloss-suspects", "Inspection hit rate by detector")
    rates = {s.tags["detector"]: s.column("hit_rate") for s in series}
    assert rates["all"] == [1.0]


def test_pipeline_health_dashboard(replayed: Replayed) -> None:
    summary = json.loads((replayed.out_dir / "summary.json").read_text())
    got = {
        r["reason"]: r["rejected"]
        for r in rows(run(replayed, "lineloss-health", "Refused readings by reason (dead letters)"))
    }
    assert got == summary["rejected_by_reason"]
    [s] = run(replayed, "lineloss-health", "Readings accepted and refused")
    assert s.tags == {"component": "replay"}
    assert s.column("accepted")[-1] == summary["accepted"]
    [s] = run(replayed, "lineloss-health", "Event-time lag")
    first_window_s = int(
        pd.to_datetime(replayed.csv("balances.csv")["window_start"]).min().timestamp()
    )
    # wall clock minus the newest reading: old synthetic data, so days, not seconds
    assert all(0 < lag < replayed.finished_s - first_window_s for lag in s.column("event_lag_s"))
    [s] = run(replayed, "lineloss-health", "Throughput")
    assert all(rate > 0 for rate in s.column("readings_per_s"))
    [s] = run(replayed, "lineloss-health", "InfluxDB sink")
    sink = s.records()[0]
    assert sink["available"] is True
    assert (sink["lines_rejected_total"], sink["points_dropped_total"]) == (0, 0)
    assert sink["fields_dropped_total"] == 0  # undefined loss rates are left out, not dropped


def test_partition_alignment_panels(replayed: Replayed) -> None:
    """What the Kafka workers report of their partitions (tests/support/replayed_grid.py
    ALIGNMENT): the latest per partition, and the held time of each."""
    latest = {
        r["partition"]: r for r in rows(run(replayed, "lineloss-health", "Partition alignment"))
    }
    assert set(latest) == {"0", "1", "2"}
    assert (latest["0"]["holding_all"], latest["0"]["waiting_for"]) == (False, "")
    assert (latest["1"]["finals_held_s"], latest["1"]["waiting_for"]) == (10_800, "0")
    assert latest["1"]["source_watermark_s"] == 1_772_620_800
    assert latest["2"]["idle"] is True
    held = {
        s.tags["partition"]: s.column("finals_held_s")
        for s in run(replayed, "lineloss-health", "Finals held back by slower partitions")
    }
    assert held["1"][-1] == 10_800 and held["0"][-1] == 0


def test_committed_json_uses_the_provisioned_datasource() -> None:
    for path in GENERATED_DIR.glob("*.json"):
        text = path.read_text(encoding="utf-8")
        assert '"uid": "${datasource}"' in text
        ds = json.loads(text)["templating"]["list"][0]
        assert (ds["type"], ds["current"]["value"]) == ("datasource", "lineloss-influxdb")


def test_generated_dir_is_where_the_docs_say(tmp_path: Path) -> None:
    assert Path(__file__).parents[2] / "dashboards" / "generated" == GENERATED_DIR
