"""`lineloss worker --influx-url ... --heartbeat ...`: the Kafka worker writes its
results to the real InfluxDB (revisions overwrite) and keeps its heartbeat file."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from influx_server import drop_database, fresh_database, influx_url
from kafka_server import kafka_bootstrap, kafka_settings

from kafka_io.collect import Collected, collect, exited, worker_command, write_outputs
from kafka_io.produce import publish_data_dir
from kafka_io.topics import KafkaSettings
from lineloss.config import EngineConfig, engine_config_to_dict
from loaders.synthetic import SyntheticGridConfig, generate_grid, write_grid
from sinks.influx import InfluxQLClient, InfluxSettings

pytestmark = pytest.mark.integration

__all__ = ["influx_url", "kafka_bootstrap", "kafka_settings"]  # fixtures used here

CONFIG = EngineConfig(recollect_horizon_s=30 * 86400)


@pytest.fixture
def influx_db(influx_url: str) -> Iterator[InfluxSettings]:
    settings = fresh_database(influx_url, prefix="lineloss_worker_test")
    yield settings
    drop_database(settings)


def first_window_end(collected: Collected) -> int:
    return min(b.window_end for b in collected.history)


def epoch_s(iso: pd.Series) -> list[int]:
    return [int(t.timestamp()) for t in pd.to_datetime(iso, utc=True)]


def test_worker_writes_balances_suspicions_health_and_heartbeat(
    kafka_settings: KafkaSettings, influx_db: InfluxSettings, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    grid = generate_grid(SyntheticGridConfig(seed=3, n_feeders=1, areas_per_feeder=2, days=4))
    write_grid(grid, tmp_path / "grid")
    published = publish_data_dir(tmp_path / "grid", kafka_settings)
    config = tmp_path / "engine.json"
    config.write_text(json.dumps(engine_config_to_dict(CONFIG)))
    heartbeat = tmp_path / "state" / "heartbeat"
    extra = ["--influx-url", influx_db.url, "--influx-db", influx_db.database]
    extra += ["--influx-spill-dir", str(tmp_path / "spill"), "--heartbeat", str(heartbeat)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINELOSS_INFLUX_")}
    # Small steps, so that provisional balances are written and later overwritten.
    worker = subprocess.Popen(
        [*worker_command(kafka_settings, config), "--take-max", "50", *extra], env=env
    )
    try:
        collected = collect(kafka_settings, timeout_s=120, gave_up=lambda: exited(worker))
        assert worker.wait(timeout=60) == 0  # exit on drain closes (flushes) the writer
    finally:
        if worker.poll() is None:
            worker.kill()
    assert collected.drained
    assert any(not b.final for b in collected.history), "no provisional balance to overwrite"
    out = tmp_path / "out"
    write_outputs(out, CONFIG, collected, published.topology_rejects, published.reading_rejects)

    c = InfluxQLClient(influx_db)
    # Final area balances: one point per area and window, the last issue (final) wins.
    balances = pd.read_csv(out / "balances.csv", keep_default_na=False)
    series = c.query(
        'SELECT "supply_kwh", "billed_kwh", "loss_kwh", "status", "final" FROM "area_balance" '
        'WHERE time >= 0s GROUP BY "area"'
    )
    assert sorted(s.tags["area"] for s in series) == sorted(balances["area_id"].unique())
    for s in series:
        want = balances[balances["area_id"] == s.tags["area"]]
        want = want.assign(t=epoch_s(want["window_start"])).sort_values("t")
        got = pd.DataFrame(s.records())
        assert got["time"].tolist() == want["t"].tolist()  # epoch seconds
        assert got["final"].tolist() == [True] * len(want)
        assert got["status"].tolist() == want["status"].tolist()
        for col in ("supply_kwh", "billed_kwh", "loss_kwh"):
            assert got[col].tolist() == pytest.approx(want[col].tolist(), rel=1e-12, abs=1e-9)
    [s] = c.query('SELECT count("supply_kwh") FROM "feeder_balance" WHERE time >= 0s')
    assert s.values[0][1] == len(pd.read_csv(out / "feeder_balances.csv"))

    # Suspicions: every one the worker published, with its latest score.
    suspicions = pd.read_csv(out / "suspicions.csv", keep_default_na=False)
    assert len(suspicions) >= 1
    got_sus = {
        (s.tags["target"], s.tags["category"]): s.values[0][1]
        for s in c.query(
            'SELECT last("score") FROM "suspicion" WHERE time >= 0s GROUP BY "target", "category"'
        )
    }
    want_sus = {
        (r.target_id, r.category): float(r.score) for r in suspicions.itertuples(index=False)
    }
    assert set(got_sus) == set(want_sus)
    for key, score in want_sus.items():
        assert got_sus[key] == pytest.approx(score, rel=1e-9)

    # The worker's health, the last one marked done.
    [h] = c.query(
        'SELECT last("done"), last("balances_total") FROM "pipeline_health" '
        "WHERE \"component\" = 'worker'"
    )
    assert h.values[0][1] is True
    assert h.values[0][2] == len(collected.history)
    assert c.query('SELECT * FROM "pipeline_health" WHERE "component" = \'influx_sink\'')
    assert not list((tmp_path / "spill").glob("spill-*.lp"))

    # Partition alignment (kafka_io.core.Alignment): a point per partition and step;
    # once every partition ended, nothing holds anyone's finals.
    series = c.query(
        'SELECT "source_watermark_s", "final_watermark_s", "holding_all", "waiting_for" '
        'FROM "partition_alignment" WHERE time >= 0s GROUP BY "partition"'
    )
    assert {s.tags["partition"] for s in series} == {
        str(p) for p in range(kafka_settings.partitions)
    }
    for s in series:
        last = s.records()[-1]
        assert (last["holding_all"], last["waiting_for"], last["final_watermark_s"]) == (
            False,
            "",
            0,  # nothing holds
        )
    marks = [r["source_watermark_s"] for s in series for r in s.records()]
    assert max(marks) >= first_window_end(collected)

    # Heartbeat: JSON with the wall clock and the stream time, refreshed recently.
    beat = json.loads(heartbeat.read_text())
    assert set(beat) == {"unix_s", "stream_time_s"}
    assert time.time() - beat["unix_s"] < 60
    assert time.time() - heartbeat.stat().st_mtime < 60
    first = min(b.window_start for b in collected.history)
    assert isinstance(beat["stream_time_s"], int) and beat["stream_time_s"] > first
    assert not list(heartbeat.parent.glob(".*.tmp"))
    assert time.monotonic() - t0 < 60


def test_replay_through_kafka_passes_its_influxdb_to_the_worker(
    kafka_settings: KafkaSettings, influx_db: InfluxSettings, tmp_path: Path
) -> None:
    """`replay --through-kafka --influx-url`: the back-test's worker writes to the
    InfluxDB the command names, and to no other (the live defaults are stripped)."""
    from lineloss.cli import main

    grid = generate_grid(SyntheticGridConfig(seed=3, n_feeders=1, areas_per_feeder=2, days=3))
    write_grid(grid, tmp_path / "grid")
    out = tmp_path / "out"
    code = main(
        [
            "replay",
            str(tmp_path / "grid"),
            "--out",
            str(out),
            "--through-kafka",
            kafka_settings.bootstrap,
            "--prefix",
            kafka_settings.prefix,
            "--recollect-horizon-s",
            str(30 * 86400),
            "--influx-url",
            influx_db.url,
            "--influx-db",
            influx_db.database,
            "--quiet",
        ]
    )
    assert code == 0
    balances = pd.read_csv(out / "balances.csv")
    c = InfluxQLClient(influx_db)
    [s] = c.query('SELECT count("supply_kwh") FROM "area_balance" WHERE time >= 0s')
    assert s.values[0][1] == len(balances) > 0
    [h] = c.query('SELECT last("done") FROM "pipeline_health" WHERE "component" = \'worker\'')
    assert h.values[0][1] is True
