"""Read the output topics back into the embedded replay's files.

``run_through_kafka`` is the whole production path in one call: publish the data
directory, run a worker until it drains, collect balances, suspicions and dead
letters, and write them as ``streams.replay`` writes its files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kafka_io.produce import publish_data_dir
from kafka_io.schema import (
    DEAD_LETTER,
    DRAINED,
    control_type,
    decode_balance,
    decode_meter_windows,
    decode_suspicion,
)
from kafka_io.topics import KafkaSettings
from lineloss.config import EngineConfig, engine_config_to_dict
from lineloss.domain import Balance, BalanceLevel, Suspicion
from loaders.files import REJECT_COLUMNS, read_topology_timeline
from streams.replay import (
    balances_frame,
    history_frame,
    meter_windows_frame,
    suspicions_frame,
)
from workorders.backtest import billed_kwh_per_month_of_replay, write_workorders
from workorders.settings import WorkOrderSettings

if TYPE_CHECKING:
    from sinks.influx import InfluxSettings


@dataclass(frozen=True)
class Collected:
    history: list[Balance]  # each issued balance once, in issue order
    suspicions: list[Suspicion]  # latest version of each, ranked
    dead_letters: list[dict[str, object]]
    drained: bool
    # (meter id, window start) -> (energy [kWh] or None, reporting, flags, events)
    meter_windows: dict[tuple[str, int], tuple[float | None, bool, int, int]] = field(
        default_factory=dict
    )


def collect(
    settings: KafkaSettings,
    *,
    timeout_s: float = 300.0,
    gave_up: Callable[[], str | None] | None = None,
) -> Collected:
    """Wait for the drained marker of every readings partition, then read the three
    output topics to their ends. Balances and suspicions re-sent after a worker
    restart or a rebalance are the same messages again and are kept once.
    ``gave_up`` is asked between polls; a message from it (e.g. "a worker exited
    with 1") stops the wait with an error."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.client(), enable_auto_commit=False, group_id=None)
    try:
        topics = (
            settings.balances,
            settings.suspicions,
            settings.dead_letters,
            settings.meter_windows,
        )
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or set())
        ]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        seen: dict[tuple[object, ...], Balance] = {}
        sus: dict[bytes, Suspicion] = {}
        dead: dict[tuple[object, ...], dict[str, object]] = {}
        windows: dict[tuple[str, int], tuple[float | None, bool, int, int]] = {}
        drained_partitions: set[int] = set()
        drained = False
        end: dict[TopicPartition, int] | None = None
        deadline = time.monotonic() + timeout_s
        while True:
            if drained and end is None:
                end = consumer.end_offsets(tps)
            if end is not None and all(consumer.position(tp) >= end[tp] for tp in tps):
                break
            if time.monotonic() > deadline:
                break
            if not drained and gave_up is not None and (why := gave_up()) is not None:
                raise RuntimeError(f"collecting {settings.prefix}: {why}")
            for tp, records in consumer.poll(timeout_ms=500).items():
                for rec in records:
                    if control_type(rec.value) == DRAINED:
                        drained_partitions.add(int(json.loads(rec.value)["partition"]))
                        drained = len(drained_partitions) >= settings.partitions
                    elif rec.value is None:
                        if tp.topic == settings.suspicions:
                            sus.pop(rec.key, None)
                    elif tp.topic == settings.balances:
                        b = decode_balance(rec.value)
                        key = (b.level, b.target_id, b.window_start, b.revision, b.final)
                        seen.setdefault(key, b)
                    elif tp.topic == settings.suspicions:
                        sus[rec.key] = decode_suspicion(rec.value)
                    elif tp.topic == settings.meter_windows:
                        # (re-sent after a restart: the same numbers again, kept once)
                        w = decode_meter_windows(rec.value)
                        start = int(w["window_start"])
                        for m, e, r, f, ev in zip(
                            w["meter_ids"],
                            w["energy_kwh"],
                            w["reporting"],
                            w["flags"],
                            w["events"],
                            strict=True,
                        ):
                            windows.setdefault((m, start), (e, r, f, ev))
                    else:
                        d = json.loads(rec.value)
                        if d.get("schema") == DEAD_LETTER:
                            k = tuple(d.get(f) for f in ("topic", "partition", "offset", "index"))
                            dead.setdefault(k, d)
        ranked = sorted(sus.values(), key=lambda s: (-s.score, s.target_id, s.category.value))
        return Collected(list(seen.values()), ranked, list(dead.values()), drained, windows)
    finally:
        consumer.close()


def _dead_letter_frame(dead: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": [f"{d['topic']}[{d['partition']}]" for d in dead],
            "row": [d["offset"] for d in dead],
            "meter_id": [d["meter_id"] for d in dead],
            "ts": "",
            "reason": [d["reason"] for d in dead],
            "detail": [d["detail"] for d in dead],
        },
        columns=REJECT_COLUMNS,
    )


def worker_env(influx: InfluxSettings | None = None) -> dict[str, str]:
    """The environment of a back-test's worker: ours, minus the production worker's
    InfluxDB and heartbeat defaults, so a back-test never writes into the live
    database or touches the live health file; plus ``influx`` when the back-test
    itself asks for InfluxDB output (secrets travel in the environment, never on
    the command line)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LINELOSS_INFLUX_") and k != "LINELOSS_HEARTBEAT"
    }
    if influx is not None:
        env["LINELOSS_INFLUX_URL"] = influx.url
        env["LINELOSS_INFLUX_DB"] = influx.database
        env["LINELOSS_INFLUX_SPILL_DIR"] = str(influx.spill_dir)
        if influx.token:
            env["LINELOSS_INFLUX_TOKEN"] = influx.token
        if influx.password:
            env["LINELOSS_INFLUX_PASSWORD"] = influx.password
    return env


def influx_args(influx: InfluxSettings | None) -> list[str]:
    """The worker options ``worker_env`` cannot carry (none of them secret)."""
    if influx is None:
        return []
    out = []
    if influx.retention_policy:
        out += ["--influx-rp", influx.retention_policy]
    if influx.username:
        out += ["--influx-user", influx.username]
    return out


def worker_command(
    settings: KafkaSettings,
    config_path: Path,
    security_path: Path | None = None,
    *,
    exit_on_drain: bool = True,
) -> list[str]:
    """``lineloss worker`` as a child process; security settings travel in a file,
    never on the command line."""
    extra = ["--kafka-security", str(security_path)] if security_path is not None else []
    if exit_on_drain:
        extra.append("--exit-on-drain")
    return [
        sys.executable,
        "-m",
        "lineloss.cli",
        "worker",
        "--bootstrap",
        settings.bootstrap,
        "--prefix",
        settings.prefix,
        "--partitions",
        str(settings.partitions),
        "--config",
        str(config_path),
        *extra,
    ]


def exited(*processes: subprocess.Popen[bytes]) -> str | None:
    """Why waiting for the workers' output is pointless: one has failed. (A worker
    that exits 0 has drained, and its drained markers are on the way.)"""
    for process in processes:
        code = process.poll()
        if code not in (None, 0):
            return f"a worker exited with {code}"
    return None


def run_through_kafka(
    data_dir: Path,
    out_dir: Path,
    config: EngineConfig,
    settings: KafkaSettings,
    *,
    timeout_s: float = 600.0,
    progress: Callable[[str], None] | None = None,
    workorder_settings: WorkOrderSettings | None = None,
    workers: int = 1,
    detectors_path: Path | None = None,
    influx: InfluxSettings | None = None,
) -> Collected:
    """Publish ``data_dir``, run ``workers`` workers until every partition drained,
    write ``out_dir``. One worker exits by itself once drained; several share the
    partitions and are stopped once the output is collected. With ``influx`` the
    workers also write their results to InfluxDB, as the production worker does."""
    say = progress or (lambda _m: None)
    published = publish_data_dir(data_dir, settings, progress=say)
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "engine.json"
        config_path.write_text(json.dumps(engine_config_to_dict(config)))
        security_path = None
        if settings.security:
            security_path = Path(tmp) / "security.json"
            security_path.touch(mode=0o600)
            security_path.write_text(json.dumps(settings.security))
        command = worker_command(settings, config_path, security_path, exit_on_drain=workers == 1)
        if detectors_path is not None:
            command += ["--detectors", str(detectors_path)]
        command += influx_args(influx)
        procs = [subprocess.Popen(command, env=worker_env(influx)) for _ in range(workers)]
        try:
            collected = collect(settings, timeout_s=timeout_s, gave_up=lambda: exited(*procs))
            if workers == 1:
                procs[0].wait(timeout=60)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    if not collected.drained:
        raise TimeoutError(f"the worker did not drain {settings.readings} in {timeout_s} s")
    write_outputs(out_dir, config, collected, published.topology_rejects, published.reading_rejects)
    topology = read_topology_timeline(data_dir)[0].latest
    write_workorders(
        out_dir,
        collected.suspicions,
        topology,
        now_s=max((b.window_end for b in collected.history), default=0),
        settings=workorder_settings,
        billed=billed_kwh_per_month_of_replay(out_dir),  # from the meter windows collected
        tz=config.tz,
    )
    say(
        f"through Kafka: {published.readings:,} readings, {len(collected.history):,} balances, "
        f"{len(collected.suspicions)} suspicions, {len(collected.dead_letters)} dead letters "
        f"-> {out_dir}"
    )
    return collected


def write_outputs(
    out_dir: Path,
    config: EngineConfig,
    collected: Collected,
    topology_rejects: pd.DataFrame,
    reading_rejects: pd.DataFrame,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tz = config.tz
    history = collected.history
    area = balances_frame(history, tz, BalanceLevel.AREA)
    area.to_csv(out_dir / "balances.csv", index=False)
    balances_frame(history, tz, BalanceLevel.FEEDER).to_csv(
        out_dir / "feeder_balances.csv", index=False
    )
    history_frame(history, tz).to_csv(out_dir / "balance_history.csv", index=False)
    suspicions_frame(collected.suspicions, tz).to_csv(out_dir / "suspicions.csv", index=False)
    mw = collected.meter_windows
    meter_windows_frame(
        np.array([m for m, _ in mw], dtype=object),
        np.array([s for _, s in mw], dtype=np.int64),
        np.array([np.nan if v[0] is None else v[0] for v in mw.values()], dtype=np.float64),
        np.array([v[1] for v in mw.values()], dtype=np.bool_),
        np.array([v[2] for v in mw.values()], dtype=np.int8),
        np.array([v[3] for v in mw.values()], dtype=np.int32),
        tz,
    ).to_parquet(out_dir / "meter_windows.parquet", index=False)
    parts = [
        topology_rejects if len(topology_rejects) else None,
        reading_rejects if len(reading_rejects) else None,
        _dead_letter_frame(collected.dead_letters),
    ]
    rejects = pd.concat([p for p in parts if p is not None], ignore_index=True)
    rejects.to_csv(out_dir / "rejects.csv", index=False)
    status = area["status"].value_counts().sort_index().to_dict()
    (out_dir / "summary.json").write_text(
        json.dumps(
            {
                "rejected_by_reason": rejects["reason"].value_counts().sort_index().to_dict(),
                "area_windows": len(area),
                "status_counts": {str(k): int(v) for k, v in status.items()},
                "suspicions": len(collected.suspicions),
                "window_s": config.window_s,
                "tz": tz,
                "path": "kafka",
            },
            indent=2,
        )
        + "\n"
    )
