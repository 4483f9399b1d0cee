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


@pytest.mark.parametrize(
    ("labelled", "said", "right"),
    [
        ("phase_loss", "meter_fault:voltage_loss", 1),
        ("voltage_loss", "meter_fault:phase_loss", 1),
        ("stuck", "meter_fault:zero", 1),
        ("stuck", "meter_fault:phase_loss", 0),
    ],
)
def test_fault_types_named_right_allow_what_the_data_cannot_tell_apart(
    labelled: str, said: str, right: int
) -> None:
    labels = pd.DataFrame(
        {
            "meter_id": ["M1", "M2"],
            "label": ["meter_fault", "normal"],
            "start": ["2026-03-01T00:00:00+08:00", ""],
            "kind": [labelled, ""],
        }
    )
    sus = pd.DataFrame(
        {
            "target_id": ["M1"],
            "target_kind": ["meter"],
            "category": ["meter_fault"],
            "score": [0.8],
            "first_detected": ["2026-03-02T00:00:00+08:00"],
            "evidence": [""],
            "area_id": ["A"],
            "detector": [said],
        }
    )
    assert evaluate(sus, labels, days=30).metrics["meter_fault"]["named_right"] == right


def test_recall_within_7_days_counts_late_finds_as_missed_and_knows_the_data_end():
    """Four thefts: found after 2 days, after 9 days, not found, and one starting 3
    days before the data end (found after 1 day)."""
    labels = pd.DataFrame(
        {
            "meter_id": ["T1", "T2", "T3", "T4", "N1"],
            "label": ["theft", "theft", "theft", "theft", "normal"],
            "start": [
                "2026-03-01T00:00:00+08:00",
                "2026-03-01T00:00:00+08:00",
                "2026-03-05T00:00:00+08:00",
                "2026-03-26T00:00:00+08:00",
                "",
            ],
            "kind": ["h1", "h3", "h4", "h2", ""],
        }
    )
    sus = pd.DataFrame(
        {
            "target_id": ["T1", "T2", "T4"],
            "target_kind": ["meter"] * 3,
            "category": ["theft"] * 3,
            "score": [0.9, 0.8, 0.7],
            "first_detected": [
                "2026-03-03T00:00:00+08:00",
                "2026-03-10T00:00:00+08:00",
                "2026-03-27T00:00:00+08:00",
            ],
            "evidence": [""] * 3,
            "area_id": ["A"] * 3,
            "detector": ["theft_localiser"] * 3,
        }
    )
    end = pd.Timestamp("2026-03-29T00:00:00+08:00")
    ev = evaluate(sus, labels, days=28, end=end)
    t = ev.metrics["theft"]
    assert t["recall"] == pytest.approx(3 / 4)
    assert t["recall_within_7d"] == pytest.approx(2 / 4)  # T2 took 9 days
    # T4 started 3 days before the end: not observable for 7 days.
    assert t["cases_observable_7d"] == 3
    assert t["recall_within_7d_observable"] == pytest.approx(1 / 3)
    cases = ev.per_case.set_index("meter_id")
    assert cases.loc["T1", "within_prompt"] and not cases.loc["T2", "within_prompt"]
    # Without the data end, the observable share is unknown, the plain one is not.
    plain = evaluate(sus, labels, days=28).metrics["theft"]
    assert plain["recall_within_7d"] == pytest.approx(0.5)
    assert np.isnan(plain["cases_observable_7d"])
