"""End-to-end benchmark through the real broker: readings/s into final balances, the
raw consume rate of the same topic as the ceiling, and the delay from a window's
close to its balance on the output topic.

    scripts/kafka-local start
    .venv/bin/python benchmarks/bench_kafka.py --bootstrap 127.0.0.1:9092 \\
        --feeders 4 --areas-per-feeder 10 --days 7 --json bench-kafka.json

Three runs on fresh topics (untimed: generating the grid, publishing it):

* raw: an aiokafka consumer (the client faust uses) reads the readings topic from
  its start to its end and does nothing else: the ceiling;
* end to end: one ``lineloss worker`` process (faust, the pipeline with detectors,
  checkpoints) drains the same published backlog of concentrator batches; timed from
  its first step (heartbeat) to the last partition's drained marker on the balances
  topic (broker timestamps);
* delay: the worker runs first and idles; the readings are then published paced at
  ``--speed`` x event time, so every window closes at a known wall time (the send of
  the first reading at or past its end plus the allowed lateness). The delay is the
  balances topic's timestamp of the window's first balance minus that time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from kafka_io.collect import worker_command, worker_env
from kafka_io.produce import publish_data_dir, reading_rows
from kafka_io.schema import DRAINED, area_key, control_type, encode_batch, meter_message
from kafka_io.shards import shard_key
from kafka_io.topics import KafkaSettings, ensure_topics
from lineloss.config import EngineConfig, engine_config_to_dict
from loaders.synthetic import SyntheticGridConfig, generate_grid, write_grid


def say(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


async def _raw_consume(settings: KafkaSettings) -> tuple[int, int, float]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.readings, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        messages = size = 0
        t0 = time.perf_counter()

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in tps])

        while await behind():
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                messages += len(records)
                size += sum(len(r.value or b"") for r in records)
        return messages, size, time.perf_counter() - t0
    finally:
        await consumer.stop()


def _worker(
    settings: KafkaSettings, config_path: Path, heartbeat: Path, exit_on_drain: bool
) -> subprocess.Popen[bytes]:
    command = worker_command(settings, config_path, exit_on_drain=exit_on_drain)
    return subprocess.Popen(
        [*command, "--heartbeat", str(heartbeat)],
        env=worker_env(),
        stdout=subprocess.DEVNULL,
    )


def _first_step_time(heartbeat: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> float:
    """Wall time of the worker's first step: its heartbeat's first stream time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() not in (None, 0):
            raise RuntimeError(f"the worker exited with {proc.returncode}")
        if heartbeat.exists():
            try:
                beat = json.loads(heartbeat.read_text())
            except json.JSONDecodeError:
                beat = {}
            if beat.get("stream_time_s") is not None:
                return float(beat["unix_s"])
        time.sleep(0.05)
    raise TimeoutError("the worker never stepped")


def _balances(settings: KafkaSettings, timeout_s: float) -> list[tuple[float, dict | None]]:
    """(broker timestamp [s], message or None for a drained marker) of every record on
    the balances topic, once every partition drained."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None)
    try:
        tps = [
            TopicPartition(settings.balances, p)
            for p in sorted(consumer.partitions_for_topic(settings.balances) or set())
        ]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[tuple[float, dict | None]] = []
        drained: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(drained) < settings.partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only partitions {sorted(drained)} drained")
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    if control_type(rec.value) == DRAINED:
                        drained.add(int(json.loads(rec.value)["partition"]))
                        out.append((rec.timestamp / 1000, None))
                    else:
                        out.append((rec.timestamp / 1000, json.loads(rec.value)))
        return out
    finally:
        consumer.close()


def end_to_end(
    data_dir: Path, settings: KafkaSettings, config_path: Path, tmp: Path, workers: int
) -> dict[str, float]:
    published = publish_data_dir(data_dir, settings)
    say(f"published {published.readings:,} readings in {published.messages:,} messages")
    messages, size, raw_s = asyncio.run(_raw_consume(settings))
    raw_rate = published.readings / raw_s
    say(f"raw consume: {messages:,} messages, {size / 1e6:.0f} MB in {raw_s:.2f} s")
    beats = [tmp / f"e2e-{w}.heartbeat" for w in range(workers)]
    t_start = time.time()
    procs = [_worker(settings, config_path, b, exit_on_drain=workers == 1) for b in beats]
    try:
        first = min(_first_step_time(b, p, 120) for b, p in zip(beats, procs, strict=True))
        records = _balances(settings, 1800)
    finally:
        for p in procs:
            if workers > 1:
                p.terminate()
            p.wait(timeout=120)
    last = max(ts for ts, msg in records if msg is None)
    e2e_s = last - first
    rate = published.readings / e2e_s
    say(
        f"end to end, {workers} worker(s): {rate:,.0f} readings/s "
        f"({e2e_s:.1f} s after the first step)"
    )
    return {
        "workers": workers,
        "readings": published.readings,
        "messages": published.messages,
        "readings_per_message": published.readings / published.messages,
        "raw_consume_s": raw_s,
        "raw_readings_per_s": raw_rate,
        "end_to_end_s": e2e_s,
        "end_to_end_readings_per_s": rate,
        "end_to_end_over_raw": rate / raw_rate,
        "worker_wall_s_incl_start": last - t_start,
        "balances": sum(1 for _, m in records if m is not None),
    }


def close_delays(
    data_dir: Path,
    settings: KafkaSettings,
    config_path: Path,
    config: EngineConfig,
    speed: float,
    tmp: Path,
) -> dict[str, float]:
    from kafka import KafkaProducer

    topology, rows, _, _ = reading_rows(data_dir)
    rows.sort(key=lambda r: r.ts)
    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", linger_ms=5)
    for i in range(topology.n_meters):
        producer.send(
            settings.topology,
            key=str(topology.meter_ids[i]).encode(),
            value=meter_message(topology, i),
        )
    producer.flush()
    heartbeat = tmp / "delay.heartbeat"
    proc = _worker(settings, config_path, heartbeat, exit_on_drain=False)
    try:
        deadline = time.monotonic() + 120
        while not heartbeat.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(8)  # let the consumer group settle before the clock starts
        keys: dict[str, tuple[str, str]] = {}
        sent_at: dict[int, float] = {}
        ts0, t0 = rows[0].ts, time.time()
        lo = 0
        while lo < len(rows):
            ts = rows[lo].ts
            hi = lo
            groups: dict[tuple[str, str], list] = {}
            while hi < len(rows) and rows[hi].ts == ts:
                r = rows[hi]
                k = keys.get(r.meter_id)
                if k is None:
                    i = int(topology.index_of([r.meter_id])[0])
                    k = keys[r.meter_id] = (area_key(topology, r.meter_id), shard_key(topology, i))
                groups.setdefault(k, []).append(r)
                hi += 1
            wait = t0 + (ts - ts0) / speed - time.time()
            if wait > 0:
                time.sleep(wait)
            sent_at[ts] = time.time()
            for (area, key), group in groups.items():
                producer.send(settings.readings, key=key.encode(), value=encode_batch(area, group))
            lo = hi
        from kafka_io.schema import END_OF_STREAM, encode_control

        producer.flush()
        for p in range(settings.partitions):
            producer.send(settings.readings, value=encode_control(END_OF_STREAM), partition=p)
        producer.flush()
        records = _balances(settings, 600)
    finally:
        producer.close()
        proc.terminate()
        proc.wait(timeout=60)
    times = np.array(sorted(sent_at))
    first_issue: dict[tuple[str, str, int], float] = {}
    for ts, msg in records:
        if msg is None or msg.get("revision") != 0:
            continue
        key = (msg["level"], msg["target_id"], msg["window_start"])
        first_issue.setdefault(key, ts)
    delays = []
    for (_, _, start), out_ts in first_issue.items():
        end = start + config.window_s
        close = end + config.allowed_lateness_s
        j = int(np.searchsorted(times, close))
        if j < len(times):  # windows closed by a reading (not by the final flush)
            delays.append(out_ts - sent_at[int(times[j])])
    d = np.array(delays)
    say(
        f"close-to-output delay over {len(d)} balances: p50 {np.percentile(d, 50):.3f} s, "
        f"p99 {np.percentile(d, 99):.3f} s"
    )
    return {
        "speed": speed,
        "paced_readings_per_s": len(rows) / ((times[-1] - ts0) / speed),
        "windows_measured": len(d),
        "delay_p50_s": float(np.percentile(d, 50)),
        "delay_p99_s": float(np.percentile(d, 99)),
        "delay_max_s": float(d.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--feeders", type=int, default=4)
    ap.add_argument("--areas-per-feeder", type=int, default=10)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1, help="worker processes sharing them")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--speed", type=float, default=20_000.0, help="delay run: x event time")
    ap.add_argument("--skip-delay", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    config = EngineConfig()
    result: dict[str, object] = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{__import__('os').cpu_count()} vCPU",
        "command": " ".join(sys.argv),
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cfg = SyntheticGridConfig(
            seed=args.seed,
            n_feeders=args.feeders,
            areas_per_feeder=args.areas_per_feeder,
            days=args.days,
        )
        say("generating the grid")
        write_grid(generate_grid(cfg), tmp / "grid")
        config_path = tmp / "engine.json"
        config_path.write_text(json.dumps(engine_config_to_dict(config)))
        base = KafkaSettings(args.bootstrap, partitions=args.partitions)
        run = replace(base, prefix=f"bench-{uuid.uuid4().hex[:8]}")
        result["end_to_end"] = end_to_end(tmp / "grid", run, config_path, tmp, args.workers)
        if not args.skip_delay:
            run = replace(base, prefix=f"bench-{uuid.uuid4().hex[:8]}")
            result["delay"] = close_delays(tmp / "grid", run, config_path, config, args.speed, tmp)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
