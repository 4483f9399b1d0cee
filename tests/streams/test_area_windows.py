"""Cutting a final window into the groups the meter-level detectors see."""

from __future__ import annotations

import numpy as np
from factories import DAY, DAY0, make_topology

from streams.area_windows import AreaWindowBuilder
from streams.engine import MeterWindowResult

# F1: head H1, metered area A1 (T1: C1, C2), unmetered area A2 (C3), dedicated
# customers D1 and D2. F2: no head meter, one dedicated customer D3.
TOPO = make_topology(
    [
        ("H1", "feeder", None, "F1", 1.0),
        ("T1", "area", "A1", "F1", 1.0),
        ("C1", "customer", "A1", "F1", 1.0),
        ("C2", "customer", "A1", "F1", 1.0),
        ("C3", "customer", "A2", "F1", 1.0),
        ("D1", "customer", None, "F1", 1.0),
        ("D2", "customer", None, "F1", 30.0),
        ("D3", "customer", None, "F2", 1.0),
    ]
)


def _result(energy: dict[str, float]) -> MeterWindowResult:
    e = np.array([energy[m] for m in TOPO.meter_ids], np.float64)
    n = len(e)
    return MeterWindowResult(
        window_start=DAY0,
        window_end=DAY0 + DAY,
        energy_kwh=e,
        reporting=np.ones(n, np.bool_),
        flags=np.zeros(n, np.int8),
        events=np.zeros(n, np.int32),
    )


def test_dedicated_customers_get_a_group_of_their_own_and_stay_in_the_unmetered_part() -> None:
    """A dedicated customer (专变) belongs to no area: its feeder's unmetered part is its
    only balance (the localiser's), and its own checks (shape, registers), which skip
    the unmetered part, run in ``{feeder}/dedicated``, without supply; a feeder
    without a head meter still has it."""
    energy = {"H1": 1000.0, "T1": 300.0, "C1": 100.0, "C2": 190.0, "C3": 50.0}
    energy |= {"D1": 400.0, "D2": 200.0, "D3": 80.0}
    windows = {w.area_id: w for w in AreaWindowBuilder(TOPO).build(_result(energy), {})}
    assert sorted(windows) == ["A1", "A2", "F1/dedicated", "F1/unmetered", "F2/dedicated"]
    unmetered = windows["F1/unmetered"]
    assert unmetered.virtual and not unmetered.dedicated
    assert unmetered.meter_ids == ("C3", "D1", "D2")
    assert unmetered.supply_kwh == 1000.0 - 300.0
    for area, meters in (("F1/dedicated", ("D1", "D2")), ("F2/dedicated", ("D3",))):
        w = windows[area]
        assert w.dedicated and not w.virtual and not w.has_supply
        assert w.meter_ids == meters
        assert w.energy_kwh.tolist() == [energy[m] for m in meters]
    assert windows["A1"].supply_kwh == 300.0 and not windows["A1"].dedicated


def test_each_group_carries_its_customers_registry_multipliers() -> None:
    """The registry multiplier travels with each customer: a wrong multiplier that
    under-bills needs a CT the registry missed, which a direct meter (1) only has at
    a CT's ratio (``MeterFaultDetector.multiplier_min_ct``)."""
    energy = {m: 10.0 for m in TOPO.meter_ids}
    windows = {w.area_id: w for w in AreaWindowBuilder(TOPO).build(_result(energy), {})}
    multipliers = {
        area: w.multiplier.tolist() for area, w in windows.items() if w.multiplier is not None
    }
    assert multipliers == {
        "A1": [1.0, 1.0],
        "A2": [1.0],
        "F1/unmetered": [1.0, 1.0, 30.0],
        "F1/dedicated": [1.0, 30.0],
        "F2/dedicated": [1.0],
    }
    moved = windows["F1/unmetered"].reindexed(("D2", "X9"))
    assert moved.multiplier is not None
    assert moved.multiplier[0] == 30.0 and np.isnan(moved.multiplier[1])
