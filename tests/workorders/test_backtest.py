"""``workorders.csv`` of a replay (workorders.backtest)."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import DAY0, make_topology

from lineloss.domain import Suspicion, SuspicionCategory, TargetKind
from workorders.backtest import write_workorders
from workorders.settings import WorkOrderSettings

TOPO = make_topology([("T1", "area", "A1", "F1", 1.0), ("C1", "customer", "A1", "F1", 1.0)])
STEPPED = WorkOrderSettings.from_dict(
    {"tariffs": {"default": {"stepped": [[100, 0.5], [None, 1.0]]}}}
)


def theft(kwh: float) -> Suspicion:
    return Suspicion(
        "C1", TargetKind.METER, SuspicionCategory.THEFT, 0.95, DAY0, kwh, "a theft", "A1"
    )


def test_a_stepped_tariff_prices_stolen_energy_on_top_of_the_bill(tmp_path: Path) -> None:
    """The Kafka path passes each customer's monthly bill from the meter windows it
    collected (``billed``), as the embedded replay computes it from its own; without
    it, stolen energy is priced from the first tier up."""

    def value(billed: dict[str, float] | None) -> float:
        orders = write_workorders(
            tmp_path, [theft(50.0)], TOPO, now_s=DAY0 + 86400, settings=STEPPED, billed=billed
        )
        assert (tmp_path / "workorders.csv").exists()
        return float(orders["estimated_value"].iloc[0])

    assert value({"C1": 300.0}) == pytest.approx(50.0)  # all of it above the first tier
    assert value(None) < value({"C1": 300.0})
