"""End-to-end benchmark through the real broker: readings/s into final balances, the
raw consume rates of the same topic as ceilings, and the delay from a window's
close to its balance on the output topic.

    scripts/kafka-local start
    .venv/bin/python benchmarks/bench_kafka.py --bootstrap 127.0.0.1:9092 \\
        --feeders 4 --areas-per-feeder 10 --days 7 --json bench-kafka.json

Each run gets fresh topics. Untimed: generating the grid, encoding its readings as
concentrator batches keyed by feeder, publishing the topology, starting the workers
and letting them settle in their consumer group (``SETTLE_S``).

* end to end: the clock starts at the first send of the backlog (pre-encoded
  messages, sent as fast as the broker takes them) and stops at the broker
  timestamp of the last partition's drained marker on the balances topic: the
  worker(s) (faust, pipeline with detectors, a checkpoint per partition and step)
  have then issued every final balance;
* ceilings, on the same filled topic: an aiokafka consumer that does nothing, and a
  faust agent that only counts (faust's own per-message cost is the ceiling of any
  faust worker);
* delay: one worker idles, the readings are then published paced at ``--speed`` x
  event time, so a window closes at a known wall time (the send of the first
  reading at or past its end plus the allowed lateness). The delay is the balances
  topic's timestamp of the window's first balance minus that time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
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
from kafka_io.produce import BatchKeys, batches, publish_topology, reading_rows
from kafka_io.schema import (
    DRAINED,
    END_OF_STREAM,
    control_type,
    encode_control,
)
from kafka_io.topics import KafkaSettings, ensure_topics
from lineloss.config import EngineConfig, engine_config_to_dict
from lineloss.domain import Topology
from loaders.synthetic import SyntheticGridConfig, generate_grid, write_grid

SETTLE_S = 10.0  # after the workers start, before the clock: group join and assignment


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
        [*command, "--heartbeat", str(heartbeat), *os.environ.get("BENCH_WORKER_ARGS", "").split()],
        env=worker_env(),
        stdout=subprocess.DEVNULL,
    )


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


def encode_backlog(data_dir: Path) -> tuple[Topology, list[tuple[bytes, bytes]], int]:
    """The data directory as concentrator batches keyed by feeder, in arrival order
    (as ``publish_data_dir`` sends them), encoded before any clock starts."""
    timeline, rows, _, _ = reading_rows(data_dir)
    topology = timeline.latest
    keys = BatchKeys(topology)
    out = [
        (key.encode(), value)
        for lo in range(0, len(rows), 2000)
        for key, value in batches(rows[lo : lo + 2000], keys)
    ]
    return topology, out, len(rows)


def send_topology(settings: KafkaSettings, topology: Topology) -> None:
    from kafka import KafkaProducer

    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", linger_ms=5)
    publish_topology(producer, settings, topology)
    producer.close()


def start_workers(
    settings: KafkaSettings, config_path: Path, tmp: Path, n: int
) -> list[subprocess.Popen[bytes]]:
    """``n`` workers, running and settled in their consumer group on empty topics."""
    beats = [tmp / f"{settings.prefix}-{w}.heartbeat" for w in range(n)]
    procs = [_worker(settings, config_path, b, exit_on_drain=False) for b in beats]
    deadline = time.monotonic() + 120
    while not all(b.exists() for b in beats):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError("a worker did not start")
        time.sleep(0.1)
    time.sleep(SETTLE_S)  # join the group, get partitions assigned
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=120)


def _first_step(settings: KafkaSettings) -> tuple[float, int]:
    """(broker time [s] the worker's first step ended, messages it consumed): from
    the checkpoints of that step, one per partition it stepped (their position
    header counts the partition's messages read)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None)
    try:
        parts = sorted(consumer.partitions_for_topic(settings.checkpoints) or ())
        tps = [TopicPartition(settings.checkpoints, p) for p in parts]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for recs in consumer.poll(timeout_ms=1000).values():
                records.extend(recs)
    finally:
        consumer.close()
    first: dict[bytes, tuple[float, int]] = {}
    for rec in sorted(records, key=lambda r: (r.timestamp, r.offset)):
        if rec.key in first:
            break  # the second step begins
        position = int(dict(rec.headers)["position"])
        first[rec.key] = (rec.timestamp / 1000, position)
    return max(t for t, _ in first.values()), sum(n for _, n in first.values())


def offline_steps(data_dir: Path, partitions: int, step_messages: int) -> dict[str, float]:
    """The worker's two children alone (``WorkerCores``: decoding and balances;
    ``WorkerDetection``: the detectors; no broker, no snapshots) over the same
    messages in steps of ``step_messages``: what a step costs apart from Kafka and
    faust, on each side."""
    from kafka_io.core import WorkerCores
    from kafka_io.detection import WorkerDetection
    from kafka_io.schema import Origin
    from kafka_io.shards import partition_of

    topology, messages, readings = encode_backlog(data_dir)
    config = EngineConfig()
    cores = WorkerCores(topology, config, partitions)
    detection = WorkerDetection(config)
    offsets = [0] * partitions
    located = []
    for key, value in messages:
        p = partition_of(key, partitions)
        located.append((Origin("r", p, offsets[p]), value))
        offsets[p] += 1
    balance_s = detect_s = 0.0
    steps = 0
    for lo in range(0, len(located), step_messages):
        t0 = time.perf_counter()
        outs = cores.process(located[lo : lo + step_messages])
        t1 = time.perf_counter()
        detection.run({p: out.detection for p, out in outs.items()})
        detection.suspicions()
        detect_s += time.perf_counter() - t1
        balance_s += t1 - t0
        steps += 1
    rate = readings / balance_s
    say(
        f"offline, steps of {step_messages} messages: balances {rate:,.0f} readings/s "
        f"({1000 * balance_s / steps:.1f} ms per step), detection {detect_s:.1f} s in all "
        f"({readings / detect_s:,.0f} readings/s)"
    )
    return {
        "step_messages": step_messages,
        "readings_per_s": rate,
        "ms_per_step": 1000 * balance_s / steps,
        "detection_s": detect_s,
        "detection_readings_per_s": readings / detect_s,
    }


def end_to_end(
    data_dir: Path, settings: KafkaSettings, config_path: Path, tmp: Path, workers: int
) -> dict[str, float]:
    from kafka import KafkaProducer

    topology, messages, readings = encode_backlog(data_dir)
    send_topology(settings, topology)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", linger_ms=20)
    t0 = time.time()
    for key, value in messages:
        producer.send(settings.readings, key=key, value=value)
    eos = encode_control(END_OF_STREAM)
    for p in range(settings.partitions):
        producer.send(settings.readings, value=eos, partition=p)
    producer.flush()
    published_s = time.time() - t0
    producer.close()
    say(f"published {readings:,} readings in {len(messages):,} messages ({published_s:.1f} s)")
    beats = [tmp / f"{settings.prefix}-{w}.heartbeat" for w in range(workers)]
    procs = [_worker(settings, config_path, b, exit_on_drain=False) for b in beats]
    try:
        records = _balances(settings, 1800)
    finally:
        stop(procs)
    last = max(ts for ts, msg in records if msg is None)
    first_s, first_messages = _first_step(settings)
    per_message = readings / len(messages)
    e2e_s = last - first_s
    rate = (len(messages) - first_messages) * per_message / e2e_s
    say(
        f"end to end, {workers} worker(s): {rate:,.0f} readings/s (from the end of the "
        f"first step, {first_messages:,} messages, to the last drained partition: {e2e_s:.1f} s)"
    )
    n_msgs, size, raw_s = asyncio.run(_raw_consume(settings))
    raw_rate = readings / raw_s
    say(f"raw consume (aiokafka): {n_msgs:,} messages, {size / 1e6:.0f} MB in {raw_s:.2f} s")
    noop_s = _faust_noop(settings, len(messages))
    noop_rate = readings / noop_s
    say(f"faust agent doing nothing: {noop_rate:,.0f} readings/s ({noop_s:.2f} s)")
    return {
        "workers": workers,
        "readings": readings,
        "messages": len(messages),
        "readings_per_message": per_message,
        "publish_s": published_s,
        "first_step_messages": first_messages,
        "end_to_end_s": e2e_s,
        "end_to_end_readings_per_s": rate,
        "raw_consume_s": raw_s,
        "raw_readings_per_s": raw_rate,
        "faust_noop_s": noop_s,
        "faust_noop_readings_per_s": noop_rate,
        "end_to_end_over_raw": rate / raw_rate,
        "end_to_end_over_faust_noop": rate / noop_rate,
        "balances": sum(1 for _, m in records if m is not None),
    }


def _faust_noop(settings: KafkaSettings, messages: int) -> float:
    """Seconds a faust agent that only counts takes to consume the readings topic
    (its first batch to its last): the ceiling of any faust worker."""
    out = subprocess.run(
        [sys.executable, __file__, "--faust-noop", settings.prefix, str(messages)],
        capture_output=True,
        text=True,
        timeout=600,
        env=worker_env(),
        check=False,
    )
    found = re.search(r"NOOP (\S+)", out.stdout + out.stderr)  # (faust logs stdout)
    if found:
        return float(found.group(1))
    raise RuntimeError(f"the faust no-op consumer failed: {out.stderr[-2000:]}")


def faust_noop_main(prefix: str, messages: int, bootstrap: str) -> None:
    import faust
    from faust.worker import Worker

    app = faust.App(
        f"{prefix}.noop",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=20_000,
        datadir=str(Path(tempfile.gettempdir()) / "lineloss-faust" / "{conf.id}"),
    )
    topic = app.topic(f"{prefix}.readings", key_serializer="raw", value_serializer="raw")
    seen, first, started = 0, 0, 0.0

    @app.agent(topic)
    async def count(stream: object) -> None:
        nonlocal seen, first, started
        async for events in stream.take_events(5000, within=0.5):  # type: ignore[attr-defined]
            if not started:  # the clock starts with the first batch, which it leaves out
                started, first = time.perf_counter(), len(events)
            seen += len(events)
            if seen >= messages:
                elapsed = time.perf_counter() - started
                # seconds for all the messages at the rate of those after the first batch
                print(f"NOOP {elapsed * messages / max(seen - first, 1):.3f}", flush=True)
                os.kill(os.getpid(), signal.SIGTERM)

    Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


def close_delays(
    data_dir: Path,
    settings: KafkaSettings,
    config_path: Path,
    config: EngineConfig,
    speed: float,
    tmp: Path,
) -> dict[str, float]:
    from kafka import KafkaProducer

    timeline, rows, _, _ = reading_rows(data_dir)
    topology = timeline.latest
    # Pace by event time, within the data's period: a meter with a wrong clock (a
    # reading years ahead) is sent with its neighbours, not waited for.
    lo_ts, hi_ts = np.percentile([r.ts for r in rows], [0.1, 99.9])
    rows = [r for r in rows if lo_ts <= r.ts <= hi_ts]
    rows.sort(key=lambda r: r.ts)
    send_topology(settings, topology)
    procs = start_workers(settings, config_path, tmp, 1)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", linger_ms=5)
    try:
        keys = BatchKeys(topology)
        sent_at: dict[int, float] = {}
        ts0, t0 = rows[0].ts, time.time()
        lo = 0
        while lo < len(rows):
            ts = rows[lo].ts
            hi = lo
            while hi < len(rows) and rows[hi].ts == ts:
                hi += 1
            wait = t0 + (ts - ts0) / speed - time.time()
            if wait > 0:
                time.sleep(wait)
            sent_at[ts] = time.time()
            for key, value in batches(rows[lo:hi], keys, batch_max=hi - lo):
                producer.send(settings.readings, key=key.encode(), value=value)
            lo = hi
        producer.flush()
        for p in range(settings.partitions):
            producer.send(settings.readings, value=encode_control(END_OF_STREAM), partition=p)
        producer.flush()
        records = _balances(settings, 600)
    finally:
        producer.close()
        stop(procs)
    times = np.array(sorted(sent_at))
    first_issue: dict[tuple[str, str, int], float] = {}
    for issued_s, msg in records:
        if msg is None or msg.get("revision") != 0:
            continue
        first_issue.setdefault((msg["level"], msg["target_id"], msg["window_start"]), issued_s)
    delays, starts = [], []
    for (_, _, start), out_ts in first_issue.items():
        close = start + config.window_s + config.allowed_lateness_s
        j = int(np.searchsorted(times, close))
        if j < len(times):  # windows closed by a reading (not by the final flush)
            delays.append(out_ts - sent_at[int(times[j])])
            starts.append(int(start))
    d = np.array(delays)
    say(
        f"close-to-output delay over {len(d)} balances: p50 {np.percentile(d, 50):.3f} s, "
        f"p99 {np.percentile(d, 99):.3f} s"
    )
    return {
        "speed": speed,
        "paced_readings_per_s": len(rows) / ((times[-1] - ts0) / speed),
        "balances_measured": len(d),
        "delay_p50_s": float(np.percentile(d, 50)),
        "delay_p90_s": float(np.percentile(d, 90)),
        "delay_p99_s": float(np.percentile(d, 99)),
        "delay_max_s": float(d.max()),
        "balances_over_2s": int((d > 2.0).sum()),
        "slowest": [
            {"window_start": start, "delay_s": round(delay, 3)}
            for start, delay in sorted(zip(starts, delays, strict=True), key=lambda x: -x[1])[:5]
        ],
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
    ap.add_argument(
        "--customers-per-area",
        type=int,
        nargs=2,
        metavar=("LO", "HI"),
        default=(30, 80),
        help="area sizes (so readings per concentrator batch), the generator's default",
    )
    ap.add_argument("--speed", type=float, default=10_000.0, help="delay run: x event time")
    ap.add_argument("--skip-delay", action="store_true")
    ap.add_argument(
        "--offline-steps",
        type=int,
        metavar="MESSAGES",
        help="instead: the worker's cores alone, no broker, in steps of MESSAGES",
    )
    ap.add_argument("--json", type=Path)
    ap.add_argument("--faust-noop", nargs=2, metavar=("PREFIX", "MESSAGES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.faust_noop:
        faust_noop_main(args.faust_noop[0], int(args.faust_noop[1]), args.bootstrap)
        return

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
            feeders_per_substation=1,  # one shard per feeder, as measured before regions
            days=args.days,
            customers_per_area=(args.customers_per_area[0], args.customers_per_area[1]),
        )
        say("generating the grid")
        write_grid(generate_grid(cfg), tmp / "grid")
        if args.offline_steps:
            result["offline"] = offline_steps(tmp / "grid", args.partitions, args.offline_steps)
            print(json.dumps(result, indent=2))
            return
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
