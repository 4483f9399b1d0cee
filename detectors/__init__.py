"""Detectors: pure scorers of balances and meter series, plus the decision step."""

from __future__ import annotations

from detectors.area_loss import LossBandDetector, LossRiseDetector
from detectors.base import Detector, Finding, ThresholdDecider
from detectors.fusion import SuspicionBook
from detectors.meter_faults import MeterFaultDetector
from detectors.meter_shape import ConsumptionShapeDetector
from detectors.theft_localiser import TheftLocaliser
from detectors.topology import TopologyDetector
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
    "default_grid_detectors",
    "default_meter_detectors",
]


def default_area_detectors(balance_config: BalanceConfig) -> list[Detector[Balance]]:
    """The registered area-balance detectors, in a fixed order."""
    return [LossBandDetector(balance_config=balance_config), LossRiseDetector()]


def default_meter_detectors() -> list[
    TheftLocaliser | ConsumptionShapeDetector | MeterFaultDetector
]:
    """Detectors that score each area's customers from the area's history."""
    return [TheftLocaliser(), ConsumptionShapeDetector(), MeterFaultDetector()]


def default_grid_detectors() -> list[TopologyDetector]:
    """Detectors that need every area of a window at once."""
    return [TopologyDetector()]
