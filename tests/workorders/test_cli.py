"""From a replay to inspectors and back: workorders.csv, the command line, feedback
labels that `lineloss evaluate` takes, and state counts written to the real InfluxDB."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from influx_server import drop_database, fresh_database, influx_url

from lineloss.cli import main
from loaders.synthetic import SyntheticGridConfig, generate_grid, write_grid
from sinks.influx import InfluxQLClient
from workorders.backtest import WORKORDER_COLUMNS
from workorders.policy import order_id_for

__all__ = ["influx_url"]

GRID = SyntheticGridConfig(
    seed=8,
    n_feeders=1,
    areas_per_feeder=3,
    customers_per_area=(12, 20),
    dedicated_per_feeder=(1, 1),
    days=21,
    theft_fraction=0.12,
)


@dataclass(frozen=True)
class Replayed:
    data: Path
    out: Path
    orders: pd.DataFrame
    suspicions: pd.DataFrame


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    root = tmp_path_factory.mktemp("wo")
    write_grid(generate_grid(GRID), root / "data", fmt="csv")
    assert main(["replay", str(root / "data"), "--out", str(root / "out"), "--quiet"]) == 0
    orders = pd.read_csv(root / "out" / "workorders.csv", keep_default_na=False)
    sus = pd.read_csv(root / "out" / "suspicions.csv", keep_default_na=False)
    return Replayed(root / "data", root / "out", orders, sus)


def test_replay_writes_ranked_workorders(replayed: Replayed) -> None:
    o = replayed.orders
    assert list(o.columns) == WORKORDER_COLUMNS
    assert len(o) > 0 and o["target_id"].is_unique and o["order_id"].is_unique
    assert (o["order_id"] == o["target_id"].map(order_id_for)).all()
    assert (o["priority"] - (o["score"] * o["estimated_value"]).round(2)).abs().max() < 0.011
    # Visits of day 0 first; within a team and day, the most valuable first.
    assert o["visit_day"].is_monotonic_increasing
    for _, team in o.groupby("team"):
        assert team["rank"].tolist() == sorted(team["rank"])
        assert team["priority"].is_monotonic_decreasing
    # Every meter suspicion at or above the default threshold has its order.
    s = replayed.suspicions
    wanted = set(s.loc[(s["score"] >= 0.5) & (s["category"] != "area_loss"), "target_id"])
    assert wanted <= set(o["target_id"])
    assert json.loads((replayed.out / "summary.json").read_text())["workorders"] == len(o)


def test_orders_point_at_real_thefts(replayed: Replayed) -> None:
    labels = pd.read_csv(replayed.data / "labels.csv", keep_default_na=False)
    thefts = set(labels.loc[labels["label"] == "theft", "meter_id"])
    theft_orders = replayed.orders[replayed.orders["category"] == "theft"]
    assert len(theft_orders) > 0
    assert theft_orders["target_id"].isin(thefts).mean() >= 0.5  # better than a hunch


def wo(db: str, *args: str) -> int:
    return main(["workorders", "--db", db, "--as", "zhang", *args])


def test_command_line_round_trip_and_feedback(
    replayed: Replayed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'orders.db'}"
    assert wo(db, "ingest", str(replayed.out), "--data-dir", str(replayed.data)) == 0
    assert f"{len(replayed.orders)} orders created" in capsys.readouterr().out
    assert wo(db, "list", "--json", "--limit", "10000") == 0
    listed = json.loads(capsys.readouterr().out)
    assert {x["order_id"] for x in listed} == set(replayed.orders["order_id"])
    # Same data, same rules: the stored priorities are the back-test's.
    by_id = replayed.orders.set_index("order_id")["priority"]
    assert all(x["evidence"]["priority"] == pytest.approx(by_id[x["order_id"]]) for x in listed)

    labels = pd.read_csv(replayed.data / "labels.csv", keep_default_na=False).set_index("meter_id")
    visited = replayed.orders[replayed.orders["target_id"].isin(labels.index)].head(4)
    for row in visited.itertuples():
        truth = labels.loc[row.target_id, "label"]
        outcome = {"theft": "theft_confirmed", "meter_fault": "meter_fault"}.get(
            truth, "topology_error" if truth == "topology_error" else "no_finding"
        )
        assert wo(db, "assign", row.order_id, "li") == 0
        assert wo(db, "close", row.order_id, "--outcome", outcome, "--recovered-kwh", "12") == 0
    capsys.readouterr()
    assert wo(db, "show", visited.iloc[0]["order_id"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [a["action"] for a in shown["audit"]] == ["create", "assign", "close"]
    assert shown["audit"][1]["actor"] == "zhang"

    fb = tmp_path / "feedback.csv"
    assert wo(db, "labels", "--out", str(fb)) == 0
    got = pd.read_csv(fb, keep_default_na=False)
    assert sorted(got["meter_id"]) == sorted(visited["target_id"])
    assert (
        main(["evaluate", str(replayed.out), "--labels", str(fb), "--report", str(tmp_path / "r")])
        == 0
    )
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["customers"] == len(visited)
    assert metrics["theft"]["cases"] == int((got["label"] == "theft").sum())
    # The same feedback drives a tuning run (two trials: it must accept them, not win).
    tuned = tmp_path / "detectors.json"
    args = ["tune", str(replayed.data), "--labels", str(fb), "--out", str(tuned), "--trials", "2"]
    assert main(args) == 0
    assert isinstance(json.loads(tuned.read_text()), dict)


def test_show_writes_the_evidence_pack(
    replayed: Replayed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'orders.db'}"
    assert wo(db, "ingest", str(replayed.out)) == 0
    first = replayed.orders.iloc[0]["order_id"]
    dest = tmp_path / "ev"
    args = ["show", first, "--evidence-from", str(replayed.out), "--evidence-to", str(dest)]
    assert wo(db, *args) == 0
    assert (dest / "evidence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    series = pd.read_csv(dest / "series.csv")
    assert len(series) > 0
    assert json.loads((dest / "summary.json").read_text())


@pytest.mark.integration
def test_metrics_reach_influxdb(replayed: Replayed, influx_url: str, tmp_path: Path) -> None:
    settings = fresh_database(influx_url, "lineloss_wo")
    try:
        db = f"sqlite:///{tmp_path / 'orders.db'}"
        assert wo(db, "--now", "2026-11-20T10:00:00+08:00", "ingest", str(replayed.out)) == 0
        first = replayed.orders.iloc[0]
        assert wo(db, "--now", "2026-11-20T11:00:00+08:00", "assign", first["order_id"], "li") == 0
        args = ["close", first["order_id"], "--outcome", "theft_confirmed"]
        assert wo(db, "--now", "2026-11-21T09:00:00+08:00", *args) == 0
        now = "2026-11-22T08:00:00+08:00"
        assert (
            wo(
                db,
                "--now",
                now,
                "metrics",
                "--influx-url",
                influx_url,
                "--influx-db",
                settings.database,
            )
            == 0
        )
        client = InfluxQLClient(settings)
        [s] = client.query('SELECT sum("orders") AS "orders" FROM "workorder_state"')
        assert s.values[0][1] == len(replayed.orders)
        series = client.query(
            'SELECT sum("orders") AS "orders" FROM "workorder_state" GROUP BY "state"'
        )
        by_state = {x.tags["state"]: x.values[0][1] for x in series}
        assert by_state["closed"] == 1 and by_state["assigned"] == 0
        assert by_state["open"] == len(replayed.orders) - 1
        [h] = client.query(
            'SELECT "hit_rate", "closed" FROM "workorder_hit_rate" WHERE "detector" = \'all\''
        )
        assert h.values[0][1:] == [1.0, 1]
        month_start = pd.Timestamp("2026-11-01T00:00:00+08:00")
        assert h.values[0][0] == int(month_start.timestamp())
    finally:
        drop_database(settings)
