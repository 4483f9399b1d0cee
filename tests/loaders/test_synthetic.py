"""Tests of the synthetic grid generator: determinism, physics, injected truth, data faults."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loaders.synthetic import (
    FAULT_KINDS,
    THEFT_KINDS,
    SyntheticGrid,
    SyntheticGridConfig,
    generate_grid,
    write_grid,
)

CONTRACT_FILES = ("topology.csv", "readings.csv", "labels.csv")
EVENTS = {
    "cover_open",
    "magnetic",
    "power_down",
    "voltage_loss",
    "phase_loss",
    "reverse_energy",
    "clock_error",
}

# A small grid with many injected cases and no data-quality faults, so that it can be
# compared reading by reading with its clean twin.
BASE = SyntheticGridConfig(
    seed=11,
    n_feeders=2,
    areas_per_feeder=3,
    customers_per_area=(25, 40),
    days=9,
    theft_fraction=0.1,
    fault_fraction=0.07,
    topology_error_fraction=0.03,
    batch_fail_fraction=0.0,
    late_fraction=0.0,
    gap_fraction=0.0,
    offline_fraction=0.0,
    duplicate_fraction=0.0,
    bad_rows=0,
)
# The same grid with the data-quality faults switched on at visible rates.
NOISY = dataclasses.replace(
    BASE,
    batch_fail_fraction=0.02,
    late_fraction=0.01,
    gap_fraction=0.01,
    offline_fraction=0.05,
    duplicate_fraction=0.01,
    bad_rows=10,
)


@pytest.fixture(scope="module")
def grid() -> SyntheticGrid:
    return generate_grid(BASE)


@pytest.fixture(scope="module")
def clean() -> SyntheticGrid:
    return generate_grid(BASE.clean())


@pytest.fixture(scope="module")
def noisy() -> SyntheticGrid:
    return generate_grid(NOISY)


def wide(g: SyntheticGrid, column: str = "register_kwh") -> pd.DataFrame:
    """Readings as a (ts x meter) table: known meters, on the 15-minute grid, no bad rows."""
    r = g.readings
    t0 = pd.Timestamp(g.config.start, tz=g.config.tz)
    on_grid = (r["ts"] - t0).dt.total_seconds() % 900 == 0
    sane = (r["ts"] <= t0 + pd.Timedelta(days=g.config.days)) & (r[column].fillna(0) >= 0)
    r = r[r["meter_id"].isin(g.topology["meter_id"]) & on_grid & sane]
    r = r.assign(meter_id=r["meter_id"].astype(str)).drop_duplicates(["meter_id", "ts"])
    return r.pivot(index="ts", columns="meter_id", values=column)


def increments(g: SyntheticGrid, w: pd.DataFrame) -> pd.DataFrame:
    """Register differences [kWh before multiplier], with rollover wraps undone."""
    reg_max = g.meter_truth.set_index("meter_id")["register_max"].loc[w.columns]
    d = w.diff()
    return d.where(d > -0.5 * reg_max, d + reg_max)


def register_energy(g: SyntheticGrid, w: pd.DataFrame) -> pd.Series:
    """Energy [kWh after multiplier] from first to last register, rollover undone."""
    truth = g.meter_truth.set_index("meter_id")
    mult = g.topology.set_index("meter_id")["multiplier"]
    first = w.apply(lambda c: c.dropna().iloc[0])
    last = w.apply(lambda c: c.dropna().iloc[-1])
    delta = last - first
    wrapped = delta < 0
    delta[wrapped] += truth.loc[delta.index[wrapped], "register_max"]
    return delta * mult.loc[delta.index]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- determinism -------------------------------------------------------------------


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    write_grid(generate_grid(NOISY), tmp_path / "a")
    write_grid(generate_grid(NOISY), tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert set(CONTRACT_FILES) <= set(names)
    for name in names:
        assert sha(tmp_path / "a" / name) == sha(tmp_path / "b" / name), name


def test_different_seeds_differ(grid: SyntheticGrid) -> None:
    other = generate_grid(dataclasses.replace(BASE, seed=12))
    ids, other_ids = set(grid.labels["meter_id"]), set(other.labels["meter_id"])
    assert len(ids & other_ids) < 0.05 * len(ids)
    assert not grid.area_truth["supply_kwh"].equals(other.area_truth["supply_kwh"])
    n = min(len(other.readings), len(grid.readings))
    assert not np.array_equal(
        other.readings["register_kwh"].to_numpy()[:n], grid.readings["register_kwh"].to_numpy()[:n]
    )


# --- topology and labels -----------------------------------------------------------


def test_topology_is_consistent(grid: SyntheticGrid) -> None:
    topo = grid.topology
    assert topo["meter_id"].is_unique
    assert list(topo.columns[:5]) == ["meter_id", "role", "area_id", "feeder_id", "multiplier"]
    roles = topo["role"].value_counts()
    s = grid.summary
    assert roles["feeder"] == s["feeders"] == 2
    assert roles["area"] == s["areas"] - s["areas_without_meter"]
    assert roles["customer"] == s["customers"]
    assert s["areas_without_meter"] >= 1  # 5 % of 6 areas, at least one when positive
    feeders = topo[topo["role"] == "feeder"]
    assert feeders["area_id"].isna().all()
    assert (feeders["meter_id"] == "M-" + feeders["feeder_id"]).all()
    areas = topo[topo["role"] == "area"]
    assert (areas["meter_id"] == "M-" + areas["area_id"]).all()
    assert set(areas["multiplier"]) <= {40.0, 60.0, 80.0, 100.0, 150.0, 200.0}
    customers = topo[topo["role"] == "customer"]
    # Every customer on an area sits on that area's feeder; dedicated ones have no area.
    area_feeder = grid.area_truth.set_index("area_id")["feeder_id"]
    lv = customers[customers["area_id"].notna()]
    assert (lv["feeder_id"].to_numpy() == area_feeder.loc[lv["area_id"]].to_numpy()).all()
    dedicated = customers[customers["area_id"].isna()]
    assert len(dedicated) == s["dedicated_customers"] >= 2
    assert (dedicated["multiplier"] >= 200).all()  # CT x PT(100) at 10 kV
    # A customer on an area without its own meter still exists.
    unmetered = grid.area_truth.loc[~grid.area_truth["has_meter"], "area_id"]
    assert lv["area_id"].isin(unmetered).any()
    assert set(customers["customer_class"]) <= {
        "residential",
        "commercial",
        "industrial",
        "agricultural",
    }
    single = customers["phase"].dropna()
    assert set(single) <= {"A", "B", "C"} and len(single) > len(customers) / 2


def test_every_customer_is_labelled(grid: SyntheticGrid) -> None:
    labels = grid.labels
    customers = grid.topology.loc[grid.topology["role"] == "customer", "meter_id"]
    assert labels["meter_id"].is_unique
    assert set(labels["meter_id"]) == set(customers)
    assert set(labels["label"]) == {"normal", "theft", "meter_fault", "topology_error"}
    normal = labels[labels["label"] == "normal"]
    assert normal["start"].isna().all() and normal["kind"].isna().all()
    assert (normal["stolen_kwh"] == 0).all()
    assert (normal["true_area_id"].fillna("") == normal["recorded_area_id"].fillna("")).all()
    theft = labels[labels["label"] == "theft"]
    fault = labels[labels["label"] == "meter_fault"]
    assert set(theft["kind"]) == set(THEFT_KINDS)  # 10 % of ~200 customers covers all kinds
    assert set(fault["kind"]) == set(FAULT_KINDS)
    assert grid.summary["theft"] == len(theft) == round(0.1 * grid.summary["customers"])


def test_anomalies_start_after_warm_up(grid: SyntheticGrid) -> None:
    labels = grid.labels
    t0 = pd.Timestamp(BASE.start, tz=BASE.tz)
    warm_up = t0 + pd.Timedelta(days=BASE.days) / 3
    from_start = labels["kind"].isin(["wrong_multiplier", "wrong_area"])
    assert (labels.loc[from_start, "start"] == t0).all()
    timed = labels[labels["label"].isin(["theft", "meter_fault"]) & ~from_start]
    assert (timed["start"] >= warm_up).all()
    assert (timed["start"] < t0 + pd.Timedelta(days=BASE.days)).all()
    # The Jokar attacks work on whole days: they start at local midnight.
    daily_attacks = timed[timed["kind"].isin(["h1", "h2", "h3", "h4", "h5", "h6"])]
    assert (daily_attacks["start"] == daily_attacks["start"].dt.normalize()).all()


def test_thefts_can_be_running_before_the_data_begins() -> None:
    """``theft_before_start_fraction``: thieves who stole before the history, the
    usual case in the field. Their start is the data's first step and they are
    under-recorded from it; faults keep their start after the warm-up."""
    g = generate_grid(dataclasses.replace(BASE, theft_before_start_fraction=1.0))
    t0 = pd.Timestamp(BASE.start, tz=BASE.tz)
    thefts = g.labels[g.labels["label"] == "theft"]
    assert len(thefts) and (thefts["start"] == t0).all()
    stealing = thefts[~thefts["kind"].isin(["h5", "h6"])]
    assert (stealing["stolen_kwh"] > 0).all()
    faults = g.labels[
        (g.labels["label"] == "meter_fault") & (g.labels["kind"] != "wrong_multiplier")
    ]
    assert (faults["start"] >= t0 + pd.Timedelta(days=BASE.days) / 3).all()
    half = generate_grid(dataclasses.replace(BASE, theft_before_start_fraction=0.5))
    starts = half.labels.loc[half.labels["label"] == "theft", "start"]
    assert 0 < (starts == t0).sum() < len(starts)


# --- physics ---------------------------------------------------------------------


def test_clean_areas_lose_a_few_percent(clean: SyntheticGrid) -> None:
    energy = register_energy(clean, wide(clean))
    topo = clean.topology.set_index("meter_id")
    customers = topo[(topo["role"] == "customer") & topo["area_id"].notna()]
    billed = energy.loc[customers.index].groupby(customers["area_id"]).sum()
    areas = topo[topo["role"] == "area"]
    supplied = pd.Series(energy.loc[areas.index].to_numpy(), index=areas["area_id"])
    rate = (supplied - billed.loc[supplied.index]) / supplied
    assert len(rate) == clean.summary["areas"] - clean.summary["areas_without_meter"]
    assert (supplied > billed.loc[supplied.index]).all()
    assert rate.between(0.01, 0.08).all(), rate
    # ... and close to the calibrated technical loss rate of each area.
    truth = clean.area_truth.set_index("area_id")["technical_loss_rate"]
    assert truth.between(0.02, 0.05).all()
    assert np.abs(rate - truth.loc[rate.index]).max() < 0.01


def test_technical_loss_grows_with_load(clean: SyntheticGrid) -> None:
    w = wide(clean)
    topo = clean.topology.set_index("meter_id")
    mult = topo["multiplier"].loc[w.columns]
    inc = w.diff().iloc[1:] * mult  # no rollover check needed: wrapped steps are dropped below
    inc = inc.where(inc >= 0)
    hourly = inc.resample("1h").sum(min_count=4)
    customers = topo[(topo["role"] == "customer") & topo["area_id"].notna()]
    for area_meter in topo.index[topo["role"] == "area"]:
        members = customers.index[customers["area_id"] == topo.loc[area_meter, "area_id"]]
        supply = hourly[area_meter]
        loss = supply - hourly[members].sum(axis=1, min_count=len(members))
        ok = supply.notna() & loss.notna()
        supply, loss = supply[ok], loss[ok]
        low, high = supply <= supply.quantile(0.25), supply >= supply.quantile(0.75)
        assert loss[high].mean() > loss[low].mean() > 0


def test_feeder_meter_sees_its_areas_plus_line_loss(clean: SyntheticGrid) -> None:
    energy = register_energy(clean, wide(clean))
    truth = clean.meter_truth.set_index("meter_id")
    feeders = truth[truth["role"] == "feeder"]
    rates = feeders["technical_loss_rate"]
    assert rates.between(0.01, 0.03).all()
    for meter_id, row in feeders.iterrows():
        # The first interval has no earlier register, so compare with 1 % slack.
        assert energy[str(meter_id)] == pytest.approx(row["true_kwh"], rel=0.01)
        areas = clean.area_truth[clean.area_truth["feeder_id"] == row["true_feeder_id"]]
        dedicated = truth[
            (truth["role"] == "customer")
            & truth["true_area_id"].isna()
            & (truth["true_feeder_id"] == row["true_feeder_id"])
        ]
        downstream = areas["supply_kwh"].sum() + dedicated["true_kwh"].sum()
        assert 1 - downstream / row["true_kwh"] == pytest.approx(
            row["technical_loss_rate"], abs=1e-4
        )


def test_registers_only_rise_except_at_rollover(clean: SyntheticGrid) -> None:
    w = wide(clean)
    truth = clean.meter_truth.set_index("meter_id")
    steps = w.diff().iloc[1:]
    falls = (steps < 0).sum()
    rollover = truth.index[truth["rollover"]]
    assert len(rollover) == BASE.rollover_meters == clean.summary["rollover_wraps"]
    assert (falls.drop(rollover) == 0).all()
    assert (falls.loc[rollover] == 1).all()
    for meter_id in rollover:
        col = w[meter_id]
        assert truth.loc[meter_id, "register_max"] == 1e5
        before = col[col.diff() < 0].index[0]
        assert col.shift(1).loc[before] > 0.9 * 1e5 and col.loc[before] < 0.1 * 1e5
    # Registers are rounded like a meter display.
    values = w.to_numpy().ravel()
    assert np.allclose(values, np.round(values, 2), atol=1e-9, rtol=0)


def test_meter_customer_loads_look_like_their_class(clean: SyntheticGrid) -> None:
    w = wide(clean)
    topo = clean.topology.set_index("meter_id")
    inc = w.diff().iloc[1:].clip(lower=0) * topo["multiplier"].loc[w.columns]
    hours = pd.DatetimeIndex(inc.index).hour
    for cls, peak_hours, quiet_hours in (
        ("residential", [19, 20, 21], [2, 3, 4]),
        ("commercial", [10, 11, 14, 15], [2, 3, 4]),
    ):
        members = topo.index[(topo["customer_class"] == cls) & topo["area_id"].notna()]
        total = inc[members].sum(axis=1)
        assert total[hours.isin(peak_hours)].mean() > 1.8 * total[hours.isin(quiet_hours)].mean()
    per_day = inc[topo.index[topo["customer_class"] == "residential"]].sum() / (BASE.days - 0.01)
    assert 2.0 < per_day.median() < 15.0  # kWh per household and day


# --- injected cases ----------------------------------------------------------------


def test_theft_lowers_recorded_energy_only_after_start(
    grid: SyntheticGrid, clean: SyntheticGrid
) -> None:
    w, wc = wide(grid), wide(clean)
    truth = grid.meter_truth.set_index("meter_id")
    thieves = grid.labels[grid.labels["label"] == "theft"]
    d, dc = increments(grid, w), increments(clean, wc)
    for _, row in thieves.iterrows():
        inc, inc_clean = d[row.meter_id], dc[row.meter_id]
        before, after = inc.index <= row.start, inc.index > row.start
        # Same loads, same meter, same initial register: identical until the theft starts.
        assert np.array_equal(w.loc[before, row.meter_id], wc.loc[before, row.meter_id])
        lost = (inc_clean[after].sum() - inc[after].sum()) * truth.loc[
            row.meter_id, "true_multiplier"
        ]
        if row.kind in ("h5", "h6"):  # shape attacks keep the daily total ...
            assert abs(lost) < 0.05 + 1e-3 * inc_clean[after].sum()
            assert row.stolen_kwh == pytest.approx(0, abs=1e-3)
            assert not np.allclose(inc[after], inc_clean[after], atol=0.011)  # ... not the shape
        else:
            assert row.stolen_kwh > 0 and lost > 0
            assert lost == pytest.approx(row.stolen_kwh, rel=0.015, abs=0.05)
    # The area meters see true consumption: theft does not change them at all.
    area_meters = grid.topology.loc[grid.topology["role"] == "area", "meter_id"]
    assert np.array_equal(w[area_meters], wc[area_meters])


def test_theft_shapes(grid: SyntheticGrid, clean: SyntheticGrid) -> None:
    w, wc = wide(grid), wide(clean)
    labels = grid.labels.set_index("meter_id")

    def day_after(kind: str) -> tuple[pd.Series, pd.Series]:
        row = labels[labels["kind"] == kind].iloc[0]
        day = (w.index > row.start) & (w.index <= row.start + pd.Timedelta(days=1))
        mid = row.name
        return w[mid].diff()[day], wc[mid].diff()[day]

    flat, _ = day_after("h5")
    assert flat.max() - flat.min() <= 0.02  # a flat day, up to register rounding
    rev, orig = day_after("h6")
    assert rev.sum() == pytest.approx(orig.sum(), abs=0.02)
    # Each reading is the original of the mirrored time, up to register rounding and gain.
    mirrored = orig.to_numpy()[::-1]
    assert np.abs(rev.to_numpy() - mirrored).max() <= 0.02 + 0.011 * mirrored.max()
    zeroed, orig = day_after("h2")
    assert (zeroed == 0).sum() >= 12  # at least 3 h of zero readings
    assert (zeroed == 0).sum() > (orig == 0).sum()


def test_meter_fault_signatures(grid: SyntheticGrid, clean: SyntheticGrid) -> None:
    w, wc = wide(grid), wide(clean)
    labels = grid.labels.set_index("meter_id")
    faults = labels[labels["label"] == "meter_fault"]
    for mid, row in faults.iterrows():
        after = w.index > row.start
        col = w[mid]
        if row.kind == "stuck":
            assert col[after].nunique() == 1 and col[after].iloc[0] > 0
            assert row.stolen_kwh > 0
        elif row.kind == "zero":
            assert (col[after] == 0).all() and (col[~after] > 0).all()
        elif row.kind == "step_back":
            falls = col.diff() < 0
            assert falls.sum() == 1 and col.index[falls][0] == row.start + pd.Timedelta(minutes=15)
            assert (col.diff()[after].iloc[1:] >= 0).all()
        elif row.kind == "clock_drift":
            ts = grid.readings.loc[grid.readings["meter_id"] == mid, "ts"]
            off_grid = ts[(ts.dt.minute % 15 != 0) | (ts.dt.second != 0)]
            assert len(off_grid) > 0 and (off_grid > row.start).all()
            assert row.stolen_kwh == 0
    # A wrong multiplier leaves the register alone but bills a multiple of the truth.
    truth = grid.meter_truth.set_index("meter_id")
    topo = grid.topology.set_index("meter_id")
    wrong = faults.index[faults["kind"] == "wrong_multiplier"]
    assert len(wrong) >= 1
    for mid in wrong:
        assert np.array_equal(w[mid], wc[mid])
        factor = topo.loc[mid, "multiplier"] / truth.loc[mid, "true_multiplier"]
        assert factor in (2.0, 5.0, 10.0, 0.5)
        assert truth.loc[mid, "registry_multiplier"] == topo.loc[mid, "multiplier"]
        true_kwh = truth.loc[mid, "true_kwh"]
        assert labels.loc[mid, "stolen_kwh"] == pytest.approx((1 - factor) * true_kwh, rel=0.02)
    normal = truth.index[truth.index.isin(labels.index[labels["label"] == "normal"])]
    assert (truth.loc[normal, "true_multiplier"] == topo.loc[normal, "multiplier"]).all()


def test_voltage_and_phase_loss_scale_the_voltage_and_the_energy_from_their_start() -> None:
    """Optional fault kinds: from its start the meter sees a share of its voltage
    (about 2/3 with a phase of three lost) and records that share of its energy;
    its clean twin shows the truth."""
    cfg = dataclasses.replace(
        BASE, fault_fraction=0.06, fault_kinds=("voltage_loss", "phase_loss"), theft_fraction=0.0
    )
    g, gc = generate_grid(cfg), generate_grid(cfg.clean())
    labels = g.labels.set_index("meter_id")
    faults = labels[labels["label"] == "meter_fault"]
    assert set(faults["kind"]) == {"voltage_loss", "phase_loss"}
    v, vc = wide(g, "voltage_v"), wide(gc, "voltage_v")
    inc, inc_c = increments(g, wide(g)), increments(gc, wide(gc))
    for mid, row in faults.iterrows():
        after = v.index > row.start + pd.Timedelta(minutes=15)
        share = (v[mid] / vc[mid])[after]
        lo, hi = (0.62, 0.70) if row.kind == "phase_loss" else (0.05, 0.45)
        assert np.allclose(share, share.iloc[0]) and lo <= share.iloc[0] <= hi
        assert np.allclose((v[mid] / vc[mid])[v.index <= row.start], 1.0)
        recorded = inc[mid][after].sum() / inc_c[mid][after].sum()
        assert recorded == pytest.approx(share.iloc[0], rel=0.02)
        assert row.stolen_kwh > 0


def test_topology_errors_point_to_a_different_true_area(grid: SyntheticGrid) -> None:
    labels = grid.labels
    mis = labels[labels["label"] == "topology_error"]
    assert len(mis) == grid.summary["topology_error"] >= 1
    assert (mis["kind"] == "wrong_area").all()
    assert (mis["true_area_id"] != mis["recorded_area_id"]).all()
    topo = grid.topology.set_index("meter_id")
    assert (topo.loc[mis["meter_id"], "area_id"].to_numpy() == mis["recorded_area_id"]).all()
    counts = grid.area_truth.set_index("area_id")
    assert counts["customers"].sum() == counts["customers_recorded"].sum()
    assert (counts["customers"] != counts["customers_recorded"]).any()
    # Voltage follows the physical transformer, not the registry.
    dv = wide(grid, "voltage_v").diff()
    checked = 0
    for _, row in mis.iterrows():
        true_m, rec_m = "M-" + row.true_area_id, "M-" + row.recorded_area_id
        if true_m in dv and rec_m in dv:
            assert dv[row.meter_id].corr(dv[true_m]) > dv[row.meter_id].corr(dv[rec_m]) + 0.2
            checked += 1
    assert checked >= 1


def test_events(grid: SyntheticGrid) -> None:
    events = grid.readings.dropna(subset=["event"])
    assert set(events["event"].astype(str)) <= EVENTS
    assert len(events) == grid.summary["events"] > 0
    thieves = grid.labels.loc[grid.labels["label"] == "theft"].set_index("meter_id")
    theirs = events[events["meter_id"].isin(thieves.index)].copy()
    theirs["start"] = thieves["start"].reindex(theirs["meter_id"].astype(str)).to_numpy()
    tamper = theirs[theirs["event"].isin(["cover_open", "magnetic"])]
    lag = tamper["ts"] - tamper["start"]
    # Some, not all, thieves raise a tamper event within two days of the start.
    raised = tamper.loc[(lag > pd.Timedelta(0)) & (lag <= pd.Timedelta(days=2)), "meter_id"]
    assert 1 <= raised.nunique() < len(thieves)
    # Normal meters raise only a few false events.
    normal = grid.labels.loc[grid.labels["label"] == "normal", "meter_id"]
    false_rate = events["meter_id"].isin(normal).sum() / (len(normal) * BASE.days)
    assert false_rate < 0.01


def test_voltages_are_plausible(grid: SyntheticGrid) -> None:
    r = grid.readings
    roles = grid.topology.set_index("meter_id")["role"]
    v = r["voltage_v"].to_numpy()
    role = roles.reindex(r["meter_id"].astype(str)).to_numpy()
    lv = v[role != "feeder"]
    lv = lv[~np.isnan(lv)]
    assert np.percentile(lv, 1) > 205 and np.percentile(lv, 99) < 240
    assert np.isnan(v[role == "feeder"]).all()


# --- reading modes -----------------------------------------------------------------


def test_daily_mode_reads_once_a_day_at_local_midnight() -> None:
    cfg = dataclasses.replace(BASE, daily=True, days=20)
    g = generate_grid(cfg)
    r = g.readings
    drift = g.labels.loc[g.labels["kind"] == "clock_drift", "meter_id"]
    steady = r[~r["meter_id"].isin(drift)]
    assert (steady["ts"] == steady["ts"].dt.normalize()).all()
    assert str(steady["ts"].dt.tz) == "Asia/Shanghai"
    per_meter = r.groupby("meter_id", observed=True).size()
    assert (per_meter == 20).all() and len(per_meter) == g.summary["meters"]
    days = steady["ts"].dt.strftime("%Y-%m-%d").unique()
    assert days[0] == "2026-03-02" and len(days) == 20  # readings at the END of each day
    # Frozen values are collected after midnight, minutes to hours later.
    lag_h = (r["received_at"] - r["ts"]).dt.total_seconds() / 3600
    assert lag_h[~r["meter_id"].isin(drift)].between(10 / 60, 10).all()


def test_interval_mode_matches_register_mode(clean: SyntheticGrid) -> None:
    g = generate_grid(dataclasses.replace(BASE.clean(), reading_kind="interval"))
    assert "interval_kwh" in g.readings and "register_kwh" not in g.readings
    w = wide(g, "interval_kwh")
    energy = register_energy(clean, wide(clean))
    # The registers see energy from the first reading on, the intervals from the start.
    from_intervals = w.iloc[1:].sum()
    rel = (from_intervals - energy.loc[from_intervals.index]).abs() / energy.loc[
        from_intervals.index
    ].clip(lower=1)
    assert (rel < 0.01).all()
    assert (w.to_numpy() >= 0).all()


def test_dst_time_zone_has_short_and_long_days() -> None:
    cfg = dataclasses.replace(
        BASE.clean(), tz="Europe/Berlin", start="2026-03-28", days=3, n_feeders=1
    )
    g = generate_grid(cfg)
    r = g.readings
    one = r[r["meter_id"] == g.topology["meter_id"].iloc[0]]
    assert len(one) == 96 + 92 + 96  # summer time starts on 2026-03-29
    offsets = one["ts"].map(lambda t: t.utcoffset()).value_counts()
    # 00:15..01:45 on the 29th are still +01:00; 02:00 CET is already 03:00+02:00.
    assert offsets[pd.Timedelta(hours=1)] == 96 + 7 and offsets[pd.Timedelta(hours=2)] == 181
    assert one["ts"].iloc[-1] == pd.Timestamp("2026-03-31", tz="Europe/Berlin")


# --- data quality ------------------------------------------------------------------


def test_readings_arrive_in_received_order(noisy: SyntheticGrid) -> None:
    recv = noisy.readings["received_at"]
    assert recv.is_monotonic_increasing
    s = noisy.summary
    assert s["failed_batches"] > 0 and s["late_rows"] > 0 and s["offline_meters"] > 0
    lag = (recv - noisy.readings["ts"]).dt.total_seconds() / 60
    normal = lag[noisy.readings["ts"].dt.year < 2030]
    assert normal.median() < 15  # minutes, for most batches
    assert normal.max() > 120  # re-collected hours later


def test_gaps_and_duplicates(noisy: SyntheticGrid) -> None:
    r = noisy.readings
    s = noisy.summary
    known = r[r["meter_id"].isin(noisy.topology["meter_id"]) & (r["register_kwh"] >= 0)]
    keys = known[["meter_id", "ts"]].astype(str)
    dups = known[keys.duplicated(keep=False)]
    assert keys.duplicated().sum() == s["duplicates"] > 0
    # Copies repeat the whole reading; only some arrive later than the original.
    payload = dups.drop(columns="received_at").astype(str)
    assert len(payload.drop_duplicates()) == len(dups) // 2
    assert dups.duplicated().sum() == s["duplicates"] - s["duplicates_resent_later"]
    assert 0 < s["duplicates_resent_later"] < s["duplicates"]
    expected = s["expected_readings"] - s["missing_rows"] + s["duplicates"]
    typed_bad = s["bad_unknown_meter"] + s["bad_negative_value"] + s["bad_future_ts"]
    assert len(r) == expected + typed_bad


def test_bad_rows_reach_the_csv(noisy: SyntheticGrid, tmp_path: Path) -> None:
    write_grid(noisy, tmp_path)
    text = (tmp_path / "readings.csv").read_text()
    lines = text.splitlines()
    s = noisy.summary
    assert lines[0] == "meter_id,ts,register_kwh,voltage_v,event,received_at"
    raw = noisy.bad_rows
    assert len(raw) == s["bad_malformed_ts"] + s["bad_non_numeric"] == 4
    malformed = raw.loc[raw["problem"] == "malformed_ts", "ts"]
    non_numeric = raw.loc[raw["problem"] == "non_numeric", "register_kwh"]
    for bad in list(malformed) + list(non_numeric):
        assert sum(f",{bad}," in line for line in lines) >= 1
    assert len(lines) == 1 + len(noisy.readings) + len(raw)
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    unknown = ~frame["meter_id"].isin(noisy.topology["meter_id"])
    assert unknown.sum() == s["bad_unknown_meter"] == 2
    values = pd.to_numeric(frame["register_kwh"], errors="coerce")
    assert values.isna().sum() == s["bad_non_numeric"]
    assert (values < 0).sum() == s["bad_negative_value"]
    ts = pd.to_datetime(frame["ts"], errors="coerce", utc=True, format="ISO8601")
    assert ts.isna().sum() >= 1
    assert (ts.dt.year > 2026).sum() == s["bad_future_ts"]
    recv = pd.to_datetime(frame["received_at"], utc=True, format="ISO8601")
    assert recv.is_monotonic_increasing
    assert frame["ts"].iloc[0].endswith("+08:00") and "T" in frame["ts"].iloc[0]


def test_write_formats(grid: SyntheticGrid, tmp_path: Path) -> None:
    write_grid(grid, tmp_path, fmt="parquet")
    assert not (tmp_path / "readings.csv").exists()
    back = pd.read_parquet(tmp_path / "readings.parquet")
    assert len(back) == len(grid.readings)
    assert str(back["ts"].dt.tz) == "Asia/Shanghai"
    assert np.array_equal(back["register_kwh"].to_numpy(), grid.readings["register_kwh"].to_numpy())
    labels = pd.read_csv(tmp_path / "labels.csv", dtype={"start": str})
    starts = labels["start"].dropna()
    assert starts.str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$").all()
    topo = pd.read_csv(tmp_path / "topology.csv")
    assert list(topo.columns) == list(grid.topology.columns)
    assert topo["multiplier"].dtype == np.float64
    with pytest.raises(ValueError, match="fmt"):
        write_grid(grid, tmp_path, fmt="xlsx")


# --- configuration -----------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"days": 0},
        {"interval_minutes": 7},
        {"reading_kind": "power"},
        {"theft_fraction": 1.5},
        {"customers_per_area": (10, 5)},
        {"tz": "Mars/Olympus"},
        {"start": "March 1st"},
        {"theft_kinds": ("h9",)},
        {"technical_loss_range": (0.05, 0.02)},
    ],
)
def test_invalid_config_is_rejected(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(BASE, **change)  # type: ignore[arg-type]


def test_clean_twin_has_nothing_injected(clean: SyntheticGrid) -> None:
    s = clean.summary
    assert s["theft"] == s["meter_fault"] == s["topology_error"] == 0
    assert s["missing_rows"] == s["duplicates"] == s["events"] == 0
    assert len(clean.bad_rows) == 0
    assert len(clean.readings) == s["expected_readings"]


def test_a_vacant_home_keeps_its_fridge_and_loses_its_shape() -> None:
    """With nobody in, a home runs on at about its usual lowest level (fridge,
    standby), every hour alike: its empty days keep their lowest hours, lose their
    evening peak. (Until session 16 a vacancy scaled the lived-in day to 0.5-5 %,
    the signature of a shunt bypass, not of an empty house.)"""
    g = generate_grid(dataclasses.replace(BASE.clean(), vacancy_fraction=0.5, days=28))
    topo = g.topology.set_index("meter_id")
    truth = g.meter_truth.set_index("meter_id")
    homes = topo.index[topo["customer_class"] == "residential"]
    vacant = [m for m in homes if bool(truth.loc[m, "vacant"])]
    w = wide(g)
    inc = w.diff().iloc[1:].clip(lower=0) * topo["multiplier"].loc[w.columns]
    hourly = inc.resample("1h").sum()
    checked = 0
    for m in vacant:
        days = hourly[m].groupby(hourly.index.date)
        whole = days.size() == 24
        total, peak = days.sum()[whole], days.max()[whole]
        lowest = days.apply(lambda d: d.nsmallest(4).mean())[whole]
        usual = total.median()
        empty = total < 0.5 * usual
        if empty.sum() < 2 or (~empty).sum() < 5:
            continue
        checked += 1
        # its lowest hours kept (about), its peak gone to near its own mean
        assert lowest[empty].median() >= 0.6 * lowest[~empty].median()
        assert (peak[empty] / (total[empty] / 24)).median() < 2.0
        assert (peak[~empty] / (total[~empty] / 24)).median() > 2.0
    assert checked >= 3


def test_a_reversed_meter_runs_its_register_backwards_by_what_it_is_used() -> None:
    """Optional fault kind: from its start the register falls by what its clean twin
    rises; the unbilled energy is all of it, since a register falling bills zero."""
    cfg = dataclasses.replace(
        BASE, fault_fraction=0.03, fault_kinds=("reverse_energy",), theft_fraction=0.0
    )
    g, gc = generate_grid(cfg), generate_grid(cfg.clean())
    labels = g.labels.set_index("meter_id")
    faults = labels[labels["label"] == "meter_fault"]
    assert len(faults) >= 1 and set(faults["kind"]) == {"reverse_energy"}
    w, wc = wide(g), wide(gc)
    inc, inc_c = increments(g, w), increments(gc, wc)
    truth = g.meter_truth.set_index("meter_id")
    for mid, row in faults.iterrows():
        after = w.index > row.start + pd.Timedelta(minutes=15)
        assert np.allclose(inc[mid][after], -inc_c[mid][after], atol=0.011)
        assert np.allclose(w[mid][w.index <= row.start], wc[mid][w.index <= row.start])
        used_after = inc_c[mid][w.index > row.start].sum() * truth.loc[mid, "true_multiplier"]
        assert row.stolen_kwh == pytest.approx(used_after, rel=0.02, abs=0.05)
