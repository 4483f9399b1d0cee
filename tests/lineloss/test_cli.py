"""The ``lineloss`` command on the committed small dataset (hand-computed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lineloss.cli import main

SMALL = Path(__file__).parents[1] / "data" / "small"


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    assert main(["replay", str(SMALL), "--out", str(out), "--quiet"]) == 0
    return out


def test_replay_writes_hand_computed_area_balances(replayed: Path) -> None:
    b = pd.read_csv(replayed / "balances.csv")
    b["reason"] = b["reason"].fillna("")
    assert list(b.columns) == [
        "area_id",
        "feeder_id",
        "window_start",
        "window_end",
        "supply_kwh",
        "billed_kwh",
        "loss_kwh",
        "loss_rate",
        "coverage",
        "meters_expected",
        "meters_reporting",
        "status",
        "reason",
        "revision",
    ]
    a1 = b[b.area_id == "A1"].set_index("window_start")
    day1, day2, day3 = (f"2026-03-0{d}T00:00:00+08:00" for d in (1, 2, 3))
    # T1 register deltas x multiplier 40: 400, 420, 420; customers 380, 380, 330.
    assert a1.loc[day1, ["supply_kwh", "billed_kwh", "loss_kwh"]].tolist() == [400, 380, 20]
    assert a1.loc[day1, "loss_rate"] == 0.05
    assert a1.loc[day1, "status"] == "normal"
    assert a1.loc[day2, "loss_rate"] == pytest.approx(40 / 420)
    assert a1.loc[day3, ["supply_kwh", "billed_kwh"]].tolist() == [420, 330]
    assert a1.loc[day3, "status"] == "high_loss"
    assert a1.loc[day1, "window_end"] == day2
    a2 = b[b.area_id == "A2"].set_index("window_start")
    assert a2.loc[day1, "status"] == "negative_loss"
    assert a2.loc[day1, "loss_kwh"] == -10
    a3 = b[b.area_id == "A3"].set_index("window_start")
    assert a3.loc[day1, "status"] == "incomputable"
    assert a3.loc[day1, "reason"] == "no area meter in the topology"
    # The window before the first reading has no start register: said so.
    first = b[b.window_start == "2026-02-28T00:00:00+08:00"]
    assert set(first.status) == {"incomputable"}


def test_replay_writes_feeder_balance(replayed: Path) -> None:
    f = pd.read_csv(replayed / "feeder_balances.csv").set_index("window_start")
    row = f.loc["2026-03-01T00:00:00+08:00"]
    # Head meter 1000 vs area meters 400 + 300, area A3's customer 40, dedicated 200.
    assert (row.supply_kwh, row.billed_kwh, row.status) == (1000, 940, "normal")
    assert row.loss_rate == pytest.approx(0.06)


def test_replay_rejects_bad_rows_with_file_row_and_reason(replayed: Path) -> None:
    r = pd.read_csv(replayed / "rejects.csv", keep_default_na=False)
    got = {(s, int(row)): reason for s, row, reason in zip(r.source, r.row, r.reason, strict=True)}
    assert got == {
        ("topology.csv", 12): "malformed",  # role 'transformer'
        ("topology.csv", 13): "duplicate",  # C1 listed twice
        ("readings.csv", 14): "malformed",  # ts not ISO 8601
        ("readings.csv", 15): "malformed",  # value 'abc'
        ("readings.csv", 16): "unknown_meter",
        ("readings.csv", 30): "duplicate",
        ("readings.csv", 31): "negative_energy",
        ("readings.csv", 32): "malformed",  # neither register nor interval
    }
    detail = dict(zip(r.row, r.detail, strict=True))
    assert detail[14] == "ts is not an ISO 8601 timestamp"
    summary = json.loads((replayed / "summary.json").read_text())
    assert summary["rejected"] == 6
    assert summary["rejected_by_reason"]["malformed"] == 4


def test_replay_raises_area_suspicions(replayed: Path) -> None:
    s = pd.read_csv(replayed / "suspicions.csv")
    assert set(s.columns) >= {
        "target_id",
        "target_kind",
        "category",
        "score",
        "first_detected",
        "estimated_kwh",
        "evidence",
    }
    by_target = s.set_index("target_id")
    assert by_target.loc["A1", "category"] == "area_loss"
    assert "high loss 21.4%" in by_target.loc["A1", "evidence"]
    assert by_target.loc["A1", "first_detected"] == "2026-03-04T00:00:00+08:00"
    assert "negative loss" in by_target.loc["A2", "evidence"]
    assert s.score.between(0, 1).all()
    assert list(s.score) == sorted(s.score, reverse=True)


def test_replay_writes_meter_windows(replayed: Path) -> None:
    mw = pd.read_parquet(replayed / "meter_windows.parquet")
    c3 = mw[mw.meter_id == "C3"].sort_values("window_start")
    assert c3.energy_kwh.dropna().tolist() == [130.0, 130.0, 80.0]


def test_replay_missing_files_exit_2_with_message(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["replay", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "topology.csv" in capsys.readouterr().err


def test_readings_order_follows_received_at(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(SMALL, data)
    df = pd.read_csv(data / "readings.csv", dtype=str, keep_default_na=False)
    # Reverse arrival: the same set of readings must give the same final balances.
    df["received_at"] = [
        f"2026-03-05T00:{59 - i % 60:02d}:{i // 60:02d}+08:00" for i in range(len(df))
    ]
    df.to_csv(data / "readings.csv", index=False)
    out = tmp_path / "out"
    assert main(["replay", str(data), "--out", str(out), "--quiet"]) == 0
    ref = tmp_path / "ref"
    assert main(["replay", str(SMALL), "--out", str(ref), "--quiet"]) == 0
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "balances.csv").drop(columns="revision"),
        pd.read_csv(ref / "balances.csv").drop(columns="revision"),
    )


def test_console_script_runs_replay(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lineloss.cli", "replay", str(SMALL), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "readings balanced" in proc.stdout
    assert "topology: 10 meters" in proc.stderr  # progress goes to stderr


@pytest.mark.parametrize("daily", [False, True], ids=["15min", "daily"])
def test_generate_then_replay_balances_a_synthetic_grid(tmp_path: Path, daily: bool) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    args = ["generate", str(data), "--feeders", "1", "--areas-per-feeder", "3", "--days", "6"]
    assert main([*args, "--daily"] if daily else args) == 0
    assert main(["replay", str(data), "--out", str(out), "--quiet"]) == 0
    b = pd.read_csv(out / "balances.csv")
    inner = b[(b.window_start > b.window_start.min()) & (b.window_start < b.window_start.max())]
    computable = inner[inner.status != "incomputable"]
    # Every metered area balances on the inner days, with a plausible loss rate.
    assert len(computable) >= 0.6 * len(inner)
    assert computable.loss_rate.between(-0.05, 0.5).all()
    assert computable.coverage.min() >= 0.9


def test_generate_draws_the_fault_kinds_asked_for(tmp_path: Path) -> None:
    args = ["generate", str(tmp_path), "--feeders", "1", "--areas-per-feeder", "2", "--days", "3"]
    assert (
        main([*args, "--fault-fraction", "0.1", "--fault-kinds", "reverse_energy,phase_loss"]) == 0
    )
    labels = pd.read_csv(tmp_path / "labels.csv")
    faults = labels[labels["label"] == "meter_fault"]
    assert len(faults) >= 5 and set(faults["kind"]) <= {"reverse_energy", "phase_loss"}
    with pytest.raises(SystemExit):
        main([*args, "--fault-kinds", "stuck,melted"])
