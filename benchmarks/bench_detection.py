"""Detection benchmark: generated grids of several seeds, sizes and attack mixes.

    .venv/bin/python benchmarks/bench_detection.py --seeds 101 102 103 104 105 --json out.json

Each grid is generated (loaders.synthetic), replayed through the same pipeline as
production (embedded runner) and scored against its labels (detectors.evaluation).
Report seeds that were never used while choosing parameters.

``--cache DIR`` records each grid's engine output (labels, topology and the engine's
emissions, pickled) the first time and afterwards re-runs only the detection stage
over it: the balance engine dominates the run time and does not change when the
detectors do. ``--dump DIR`` writes each run's suspicions and per-case results;
``--detectors FILE`` runs detection with those settings (as ``lineloss tune`` writes).
"""

from __future__ import annotations

import argparse
import json
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from detectors import DetectorSettings
from detectors.evaluation import CATEGORIES, Evaluation, evaluate
from lineloss.config import EngineConfig
from loaders.synthetic import SyntheticGridConfig, generate_grid, write_grid
from streams.tuning import RecordedReplay, detect, record

MIXES = {
    # name: (theft, fault, topology error) fractions of customers
    "mixed": (0.02, 0.01, 0.01),
    "theft_heavy": (0.05, 0.005, 0.005),
}
SIZES = {
    "small": {"n_feeders": 1, "areas_per_feeder": 6},
    "medium": {"n_feeders": 3, "areas_per_feeder": 8},
}


def _record(cfg: SyntheticGridConfig) -> dict[str, Any]:
    """Generate the grid and run the balance engine over it once (``streams.tuning.record``,
    as ``lineloss tune`` does); everything detection needs afterwards."""
    grid = generate_grid(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        write_grid(grid, Path(tmp))
        rec = record(Path(tmp), EngineConfig(tz=cfg.tz))
    labels = grid.labels.astype({"start": str})
    return {
        "topology": rec.topology,
        "config": rec.config,
        "emissions": rec.emissions,
        "labels": labels,
    }


def metrics_row(ev: Evaluation, seconds: float) -> dict[str, object]:
    """The figures a benchmark run reports, flat, per category (also used by
    ``bench_independent.py``)."""
    row: dict[str, object] = {
        "customers": ev.metrics["customers"],
        "seconds": round(seconds, 1),
    }
    for cat in CATEGORIES:
        m = ev.metrics[cat]
        row.update(
            {
                f"{cat}.cases": m["cases"],
                f"{cat}.raised": m["raised"],
                f"{cat}.recall": m["recall"],
                f"{cat}.recall_7d": m["recall_within_7d"],
                f"{cat}.recall_7d_observable": m["recall_within_7d_observable"],
                f"{cat}.p_at_k": m["precision_at_k"],
                f"{cat}.pr_auc": m["pr_auc"],
                f"{cat}.named": m["named_right_share"],
                f"{cat}.fa_per_1000_month": m["false_alarms_per_1000_customers_month"],
                f"{cat}.delay_median_d": m["delay_days_median"],
            }
        )
    missed = ev.per_case[~ev.per_case["found"]]
    row["missed_kinds"] = ", ".join(f"{r.label}:{r.kind}" for r in missed.itertuples())
    return row


def run_one(
    seed: int,
    size: str,
    mix: str,
    days: int,
    cache: Path | None = None,
    dump: Path | None = None,
    settings: DetectorSettings | None = None,
    thefts_before_start: float = 0.0,
) -> dict[str, object]:
    theft, fault, topo_err = MIXES[mix]
    cfg = SyntheticGridConfig(
        seed=seed,
        days=days,
        theft_fraction=theft,
        fault_fraction=fault,
        topology_error_fraction=topo_err,
        theft_before_start_fraction=thefts_before_start,
        **SIZES[size],  # type: ignore[arg-type]
    )
    t0 = time.perf_counter()
    before = f"-before{thefts_before_start:g}" if thefts_before_start else ""
    path = cache / f"{size}-{mix}-{seed}-{days}d{before}.pkl" if cache is not None else None
    rec: dict[str, Any]
    if path is not None and path.exists():
        rec = pickle.loads(path.read_bytes())
    else:
        rec = _record(cfg)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pickle.dumps(rec, protocol=pickle.HIGHEST_PROTOCOL))
    recorded = RecordedReplay(rec["topology"], rec["config"], rec["emissions"], float(days))
    sus = detect(recorded, settings or {})
    labels: pd.DataFrame = rec["labels"]
    end = pd.Timestamp(cfg.start, tz=cfg.tz) + pd.Timedelta(days=days)
    ev = evaluate(sus, labels, days=days, end=end)
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
        sus.to_csv(dump / f"{size}-{mix}-{seed}.suspicions.csv", index=False)
        ev.per_case.to_csv(dump / f"{size}-{mix}-{seed}.cases.csv", index=False)
    row: dict[str, object] = {"seed": seed, "size": size, "mix": mix}
    row.update(metrics_row(ev, time.perf_counter() - t0))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    p.add_argument("--sizes", nargs="+", default=["small"], choices=sorted(SIZES))
    p.add_argument("--mixes", nargs="+", default=["mixed"], choices=sorted(MIXES))
    p.add_argument("--days", type=int, default=28)
    p.add_argument("--json", type=Path)
    p.add_argument("--cache", type=Path, help="record engine output here once, then reuse it")
    p.add_argument("--dump", type=Path, help="write suspicions and per-case results here")
    p.add_argument(
        "--detectors", type=Path, help="detector settings (JSON, as `lineloss tune` writes)"
    )
    p.add_argument(
        "--thefts-before-start",
        type=float,
        default=0.0,
        help="share of thefts already running when the data begins (no change point)",
    )
    args = p.parse_args()
    settings = json.loads(args.detectors.read_text()) if args.detectors else {}
    rows = []
    for size in args.sizes:
        for mix in args.mixes:
            for seed in args.seeds:
                row = run_one(
                    seed,
                    size,
                    mix,
                    args.days,
                    args.cache,
                    args.dump,
                    settings,
                    args.thefts_before_start,
                )
                rows.append(row)
                print(json.dumps(row, default=float), flush=True)
    df = pd.DataFrame(rows)
    numeric = df.select_dtypes("number").drop(columns=["seed"])
    summary = numeric.groupby([df["size"], df["mix"]]).mean().round(3)
    print(summary.T.to_string())
    if args.json:
        args.json.write_text(
            json.dumps(
                {"runs": rows, "mean": json.loads(summary.reset_index().to_json(orient="records"))},
                indent=2,
                default=float,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
