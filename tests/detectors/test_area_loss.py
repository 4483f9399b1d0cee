"""Area-level detectors on hand-made balance series."""

from __future__ import annotations

from dataclasses import replace

import pytest
from factories import DAY, DAY0

from detectors.area_loss import LossBandDetector, LossRiseDetector
from lineloss.domain import Balance, BalanceLevel, BalanceStatus


def balance(day: int, rate: float, supply: float = 1000.0) -> Balance:
    status = (
        BalanceStatus.HIGH_LOSS
        if rate > 0.10
        else BalanceStatus.NEGATIVE_LOSS
        if rate < -0.01
        else BalanceStatus.NORMAL
    )
    return Balance(
        level=BalanceLevel.AREA,
        target_id="A1",
        feeder_id="F1",
        window_start=DAY0 + day * DAY,
        window_end=DAY0 + (day + 1) * DAY,
        supply_kwh=supply,
        billed_kwh=supply * (1 - rate),
        loss_kwh=supply * rate,
        loss_rate=rate,
        coverage=1.0,
        meters_expected=50,
        meters_reporting=50,
        status=status,
        reason="",
        revision=0,
        final=True,
    )


def test_band_detector_scores_high_and_negative_loss_only():
    det = LossBandDetector()
    for d in range(5):
        det.learn_one(balance(d, 0.03))
    assert det.score_one(balance(5, 0.05)) is None
    high = det.score_one(balance(5, 0.15))
    assert high is not None and 0.5 < high.score < 1
    assert high.estimated_kwh == pytest.approx((0.15 - 0.03) * 1000, rel=1e-6)
    assert "high loss 15.0%" in high.reason
    neg = det.score_one(balance(6, -0.04))
    assert neg is not None and neg.estimated_kwh == pytest.approx(40.0)
    assert "mapping" in neg.reason
    assert det.score_one(replace(balance(7, 0.5), status=BalanceStatus.INCOMPUTABLE)) is None


def test_rise_detector_finds_a_step_below_the_band_with_its_start():
    det = LossRiseDetector()
    rates = [0.030, 0.032, 0.029, 0.031, 0.030, 0.028, 0.031, 0.030]
    for d, r in enumerate(rates):
        assert det.score_one(balance(d, r)) is None or d >= det.warmup
        det.learn_one(balance(d, r))
    findings = []
    for d in range(8, 12):  # +3 points: still far under the 10 % band
        f = det.score_one(balance(d, 0.06))
        det.learn_one(balance(d, 0.06))
        if f is not None:
            findings.append(f)
    assert findings and findings[-1].score >= 0.5
    assert findings[-1].start_s == DAY0 + 8 * DAY


@pytest.mark.parametrize("make", [LossBandDetector, LossRiseDetector])
def test_area_detector_state_round_trips(make):
    a = make()
    for d in range(10):
        a.learn_one(balance(d, 0.03 + 0.002 * (d % 3)))
    b = make()
    b.load_state_dict(a.state_dict())
    probe = balance(10, 0.2)
    assert a.score_one(probe) == b.score_one(probe)
