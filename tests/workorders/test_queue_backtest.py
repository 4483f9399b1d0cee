"""The inspection queue day by day (workorders.queue_backtest)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from factories import DAY0, make_topology

from lineloss.cli import main
from lineloss.config import EngineConfig
from lineloss.domain import Suspicion, SuspicionCategory, TargetKind
from loaders.synthetic import SyntheticGridConfig, generate_grid, write_grid
from streams.pipeline import DetectionStage
from streams.tuning import detect, record
from workorders.model import Outcome
from workorders.policy import Directory
from workorders.queue_backtest import (
    Truth,
    run_queue_backtest,
    simulate_queue,
    snapshots,
)
from workorders.settings import WorkOrderSettings

DAY = 86400
TOPO = make_topology(
    [
        ("T1", "area", "A1", "F1", 1.0),
        ("C1", "customer", "A1", "F1", 1.0),
        ("C2", "customer", "A1", "F1", 1.0),
        ("C3", "customer", "A1", "F1", 1.0),
        ("T2", "area", "A2", "F1", 1.0),
        ("C4", "customer", "A2", "F1", 1.0),
    ]
)
LABELS = pd.DataFrame(
    {
        "meter_id": ["C1", "C2", "C4"],
        "label": ["theft", "meter_fault", "theft"],
        "start": [
            pd.Timestamp(DAY0, unit="s", tz="UTC").isoformat(),
            "",
            pd.Timestamp(DAY0 + 10 * DAY, unit="s", tz="UTC").isoformat(),
        ],
    }
)
TRUTH = Truth.from_labels(LABELS, TOPO)
# One team for every area, one visit a day: the queue has to choose.
ONE_A_DAY = WorkOrderSettings.from_dict({"policy": {"daily_capacity": 1}})
DIRECTORY = Directory(team_by_area={"A1": "north", "A2": "north"})


def suspicion(
    target: str, kwh: float, category: SuspicionCategory = SuspicionCategory.THEFT
) -> Suspicion:
    kind = TargetKind.AREA if target.startswith("A") else TargetKind.METER
    area = target if kind == TargetKind.AREA else "A1"
    return Suspicion(target, kind, category, 0.9, DAY0, kwh, f"{target} suspected", area)


def test_an_inspector_finds_what_the_labels_say_once_it_started() -> None:
    def order(target: str, kind: str = "meter") -> object:
        from types import SimpleNamespace

        return SimpleNamespace(target_id=target, target_kind=kind)

    at = DAY0 + DAY
    assert TRUTH.outcome(order("C1"), at) == Outcome.THEFT_CONFIRMED  # type: ignore[arg-type]
    assert TRUTH.outcome(order("C2"), at) == Outcome.METER_FAULT  # type: ignore[arg-type]
    assert TRUTH.outcome(order("C3"), at) == Outcome.NO_FINDING  # type: ignore[arg-type]
    assert TRUTH.outcome(order("C4"), at) == Outcome.NO_FINDING  # type: ignore[arg-type]
    later = DAY0 + 11 * DAY
    assert TRUTH.outcome(order("C4"), later) == Outcome.THEFT_CONFIRMED  # type: ignore[arg-type]
    # A sweep of the area finds its thief; of an area without one, nothing.
    assert TRUTH.outcome(order("A2", "area"), at) == Outcome.NO_FINDING  # type: ignore[arg-type]
    assert TRUTH.outcome(order("A2", "area"), later) == Outcome.THEFT_CONFIRMED  # type: ignore[arg-type]


def test_the_queue_visits_the_most_valuable_first_at_capacity_and_closes_what_it_visits() -> None:
    days = [
        (DAY0 + DAY, [suspicion("C3", 10.0), suspicion("C1", 500.0), suspicion("C2", 50.0)]),
        (DAY0 + 2 * DAY, [suspicion("C3", 10.0), suspicion("C1", 500.0), suspicion("C2", 50.0)]),
        (DAY0 + 3 * DAY, [suspicion("C3", 10.0), suspicion("C1", 500.0), suspicion("C2", 50.0)]),
        (DAY0 + 4 * DAY, [suspicion("C3", 10.0), suspicion("C1", 500.0), suspicion("C2", 50.0)]),
    ]
    result = simulate_queue(days, TRUTH, settings=ONE_A_DAY, directory=DIRECTORY, tz="UTC")
    assert [(v.target_id, v.outcome) for v in result.visits] == [
        ("C1", "theft_confirmed"),
        ("C2", "meter_fault"),
        ("C3", "no_finding"),
    ]
    assert [d.visits for d in result.days] == [1, 1, 1, 0]  # closed: not visited again
    assert [d.open_after for d in result.days] == [2, 1, 0, 0]
    assert [d.orders_created for d in result.days] == [3, 0, 0, 0]
    assert result.visits[0].days_since_start == 1.0
    s = result.summary
    assert s["visits"] == 3 and s["hit_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert s["theft"] == {  # C4's theft had not started by the last day
        "cases": 1,
        "found": 1,
        "found_share": 1.0,
        "found_within_7d_share": 1.0,
        "found_within_14d_share": 1.0,
        "median_days_to_visit": 1.0,
    }
    assert s["meter_fault"]["found"] == 1  # type: ignore[index]
    assert result.theft_starts_s == [DAY0]  # C4's theft starts after the last day


@pytest.fixture(scope="module")
def small_grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("queue-grid")
    write_grid(
        generate_grid(SyntheticGridConfig(seed=3, n_feeders=1, areas_per_feeder=3, days=21)), d
    )
    return d


def test_window_by_window_detection_ends_with_the_replays_suspicions(small_grid: Path) -> None:
    """The day-by-day snapshots come from the detection stage fed one final window at
    a time (as the worker feeds it): after the last day, its suspicions are those of
    the recording fed whole."""
    config = EngineConfig()
    rec = record(small_grid, config)
    stage = DetectionStage(rec.topology, config, {})
    days = list(snapshots(rec.emissions, stage, horizon_s=config.recollect_horizon_s, tz="UTC"))
    assert len(days) == rec.days == 21  # one decision a day (daily windows)
    assert [t for t, _ in days] == sorted(t for t, _ in days)
    final_ids = {(s.target_id, s.category) for s in days[-1][1]}
    ref = detect(rec, {})
    assert final_ids == set(zip(ref["target_id"], ref["category"], strict=True))
    assert len(final_ids) >= 3
    assert len(days[0][1]) <= len(days[-1][1])


def test_the_command_writes_the_days_the_visits_a_summary_and_a_plot(
    small_grid: Path, tmp_path: Path
) -> None:
    out = tmp_path / "queue"
    capacity = tmp_path / "workorders.json"
    capacity.write_text(json.dumps({"policy": {"daily_capacity": 1}}))
    labels = str(small_grid / "labels.csv")
    argv = ["queue-backtest", str(small_grid), "--labels", labels, "--out", str(out)]
    assert main([*argv, "--workorders-config", str(capacity)]) == 0
    one_a_day = json.loads((out / "queue_summary.json").read_text())
    result = run_queue_backtest(small_grid, small_grid / "labels.csv", out, EngineConfig())
    assert one_a_day["visits"] <= result.summary["visits"]  # type: ignore[operator]
    assert one_a_day["max_open"] >= result.summary["max_open"]  # type: ignore[operator]
    days = pd.read_csv(out / "queue_days.csv")
    visits = pd.read_csv(out / "queue_visits.csv")
    summary = json.loads((out / "queue_summary.json").read_text())
    assert len(days) == len(result.days) and len(visits) == len(result.visits) > 0
    assert summary["visits"] == len(visits) == days["visits"].sum()
    assert (out / "queue.png").stat().st_size > 10_000
    theft = summary["theft"]
    assert theft["cases"] > 0 and 0 < theft["found"] <= theft["cases"]
    assert set(visits["outcome"]) <= {o.value for o in Outcome}
