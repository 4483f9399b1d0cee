"""From physical energy to what meters report: meter order, registers, interval energy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loaders.synthetic._anomalies import Anomalies
from loaders.synthetic._config import SyntheticGridConfig
from loaders.synthetic._layout import RESIDENTIAL, Layout
from loaders.synthetic._load import Consumption
from loaders.synthetic._physics import NetworkPhysics
from loaders.synthetic._time import TimeGrid

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

ROLE_CUSTOMER, ROLE_AREA, ROLE_FEEDER = 0, 1, 2
ROLE_NAMES = ("customer", "area", "feeder")
CUSTOMER_GAIN_SD = 0.003  # per-meter accuracy of customer meters
AREA_GAIN_SD = 0.001
FEEDER_GAIN_SD = 0.0005
STEP_ACCURACY_SD = 0.002  # per-reading noise of area and feeder meters
INTERVAL_DECIMALS = 3  # interval_kwh resolution [kWh]


@dataclass(frozen=True)
class Meters:
    """All meters with readings, in topology order (feeder, its areas, their customers...)."""

    role: IntArray  # (M,)
    source: IntArray  # (M,) customer row, area index or feeder index
    meter_ids: npt.NDArray[np.object_]  # (M,)
    true_multiplier: FloatArray
    registry_multiplier: FloatArray
    register_max: FloatArray
    initial_register: FloatArray
    rollover: npt.NDArray[np.bool_]
    true_kwh: FloatArray  # physical energy through the meter point over the period
    billed_kwh: FloatArray  # what the meter's records say, with the registry multiplier
    values: FloatArray  # (M, R) register [kWh before multiplier] or interval [kWh after]
    rollover_wraps: int

    @property
    def n_meters(self) -> int:
        return len(self.role)


def meter_order(layout: Layout, anomalies: Anomalies) -> tuple[IntArray, IntArray]:
    """Role and source index of each meter, in the order topology.csv lists them."""
    n_f, n_a, n_c = layout.n_feeders, layout.n_areas, layout.n_customers
    metered = np.flatnonzero(layout.area_has_meter)
    id_rank = np.empty(n_c, dtype=np.int64)
    id_rank[np.argsort(layout.cust_ids.astype(str), kind="stable")] = np.arange(n_c)
    rec = anomalies.recorded_area
    cust_feeder = np.where(rec >= 0, layout.area_feeder[np.maximum(rec, 0)], layout.cust_feeder)
    feeder_k = np.concatenate([np.arange(n_f), layout.area_feeder[metered], cust_feeder])
    area_k = np.concatenate([np.full(n_f, -1), metered, np.where(rec >= 0, rec, n_a)])
    rank_k = np.concatenate([np.zeros(n_f + len(metered), dtype=np.int64), 1 + id_rank])
    role = np.concatenate(
        [np.full(n_f, ROLE_FEEDER), np.full(len(metered), ROLE_AREA), np.full(n_c, ROLE_CUSTOMER)]
    ).astype(np.int64)
    source = np.concatenate([np.arange(n_f), metered, np.arange(n_c)]).astype(np.int64)
    order = np.lexsort((rank_k, area_k, feeder_k))
    return role[order], source[order]


def build_meters(
    cfg: SyntheticGridConfig,
    layout: Layout,
    grid: TimeGrid,
    cons: Consumption,
    cust_multiplier: FloatArray,
    phys: NetworkPhysics,
    anomalies: Anomalies,
    gain_rng: np.random.Generator,
    register_rng: np.random.Generator,
) -> Meters:
    role, source = meter_order(layout, anomalies)
    m = len(role)
    n_t = grid.n_steps
    is_c, is_a, is_f = role == ROLE_CUSTOMER, role == ROLE_AREA, role == ROLE_FEEDER
    c_src, a_src, f_src = source[is_c], source[is_a], source[is_f]

    ids = np.empty(m, dtype=object)
    ids[is_c] = layout.cust_ids[c_src]
    ids[is_a] = np.array([f"M-{a}" for a in layout.area_ids[a_src]], dtype=object)
    ids[is_f] = np.array([f"M-{f}" for f in layout.feeder_ids[f_src]], dtype=object)
    true_mult = np.empty(m)
    true_mult[is_c] = cust_multiplier[c_src]
    true_mult[is_a] = phys.area_multiplier[a_src]
    true_mult[is_f] = phys.feeder_multiplier[f_src]
    registry = true_mult.copy()
    registry[is_c] = anomalies.registry_multiplier[c_src]

    # Gains are drawn per role in a fixed order so they do not depend on the anomalies.
    c_gain = np.clip(gain_rng.normal(0, CUSTOMER_GAIN_SD, layout.n_customers), -0.01, 0.01)
    a_gain = gain_rng.normal(0, AREA_GAIN_SD, layout.n_areas)
    f_gain = gain_rng.normal(0, FEEDER_GAIN_SD, layout.n_feeders)
    a_noise = gain_rng.normal(0, STEP_ACCURACY_SD, (layout.n_areas, n_t))
    f_noise = gain_rng.normal(0, STEP_ACCURACY_SD, (layout.n_feeders, n_t))

    field = np.empty((m, n_t))
    field[is_c] = anomalies.metered_kwh[c_src] * (1.0 + c_gain[c_src])[:, None]
    field[is_a] = phys.area_supply_kwh[a_src] * (1.0 + a_gain[a_src][:, None] + a_noise[a_src])
    field[is_f] = phys.feeder_supply_kwh[f_src] * (1.0 + f_gain[f_src][:, None] + f_noise[f_src])
    true_kwh = np.empty(m)
    true_kwh[is_c] = cons.energy_kwh[c_src].sum(axis=1)
    true_kwh[is_a] = phys.area_supply_kwh[a_src].sum(axis=1)
    true_kwh[is_f] = phys.feeder_supply_kwh[f_src].sum(axis=1)
    billed = field.sum(axis=1) * registry / true_mult

    # Register digits: 6 integer digits, 5 on some older residential meters.
    reg_max = np.full(m, 1e6)
    old = (gain_rng.random(layout.n_customers) < 0.3) & (layout.cust_class == RESIDENTIAL)
    reg_max[np.flatnonzero(is_c)[old[c_src]]] = 1e5

    field /= true_mult[:, None]  # register increments [kWh before multiplier]
    if cfg.reading_kind == "interval":
        if len(grid.reading_first_step) == n_t:
            inc_r = field
        else:
            inc_r = np.add.reduceat(field, grid.reading_first_step, axis=1)
        # Differences of the rounded cumulative energy: rounding never accumulates.
        cum_kwh = np.cumsum(inc_r * registry[:, None], axis=1)
        np.round(cum_kwh, INTERVAL_DECIMALS, out=cum_kwh)
        values = np.round(np.diff(cum_kwh, axis=1, prepend=0.0), INTERVAL_DECIMALS)
        del cum_kwh
    np.cumsum(field, axis=1, out=field)
    cum = field
    true_inc = np.empty(m)
    true_inc[is_c] = cons.energy_kwh[c_src].sum(axis=1) / true_mult[is_c]
    true_inc[~is_c] = cum[~is_c, -1]

    # Picked by customer row / area index, so the choice does not move with the meter order.
    pos_of_c = np.empty(layout.n_customers, dtype=np.int64)
    pos_of_c[c_src] = np.flatnonzero(is_c)
    pos_of_a = np.full(layout.n_areas, -1, dtype=np.int64)
    pos_of_a[a_src] = np.flatnonzero(is_a)
    rollover = np.zeros(m, dtype=np.bool_)
    n_roll = cfg.rollover_meters
    if n_roll:
        pool_c = np.flatnonzero(true_inc[pos_of_c] >= 1.0)
        pool_a = np.flatnonzero((pos_of_a >= 0) & (true_inc[np.maximum(pos_of_a, 0)] >= 1.0))
        n_area_roll = 1 if n_roll >= 2 and len(pool_a) else 0
        area_pick = register_rng.choice(pool_a, size=n_area_roll, replace=False)
        n_cust_roll = min(len(pool_c), n_roll - n_area_roll)
        cust_pick = register_rng.choice(pool_c, size=n_cust_roll, replace=False)
        rollover[pos_of_a[area_pick]] = True
        rollover[pos_of_c[cust_pick]] = True
        reg_max[rollover] = 1e5
    # Drawn per customer / area / feeder (not per meter position) so a grid and its
    # clean twin start every register at the same value.
    years = _by_source(register_rng, role, source, layout, 0.2, 6.0)
    wrap_share = _by_source(register_rng, role, source, layout, 0.2, 0.8)
    annual = true_inc / max(grid.n_steps * grid.step_h, 1e-9) * 8760.0
    headroom = np.maximum(0.0, reg_max * 0.999 - 1.5 * np.maximum(true_inc, 0) - 1.0)
    init = np.minimum(years * annual, headroom)
    init = np.where(rollover, reg_max - np.maximum(true_inc, 0.02) * wrap_share, init)
    init = np.round(init, cfg.register_decimals).astype(np.float64)

    rollover_wraps = 0
    if cfg.reading_kind == "register":
        reg = cum[:, grid.reading_last_step] if len(grid.reading_last_step) != n_t else cum
        reg += init[:, None]
        np.round(reg, cfg.register_decimals, out=reg)
        unwrapped_top = reg.max(axis=1)
        np.mod(reg, reg_max[:, None], out=reg)
        np.round(reg, cfg.register_decimals, out=reg)
        rollover_wraps = int(np.count_nonzero(unwrapped_top >= reg_max))
        zero_c = np.full(m, -1, dtype=np.int64)
        zero_c[is_c] = anomalies.zero_from_step[c_src]
        for i in np.flatnonzero(is_c & (zero_c >= 0)):
            reg[i, grid.reading_last_step >= zero_c[i]] = 0.0
        values = reg
    return Meters(
        role=role,
        source=source,
        meter_ids=ids,
        true_multiplier=true_mult,
        registry_multiplier=registry,
        register_max=reg_max,
        initial_register=init,
        rollover=rollover,
        true_kwh=true_kwh,
        billed_kwh=billed,
        values=values,
        rollover_wraps=rollover_wraps,
    )


def _by_source(
    rng: np.random.Generator,
    role: IntArray,
    source: IntArray,
    layout: Layout,
    low: float,
    high: float,
) -> FloatArray:
    """Uniform draws keyed by (role, source index) rather than by meter position."""
    per_role = {
        ROLE_CUSTOMER: rng.uniform(low, high, layout.n_customers),
        ROLE_AREA: rng.uniform(low, high, layout.n_areas),
        ROLE_FEEDER: rng.uniform(low, high, layout.n_feeders),
    }
    out = np.empty(len(role))
    for k, draws in per_role.items():
        sel = role == k
        out[sel] = draws[source[sel]]
    return out
