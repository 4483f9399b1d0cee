"""The whole step (engine, then detectors) under registry updates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from changing_grid import ALL, CONFIG, TIMELINE, TOPO, batch, readings
from factories import DAY, DAY0, area_day, household_days, make_batch, make_topology

from detectors.observations import AreaHistory
from lineloss.config import EngineConfig
from lineloss.domain import Meter, MeterRole, Topology
from loaders.synthetic import SyntheticGridConfig, generate_grid, write_grid
from streams.pipeline import Pipeline, regions
from streams.replay import run_replay


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


def test_a_meter_clock_running_fast_is_named_from_its_readings() -> None:
    """End to end, from 15-minute registers: a meter that freezes its readings at
    its own fast clock's marks and stamps them with those marks (every stamp on the
    grid, the content lagging 12 minutes more each day from day 8) is named a clock
    drift, through the engine's hourly profiles and the area meter's balance."""
    from lineloss.config import EngineConfig

    n_days, n_cust, step_s = 24, 20, 900
    rng = np.random.default_rng(5)
    quarter = np.arange(96) / 4.0  # hour of each 15-minute step
    shape = (
        household_days(rng, n_cust, quarter) * rng.uniform(0.08, 0.22, n_cust)[:, None]
    )  # kWh per 15 minutes
    steps = shape[:, None, :] * rng.lognormal(0.0, 0.3, (n_cust, n_days, 96))
    true = steps.reshape(n_cust, -1)  # customers x steps
    load = true.sum(axis=0)
    supply = load + 0.01 + 0.02 * load**2
    marks = np.arange(true.shape[1] + 1, dtype=np.float64)
    cum = np.column_stack([np.zeros(n_cust), np.cumsum(true, axis=1)])
    lag_steps = np.maximum(0.0, marks / 96 - 8) * 12 / 15  # 12 min a day
    recorded = cum.copy()
    recorded[3] = np.interp(marks - lag_steps, marks, cum[3])
    ids = [f"C{i:02d}" for i in range(n_cust)]
    topo = make_topology(
        [("T1", "area", "A1", "F1", 1.0), *((m, "customer", "A1", "F1", 1.0) for m in ids)]
    )
    rows: list[tuple[str, int, float]] = []
    area_cum = np.concatenate([[0.0], np.cumsum(supply)])
    for k in range(len(marks)):
        t = DAY0 + k * step_s
        rows.append(("T1", t, float(np.floor(area_cum[k] * 100) / 100)))
        rows += [(m, t, float(np.floor(recorded[i, k] * 100) / 100)) for i, m in enumerate(ids)]
    pipeline = Pipeline(topo, EngineConfig())
    for lo in range(0, len(rows), 20_000):
        pipeline.step(make_batch(topo, rows[lo : lo + 20_000], first_pos=lo))
    pipeline.flush()
    drifting = {
        s.target_id for s in pipeline.suspicions() if "meter_fault:clock_drift" in s.detector
    }
    assert drifting == {"C03"}


def test_generated_voltage_and_register_faults_are_named_from_the_readings(
    tmp_path: Path,
) -> None:
    """End to end from a generated grid's 15-minute registers and voltages: every
    meter that lost a phase or its voltage element is named a voltage or phase loss
    (either name: the voltage alone cannot always tell them apart), every register
    that leapt forward a register jump, every register running backwards a reversed
    meter, each with about the energy it did not record (negative: billed, never
    supplied), and no other meter is named. A fault begun in the last day (two and
    a half for a reversed meter, named after three windows of step backs) may not
    show yet."""
    cfg = SyntheticGridConfig(
        seed=6,
        n_feeders=1,
        areas_per_feeder=3,
        customers_per_area=(30, 50),
        days=14,
        theft_fraction=0.0,
        fault_fraction=0.08,
        fault_kinds=("voltage_loss", "phase_loss", "register_jump", "reverse_energy"),
        topology_error_fraction=0.0,
    )
    write_grid(generate_grid(cfg), tmp_path / "data", fmt="csv")
    run_replay(tmp_path / "data", tmp_path / "out", EngineConfig(tz=cfg.tz))
    labels = pd.read_csv(tmp_path / "data" / "labels.csv", parse_dates=["start"])
    faults = labels[labels["label"] == "meter_fault"].set_index("meter_id")
    assert set(faults["kind"]) == {"voltage_loss", "phase_loss", "register_jump", "reverse_energy"}
    sus = pd.read_csv(tmp_path / "out" / "suspicions.csv")
    named = sus[sus["category"] == "meter_fault"].set_index("target_id")
    assert set(named.index) <= set(faults.index)
    end = pd.Timestamp(cfg.start, tz=cfg.tz) + pd.Timedelta(days=cfg.days)
    shown_after_d = faults["kind"].map({"reverse_energy": 2.5}).fillna(1.0)
    due = faults[(end - faults["start"]) / pd.Timedelta(days=1) > shown_after_d]
    assert len(due) >= 0.7 * len(faults) and set(due["kind"]) == set(faults["kind"])
    names = {
        "voltage_loss": {"meter_fault:voltage_loss", "meter_fault:phase_loss"},
        "phase_loss": {"meter_fault:voltage_loss", "meter_fault:phase_loss"},
        "register_jump": {"meter_fault:register_jump"},
        "reverse_energy": {"meter_fault:reverse_energy"},
    }
    for mid, row in due.iterrows():
        assert named.loc[mid, "detector"] in names[row.kind], mid
        unbilled = named.loc[mid, "estimated_kwh"]
        assert unbilled == pytest.approx(row.stolen_kwh, rel=0.25, abs=1.0), mid
