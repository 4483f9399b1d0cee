"""`lineloss replay --influx-url ...` writes the replay's results to the real InfluxDB."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lineloss.cli import main
from sinks.influx import InfluxQLClient, InfluxSettings

pytestmark = pytest.mark.integration

SMALL = Path(__file__).parents[2] / "data" / "small"


def test_replay_writes_balances_suspicions_and_health(
    influx_settings: InfluxSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["replay", str(SMALL), "--out", str(out), "--quiet"]
    argv += ["--influx-url", influx_settings.url, "--influx-db", influx_settings.database]
    assert main(argv) == 0
    assert "points written" in capsys.readouterr().out
    c = InfluxQLClient(influx_settings)
    balances = pd.read_csv(out / "balances.csv")
    [s] = c.query('SELECT count("supply_kwh") FROM "area_balance" WHERE time >= 0s')
    assert s.values[0][1] == len(balances)
    [s] = c.query(
        'SELECT "supply_kwh", "billed_kwh", "status" FROM "area_balance" '
        "WHERE \"area\" = 'A1' AND time >= 0s"
    )
    a1 = balances[balances["area_id"] == "A1"]
    assert s.column("supply_kwh") == list(a1["supply_kwh"])
    assert s.column("status") == list(a1["status"])
    [s] = c.query('SELECT count("supply_kwh") FROM "feeder_balance" WHERE time >= 0s')
    assert s.values[0][1] == len(pd.read_csv(out / "feeder_balances.csv"))
    assert c.query('SELECT * FROM "pipeline_health" WHERE "component" = \'replay\'')
    rejects = pd.read_csv(out / "rejects.csv")["reason"].value_counts().to_dict()
    got = {
        s.tags["reason"]: s.values[0][1]
        for s in c.query('SELECT last("rejected_total") FROM "pipeline_rejects" GROUP BY "reason"')
    }
    assert got == rejects
    assert not list((out / "influx-spill").glob("spill-*.lp"))


def test_replay_refuses_token_and_user_together(tmp_path: Path) -> None:
    argv = ["replay", str(SMALL), "--out", str(tmp_path), "--quiet"]
    argv += ["--influx-url", "http://127.0.0.1:1", "--influx-token", "t", "--influx-user", "u"]
    assert main(argv) == 2
