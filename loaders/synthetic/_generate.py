"""generate_grid: wire the parts together and build the contract frames."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from loaders.synthetic._anomalies import LABELS, THEFT, Anomalies, inject
from loaders.synthetic._assemble import assemble
from loaders.synthetic._config import CUSTOMER_CLASSES, SyntheticGrid, SyntheticGridConfig
from loaders.synthetic._layout import Layout, make_layout
from loaders.synthetic._load import Consumption, make_consumption
from loaders.synthetic._meters import (
    ROLE_AREA,
    ROLE_CUSTOMER,
    ROLE_FEEDER,
    ROLE_NAMES,
    Meters,
    build_meters,
)
from loaders.synthetic._physics import (
    NetworkPhysics,
    customer_multipliers,
    network_physics,
    voltages,
)
from loaders.synthetic._time import TimeGrid, make_time_grid, to_timestamps

# Each part of the model draws from its own stream, so switching one part on or off
# (say, thieves) leaves every other part of the grid exactly as it was.
_STREAMS = {
    "layout": 1,
    "load": 2,
    "physics": 3,
    "anomalies": 4,
    "anomaly_events": 5,
    "gain": 6,
    "registers": 7,
    "voltage": 8,
    "events": 9,
    "quality": 10,
}
_NAT = np.iinfo(np.int64).min


def _rng(seed: int, part: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _STREAMS[part]]))


def generate_grid(config: SyntheticGridConfig) -> SyntheticGrid:
    """Generate a synthetic distribution grid and its readings; pure and seeded.

    The same ``config`` always gives identical frames. No clock, files or global state
    are touched; ``write_grid`` writes the result.
    """
    if config.seed < 0:
        raise ValueError("seed must be >= 0")
    grid = make_time_grid(
        config.start, config.days, config.tz, config.interval_minutes, config.daily
    )
    layout = make_layout(config, _rng(config.seed, "layout"))
    cons = make_consumption(config, layout, grid, _rng(config.seed, "load"))
    cust_mult = customer_multipliers(layout, cons)
    phys = network_physics(config, layout, grid, cons.energy_kwh, _rng(config.seed, "physics"))
    anomalies = inject(
        config,
        layout,
        grid,
        cons.energy_kwh,
        cust_mult,
        cons.vacant,
        cons.mean_kw,
        _rng(config.seed, "anomalies"),
        _rng(config.seed, "anomaly_events"),
    )
    meters = build_meters(
        config,
        layout,
        grid,
        cons,
        cust_mult,
        phys,
        anomalies,
        _rng(config.seed, "gain"),
        _rng(config.seed, "registers"),
    )
    volts = (
        voltages(layout, grid, cons.energy_kwh, cons.peak_kw, phys, _rng(config.seed, "voltage"))
        if config.with_voltage
        else None
    )
    assembled = assemble(
        config,
        layout,
        grid,
        meters,
        anomalies,
        volts,
        _rng(config.seed, "events"),
        _rng(config.seed, "quality"),
    )
    summary = _summary(config, layout, grid, cons, phys, anomalies, meters)
    summary.update(assembled.summary)
    return SyntheticGrid(
        topology=_topology(config, layout, meters, anomalies, cons, phys),
        readings=assembled.readings,
        labels=_labels(config, layout, grid, meters, anomalies),
        summary=summary,
        bad_rows=assembled.bad_rows,
        meter_truth=_meter_truth(layout, meters, cons, phys),
        area_truth=_area_truth(layout, phys, anomalies),
        config=config,
    )


def _names(ids: npt.NDArray[np.object_], index: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
    """ids[index], None where index < 0."""
    out = np.full(len(index), None, dtype=object)
    ok = index >= 0
    out[ok] = ids[index[ok]]
    return out


def _customer_view(meters: Meters) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    is_c = meters.role == ROLE_CUSTOMER
    return is_c, meters.source[is_c]


def _topology(
    cfg: SyntheticGridConfig,
    layout: Layout,
    meters: Meters,
    anomalies: Anomalies,
    cons: Consumption,
    phys: NetworkPhysics,
) -> pd.DataFrame:
    m = meters.n_meters
    role, src = meters.role, meters.source
    is_c, c_src = _customer_view(meters)
    is_a, is_f = role == ROLE_AREA, role == ROLE_FEEDER
    area = np.full(m, -1, dtype=np.int64)
    area[is_c] = anomalies.recorded_area[c_src]
    area[is_a] = src[is_a]
    feeder = np.full(m, -1, dtype=np.int64)
    feeder[is_f] = src[is_f]
    feeder[is_a] = layout.area_feeder[src[is_a]]
    rec = anomalies.recorded_area[c_src]
    feeder[is_c] = np.where(
        rec >= 0, layout.area_feeder[np.maximum(rec, 0)], layout.cust_feeder[c_src]
    )
    cls = np.full(m, None, dtype=object)
    cls[is_c] = np.array(CUSTOMER_CLASSES, dtype=object)[layout.cust_class[c_src]]
    phase = np.full(m, None, dtype=object)
    single = np.flatnonzero(is_c)[~cons.three_phase[c_src]]
    phase[single] = np.array(["A", "B", "C"], dtype=object)[
        layout.cust_phase[meters.source[single]]
    ]
    per = cfg.feeders_per_substation or len(layout.feeder_ids)
    substation = np.full(m, None, dtype=object)
    substation[is_f] = [f"SS{f // per + 1:02d}" for f in src[is_f]]
    name = np.full(m, None, dtype=object)
    name[is_f] = [f"10 kV feeder {f}" for f in layout.feeder_ids[src[is_f]]]
    name[is_a] = [f"{layout.area_ids[a]} transformer {phys.area_kva[a]:.0f} kVA" for a in src[is_a]]
    return pd.DataFrame(
        {
            "meter_id": meters.meter_ids,
            "role": np.array(ROLE_NAMES, dtype=object)[role],
            "area_id": _names(layout.area_ids, area),
            "feeder_id": _names(layout.feeder_ids, feeder),
            "multiplier": meters.registry_multiplier.astype(np.float64),
            "customer_class": cls,
            "substation_id": substation,
            "phase": phase,
            "name": name,
        }
    )


def _labels(
    cfg: SyntheticGridConfig, layout: Layout, grid: TimeGrid, meters: Meters, anomalies: Anomalies
) -> pd.DataFrame:
    is_c, c_src = _customer_view(meters)
    s = anomalies.start_step[c_src]
    start_ns = np.where(s >= 0, grid.t0_ns + s * grid.step_ns, _NAT)
    kind = anomalies.kind[c_src].copy()
    kind[kind == ""] = None
    return pd.DataFrame(
        {
            "meter_id": meters.meter_ids[is_c],
            "label": np.array(LABELS, dtype=object)[anomalies.label[c_src]],
            "start": to_timestamps(start_ns, cfg.tz),
            "kind": kind,
            "true_area_id": _names(layout.area_ids, layout.cust_area[c_src]),
            "recorded_area_id": _names(layout.area_ids, anomalies.recorded_area[c_src]),
            "stolen_kwh": np.round(anomalies.stolen_kwh[c_src], 3) + 0.0,  # no -0.0
        }
    )


def _meter_truth(
    layout: Layout, meters: Meters, cons: Consumption, phys: NetworkPhysics
) -> pd.DataFrame:
    m = meters.n_meters
    role, src = meters.role, meters.source
    is_c, c_src = _customer_view(meters)
    is_a, is_f = role == ROLE_AREA, role == ROLE_FEEDER
    area = np.full(m, -1, dtype=np.int64)
    area[is_c] = layout.cust_area[c_src]
    area[is_a] = src[is_a]
    feeder = np.full(m, -1, dtype=np.int64)
    feeder[is_c] = layout.cust_feeder[c_src]
    feeder[is_a] = layout.area_feeder[src[is_a]]
    feeder[is_f] = src[is_f]
    vacant = np.zeros(m, dtype=np.bool_)
    vacant[is_c] = cons.vacant[c_src]
    loss_rate = np.full(m, np.nan)
    loss_rate[is_a] = phys.area_loss_rate[src[is_a]]
    loss_rate[is_f] = phys.feeder_loss_rate[src[is_f]]
    return pd.DataFrame(
        {
            "meter_id": meters.meter_ids,
            "role": np.array(ROLE_NAMES, dtype=object)[role],
            "true_area_id": _names(layout.area_ids, area),
            "true_feeder_id": _names(layout.feeder_ids, feeder),
            "true_multiplier": meters.true_multiplier,
            "registry_multiplier": meters.registry_multiplier,
            "register_max": meters.register_max,
            "initial_register": meters.initial_register,
            "rollover": meters.rollover,
            "vacant": vacant,
            "true_kwh": np.round(meters.true_kwh, 3),
            "billed_kwh": np.round(meters.billed_kwh, 3),
            "technical_loss_rate": np.round(loss_rate, 5),
        }
    )


def _area_truth(layout: Layout, phys: NetworkPhysics, anomalies: Anomalies) -> pd.DataFrame:
    lv_area = layout.cust_area[layout.cust_area >= 0]
    rec = anomalies.recorded_area[anomalies.recorded_area >= 0]
    return pd.DataFrame(
        {
            "area_id": layout.area_ids,
            "feeder_id": layout.feeder_ids[layout.area_feeder],
            "has_meter": layout.area_has_meter,
            "transformer_kva": phys.area_kva,
            "no_load_kw": np.round(phys.area_no_load_kw, 4),
            "technical_loss_rate": np.round(phys.area_loss_rate, 5),
            "consumption_kwh": np.round(phys.area_load_kwh.sum(axis=1), 3),
            "technical_loss_kwh": np.round(phys.area_loss_kwh.sum(axis=1), 3),
            "supply_kwh": np.round(phys.area_supply_kwh.sum(axis=1), 3),
            "customers": np.bincount(lv_area, minlength=layout.n_areas),
            "customers_recorded": np.bincount(rec, minlength=layout.n_areas),
        }
    )


def _summary(
    cfg: SyntheticGridConfig,
    layout: Layout,
    grid: TimeGrid,
    cons: Consumption,
    phys: NetworkPhysics,
    anomalies: Anomalies,
    meters: Meters,
) -> dict[str, int | float]:
    out: dict[str, int | float] = {
        "seed": cfg.seed,
        "days": grid.n_days,
        "feeders": layout.n_feeders,
        "areas": layout.n_areas,
        "areas_without_meter": int(np.count_nonzero(~layout.area_has_meter)),
        "customers": layout.n_customers,
        "dedicated_customers": int(np.count_nonzero(layout.cust_dedicated)),
        "meters": meters.n_meters,
        "vacant_customers": int(cons.vacant.sum()),
        "ct_customers": int(
            np.count_nonzero(meters.true_multiplier[meters.role == ROLE_CUSTOMER] > 1)
        ),
        "rollover_meters": int(meters.rollover.sum()),
        "rollover_wraps": meters.rollover_wraps,
        "mean_area_loss_rate": round(float(phys.area_loss_rate.mean()), 5),
        "mean_feeder_loss_rate": round(float(phys.feeder_loss_rate.mean()), 5),
    }
    for i, name in enumerate(LABELS):
        out[name] = int(np.count_nonzero(anomalies.label == i))
    kinds, counts = np.unique(anomalies.kind[anomalies.kind != ""].astype(str), return_counts=True)
    for k, c in zip(kinds.tolist(), counts.tolist(), strict=True):
        out[f"kind_{k}"] = int(c)
    out["stolen_kwh_theft"] = round(float(anomalies.stolen_kwh[anomalies.label == THEFT].sum()), 3)
    return out
