"""The whole step (engine, then detectors) under registry updates."""

from __future__ import annotations

import numpy as np
from changing_grid import ALL, CONFIG, TIMELINE, TOPO, batch, readings
from factories import DAY, DAY0, area_day

from detectors.observations import AreaHistory
from lineloss.domain import Meter, MeterRole, Topology
from streams.pipeline import Pipeline, regions


def test_detection_follows_the_topology_version_of_each_window() -> None:
    rows = readings(ALL)
    pipeline = Pipeline(TOPO, CONFIG)
    half = next(i for i, r in enumerate(rows) if r[1] >= DAY0 + DAY // 2)
    for lo, hi in ((0, half), (half, len(rows))):
        if lo == half:
            assert pipeline.apply_timeline(TIMELINE) == []
        for i in range(lo, hi, 400):
            pipeline.step(batch(rows[i : min(i + 400, hi)], TIMELINE))
    pipeline.flush()
    a1, a2 = pipeline.histories["A1"], pipeline.histories["A2"]
    # Every window of a history has the customers of the newest one.
    assert {w.meter_ids for w in a1.windows} == {("C1", "C4")}
    assert {w.meter_ids for w in a2.windows} == {("C2",)}
    by_day = {(w.window_start - DAY0) // DAY: w for w in a1.windows}
    assert np.isnan(by_day[0].energy_kwh[1])  # C4 was not in service on day 0
    assert by_day[2].energy_kwh.tolist() == [48.0, 24.0]


def test_grid_detectors_look_across_the_feeders_of_a_substation() -> None:
    """Areas of feeders of one named substation are one region; a feeder without a
    named substation is its own; an area without a feeder stands alone; an area all
    of whose customers left has nothing to score."""
    topo = Topology.from_meters(
        [
            Meter("H1", MeterRole.FEEDER, None, "F1", substation_id="SS1"),
            Meter("H2", MeterRole.FEEDER, None, "F2", substation_id="SS1"),
            Meter("H3", MeterRole.FEEDER, None, "F3"),
        ]
    )
    one = np.ones(1)
    histories = {}
    for area, feeder, ids in (
        ("A1", "F1", ("C1",)),
        ("A2", "F2", ("C2",)),
        ("A3", "F3", ("C3",)),
        ("A4", "", ("C4",)),
        ("A5", "F1", ()),
    ):
        h = AreaHistory()
        h.push(area_day(0, ids, one[: len(ids)], area_id=area, feeder_id=feeder))
        histories[area] = h
    got = {r: sorted(areas) for r, areas in regions(histories, topo).items()}
    assert got == {"substation:SS1": ["A1", "A2"], "F3": ["A3"], "area:A4": ["A4"]}
