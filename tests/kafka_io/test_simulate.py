"""``lineloss simulate``: the plan of a live stream (pure) and a run into the real
broker whose broken messages come out as dead letters with their reasons."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from kafka_io.collect import worker_command, worker_env
from kafka_io.produce import rows_of
from kafka_io.schema import decode_rows
from kafka_io.shards import Shards
from kafka_io.simulate import (
    BAD_KINDS,
    SimulationSettings,
    arrival_times,
    day_shift_s,
    plan_messages,
    run_simulation,
)
from kafka_io.topics import KafkaSettings
from lineloss.config import EngineConfig, engine_config_to_dict
from loaders.files import read_readings, read_topology
from loaders.synthetic import SyntheticGridConfig, generate_grid, write_grid


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("sim-grid")
    write_grid(
        generate_grid(SyntheticGridConfig(seed=4, n_feeders=2, areas_per_feeder=2, days=3)), d
    )
    topology, _ = read_topology(d)
    loaded = read_readings(d, topology)
    assert loaded.received_s is not None
    return topology, rows_of(topology, loaded), arrival_times(loaded.received_s, loaded.batch.ts)


def test_the_plan_sends_every_reading_once_keyed_for_its_shard(grid) -> None:  # type: ignore[no-untyped-def]
    topology, rows, arrivals = grid
    settings = SimulationSettings(single_fraction=0.1, duplicate_fraction=0.0, bad_fraction=0.0)
    start = float(arrivals.min())
    plan = list(plan_messages(topology, rows, arrivals, settings, shift_s=0, start_s=start))
    sent = []
    shards = Shards(topology, 4)
    for m in plan:
        got = decode_rows(m.value)
        sent += [(r.meter_id, r.ts, r.value) for r in got]  # type: ignore[union-attr]
        if m.kind == "single":
            assert m.key.decode() == got[0].meter_id  # type: ignore[union-attr]
        else:
            i = int(topology.index_of([got[0].meter_id])[0])  # type: ignore[union-attr]
            if i >= 0:
                assert m.key.decode() == shards.key(topology.meter(i))
    assert sorted(sent) == sorted((r.meter_id, r.ts, r.value) for r in rows)
    assert {m.kind for m in plan} == {"batch", "single"}
    dues = [m.due_s for m in plan]
    assert dues == sorted(dues)  # sent in arrival order
    assert sum(m.kind == "batch" for m in plan) < len(rows) / 5  # concentrators batch


def test_the_plan_breaks_and_repeats_messages_and_shifts_whole_days(grid) -> None:  # type: ignore[no-untyped-def]
    topology, rows, arrivals = grid
    settings = SimulationSettings(duplicate_fraction=0.05, bad_fraction=0.05, seed=3)
    start = float(arrivals.min()) + 2 * 86400 + 7
    shift = 2 * 86400
    plan = list(plan_messages(topology, rows, arrivals, settings, shift_s=shift, start_s=start))
    kinds = [m.kind for m in plan]
    assert set(BAD_KINDS) <= set(kinds)
    for k, m in enumerate(plan):
        if m.kind == "duplicate":
            assert plan[k - 1].value == m.value
        if m.kind in BAD_KINDS:
            [err] = decode_rows(m.value)[:1]
            reason = getattr(err, "reason", "unknown_meter")  # unknown meter: decodes fine
            assert reason == m.kind
    # shifted by whole days, and nothing due before the start (no backfill)
    assert min(m.due_s for m in plan) >= start
    first = decode_rows(plan[0].value)[0]
    assert (first.ts - rows[int(np.argmin(arrivals))].ts) % 86400 == 0  # type: ignore[union-attr]
    again = list(plan_messages(topology, rows, arrivals, settings, shift_s=shift, start_s=start))
    assert [m.value for m in again] == [m.value for m in plan]  # seeded


def test_day_shift_moves_the_first_local_day_to_today() -> None:
    first = 1772294400 + 3600  # 2026-03-01 01:00 in Shanghai
    now = 1795392000 + 50000  # 2026-11-22 in Shanghai
    shift = day_shift_s(first, now, "Asia/Shanghai")
    assert shift % 86400 == 0
    assert time.strftime("%Y-%m-%d", time.gmtime(first + shift + 8 * 3600)) == time.strftime(
        "%Y-%m-%d", time.gmtime(now + 8 * 3600)
    )


@pytest.mark.integration
def test_a_simulation_through_a_worker_dead_letters_every_broken_kind(
    grid,
    kafka_settings: KafkaSettings,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    topology, rows, arrivals = grid
    settings = SimulationSettings(
        speed=1e7, duplicate_fraction=0.01, bad_fraction=0.02, backfill_h=24 * 10, seed=5
    )
    report = run_simulation(topology, rows, arrivals, kafka_settings, settings, tz="Asia/Shanghai")
    assert report.bad >= 4 and report.duplicates >= 1 and report.readings > len(rows) * 0.9
    config = tmp_path / "engine.json"
    config.write_text(json.dumps(engine_config_to_dict(EngineConfig())))
    worker = subprocess.Popen(
        worker_command(kafka_settings, config, exit_on_drain=False), env=worker_env()
    )
    try:
        reasons = _dead_letter_reasons(kafka_settings, want=set(BAD_KINDS) | {"duplicate"})
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert set(BAD_KINDS) | {"duplicate"} <= reasons


def _dead_letter_reasons(
    settings: KafkaSettings, want: set[str], timeout_s: float = 120
) -> set[str]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.client(), group_id=None)
    try:
        deadline = time.monotonic() + timeout_s
        tps: list[TopicPartition] = []
        while not tps and time.monotonic() < deadline:
            tps = [
                TopicPartition(settings.dead_letters, p)
                for p in sorted(consumer.partitions_for_topic(settings.dead_letters) or set())
            ]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        seen: set[str] = set()
        while not want <= seen and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                seen.update(json.loads(r.value)["reason"] for r in records)
        return seen
    finally:
        consumer.close()
