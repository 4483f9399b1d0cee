"""Every registered detector through the same checks (river-style conformance).

State round-trips through a dict, the same input gives the same findings, gaps (NaN)
and short histories do not crash, and on a generated grid with injected thefts the
raised theft suspects are better than chance.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from detectors import default_grid_detectors, default_meter_detectors
from detectors.evaluation import evaluate
from detectors.observations import AreaHistory, AreaWindow
from lineloss.config import EngineConfig
from loaders.files import read_readings, read_topology
from loaders.synthetic import SyntheticGridConfig, generate_grid, write_grid
from streams.pipeline import Pipeline
from streams.replay import suspicions_frame

METER_DETECTORS = {type(d).__name__: type(d) for d in default_meter_detectors()}


@cache
def replayed(tmp: Path) -> tuple[Pipeline, object]:
    grid = generate_grid(
        SyntheticGridConfig(
            seed=21,
            n_feeders=1,
            areas_per_feeder=4,
            customers_per_area=(30, 40),
            days=21,
            theft_fraction=0.08,
            fault_fraction=0.03,
            topology_error_fraction=0.0,
        )
    )
    write_grid(grid, tmp)
    topo, _ = read_topology(tmp)
    loaded = read_readings(tmp, topo)
    pipe = Pipeline(topo, EngineConfig())
    n = len(loaded.batch)
    for lo in range(0, n, 200_000):
        pipe.step(loaded.batch.take(np.arange(lo, min(lo + 200_000, n))))
    pipe.flush()
    return pipe, grid


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, object]:
    return replayed(tmp_path_factory.mktemp("grid"))


def _history_with_gaps(h: AreaHistory) -> AreaHistory:
    out = AreaHistory(max_windows=h.max_windows)
    rng = np.random.default_rng(0)
    for w in h.windows:
        e = w.energy_kwh.copy()
        e[rng.random(len(e)) < 0.2] = np.nan
        p = None
        if w.profile_kwh is not None:
            p = w.profile_kwh.copy()
            p[rng.random(p.shape) < 0.2] = np.nan
        out.push(
            AreaWindow(
                **{
                    **w.__dict__,
                    "energy_kwh": e,
                    "profile_kwh": p,
                    "supply_kwh": np.nan if rng.random() < 0.2 else w.supply_kwh,
                }
            )
        )
    return out


@pytest.mark.parametrize("name", sorted(METER_DETECTORS))
def test_meter_detector_conformance(name: str, replay) -> None:  # type: ignore[no-untyped-def]
    pipe, _ = replay
    make = METER_DETECTORS[name]
    for h in pipe.histories.values():
        a = make()
        first = a.score_one(h)
        assert a.score_one(h) == first, "scoring must not change state or depend on luck"
        for f in first:
            assert 0.0 <= f.score <= 1.0 and f.reason and f.target_id in h.windows[-1].meter_ids
        a.learn_one(h)
        b = make()
        b.load_state_dict(a.state_dict())
        assert b.score_one(h) == a.score_one(h)
        a.score_one(_history_with_gaps(h))  # gaps: no crash
        short = AreaHistory()
        short.push(h.windows[-1])
        assert a.score_one(short) == []  # one window of history: nothing to say


def test_grid_detectors_run_on_gappy_histories(replay) -> None:  # type: ignore[no-untyped-def]
    pipe, _ = replay
    gappy = {a: _history_with_gaps(h) for a, h in pipe.histories.items()}
    for det in default_grid_detectors():
        det.score_many(gappy)
        assert det.score_many(pipe.histories) == det.score_many(pipe.histories)


def test_theft_suspects_beat_chance_on_a_generated_grid(replay) -> None:  # type: ignore[no-untyped-def]
    pipe, grid = replay
    sus = suspicions_frame(pipe.suspicions(), "Asia/Shanghai")
    ev = evaluate(sus, grid.labels.astype({"start": str}), days=21)
    theft = ev.metrics["theft"]
    assert theft["cases"] >= 5
    assert theft["roc_auc"] > 0.7
    assert theft["precision"] > 0.3  # random inspection confirms 2-10 %
