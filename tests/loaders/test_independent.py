"""The independent test grid: its physics balance, its meters say what the cases say,
and our own engine reads it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lineloss.cli import main as cli_main
from loaders.independent import IndependentGridConfig, generate_independent
from loaders.independent._anomalies import (
    STEPS_PER_DAY,
    Case,
    draw_cases,
    metered_kwh,
    register_kwh,
    steps_from_minutes,
    voltage_at_meter_clock,
)
from loaders.independent._households import Household, household_power_w
from loaders.independent._network import Transformer, area_network, feeder_network

SMALL = (("kerber_landnetz_freileitung_1", "kerber_landnetz_kabel_2"),)


@pytest.fixture(scope="module")
def small_grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("independent")
    cfg = IndependentGridConfig(
        seed=5,
        feeders=SMALL,
        days=2,
        theft_fraction=0.15,
        fault_fraction=0.08,
        topology_error_fraction=0.08,
    )
    generate_independent(cfg, out)
    return out


def _minutes(days: int, w: float = 600.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0.2, 1.8, days * 1440) * w


# --- household model


def test_a_household_is_reproducible_and_scaled_to_its_annual_use() -> None:
    home = Household(occupants=3, annual_kwh=2000.0)
    a = household_power_w(home, 2, 60, 1, seed=42)
    b = household_power_w(home, 2, 60, 1, seed=42)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2 * 1440,)
    assert a.min() >= 0
    assert a.sum() / 60_000 / 2 == pytest.approx(2000.0 / 365, rel=1e-9)


def test_a_household_does_not_depend_on_what_ran_before() -> None:
    """The model draws from the global RNGs; each household seeds and restores them,
    so profiles are the same in one process or spread over a pool's workers."""
    import random

    home = Household(occupants=2, annual_kwh=1500.0)
    first = household_power_w(home, 1, 10, 3, seed=7)
    random.seed(99)
    np.random.seed(99)
    before = (random.random(), np.random.random())
    random.seed(99)
    np.random.seed(99)
    np.testing.assert_array_equal(household_power_w(home, 1, 10, 3, seed=7), first)
    assert (random.random(), np.random.random()) == before  # the caller's state is kept


def test_an_empty_home_keeps_only_its_base_load() -> None:
    away = household_power_w(Household(4, 3000.0, away_days=(1,)), 2, 60, 1, seed=3)
    day0, day1 = away[:1440].sum(), away[1440:].sum()
    assert 0 < day1 < 0.6 * day0  # cold appliances and standby, nothing switched on


# --- physics


def test_the_transformer_losses_grow_with_the_square_of_the_load() -> None:
    t = Transformer(
        sn_kva=100.0, iron_loss_kw=0.25, vkr_percent=1.2, vk_percent=4.0, i0_percent=0.2
    )
    p0, _ = t.hv_side(0.0, 0.0)
    p1, _ = t.hv_side(50_000.0, 0.0)
    p2, _ = t.hv_side(100_000.0, 0.0)
    assert p0 == pytest.approx(250.0)  # iron loss alone at no load
    assert p1 - 50_000 - 250 == pytest.approx(0.25 * 1200.0)  # (S/Sn)^2 x copper loss
    assert p2 - 100_000 - 250 == pytest.approx(1200.0)
    assert t.lv_voltage_pu(1.0, 100_000.0, 0.0, tap=1.025) == pytest.approx(1.025 - 0.012)


def test_the_area_meter_sees_the_houses_plus_line_losses() -> None:
    area = area_network("kerber_landnetz_kabel_2")
    p = np.full(area.n_customers, 1500.0)
    p_meter, _, volts = area.solve(p, 0.3 * p, 1.02)
    line_loss = p_meter - p.sum() - 1.5 * area.n_customers
    assert 0 < line_loss < 0.05 * p.sum()
    assert np.all(volts < 1.02) and np.all(volts > 0.9)  # voltage drops along the cables


def test_the_houses_follow_the_busbar_voltage_step_after_step() -> None:
    """One network solved again and again (pandapower's recycled runs): each solve's
    slack voltage must reach the houses, or the MV swing every meter of an area shares
    is lost."""
    area = area_network("kerber_landnetz_kabel_2")
    p = np.full(area.n_customers, 800.0)
    _, _, low = area.solve(p, 0.3 * p, 0.98)
    _, _, high = area.solve(p, 0.3 * p, 1.04)
    _, _, low_again = area.solve(p, 0.3 * p, 0.98)
    assert np.all(high - low > 0.055)
    np.testing.assert_allclose(low_again, low, atol=1e-9)


def test_the_feeder_carries_its_source_voltage_to_every_area() -> None:
    feeder = feeder_network(np.array([1.0, 2.0]))
    p, q = np.array([300_000.0, 200_000.0]), np.array([90_000.0, 60_000.0])
    _, mv_low = feeder.solve(p, q, 0.99)
    _, mv_high = feeder.solve(p, q, 1.03)
    assert np.all(mv_low < 0.99) and np.all(mv_high < 1.03)  # drops along the cable
    np.testing.assert_allclose(mv_high - mv_low, 0.04, atol=0.002)


def test_the_grid_balances_physically(small_grid: Path) -> None:
    truth = pd.read_csv(small_grid / "truth_areas.csv")
    areas = truth[truth["customers"] > 0]
    feeders = truth[truth["customers"] == 0]
    assert (areas["technical_loss_rate"] > 0).all()
    assert (areas["technical_loss_rate"] < 0.05).all()
    # The feeder head pays for the transformers' iron and copper and the MV cable too.
    assert feeders["supplied_kwh"].iloc[0] > areas["supplied_kwh"].sum()


# --- what the meters register


def test_h5_and_h6_keep_the_daily_total_and_change_the_shape() -> None:
    w = _minutes(3)
    rng = np.random.default_rng(1)
    true = steps_from_minutes(w)
    for kind in ("h5", "h6"):
        got = metered_kwh(Case("theft", kind, STEPS_PER_DAY), w, rng)
        np.testing.assert_allclose(got[:STEPS_PER_DAY], true[:STEPS_PER_DAY])
        np.testing.assert_allclose(got.reshape(3, -1).sum(axis=1), true.reshape(3, -1).sum(axis=1))
        assert not np.allclose(got[STEPS_PER_DAY:], true[STEPS_PER_DAY:])


def test_clip_and_night_thefts_take_what_they_say() -> None:
    w = _minutes(2, w=800.0)
    rng = np.random.default_rng(1)
    clip = metered_kwh(Case("theft", "clip", STEPS_PER_DAY, cap_w=500.0), w, rng)
    np.testing.assert_allclose(
        clip[STEPS_PER_DAY:], steps_from_minutes(np.minimum(w, 500.0))[STEPS_PER_DAY:]
    )
    night = metered_kwh(Case("theft", "night", 0), w, rng)
    hour = (np.arange(2 * STEPS_PER_DAY) % STEPS_PER_DAY) / 4
    assert (night[(hour >= 22) | (hour < 6)] == 0).all()
    np.testing.assert_allclose(
        night[(hour >= 6) & (hour < 22)], steps_from_minutes(w)[(hour >= 6) & (hour < 22)]
    )


def test_register_faults() -> None:
    e = np.full(2 * STEPS_PER_DAY, 0.1)
    s = STEPS_PER_DAY
    stuck = register_kwh(Case("meter_fault", "stuck", s), e, 100.0, 1.0)
    assert (stuck[s:] == stuck[s - 1]).all() and stuck[s - 1] == pytest.approx(100.0 + 0.1 * s)
    assert (register_kwh(Case("meter_fault", "zero", s), e, 100.0, 1.0)[s:] == 0).all()
    back = register_kwh(Case("meter_fault", "step_back", s, step_back_kwh=7.0), e, 100.0, 1.0)
    assert back[s] - back[s - 1] == pytest.approx(0.1 - 7.0)
    drift = register_kwh(
        Case("meter_fault", "clock_drift", s, drift_min_per_day=15.0), e, 100.0, 1.0
    )
    honest = register_kwh(Case("normal"), e, 100.0, 1.0)
    # After one day at 15 min/day fast, each mark shows the register one step earlier.
    assert drift[-1] == pytest.approx(honest[-2])
    np.testing.assert_allclose(drift[:s], honest[:s])
    ct = register_kwh(Case("normal"), e, 0.0, 20.0)
    assert ct[-1] == pytest.approx(e.sum() / 20.0)  # a CT meter's register is secondary


def test_a_fast_clock_records_the_voltage_of_the_same_earlier_moment() -> None:
    """Its load curve is frozen at its own marks: the voltage lags as the register
    does (one step after a day at 15 min/day); other meters' voltages are as is."""
    s = STEPS_PER_DAY
    v = 230.0 + np.arange(2 * STEPS_PER_DAY, dtype=np.float64) / 10.0
    fast = Case("meter_fault", "clock_drift", s, drift_min_per_day=15.0)
    seen = voltage_at_meter_clock(fast, v)
    np.testing.assert_allclose(seen[:s], v[:s])
    assert seen[-1] == pytest.approx(v[-2])
    assert voltage_at_meter_clock(Case("meter_fault", "stuck", s), v) is v


def test_cases_are_drawn_in_their_shares_and_point_at_other_areas() -> None:
    rng = np.random.default_rng(3)
    area = np.repeat(np.arange(4), 50)
    ct = np.where(np.arange(200) % 10 == 0, 20.0, 1.0)
    cases = draw_cases(rng, area, np.array([0, 0, 1, 1]), ct, 28 * STEPS_PER_DAY, 0.1, 0.05, 0.05)
    labels = pd.Series([c.label for c in cases]).value_counts()
    assert labels["theft"] == 20 and labels["meter_fault"] == 10
    assert labels["topology_error"] == 10
    for i, c in enumerate(cases):
        if c.label == "topology_error":
            assert c.recorded_area not in (-1, area[i])
        if c.kind == "wrong_multiplier":
            assert c.registry_multiplier != ct[i]
        if c.label in ("theft",) or c.kind in ("stuck", "zero", "step_back", "clock_drift"):
            assert 8 * STEPS_PER_DAY <= c.start_step < 20 * STEPS_PER_DAY
            assert c.start_step % STEPS_PER_DAY == 0


# --- the files


def test_the_area_register_holds_the_area_energy(small_grid: Path) -> None:
    readings = pd.read_csv(small_grid / "readings.csv")
    topology = pd.read_csv(small_grid / "topology.csv")
    truth = pd.read_csv(small_grid / "truth_areas.csv").set_index("area_id")
    for row in topology[topology["role"] == "area"].itertuples():
        regs = readings.loc[readings["meter_id"] == row.meter_id, "register_kwh"]
        energy = (regs.iloc[-1] - regs.iloc[0]) * row.multiplier
        assert energy == pytest.approx(
            truth.loc[row.area_id, "supplied_kwh"], abs=2e-4 * row.multiplier
        )


def test_honest_customers_bill_their_true_demand(small_grid: Path) -> None:
    readings = pd.read_csv(small_grid / "readings.csv")
    labels = pd.read_csv(small_grid / "labels.csv", keep_default_na=False)
    topology = pd.read_csv(small_grid / "topology.csv").set_index("meter_id")
    truth = pd.read_csv(small_grid / "truth_areas.csv").set_index("area_id")
    honest = labels[labels["label"] == "normal"]
    last = readings.groupby("meter_id")["register_kwh"].agg(["first", "last"])
    billed = (last["last"] - last["first"]) * topology["multiplier"]
    for area, members in honest.groupby("true_area_id"):
        demand = truth.loc[area, "true_demand_kwh"]
        assert billed[members["meter_id"]].sum() <= demand  # truncated registers, and thieves


def test_labels_topology_and_summary_agree(small_grid: Path) -> None:
    labels = pd.read_csv(small_grid / "labels.csv", keep_default_na=False)
    topology = pd.read_csv(small_grid / "topology.csv", keep_default_na=False).set_index("meter_id")
    summary = json.loads((small_grid / "summary.json").read_text())
    assert summary["customers"] == len(labels) == 27
    assert set(labels["label"]) <= {"normal", "theft", "meter_fault", "topology_error"}
    recorded = topology.loc[labels["meter_id"], "area_id"].to_numpy()
    np.testing.assert_array_equal(recorded, labels["recorded_area_id"].to_numpy())
    wrong = labels["label"] == "topology_error"
    assert (labels.loc[wrong, "true_area_id"] != labels.loc[wrong, "recorded_area_id"]).all()
    thefts = labels[labels["label"] == "theft"]
    assert (thefts["stolen_kwh"] >= -1e-6).all()
    assert not labels.loc[labels["label"] == "normal", "start"].astype(bool).any()


def test_our_engine_balances_it(small_grid: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli_main(["replay", str(small_grid), "--out", str(out)]) == 0
    rejects = pd.read_csv(out / "rejects.csv")
    assert len(rejects) == 0
    balances = pd.read_csv(out / "balances.csv")
    full = balances[balances["coverage"] > 0.99]
    assert len(full) >= 2
    assert full["supply_kwh"].gt(0).all()


def test_the_cli_refuses_an_unknown_network(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["generate-independent", "x", "--feeder", "no_such_grid"])
    assert "unknown area network" in capsys.readouterr().err
