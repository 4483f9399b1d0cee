"""The production path through the real broker: same finals as the embedded replay,
dead letters for bad messages, and recovery from a SIGKILLed worker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kafka_io.collect import (
    Collected,
    collect,
    exited,
    run_through_kafka,
    worker_command,
    worker_env,
    write_outputs,
)
from kafka_io.produce import publish_data_dir
from kafka_io.schema import ReadingRow, encode_batch, encode_reading
from kafka_io.topics import KafkaSettings, ensure_topics, read_compacted
from lineloss.config import EngineConfig, engine_config_to_dict
from loaders.synthetic import SyntheticGridConfig, generate_grid, write_grid
from streams.replay import run_replay

pytestmark = pytest.mark.integration

# Re-collection horizon beyond the data's latest arrival, so that no reading is
# too late in either runner whatever the batch boundaries (docs/streaming.md).
CONFIG = EngineConfig(recollect_horizon_s=30 * 86400)
COMPARED = {
    "balances.csv": ["window_start", "area_id"],
    "feeder_balances.csv": ["window_start", "feeder_id"],
    "suspicions.csv": ["target_id", "category", "detector"],
}


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("grid")
    grid = generate_grid(SyntheticGridConfig(seed=3, n_feeders=1, areas_per_feeder=2, days=4))
    write_grid(grid, d)
    return d


@pytest.fixture(scope="module")
def embedded(grid_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("embedded")
    run_replay(grid_dir, out, CONFIG)
    return out


def assert_same_finals(embedded: Path, through: Path) -> None:
    for name, key in COMPARED.items():
        # Row order is issue order, which depends on partitioning; the rows must not.
        a = pd.read_csv(embedded / name, keep_default_na=False).sort_values(key)
        b = pd.read_csv(through / name, keep_default_na=False).sort_values(key)
        a, b = a.reset_index(drop=True), b.reset_index(drop=True)
        # ``revision`` counts re-issues, which depend on how readings were batched;
        # every number, status and reason must be identical.
        a, b = (
            a.drop(columns=["revision"], errors="ignore"),
            b.drop(columns=["revision"], errors="ignore"),
        )
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
    assert len(pd.read_csv(embedded / "suspicions.csv")) >= 1
    a = pd.read_parquet(embedded / "meter_windows.parquet")
    b = pd.read_parquet(through / "meter_windows.parquet")
    assert len(a) > 100
    pd.testing.assert_frame_equal(a, b, check_exact=True, obj="meter_windows.parquet")


def engine_reasons(out: Path) -> pd.Series:
    r = pd.read_csv(out / "rejects.csv", keep_default_na=False)
    r = r[~r["reason"].isin(["malformed"])]
    return r["reason"].value_counts().sort_index()


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's bookkeeping is left


def start_worker(
    settings: KafkaSettings, tmp: Path, *extra: str, stderr: Any = None
) -> subprocess.Popen[bytes]:
    config = tmp / "engine.json"
    config.write_text(json.dumps(engine_config_to_dict(CONFIG)))
    return subprocess.Popen(
        [*worker_command(settings, config), *extra], env=worker_env(), stderr=stderr
    )


def collect_drained(
    settings: KafkaSettings, worker: subprocess.Popen[bytes], timeout_s: float = 120
) -> Collected:
    """The outputs of a worker run with ``--exit-on-drain``, once it exited 0."""
    try:
        collected = collect(settings, timeout_s=timeout_s, gave_up=lambda: exited(worker))
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    assert collected.drained
    return collected


def test_through_kafka_gives_the_embedded_finals(
    grid_dir: Path, embedded: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    run_through_kafka(grid_dir, tmp_path / "out", CONFIG, kafka_settings, timeout_s=120)
    assert_same_finals(embedded, tmp_path / "out")
    pd.testing.assert_series_equal(engine_reasons(embedded), engine_reasons(tmp_path / "out"))
    assert time.monotonic() - t0 < 90


def test_tuned_detector_settings_reach_the_worker(
    grid_dir: Path, embedded: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """``--detectors`` (the file ``lineloss tune`` writes) reaches the worker's
    detection process: the suspicions of the embedded replay with the same file. And
    the work orders priced at a stepped tariff (on top of each customer's bill, from
    the meter windows collected) are the embedded replay's."""
    from workorders.settings import WorkOrderSettings

    tuned = {"decider": {"min_score": 0.3}, "book": {"confirm_windows": 1}}
    path = tmp_path / "detectors.json"
    path.write_text(json.dumps(tuned))
    stepped = WorkOrderSettings.from_dict(
        {"tariffs": {"default": {"stepped": [[60, 0.5], [120, 0.6], [None, 0.9]]}}}
    )
    run_replay(
        grid_dir,
        tmp_path / "embedded",
        CONFIG,
        detector_settings=tuned,
        workorder_settings=stepped,
    )
    default = pd.read_csv(embedded / "suspicions.csv")
    assert len(pd.read_csv(tmp_path / "embedded" / "suspicions.csv")) > len(default)
    run_through_kafka(
        grid_dir,
        tmp_path / "out",
        CONFIG,
        kafka_settings,
        timeout_s=120,
        detectors_path=path,
        workorder_settings=stepped,
    )
    assert_same_finals(tmp_path / "embedded", tmp_path / "out")
    orders = [pd.read_csv(d / "workorders.csv") for d in (tmp_path / "embedded", tmp_path / "out")]
    assert len(orders[0]) > 0
    key = ["target_id", "category"]
    pd.testing.assert_frame_equal(
        *(o.sort_values(key).reset_index(drop=True) for o in orders), check_like=True
    )


def test_bad_messages_land_in_dead_letters_and_the_worker_goes_on(
    grid_dir: Path, embedded: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    from kafka import KafkaProducer

    ensure_topics(kafka_settings)
    bad = {
        "malformed_json": b'{"schema": "lineloss.reading", "version": 1, "meter_id": ',
        "unsupported_version": b'{"schema": "lineloss.reading", "version": 7}',
        "unknown_schema": b'{"schema": "somebody.else", "version": 1}',
        "unknown_meter": encode_reading(ReadingRow("NOBODY", 1772323200, 5.0)),
        "non_numeric": b'{"schema": "lineloss.concentrator_batch", "version": 1, "area_id": '
        b'"FD01-TA01", "ts": "2026-03-01T00:00:00Z", '
        b'"readings": [{"meter_id": "X", "register_kwh": "12,5"}]}',
        "missing_field": encode_batch("FD01-TA01", []).replace(b'"readings":[]', b'"r":[]'),
    }
    producer = KafkaProducer(**kafka_settings.client())
    where = {}
    for reason, raw in bad.items():
        md = producer.send(kafka_settings.readings, key=b"FD01-TA01", value=raw).get(timeout=30)
        where[reason] = (md.topic, md.partition, md.offset)
    producer.close()
    published = publish_data_dir(grid_dir, kafka_settings)
    worker = start_worker(kafka_settings, tmp_path, "--take-max", "20")
    collected = collect_drained(kafka_settings, worker)
    found = {
        d["reason"]: (d["topic"], d["partition"], d["offset"])
        for d in collected.dead_letters
        if d["reason"] in bad and d["meter_id"] in ("", "NOBODY")
    }
    assert found == where
    write_outputs(
        tmp_path / "out", CONFIG, collected, published.topology_rejects, published.reading_rejects
    )
    assert_same_finals(embedded, tmp_path / "out")


def wait_for_a_checkpoint(settings: KafkaSettings, timeout_s: float = 60) -> None:
    """Until the worker wrote its first checkpoint (it is mid-stream then)."""
    deadline = time.monotonic() + timeout_s
    while not read_compacted(settings, settings.checkpoints):
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.2)


def test_sigkilled_worker_restarts_from_its_checkpoint_with_identical_finals(
    grid_dir: Path, embedded: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    published = publish_data_dir(grid_dir, kafka_settings)
    # Small steps, so the stream is still running when the worker dies.
    worker = start_worker(kafka_settings, tmp_path, "--take-max", "3", "--take-within-s", "0.2")
    try:
        wait_for_a_checkpoint(kafka_settings)
        time.sleep(0.5)
        children = children_of(worker.pid)
        assert children, "the worker's step process is missing"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        # Its step process goes too: nothing keeps running, or holding memory.
        deadline = time.monotonic() + 15
        while any(alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(c) for c in children)
    finally:
        if worker.poll() is None:
            worker.kill()
    from kafka_io.checkpoints import committed_offsets, read_checkpoints
    from kafka_io.core import PartitionCore
    from kafka_io.detection import split_checkpoint
    from kafka_io.worker import load_topology

    saved = read_checkpoints(kafka_settings, set(range(kafka_settings.partitions)))
    assert checkpoint_homes(kafka_settings) == {
        p: {f"{kafka_settings.group_id}/{kafka_settings.readings}/{p}"} for p in saved
    }  # each in the checkpoint partition of its own number
    topology = load_topology(kafka_settings)
    cores = [
        PartitionCore.restore(topology, CONFIG, split_checkpoint(data)[0])
        for data in saved.values()
    ]
    assert cores and not all(c.flushed for c in cores), (
        "the worker drained before it was killed: make the steps smaller"
    )
    assert sum(c.position for c in cores) > 0
    # The invariant the restore relies on: no committed offset is ahead of the
    # checkpoint of its partition (else the readings in between would be lost).
    committed = committed_offsets(kafka_settings, set(range(kafka_settings.partitions)))
    for core in cores:
        for topic, offset in committed[core.partition].items():
            assert core.next_offset.get(topic, 0) >= offset, (core.partition, topic)

    held = piece_records(kafka_settings)
    worker = start_worker(kafka_settings, tmp_path)
    collected = collect_drained(kafka_settings, worker)
    write_outputs(
        tmp_path / "out", CONFIG, collected, published.topology_rejects, published.reading_rejects
    )
    assert_same_finals(embedded, tmp_path / "out")
    pd.testing.assert_series_equal(engine_reasons(embedded), engine_reasons(tmp_path / "out"))
    # The restarted worker's checkpoints did not send again the pieces it restored.
    before = {(p, k) for p, _, k, v in held if v is not None}
    ends = {p: offset for p, offset, _, _ in held}  # (records come in offset order)
    after = [(p, k, v) for p, o, k, v in piece_records(kafka_settings) if o > ends.get(p, -1)]
    again = {(p, k) for p, k, v in after if v is not None} & before
    assert after and len(again) < 0.1 * len(before), (len(again), len(before))
    unused: dict[int, dict[str, set[str]]] = {}
    final = read_checkpoints(kafka_settings, set(range(kafka_settings.partitions)), unused)
    # the pieces the killed worker left unnamed were deleted after the restart's
    # first checkpoints (kafka_io.pieces)
    assert unused == {}
    committed = committed_offsets(kafka_settings, set(range(kafka_settings.partitions)))
    assert any(committed.values()), "the restarted worker committed nothing"
    for data in final.values():
        core = PartitionCore.restore(topology, CONFIG, split_checkpoint(data)[0])
        for topic, offset in committed[core.partition].items():
            assert core.next_offset.get(topic, 0) >= offset, (core.partition, topic)


def test_a_restore_assembles_the_pieces_falls_back_and_reports_the_unused(
    kafka_settings: KafkaSettings,
) -> None:
    """Incremental checkpoints through the broker (kafka_io.pieces): the restore
    assembles the best manifest's pieces; a manifest whose pieces are not all there
    gives way to the one before; pieces no manifest names are reported (for the
    owner to delete), not deleted by reading."""
    from kafka import KafkaProducer
    from one_area import CONFIG as SMALL
    from one_area import PARTITIONS, SHARDS, TOPO, quarter_hours

    from kafka_io.checkpoints import (
        CheckpointHomes,
        checkpoint_records,
        piece_key,
        read_checkpoints,
        send_records,
    )
    from kafka_io.core import PartitionCore
    from kafka_io.detection import split_checkpoint
    from kafka_io.pieces import BALANCE, DETECTION, PieceWriter

    settings = kafka_settings
    ensure_topics(settings)
    producer = KafkaProducer(**settings.client())
    core = PartitionCore(TOPO, SMALL, 0, PARTITIONS, shards=SHARDS)
    messages = quarter_hours(120)
    bal, det = PieceWriter(), PieceWriter()
    positions = []

    def save(detection: bytes, *, lose: int = 0) -> None:
        halves = {
            BALANCE: bal.split_arrays(core.state()),
            DETECTION: det.split({DETECTION: detection}),
        }
        homes = CheckpointHomes.of(settings)
        records = checkpoint_records(
            settings, homes, 0, halves, core.position, dict(core.next_offset)
        )
        send_records(producer, records[lose:])  # (the pieces come first)
        positions.append(core.position)

    core.process(messages[:60])
    save(b"first")
    core.process(messages[60:90])
    save(b"second")
    stray = piece_key(settings, 0, BALANCE, "0" * 32)
    producer.send(
        settings.checkpoint_pieces, key=stray, value=b"left by an earlier owner", partition=0
    )
    producer.flush()
    unused: dict[int, dict[str, set[str]]] = {}
    (data,) = read_checkpoints(settings, {0}, unused).values()
    balance, detection = split_checkpoint(data)
    assert detection == b"second"
    assert PartitionCore.restore(TOPO, SMALL, balance, shards=SHARDS).position == positions[1]
    assert unused == {0: {BALANCE: {"0" * 32}}}
    assert stray in read_compacted(settings, settings.checkpoint_pieces)  # reading deletes nothing

    core.process(messages[90:])
    save(b"third", lose=1)  # a piece of the newest manifest is missing
    (data,) = read_checkpoints(settings, {0}).values()
    balance, detection = split_checkpoint(data)
    assert detection == b"second"
    assert PartitionCore.restore(TOPO, SMALL, balance, shards=SHARDS).position == positions[1]
    producer.close()


def test_committed_offsets_without_a_checkpoint_stop_the_restore(
    kafka_settings: KafkaSettings,
) -> None:
    """Offsets committed for a partition whose checkpoint is gone (a deleted topic,
    lost pieces): starting it empty would silently drop every reading before them."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from kafka_io.checkpoints import CheckpointMissing, read_checkpoints

    settings = kafka_settings
    ensure_topics(settings)
    assert read_checkpoints(settings, {0, 1}) == {}  # a new group: nothing, no error
    consumer = KafkaConsumer(**settings.client(), group_id=settings.group_id)
    try:
        tp = TopicPartition(settings.readings, 1)
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(42, "", -1)})
    finally:
        consumer.close(autocommit=False)
    assert read_checkpoints(settings, {0}) == {}
    with pytest.raises(CheckpointMissing, match="partition 1"):
        read_checkpoints(settings, {0, 1})


def piece_records(settings: KafkaSettings) -> list[tuple[int, int, bytes, bytes | None]]:
    """(partition, offset, key, value) of every record on the checkpoint pieces
    topic, in offset order per partition."""
    from kafka_io.topics import scan_records

    out: list[tuple[int, int, bytes, bytes | None]] = []
    scan_records(
        settings,
        settings.checkpoint_pieces,
        lambda r: out.append((r.partition, r.offset, r.key, r.value)),
    )
    return out


def checkpoint_homes(settings: KafkaSettings) -> dict[int, set[str]]:
    """Checkpoint partition -> the keys written to it."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None)
    try:
        tps = [
            TopicPartition(settings.checkpoints, p)
            for p in sorted(consumer.partitions_for_topic(settings.checkpoints) or ())
        ]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: dict[int, set[str]] = {}
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for tp, recs in consumer.poll(timeout_ms=1000).items():
                out.setdefault(tp.partition, set()).update(r.key.decode() for r in recs)
        return out
    finally:
        consumer.close()


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def started_at(pid: int) -> int:
    """A process's start time, in clock ticks since boot (Linux /proc)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


@pytest.mark.parametrize("which", ["balance", "detection"])
def test_a_worker_whose_child_process_dies_exits_non_zero_and_restarts_cleanly(
    which: str, grid_dir: Path, embedded: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """One of the worker's two processes is killed (the OOM killer, say): the worker
    stops with a non-zero status instead of running on without progress, and a
    restart from the checkpoints gives the embedded finals."""
    published = publish_data_dir(grid_dir, kafka_settings)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        worker = start_worker(kafka_settings, tmp_path, "--take-max", "3", stderr=log_file)
        try:
            wait_for_a_checkpoint(kafka_settings)
            children = sorted(
                (c for c in children_of(worker.pid) if b"spawn_main" in cmdline(c)),
                key=started_at,
            )
            assert len(children) == 2, children
            os.kill(children[0 if which == "balance" else 1], signal.SIGKILL)
            assert worker.wait(timeout=60) == 1
        finally:
            if worker.poll() is None:
                worker.kill()
    log_text = log_path.read_text(errors="replace")
    assert "failed, stopping the worker" in log_text, log_text[-3000:]
    assert "drained: every partition" not in log_text, "the stream ended before the kill"
    worker = start_worker(kafka_settings, tmp_path)
    collected = collect_drained(kafka_settings, worker)
    write_outputs(
        tmp_path / "out", CONFIG, collected, published.topology_rejects, published.reading_rejects
    )
    assert_same_finals(embedded, tmp_path / "out")


@pytest.fixture(scope="module")
def three_feeders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A grid of three substations of one feeder each, which land on both partitions
    of a two-partition topic (SS01 and SS02 on 1, SS03 on 0), and its embedded replay."""
    d = tmp_path_factory.mktemp("three-feeders")
    cfg = SyntheticGridConfig(
        seed=5, n_feeders=3, areas_per_feeder=1, days=4, feeders_per_substation=1
    )
    write_grid(generate_grid(cfg), d)
    out = tmp_path_factory.mktemp("three-feeders-embedded")
    run_replay(d, out, CONFIG)
    return d, out


def test_two_workers_and_rebalances_give_the_embedded_results(
    three_feeders: tuple[Path, Path], kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Worker a starts alone; b joins (rebalance: they split the partitions); a is
    SIGKILLed (rebalance: b takes a's partition over from its checkpoint). Readings
    are keyed by area, so part of them is forwarded between partitions."""
    from dataclasses import replace

    from kafka_io.shards import Shards
    from kafka_io.worker import load_topology

    grid_dir, embedded_out = three_feeders
    settings = replace(kafka_settings, partitions=2)
    # The readings stream for about 35 s (4 days at 10,000x), so that both workers
    # take part however fast they start and step.
    import threading

    publishing: list = []
    publisher = threading.Thread(
        target=lambda: publishing.append(
            publish_data_dir(grid_dir, settings, key_by="area", speed=10_000)
        )
    )
    publisher.start()
    deadline = time.monotonic() + 30
    while not read_compacted(settings, settings.topology) and time.monotonic() < deadline:
        time.sleep(0.2)
    shards = Shards(load_topology(settings), settings.partitions)
    assert set(shards.meter_partition.tolist()) == {0, 1}
    slow = ("--take-max", "5", "--take-within-s", "0.1")
    beats = {w: tmp_path / f"{w}.heartbeat" for w in "ab"}
    config = tmp_path / "engine.json"
    config.write_text(json.dumps(engine_config_to_dict(CONFIG)))

    logs = {w: tmp_path / f"{w}.log" for w in "ab"}

    def start(w: str) -> subprocess.Popen[bytes]:
        command = worker_command(settings, config, exit_on_drain=False)
        with logs[w].open("wb") as log:
            return subprocess.Popen(
                [*command, *slow, "--heartbeat", str(beats[w])], env=worker_env(), stderr=log
            )

    def stream_time(w: str) -> int | None:
        if not beats[w].exists():
            return None
        return json.loads(beats[w].read_text())["stream_time_s"]

    workers = {"a": start("a")}
    try:
        deadline = time.monotonic() + 150  # two start-ups and a rebalance, on a busy CI box
        while stream_time("a") is None and time.monotonic() < deadline:
            time.sleep(0.2)
        workers["b"] = start("b")
        while stream_time("b") is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stream_time("b") is not None, "worker b never got a partition"
        saved = read_checkpoints_now(settings)
        workers["a"].send_signal(signal.SIGKILL)
        workers["a"].wait(timeout=30)
        assert not all(saved.values()), "the stream drained before the rebalance"
        collected = collect(settings, timeout_s=180, gave_up=lambda: exited(workers["b"]))
    finally:
        publisher.join(timeout=120)
        for proc in workers.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in workers.values():
            proc.wait(timeout=60)
    assert collected.drained and publishing
    for w, log in logs.items():  # a core handed messages out of order says so
        assert "not processed, lost" not in log.read_text(errors="replace"), w
    published = publishing[0]
    write_outputs(
        tmp_path / "out", CONFIG, collected, published.topology_rejects, published.reading_rejects
    )
    assert_same_finals(embedded_out, tmp_path / "out")
    pd.testing.assert_series_equal(engine_reasons(embedded_out), engine_reasons(tmp_path / "out"))


def read_checkpoints_now(settings: KafkaSettings) -> dict[int, bool]:
    """Partition -> drained, of the checkpoints written so far."""
    from kafka_io.checkpoints import read_checkpoints
    from kafka_io.core import PartitionCore
    from kafka_io.detection import split_checkpoint
    from kafka_io.worker import load_topology

    topology = load_topology(settings)
    saved = read_checkpoints(settings, set(range(settings.partitions)))
    return {
        p: PartitionCore.restore(topology, CONFIG, split_checkpoint(data)[0]).flushed
        for p, data in saved.items()
    }


def with_registry_changes(src: Path, dst: Path) -> dict[str, str]:
    """``src``'s grid plus a ``topology_changes.csv`` of each kind of registry update
    (docs/data-contract.md), readings adjusted as the field would produce them."""
    import shutil

    shutil.copytree(src, dst, dirs_exist_ok=True)
    topo = pd.read_csv(dst / "topology.csv", keep_default_na=False)
    customers = topo[topo["role"] == "customer"]
    moved = customers[customers["feeder_id"] == "FD01"]["meter_id"].iloc[0]
    replaced = customers[customers["feeder_id"] == "FD02"]["meter_id"].iloc[0]
    retired = customers[customers["feeder_id"] == "FD03"]["meter_id"].iloc[0]
    day2, day3 = "2026-03-03T00:00:00+08:00", "2026-03-04T00:00:00+08:00"
    changes = pd.DataFrame(
        [
            # moved from FD01 (partition 1) to FD03 (partition 0)
            (moved, day2, "customer", "FD03-TA01", "FD03", "1", ""),
            # replaced: the old meter leaves, a new id takes its readings
            (replaced, day2, "", "", "", "", "true"),
            (f"{replaced}-R", day2, "customer", "FD02-TA01", "FD02", "1", ""),
            # a new CT on the area meter
            ("M-FD03-TA01", day3, "area", "FD03-TA01", "FD03", "2", ""),
            # out of service; its readings go on (dead letters)
            (retired, day3, "", "", "", "", "true"),
        ],
        columns=[
            "meter_id",
            "effective_from",
            "role",
            "area_id",
            "feeder_id",
            "multiplier",
            "removed",
        ],
    )
    changes.to_csv(dst / "topology_changes.csv", index=False)
    readings = pd.read_csv(dst / "readings.csv", keep_default_na=False)
    after = (readings["meter_id"] == replaced) & (
        pd.to_datetime(readings["ts"], utc=True, errors="coerce", format="ISO8601")
        > pd.Timestamp(day2)
    )
    readings.loc[after, "meter_id"] = f"{replaced}-R"
    readings.to_csv(dst / "readings.csv", index=False)
    return {"moved": moved, "replaced": replaced, "retired": retired}


def test_registry_updates_through_kafka_give_the_embedded_finals(
    three_feeders: tuple[Path, Path], kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """A customer moved across partitions, a replaced meter, a new CT and a meter out
    of service, announced on the topology topic while the readings stream: the
    workers apply them live and give the finals and dead letters of the embedded
    replay that read the same dated changes."""
    from dataclasses import replace

    grid_dir = tmp_path / "grid"
    who = with_registry_changes(three_feeders[0], grid_dir)
    embedded_out = tmp_path / "embedded"
    run_replay(grid_dir, embedded_out, CONFIG)
    balances = pd.read_csv(embedded_out / "balances.csv", keep_default_na=False)
    ta = balances[balances["area_id"] == "FD03-TA01"].sort_values("window_start")
    n = ta["meters_expected"].tolist()[1]
    assert ta["meters_expected"].tolist()[1:4] == [n, n + 1, n]  # moved in, one out
    reasons = engine_reasons(embedded_out)
    assert reasons.get("unknown_meter", 0) > 90  # the retired meter's last day

    # The worker starts on the initial registry; once it runs, the readings stream
    # for about 20 s, with the changes published on the topology topic when their day
    # comes (the publisher sends the initial registry again: no change).
    import threading

    from kafka import KafkaProducer

    from kafka_io.produce import publish_registry, reading_rows
    from lineloss.timeline import BEGINNING_S

    settings = replace(kafka_settings, partitions=2)
    ensure_topics(settings)
    timeline, rows, _, _ = reading_rows(grid_dir)
    producer = KafkaProducer(**settings.client(), acks="all")
    publish_registry(producer, settings, timeline, since_s=BEGINNING_S - 1, upto_s=rows[0].ts)
    producer.close()
    published: list = []
    publisher = threading.Thread(
        target=lambda: published.append(publish_data_dir(grid_dir, settings, speed=21600))
    )
    log_path = tmp_path / "worker.log"
    beat = tmp_path / "worker.heartbeat"
    with log_path.open("wb") as log_file:
        worker = start_worker(settings, tmp_path, "--heartbeat", str(beat), stderr=log_file)
        try:
            deadline = time.monotonic() + 60
            while not beat.exists() and worker.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert beat.exists(), "the worker did not start"
            publisher.start()
            collected = collect_drained(settings, worker, timeout_s=180)
        finally:
            if publisher.is_alive():
                publisher.join(timeout=60)
    assert published
    write_outputs(
        tmp_path / "out",
        CONFIG,
        collected,
        published[0].topology_rejects,
        published[0].reading_rejects,
    )
    assert_same_finals(embedded_out, tmp_path / "out")
    pd.testing.assert_series_equal(reasons, engine_reasons(tmp_path / "out"))
    log_text = log_path.read_text(errors="replace")
    # Applied live: read by a running worker, not with the registry at its start.
    assert re.search(r"registry: [35] meters updated", log_text), log_text[-2000:]
    assert "came after windows" not in log_text
    registry = read_compacted(settings, settings.topology)
    assert json.loads(registry[who["moved"].encode()])["area_id"] == "FD03-TA01"
    assert len(json.loads(registry[who["moved"].encode()])["history"]) == 2


def end_the_stream(producer: Any, settings: KafkaSettings, readings: int) -> None:
    """The publisher's end-of-stream marker on every readings partition."""
    from kafka_io.schema import END_OF_STREAM, encode_control

    eos = encode_control(END_OF_STREAM, readings=readings)
    for p in range(settings.partitions):
        producer.send(settings.readings, value=eos, partition=p)
    producer.flush()


def test_a_partition_published_days_behind_forwards_nothing_too_late(
    three_feeders: tuple[Path, Path], kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Readings keyed by meter (so forwarded between partitions), those of partition
    0 published first and consumed to their end, then those of partition 1, four
    days behind, under a two-day re-collection horizon: partition 0's finals wait
    for partition 1's announced watermark (kafka_io.core), so none of the readings
    partition 1 forwards to it is too late, and the finals are the embedded ones."""
    from dataclasses import replace

    from kafka import KafkaProducer

    from kafka_io.produce import publish_registry, reading_rows
    from kafka_io.shards import Shards, partition_of
    from lineloss.timeline import BEGINNING_S

    grid_dir, _ = three_feeders
    config = EngineConfig(recollect_horizon_s=2 * 86400)
    embedded_out = tmp_path / "embedded"
    run_replay(grid_dir, embedded_out, config)
    assert "too_late" not in engine_reasons(embedded_out)
    settings = replace(kafka_settings, partitions=2)
    timeline, rows, topo_rejects, reading_rejects = reading_rows(grid_dir)
    shards = Shards(timeline, settings.partitions)
    lands = [partition_of(r.meter_id.encode(), 2) for r in rows]
    idx = timeline.latest.index_of([r.meter_id for r in rows])
    owner = np.where(idx >= 0, shards.meter_partition[np.maximum(idx, 0)], -1)
    first = [r for r, p in zip(rows, lands, strict=True) if p == 0]
    later = [r for r, p in zip(rows, lands, strict=True) if p == 1]
    ahead = max(r.ts for r in first)  # how far partition 0 reads before partition 1 starts
    # What makes the case: readings of partition 0's meters arriving on partition 1
    # more than the horizon behind partition 0's own stream.
    behind = [
        r
        for r, p, o in zip(rows, lands, owner.tolist(), strict=True)
        if p == 1 and o == 0 and r.ts < ahead - config.recollect_horizon_s - 86400
    ]
    assert len(behind) > 100

    ensure_topics(settings)
    producer = KafkaProducer(**settings.client(), acks="all", linger_ms=20)
    config_path = tmp_path / "engine.json"
    config_path.write_text(json.dumps(engine_config_to_dict(config)))
    beat = tmp_path / "worker.heartbeat"
    try:
        publish_registry(producer, settings, timeline, since_s=BEGINNING_S - 1, upto_s=2**40)
        for r in first:
            producer.send(settings.readings, key=r.meter_id.encode(), value=encode_reading(r))
        producer.flush()
        worker = subprocess.Popen(
            [
                *worker_command(settings, config_path),
                *("--idle-after-s", "600", "--heartbeat", str(beat)),
            ],
            env=worker_env(),
        )
        # Partition 0 reads its whole backlog before partition 1 gets a reading.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stream = json.loads(beat.read_text())["stream_time_s"] if beat.exists() else None
            if stream is not None and stream >= ahead - 86400:
                break
            assert worker.poll() is None, "the worker exited"
            time.sleep(0.5)
        else:
            raise AssertionError("partition 0's backlog was not consumed in time")
        for r in later:
            producer.send(settings.readings, key=r.meter_id.encode(), value=encode_reading(r))
        end_the_stream(producer, settings, len(rows))
    finally:
        producer.close()
    collected = collect_drained(settings, worker, timeout_s=180)
    assert not [d for d in collected.dead_letters if d["reason"] == "too_late"]
    write_outputs(tmp_path / "out", config, collected, topo_rejects, reading_rejects)
    assert_same_finals(embedded_out, tmp_path / "out")
    pd.testing.assert_series_equal(engine_reasons(embedded_out), engine_reasons(tmp_path / "out"))


def test_an_idle_partition_stops_holding_the_finals_of_the_others(
    grid_dir: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Two partitions, one feeder: every reading lands on the feeder's partition and
    the other stays silent. Without an end of stream, finals come only once the
    worker declared the silent partition idle (``--idle-after-s``, wall clock): the
    timer, the notice on the routed topic and the core's null watermark, through
    the broker (with ``--idle-after-s 600`` none comes). The end of stream then
    drains it with the embedded finals."""
    from dataclasses import replace

    from kafka import KafkaConsumer, KafkaProducer

    from kafka_io.produce import BatchKeys, batches, publish_registry, reading_rows
    from kafka_io.schema import decode_balance
    from lineloss.timeline import BEGINNING_S

    settings = replace(kafka_settings, partitions=2)
    config = EngineConfig(recollect_horizon_s=86400)  # finals within the 4 days
    reference = tmp_path / "embedded"
    run_replay(grid_dir, reference, config)
    timeline, rows, topo_rejects, reading_rejects = reading_rows(grid_dir)
    ensure_topics(settings)
    producer = KafkaProducer(**settings.client(), acks="all", linger_ms=20)
    consumer = KafkaConsumer(
        settings.balances, **settings.client(), auto_offset_reset="earliest", group_id=None
    )
    worker = None
    finals = 0
    try:
        publish_registry(producer, settings, timeline, since_s=BEGINNING_S - 1, upto_s=2**40)
        for key, value in batches(rows, BatchKeys(timeline.latest)):
            producer.send(settings.readings, key=key.encode(), value=value)
        producer.flush()
        config_path = tmp_path / "engine.json"
        config_path.write_text(json.dumps(engine_config_to_dict(config)))
        worker = subprocess.Popen(
            [*worker_command(settings, config_path), "--idle-after-s", "3"], env=worker_env()
        )
        t0 = time.monotonic()
        while not finals and time.monotonic() - t0 < 90:
            for records in consumer.poll(timeout_ms=500).values():
                finals += sum(
                    decode_balance(r.value).final for r in records if b'"final"' in r.value
                )
            assert worker.poll() is None, "the worker exited"
        assert finals, "no final balance: the silent partition held them"
        end_the_stream(producer, settings, len(rows))
    finally:
        producer.close()
        consumer.close()
        if worker is not None and worker.poll() is None and not finals:
            worker.kill()
    collected = collect_drained(settings, worker)
    write_outputs(tmp_path / "out", config, collected, topo_rejects, reading_rejects)
    assert_same_finals(reference, tmp_path / "out")
