"""Score a replay's suspicions against ground-truth labels.

Per category (theft, meter fault, topology error), over every customer meter:
ROC AUC and PR AUC (average precision) of the scores, precision at k (k = number of
true cases, and the top 1 % of customers), recall and false alarms of what was
actually raised, false alarms per 1,000 customers per month, and the detection delay
from the labelled start to ``first_detected``, and recall within ``prompt_days`` (7)
of the start (a case found later counts as missed there). Faults also count whether
the type was named right; topology errors whether the right pair of areas was named.

Recall within 7 days is also given over the cases that started at least 7 days
before the data end (``recall_within_7d_observable``; needs ``end``): a theft that
starts on the last day cannot be found within 7 days by any detector.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CATEGORIES = ("theft", "meter_fault", "topology_error")
_TRUE_AREA = re.compile(r"\[true_area=([^\]]+)\]")
# Detector kinds that name a labelled fault kind. A meter's voltage alone cannot
# always tell a phase of three lost (断相) from its voltage element lost (失压): a
# meter reporting one phase's voltage shows none with that phase gone.
_VOLTAGE = {"voltage_loss", "phase_loss"}
_FAULT_KIND_ALIASES = {
    "zero": {"zero", "stuck", "register_reset"},
    "stuck": {"stuck", "zero"},
    "voltage_loss": _VOLTAGE,
    "phase_loss": _VOLTAGE,
}


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties half)."""
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = pd.Series(np.concatenate([pos, neg])).rank().to_numpy()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    hits = y[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def precision_at(y: np.ndarray, s: np.ndarray, k: int) -> float:
    if k <= 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")[:k]
    return float(y[order].sum() / k)


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]
    per_case: pd.DataFrame  # one row per labelled case with found / delay
    scores: dict[str, pd.DataFrame]  # per category: meter_id, score, label


PROMPT_DAYS = 7.0  # the target: found within 7 days of the start


def evaluate(
    suspicions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    days: float,
    end: pd.Timestamp | None = None,
    prompt_days: float = PROMPT_DAYS,
) -> Evaluation:
    """``end``: when the data end (the last window's end), for the recall within
    ``prompt_days`` over the cases that had that long to be found."""
    labels = labels.copy()
    labels["label"] = labels["label"].astype(str)
    customers = labels["meter_id"].astype(str)
    n_customers = len(customers)
    months = max(days / 30.0, 1e-9)
    sus = suspicions[suspicions["target_kind"] == "meter"].copy()
    metrics: dict[str, Any] = {"customers": n_customers, "days": days}
    cases = []
    scores = {}
    for cat in CATEGORIES:
        cat_sus = sus[sus["category"] == cat].drop_duplicates("target_id").set_index("target_id")
        s = cat_sus["score"].reindex(customers).fillna(0.0).to_numpy(dtype=float)
        y = (labels["label"] == cat).to_numpy()
        raised = customers.isin(cat_sus.index).to_numpy()
        n_true = int(y.sum())
        false_alarms = int((raised & ~y).sum())
        m = {
            "cases": n_true,
            "raised": int(raised.sum()),
            "roc_auc": roc_auc(y, s),
            "pr_auc": average_precision(y, s),
            "precision_at_k": precision_at(y, s, n_true),
            "precision_at_1pct": precision_at(y, s, max(1, n_customers // 100)),
            "recall": float((raised & y).sum() / n_true) if n_true else float("nan"),
            "precision": float((raised & y).sum() / raised.sum()) if raised.any() else float("nan"),
            "false_alarms": false_alarms,
            "false_alarms_per_1000_customers_month": false_alarms / n_customers * 1000 / months,
        }
        truth = labels[labels["label"] == cat]
        delays = []
        named = 0
        prompt = 0  # found within prompt_days of the start
        observable = 0  # started at least prompt_days before the end
        prompt_observable = 0
        for row in truth.itertuples(index=False):
            mid = str(row.meter_id)
            found = mid in cat_sus.index
            delay_days = float("nan")
            right_name = False
            if found:
                first = pd.Timestamp(str(cat_sus.loc[mid, "first_detected"]))
                start = getattr(row, "start", None)
                if isinstance(start, str) and start:
                    delay_days = (first - pd.Timestamp(start)).total_seconds() / 86400
                    delays.append(delay_days)
                detector = str(cat_sus.loc[mid, "detector"])
                if cat == "meter_fault":
                    kind = str(getattr(row, "kind", ""))
                    said = detector.split(":")[-1]
                    right_name = said in _FAULT_KIND_ALIASES.get(kind, {kind})
                elif cat == "topology_error":
                    true_area = str(getattr(row, "true_area_id", ""))
                    rec_area = str(getattr(row, "recorded_area_id", ""))
                    match = _TRUE_AREA.search(str(cat_sus.loc[mid, "evidence"]))
                    right_name = (
                        match is not None
                        and match.group(1) == true_area
                        and str(cat_sus.loc[mid, "area_id"]) == rec_area
                    )
                else:
                    right_name = True
                named += right_name
            start_ts = _timestamp(getattr(row, "start", None))
            in_time = found and not np.isnan(delay_days) and delay_days <= prompt_days
            prompt += in_time
            if (
                end is not None
                and start_ts is not None
                and (end - start_ts).total_seconds() / 86400 >= prompt_days
            ):
                observable += 1
                prompt_observable += in_time
            cases.append(
                {
                    "meter_id": mid,
                    "label": cat,
                    "kind": getattr(row, "kind", ""),
                    "found": found,
                    "named_right": right_name,
                    "delay_days": delay_days,
                    "within_prompt": bool(in_time),
                    "score": float(str(cat_sus.loc[mid, "score"])) if found else 0.0,
                }
            )
        m["named_right"] = named
        m["named_right_share"] = named / n_true if n_true else float("nan")
        m["recall_within_7d"] = prompt / n_true if n_true else float("nan")
        m["cases_observable_7d"] = observable if end is not None else float("nan")
        m["recall_within_7d_observable"] = (
            prompt_observable / observable if observable else float("nan")
        )
        m["delay_days_median"] = float(np.median(delays)) if delays else float("nan")
        m["delay_days_p90"] = float(np.percentile(delays, 90)) if delays else float("nan")
        metrics[cat] = m
        scores[cat] = pd.DataFrame({"meter_id": customers, "score": s, "label": y})
    return Evaluation(metrics=metrics, per_case=pd.DataFrame(cases), scores=scores)


def _timestamp(value: object) -> pd.Timestamp | None:
    if not isinstance(value, str) or not value:
        return None
    return pd.Timestamp(value)


def write_report(ev: Evaluation, report_dir: Path) -> None:
    """metrics.json, cases.csv and plots (PR curves, delays, score distributions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "metrics.json").write_text(
        json.dumps(ev.metrics, indent=2, default=lambda v: None) + "\n"
    )
    ev.per_case.to_csv(report_dir / "cases.csv", index=False)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, cat in zip(axes, CATEGORIES, strict=True):
        df = ev.scores[cat].sort_values("score", ascending=False)
        y = df["label"].to_numpy()
        if y.sum():
            tp = np.cumsum(y)
            ax.plot(tp / y.sum(), tp / np.arange(1, len(y) + 1))
        ax.set(
            title=f"{cat}: PR (AP {ev.metrics[cat]['pr_auc']:.2f})",
            xlabel="recall",
            ylabel="precision",
            xlim=(0, 1),
            ylim=(0, 1.05),
        )
    fig.tight_layout()
    fig.savefig(report_dir / "pr_curves.png", dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    found = ev.per_case[ev.per_case["found"]]
    for cat in CATEGORIES:
        d = found.loc[found["label"] == cat, "delay_days"].dropna()
        if len(d):
            axes[0].hist(d, bins=20, alpha=0.6, label=cat)
    axes[0].set(title="detection delay", xlabel="days from start to first detection")
    axes[0].legend()
    for cat in CATEGORIES:
        df = ev.scores[cat]
        axes[1].hist(
            df.loc[df["label"] & (df["score"] > 0), "score"],
            bins=20,
            alpha=0.6,
            label=f"{cat} true",
        )
    neg = ev.scores["theft"]
    axes[1].hist(
        neg.loc[~neg["label"] & (neg["score"] > 0), "score"],
        bins=20,
        alpha=0.4,
        label="theft false",
        color="grey",
    )
    axes[1].set(title="scores of raised suspects", xlabel="score")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(report_dir / "delays_scores.png", dpi=100)
    plt.close(fig)
