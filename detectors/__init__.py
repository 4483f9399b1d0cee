"""Detectors: pure scorers of balances and meter series, plus the decision step."""

from __future__ import annotations

from detectors.area_loss import LossBandDetector, LossRiseDetector
from detectors.base import Detector, Finding, ThresholdDecider
from detectors.fusion import SuspicionBook
from lineloss.config import BalanceConfig
from lineloss.domain import Balance

__all__ = [
    "Detector",
    "Finding",
    "LossBandDetector",
    "LossRiseDetector",
    "SuspicionBook",
    "ThresholdDecider",
    "default_area_detectors",
]


def default_area_detectors(balance_config: BalanceConfig) -> list[Detector[Balance]]:
    """The registered area-balance detectors, in a fixed order."""
    return [LossBandDetector(balance_config=balance_config), LossRiseDetector()]
