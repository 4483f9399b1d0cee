"""Benchmark: readings per second through the core (normalisation + windowed balance).

    taskset -c 0 .venv/bin/python benchmarks/bench_core.py --meters 100000 --days 2

Generates a synthetic grid (untimed), converts it to core batches in arrival order
(untimed: that is the loader's job), then times

* core: ``BalanceEngine.ingest`` + ``advance`` per batch, and ``flush`` at the end;
  all of it: duplicate checks, register cleaning, proration, watermark, revisions,
  area and feeder balances with status and reason;
* baseline: the pandas group-by a user would otherwise write over the same readings
  (sort, per-meter diff, clip negatives, x multiplier, day of the end timestamp,
  group by area and day). It does much less: no proration, no duplicate or late
  handling, no coverage, no revisions.

Prints one JSON line per run and a summary; ``--json PATH`` also writes the summary.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from lineloss.config import EngineConfig
from lineloss.domain import MeterEvent, ReadingBatch, Topology
from loaders.files import read_topology
from loaders.synthetic import SyntheticGridConfig, generate_grid
from streams.engine import BalanceEngine


def build_inputs(meters: int, days: int, seed: int) -> tuple[Topology, ReadingBatch, pd.DataFrame]:
    per_area = 55  # customers per area on average (40..70)
    areas = max(1, round(meters / (per_area + 1)))
    feeders = max(1, areas // 90)
    grid = generate_grid(
        SyntheticGridConfig(
            seed=seed,
            n_feeders=feeders,
            areas_per_feeder=max(1, areas // feeders),
            customers_per_area=(40, 70),
            days=days,
            bad_rows=0,
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        grid.topology.to_csv(Path(tmp) / "topology.csv", index=False)
        topo, _ = read_topology(Path(tmp))
    r = grid.readings.sort_values("received_at", kind="stable")
    ts = r["ts"].dt.tz_convert("UTC").dt.as_unit("s").astype("int64").to_numpy()
    ids = r["meter_id"].astype(str).to_numpy()
    idx = topo.index_of(ids)
    ev_text = r["event"].astype(object).fillna("").astype(str)
    codes = {e: MeterEvent.parse(e).value for e in ev_text.unique()}
    events = ev_text.map(codes)
    n = len(r)
    batch = ReadingBatch(
        meter_idx=idx,
        ts=ts,
        value=r["register_kwh"].to_numpy(np.float64),
        is_interval=np.zeros(n, np.bool_),
        event=events.to_numpy(np.int16),
        voltage_v=r["voltage_v"].to_numpy(np.float32),
        source_pos=np.arange(n, dtype=np.int64),
    )
    baseline_frame = pd.DataFrame(
        {
            "meter": idx,
            "ts": ts,
            "register_kwh": batch.value,
            "area": topo.meter_area[np.maximum(idx, 0)],
            "role": topo.roles[np.maximum(idx, 0)],
            "multiplier": topo.multiplier[np.maximum(idx, 0)],
        }
    )
    return topo, batch, baseline_frame[idx >= 0].reset_index(drop=True)


def run_core(
    topo: Topology, batch: ReadingBatch, batch_rows: int, profile_s: int = 0, peak_part_s: int = 0
) -> tuple[float, int]:
    engine = BalanceEngine(topo, EngineConfig(profile_s=profile_s, peak_part_s=peak_part_s))
    n = len(batch)
    chunks = [batch.take(np.arange(lo, min(lo + batch_rows, n))) for lo in range(0, n, batch_rows)]
    emitted = 0
    t0 = time.perf_counter()
    for chunk in chunks:
        engine.ingest(chunk)
        emitted += len(engine.advance().balances)
    emitted += len(engine.flush().balances)
    return time.perf_counter() - t0, emitted


def run_baseline(frame: pd.DataFrame, tz_offset_s: int = 8 * 3600) -> tuple[float, int]:
    t0 = time.perf_counter()
    df = frame.sort_values(["meter", "ts"], kind="stable")
    delta = df.groupby("meter", sort=False)["register_kwh"].diff().clip(lower=0)
    df = df.assign(energy_kwh=delta * df["multiplier"], day=(df["ts"] + tz_offset_s - 1) // 86400)
    sums = df.groupby(["area", "day", "role"], sort=True)["energy_kwh"].sum().unstack("role")
    loss = sums.get(1, 0.0) - sums.get(0, 0.0)
    rate = loss / sums.get(1, np.nan)
    elapsed = time.perf_counter() - t0
    return elapsed, int(rate.notna().sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--meters", type=int, default=100_000)
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--batch-rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument(
        "--profile-s",
        type=int,
        default=0,
        help="also compute per-meter load profiles of final windows (detector input)",
    )
    p.add_argument(
        "--peak-part-s",
        type=int,
        default=0,
        help="with profiles, also each meter's largest parts of this length (900: quarters)",
    )
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    t0 = time.perf_counter()
    topo, batch, frame = build_inputs(args.meters, args.days, args.seed)
    print(
        f"# {topo.n_meters:,} meters, {len(batch):,} readings, "
        f"prepared in {time.perf_counter() - t0:.1f} s (untimed)",
        flush=True,
    )
    core, base = [], []
    for i in range(args.repeat):
        dt, emitted = run_core(topo, batch, args.batch_rows, args.profile_s, args.peak_part_s)
        core.append(dt)
        bt, rows = run_baseline(frame)
        base.append(bt)
        print(
            json.dumps(
                {
                    "run": i,
                    "core_s": round(dt, 3),
                    "core_readings_per_s": round(len(batch) / dt),
                    "balances_emitted": emitted,
                    "baseline_s": round(bt, 3),
                    "baseline_readings_per_s": round(len(frame) / bt),
                    "baseline_area_days": rows,
                }
            ),
            flush=True,
        )
    summary = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, python {platform.python_version()}",
        "meters": topo.n_meters,
        "readings": len(batch),
        "batch_rows": args.batch_rows,
        "profile_s": args.profile_s,
        "peak_part_s": args.peak_part_s,
        "core_median_s": round(statistics.median(core), 3),
        "core_readings_per_s": round(len(batch) / statistics.median(core)),
        "baseline_median_s": round(statistics.median(base), 3),
        "baseline_readings_per_s": round(len(frame) / statistics.median(base)),
        "core_vs_baseline": round(statistics.median(base) / statistics.median(core), 2),
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
