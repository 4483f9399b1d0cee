"""Evaluation metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors.evaluation import average_precision, evaluate, precision_at, roc_auc


def test_ranking_metrics_by_hand():
    y = np.array([True, False, True, False])
    s = np.array([0.9, 0.8, 0.3, 0.1])
    assert roc_auc(y, s) == pytest.approx(0.75)  # 3 of 4 positive-negative pairs ordered
    assert average_precision(y, s) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert precision_at(y, s, 2) == 0.5


def test_evaluate_counts_recall_false_alarms_delay_and_naming():
    labels = pd.DataFrame(
        {
            "meter_id": ["M1", "M2", "M3", "M4"],
            "label": ["theft", "normal", "meter_fault", "topology_error"],
            "start": [
                "2026-03-10T00:00:00+08:00",
                "",
                "2026-03-01T00:00:00+08:00",
                "2026-03-01T00:00:00+08:00",
            ],
            "kind": ["h1", "", "stuck", "wrong_area"],
            "true_area_id": ["A", "A", "A", "B"],
            "recorded_area_id": ["A", "A", "A", "A"],
        }
    )
    sus = pd.DataFrame(
        {
            "target_id": ["M1", "M2", "M3", "M4"],
            "target_kind": ["meter"] * 4,
            "category": ["theft", "theft", "meter_fault", "topology_error"],
            "score": [0.9, 0.6, 0.85, 0.9],
            "first_detected": ["2026-03-12T00:00:00+08:00"] * 4,
            "evidence": ["", "", "", "recorded in A ... [true_area=B]"],
            "area_id": ["A", "A", "A", "A"],
            "detector": ["theft_localiser", "x", "meter_fault:stuck", "topology"],
        }
    )
    ev = evaluate(sus, labels, days=30)
    t = ev.metrics["theft"]
    assert (t["cases"], t["raised"], t["recall"], t["false_alarms"]) == (1, 2, 1.0, 1)
    assert t["false_alarms_per_1000_customers_month"] == pytest.approx(250.0)
    assert t["delay_days_median"] == pytest.approx(2.0)
    assert ev.metrics["meter_fault"]["named_right"] == 1
    assert ev.metrics["topology_error"]["named_right"] == 1
