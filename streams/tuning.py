"""``lineloss tune``: choose detector parameters by replaying labelled history.

The expensive part, the balance engine, runs once: its emissions (final balances
and per-meter windows) are recorded. Each trial then re-runs only the detection
stage with sampled parameters and scores the suspicions against the labels. The
search is a seeded random search over documented ranges; the best parameters are
written as a settings file that ``lineloss replay --detectors`` (and later the
worker) loads.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detectors import DetectorSettings
from detectors.evaluation import CATEGORIES, evaluate
from lineloss.config import EngineConfig
from lineloss.domain import Topology
from loaders.files import read_readings, read_topology
from streams.engine import BalanceEngine, Emission
from streams.pipeline import DetectionStage
from streams.replay import suspicions_frame

# name -> parameter -> (low, high, kind) ; kind "float", "int" or "log"
SEARCH_SPACE: dict[str, dict[str, tuple[float, float, str]]] = {
    # min_z: a suspect joins the joint model from this z; its calibrated score decides.
    "theft_localiser": {"min_z": (3.0, 8.0, "float"), "min_drop_z": (1.0, 3.0, "float")},
    "consumption_shape": {
        "flat_ratio": (0.05, 0.3, "float"),
        "reversed_margin": (0.3, 0.8, "float"),
    },
    "topology": {"min_t": (6.0, 16.0, "float")},
    "book": {"confirm_windows": (1, 3, "int")},
    "decider": {"min_score": (0.45, 0.75, "float")},
}


@dataclass(frozen=True)
class RecordedReplay:
    topology: Topology
    config: EngineConfig
    emissions: list[Emission]
    days: float


def record(data_dir: Path, config: EngineConfig, batch_rows: int = 1_000_000) -> RecordedReplay:
    """Run the balance engine once over the data in ``data_dir`` (the same batches as
    the embedded replay) and keep everything detection needs afterwards. Used by
    ``lineloss tune`` and by the detection benchmark on generated grids."""
    topology, _ = read_topology(data_dir)
    loaded = read_readings(data_dir, topology)
    engine = BalanceEngine(topology, config)
    emissions = []
    n = len(loaded.batch)
    for lo in range(0, n, batch_rows):
        engine.ingest(loaded.batch.take(np.arange(lo, min(lo + batch_rows, n))))
        emissions.append(engine.advance())
    emissions.append(engine.flush())
    days = len({r.window_start for e in emissions for r in e.final_meter_windows})
    return RecordedReplay(topology, config, emissions, float(days))


def objective(metrics: dict[str, Any]) -> float:
    """Mean over categories of PR AUC, minus a penalty for theft false alarms above
    one per 1,000 customers per month (the product's target)."""
    aucs = [metrics[c]["pr_auc"] for c in CATEGORIES if metrics[c]["cases"]]
    base = float(np.mean([a for a in aucs if not math.isnan(a)])) if aucs else 0.0
    fa = metrics["theft"]["false_alarms_per_1000_customers_month"]
    return base - 0.05 * max(fa - 1.0, 0.0)


def sample(rng: np.random.Generator) -> DetectorSettings:
    out: DetectorSettings = {}
    for name, params in SEARCH_SPACE.items():
        out[name] = {}
        for key, (lo, hi, kind) in params.items():
            if kind == "int":
                out[name][key] = int(rng.integers(int(lo), int(hi) + 1))
            else:
                out[name][key] = round(float(rng.uniform(lo, hi)), 4)
    return out


def detect(rec: RecordedReplay, settings: DetectorSettings) -> pd.DataFrame:
    """The suspicions of the detection stage with ``settings`` over a recording."""
    stage = DetectionStage(rec.topology, rec.config, settings)
    for emission in rec.emissions:
        stage.process(emission)
    return suspicions_frame(stage.book.suspicions(), rec.config.tz)


def run_detection(
    rec: RecordedReplay, settings: DetectorSettings, labels: pd.DataFrame
) -> dict[str, Any]:
    return evaluate(detect(rec, settings), labels, days=rec.days).metrics


def tune(
    data_dir: Path,
    labels_path: Path,
    out_path: Path,
    *,
    config: EngineConfig,
    trials: int = 20,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[DetectorSettings, float]:
    say = progress or (lambda _m: None)
    t0 = time.monotonic()
    rec = record(data_dir, config)
    labels = pd.read_csv(labels_path, keep_default_na=False)
    say(f"recorded replay: {rec.days:.0f} windows in {time.monotonic() - t0:.1f} s")
    rng = np.random.default_rng(seed)
    rows = []
    best: tuple[float, DetectorSettings] = (-math.inf, {})
    candidates: list[DetectorSettings] = [{}] + [sample(rng) for _ in range(trials)]
    for k, settings in enumerate(candidates):
        metrics = run_detection(rec, settings, labels)
        score = objective(metrics)
        rows.append(
            {
                "trial": k,
                "objective": score,
                "settings": json.dumps(settings),
                **{f"{c}.pr_auc": metrics[c]["pr_auc"] for c in CATEGORIES},
                "theft.fa": metrics["theft"]["false_alarms_per_1000_customers_month"],
            }
        )
        if score > best[0]:
            best = (score, settings)
        say(f"trial {k + 1}/{len(candidates)}: objective {score:.3f} (best {best[0]:.3f})")
    out_path.write_text(json.dumps(best[1], indent=2, sort_keys=True) + "\n")
    trials_df = pd.DataFrame(rows)
    trials_df.to_csv(out_path.with_suffix(".trials.csv"), index=False)
    _plot(trials_df, out_path.with_suffix(".trials.png"))
    return best[1], best[0]


def _plot(trials: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(trials["trial"], trials["objective"], "o", label="trial")
    ax.plot(trials["trial"], trials["objective"].cummax(), "-", label="best so far")
    ax.set(xlabel="trial (0 = defaults)", ylabel="objective", title="detector tuning")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
