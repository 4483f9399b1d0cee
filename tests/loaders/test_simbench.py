"""SimBench as a second outside source: its LV grids as areas, its measured profiles as
demand, and a grid built from both that our engine balances."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lineloss.cli import main as cli_main
from loaders.independent import IndependentGridConfig, generate_independent
from loaders.independent._network import area_network
from loaders.independent._simbench import (
    HOUSEHOLD_PROFILES,
    customer_power_w,
    first_profile_day,
    profile_names,
)

RURAL1 = "simbench:1-LV-rural1--0-sw"  # 13 loads: households and farms


@pytest.fixture(scope="module")
def simbench_grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("simbench")
    cfg = IndependentGridConfig(
        seed=7,
        feeders=((RURAL1, "kerber_landnetz_kabel_2"),),
        days=2,
        demand="simbench",
        theft_fraction=0.1,
    )
    generate_independent(cfg, out)
    return out


@pytest.mark.parametrize("start", ["2026-03-02", "2026-01-01", "2027-06-15", "2026-12-31"])
def test_profile_days_keep_the_calendars_weekday(start: str) -> None:
    day = pd.Timestamp(start)
    first = first_profile_day(day)
    assert 0 <= first < 366
    assert (pd.Timestamp("2016-01-01") + pd.Timedelta(days=first)).dayofweek == day.dayofweek
    assert abs(first - (day.dayofyear - 1)) <= 6


def test_profile_days_cross_no_clock_change() -> None:
    # 2 March 2026 is 29 February 2016's weekday; 28 days from there reach 27 March.
    first = first_profile_day(pd.Timestamp("2026-03-02"), 28)
    assert (pd.Timestamp("2016-01-01") + pd.Timedelta(days=first)).dayofweek == 0
    assert first + 28 <= 86 or first >= 86
    assert first == 59 - 7  # a week earlier: still winter, ends the day before


def test_a_customer_uses_its_annual_share_on_days_at_home() -> None:
    w = customer_power_w("H0-A", 3650.0, 7, 60, 8, (), np.random.default_rng(1))
    assert w.shape == (7 * 1440,)
    assert w.min() >= 0
    assert w.sum() / 60_000 / 7 == pytest.approx(10.0, rel=1e-9)
    again = customer_power_w("H0-A", 3650.0, 7, 60, 8, (), np.random.default_rng(1))
    np.testing.assert_array_equal(w, again)
    # Held for each quarter hour: 15 equal minutes.
    assert np.all(w.reshape(-1, 15) == w.reshape(-1, 15)[:, :1])


def test_shifts_make_neighbours_distinct_under_the_same_weather() -> None:
    rng = np.random.default_rng(3)
    shared = [customer_power_w("H0-B", 2000.0, 14, 60, 0, (), rng) for _ in range(2)]
    np.testing.assert_allclose(shared[0], shared[1])
    moved = [customer_power_w("H0-B", 2000.0, 14, 60, 0, (), rng, 120) for _ in range(6)]
    assert any(not np.allclose(moved[0], m) for m in moved[1:])
    # The same days, a couple of hours apart: their day-to-day swings stay common.
    daily = np.array([m.reshape(14, -1).sum(axis=1) for m in moved])
    assert np.corrcoef(daily).min() > 0.8


def test_week_offsets_take_other_days_of_the_profile() -> None:
    rng = np.random.default_rng(4)
    apart = [customer_power_w("H0-B", 2000.0, 14, 60, 8, (), rng) for _ in range(6)]
    assert any(not np.allclose(apart[0], a) for a in apart[1:])


def test_an_empty_home_keeps_only_its_base_load() -> None:
    w = customer_power_w("H0-C", 3000.0, 7, 100, 0, (2, 3), np.random.default_rng(5))
    days = w.reshape(7, -1)
    at_home = days[[0, 1, 4, 5, 6]]
    assert days[2].max() < 0.5 * at_home.mean()
    assert days[2].mean() == pytest.approx(days[3].mean(), rel=0.05)
    assert days[2].min() > 0  # the fridge runs on


def test_a_simbench_area_is_its_published_grid_without_generators() -> None:
    area = area_network(RURAL1)
    assert area.n_customers == 13
    assert len(area.load_profiles) == 13
    assert set(area.load_profiles) <= set(profile_names())
    assert len(area.net.sgen) == 0
    p = np.full(area.n_customers, 2000.0)
    p_meter, _, volts = area.solve(p, 0.3 * p, 1.02)
    assert 0 < p_meter - p.sum() - 1.5 * area.n_customers < 0.05 * p.sum()
    assert np.all(volts < 1.02) and np.all(volts > 0.9)
    assert set(HOUSEHOLD_PROFILES) <= set(profile_names())


def test_a_simbench_grid_balances_and_our_engine_reads_it(
    simbench_grid: Path, tmp_path: Path
) -> None:
    summary = json.loads((simbench_grid / "summary.json").read_text())
    assert "SimBench" in str(summary["generator"])
    labels = pd.read_csv(simbench_grid / "labels.csv", keep_default_na=False)
    assert summary["customers"] == len(labels) == 13 + 14
    truth = pd.read_csv(simbench_grid / "truth_areas.csv")
    areas = truth[truth["customers"] > 0]
    assert ((areas["technical_loss_rate"] > 0) & (areas["technical_loss_rate"] < 0.05)).all()
    out = tmp_path / "out"
    assert cli_main(["replay", str(simbench_grid), "--out", str(out)]) == 0
    assert len(pd.read_csv(out / "rejects.csv")) == 0
    balances = pd.read_csv(out / "balances.csv")
    full = balances[balances["coverage"] > 0.99]
    assert len(full) >= 2 and full["supply_kwh"].gt(0).all()


def test_the_demand_source_is_checked() -> None:
    with pytest.raises(ValueError, match="demand"):
        IndependentGridConfig(demand="bdew")


def test_the_cli_takes_simbench_areas_and_refuses_other_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli_main(["generate-independent", "x", "--feeder", "simbench:1-MV-rural--0-sw"])
    assert "unknown area network" in capsys.readouterr().err
