"""Detectors: pure scorers of balances and meter series, plus the decision step."""

from __future__ import annotations

from typing import Any

from detectors.area_loss import LossBandDetector, LossRiseDetector
from detectors.base import Detector, Finding, ThresholdDecider
from detectors.common_drop import CommonDropCheck
from detectors.fusion import SuspicionBook
from detectors.meter_faults import MeterFaultDetector
from detectors.meter_shape import ConsumptionShapeDetector
from detectors.theft_localiser import TheftLocaliser
from detectors.topology import TopologyDetector, VoltageTopologyDetector
from lineloss.config import BalanceConfig
from lineloss.domain import Balance

__all__ = [
    "CommonDropCheck",
    "Detector",
    "DetectorSettings",
    "Finding",
    "LossBandDetector",
    "LossRiseDetector",
    "SuspicionBook",
    "ThresholdDecider",
    "default_area_detectors",
    "default_common_drop",
    "default_grid_detectors",
    "default_meter_detectors",
]


DetectorSettings = dict[str, dict[str, Any]]
"""Constructor arguments per detector name (and for ``decider`` and ``book``), as
written by ``lineloss tune`` and read by ``lineloss replay --detectors``."""


def _kw(settings: DetectorSettings | None, name: str) -> dict[str, Any]:
    kw = dict((settings or {}).get(name, {}))
    for key, value in kw.items():
        if isinstance(value, list):
            kw[key] = tuple(value)  # JSON has no tuples
    return kw


def default_area_detectors(
    balance_config: BalanceConfig, settings: DetectorSettings | None = None
) -> list[Detector[Balance]]:
    """The registered area-balance detectors, in a fixed order."""
    return [
        LossBandDetector(balance_config=balance_config, **_kw(settings, "loss_band")),
        LossRiseDetector(**_kw(settings, "loss_rise")),
    ]


def default_meter_detectors(
    settings: DetectorSettings | None = None,
) -> list[TheftLocaliser | ConsumptionShapeDetector | MeterFaultDetector]:
    """Detectors that score each area's customers from the area's history."""
    return [
        TheftLocaliser(**_kw(settings, "theft_localiser")),
        ConsumptionShapeDetector(**_kw(settings, "consumption_shape")),
        MeterFaultDetector(**_kw(settings, "meter_fault")),
    ]


def default_grid_detectors(
    settings: DetectorSettings | None = None,
) -> list[TopologyDetector | VoltageTopologyDetector]:
    """Detectors that need every area of a window at once."""
    return [
        TopologyDetector(**_kw(settings, "topology")),
        VoltageTopologyDetector(**_kw(settings, "voltage_topology")),
    ]


def default_common_drop(settings: DetectorSettings | None = None) -> CommonDropCheck:
    """The region-wide check that a drop finding's cause is not common to the
    customers most like it (applied between the meter detectors and the book)."""
    return CommonDropCheck(**_kw(settings, "common_drop"))
