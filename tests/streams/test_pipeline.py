"""The whole step (engine, then detectors) under registry updates."""

from __future__ import annotations

import numpy as np
from changing_grid import ALL, CONFIG, TIMELINE, TOPO, batch, readings
from factories import DAY, DAY0

from streams.pipeline import Pipeline


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
