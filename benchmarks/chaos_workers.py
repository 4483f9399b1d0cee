"""Workers started and SIGKILLed at random while a stream is published: is every
reading still accounted for? Not a test (minutes per run, random by design); run it
after changing the worker's rebalance, checkpoint or ack logic.

    scripts/kafka-local start
    .venv/bin/python benchmarks/chaos_workers.py --runs 5 --speed 4000

Each run publishes a generated three-feeder grid keyed by area (so readings are
forwarded between partitions) to fresh topics at ``--speed`` x event time, starts
a worker, then every 1-5 s (seeded by the run number) either starts one more or
SIGKILLs one (never the last), until the publisher is done; the last worker left
drains the stream. The run then compares what came out with the embedded replay:
final balances, meter windows and suspicions (as the integration tests do) and the
dead letters per meter and reason (a lost reading shows there even when the
window's finals hide it). It also lists the workers' log lines that say a reading
was lost or a checkpoint could not be used. Exit status 1 if any run differed.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pandas as pd

from kafka_io.collect import collect, exited, worker_command, worker_env, write_outputs
from kafka_io.produce import publish_data_dir
from kafka_io.topics import KafkaSettings, read_compacted
from lineloss.config import EngineConfig, engine_config_to_dict
from loaders.synthetic import SyntheticGridConfig, generate_grid, write_grid
from streams.replay import run_replay

# Re-collection horizon beyond the data's latest arrival, so that no reading is too
# late whatever the batch boundaries (as in tests/kafka_io/test_integration.py);
# ``--horizon-days 2`` leans on the alignment between partitions instead.
CONFIG = EngineConfig(recollect_horizon_s=30 * 86400)
COMPARED = {
    "balances.csv": ["window_start", "area_id"],
    "feeder_balances.csv": ["window_start", "feeder_id"],
    "suspicions.csv": ["target_id", "category", "detector"],
}
SAYS_LOST = ("not processed, lost", "lacks piece", "no checkpoint covers")


def dead_letters(out: Path) -> pd.Series:
    """Dead letters per meter and reason (not ``malformed``: those never reach the
    engine, and their text differs between the runners)."""
    r = pd.read_csv(out / "rejects.csv", keep_default_na=False)
    r = r[r["reason"] != "malformed"]
    return (r["meter_id"].astype(str) + " " + r["reason"]).value_counts()


def differences(embedded: Path, through: Path) -> list[str]:
    out = []
    for name, key in COMPARED.items():
        a = pd.read_csv(embedded / name, keep_default_na=False).sort_values(key)
        b = pd.read_csv(through / name, keep_default_na=False).sort_values(key)
        a, b = (
            x.drop(columns=["revision"], errors="ignore").reset_index(drop=True) for x in (a, b)
        )
        if not a.equals(b):
            out.append(f"{name} differs")
    a = pd.read_parquet(embedded / "meter_windows.parquet")
    b = pd.read_parquet(through / "meter_windows.parquet")
    if not a.equals(b):
        out.append("meter_windows.parquet differs")
    diff = dead_letters(embedded).subtract(dead_letters(through), fill_value=0)
    diff = diff[diff != 0]
    if len(diff):
        out.append(f"dead letters (embedded - through Kafka): {diff.to_dict()}")
    return out


def one_run(
    run: int,
    grid: Path,
    embedded: Path,
    bootstrap: str,
    speed: float,
    tmp: Path,
    config: EngineConfig = CONFIG,
) -> bool:
    prefix = f"chaos-{uuid.uuid4().hex[:8]}"
    settings = replace(KafkaSettings(bootstrap, prefix=prefix), partitions=2)
    published: list = []
    publisher = threading.Thread(
        target=lambda: published.append(
            publish_data_dir(grid, settings, key_by="area", speed=speed)
        )
    )
    t0 = time.monotonic()
    publisher.start()
    while not read_compacted(settings, settings.topology) and time.monotonic() - t0 < 30:
        time.sleep(0.2)
    config_path = tmp / "engine.json"
    config_path.write_text(json.dumps(engine_config_to_dict(config)))
    workers: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}

    def start(name: str) -> None:
        logs[name] = tmp / f"{prefix}-{name}.log"
        with logs[name].open("wb") as log:
            command = worker_command(settings, config_path, exit_on_drain=False)
            workers[name] = subprocess.Popen(
                [*command, "--take-max", "5", "--take-within-s", "0.1"],
                env=worker_env(),
                stdout=log,
                stderr=log,
            )

    rng = random.Random(run)
    names = iter("abcdefghijklmnopqrstuvwxyz" * 4)
    start(next(names))
    events = []
    try:
        while publisher.is_alive():
            time.sleep(rng.uniform(1, 5))
            live = [w for w, p in workers.items() if p.poll() is None]
            if len(live) >= 3 or (len(live) == 2 and rng.random() < 0.5):
                victim = rng.choice(live)
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait()
                events.append(f"-{victim}")
            else:
                name = next(names)
                start(name)
                events.append(f"+{name}")
        last = next(w for w, p in reversed(workers.items()) if p.poll() is None)
        collected = collect(settings, timeout_s=240, gave_up=lambda: exited(workers[last]))
    finally:
        publisher.join(timeout=120)
        for p in workers.values():
            if p.poll() is None:
                p.terminate()
        for p in workers.values():
            p.wait(timeout=60)
    out = tmp / f"{prefix}-out"
    got = published[0]
    write_outputs(out, config, collected, got.topology_rejects, got.reading_rejects)
    found = differences(embedded, out)
    said = [
        line.strip()
        for log in logs.values()
        for line in log.read_text(errors="replace").splitlines()
        if any(s in line for s in SAYS_LOST)
    ]
    verdict = "same as embedded" if not found and not said else "DIFFERS"
    print(
        f"run {run}: {time.monotonic() - t0:.0f} s, {len(workers)} workers "
        f"({' '.join(events)}): {verdict}",
        flush=True,
    )
    for line in found + said[:20]:
        print(f"    {line}", flush=True)
    return not found and not said


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--first-run", type=int, default=0, help="seed of the first run")
    ap.add_argument("--speed", type=float, default=4000.0, help="x event time")
    ap.add_argument(
        "--horizon-days",
        type=float,
        default=30.0,
        help="re-collection horizon (default 30: beyond the data's lateness and any skew "
        "between partitions; 2 relies on the alignment between partitions)",
    )
    args = ap.parse_args()
    config = EngineConfig(recollect_horizon_s=int(args.horizon_days * 86400))
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        grid, embedded = tmp / "grid", tmp / "embedded"
        grid.mkdir()
        write_grid(
            generate_grid(
                SyntheticGridConfig(
                    seed=5, n_feeders=3, areas_per_feeder=1, days=4, feeders_per_substation=1
                )
            ),
            grid,
        )
        run_replay(grid, embedded, config)
        runs = range(args.first_run, args.first_run + args.runs)
        ok = [one_run(r, grid, embedded, args.bootstrap, args.speed, tmp, config) for r in runs]
    print(f"{sum(ok)} of {len(ok)} runs gave the embedded results")
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
