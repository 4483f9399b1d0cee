"""From per-meter window energies to area (台区) and feeder (馈线) balances.

supply = energy through the area's total meter(s); billed = sum of its customer
meters; loss = supply - billed; loss rate = loss / supply. One level up, a feeder's
head meter is balanced against its area meters and its dedicated-transformer
customers (专变); an area without an area meter contributes its customers instead.

All sums are over fixed-point integers, so they are exact and do not depend on the
order of the meters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lineloss.config import BalanceConfig, LossBand
from lineloss.domain import (
    NO_INDEX,
    UKWH_PER_KWH,
    Balance,
    BalanceLevel,
    BalanceStatus,
    Topology,
)
from streams.energy import MeterWindowEnergy

ROLE_CUSTOMER, ROLE_AREA, ROLE_FEEDER = 0, 1, 2


@dataclass(frozen=True)
class BalanceMembers:
    """Who counts where, precomputed once per topology.

    For each level, ``supply_group`` maps a meter to the balance it supplies (or
    NO_INDEX) and ``billed_group`` to the balance it is billed in.
    """

    area_supply: npt.NDArray[np.int64]
    area_billed: npt.NDArray[np.int64]
    feeder_supply: npt.NDArray[np.int64]
    feeder_billed: npt.NDArray[np.int64]

    @classmethod
    def of(cls, topo: Topology) -> BalanceMembers:
        roles = topo.roles
        area = topo.meter_area.astype(np.int64)
        feeder = topo.meter_feeder.astype(np.int64)
        area_supply = np.where(roles == ROLE_AREA, area, NO_INDEX)
        area_billed = np.where((roles == ROLE_CUSTOMER) & (area != NO_INDEX), area, NO_INDEX)

        n_areas = len(topo.area_ids)
        metered = np.zeros(n_areas, np.bool_)
        metered[area[(roles == ROLE_AREA) & (area != NO_INDEX)]] = True
        area_feeder = topo.area_feeder.astype(np.int64)
        # Feeder of each meter's area, for area meters and for customers of areas
        # without an area meter.
        feeder_of_area = np.where(area != NO_INDEX, area_feeder[np.maximum(area, 0)], NO_INDEX)
        is_area_meter = (roles == ROLE_AREA) & (area != NO_INDEX)
        unmetered_customer = (
            (roles == ROLE_CUSTOMER) & (area != NO_INDEX) & ~metered[np.maximum(area, 0)]
        )
        dedicated = (roles == ROLE_CUSTOMER) & (area == NO_INDEX)
        feeder_billed = np.where(
            is_area_meter | unmetered_customer,
            feeder_of_area,
            np.where(dedicated, feeder, NO_INDEX),
        )
        feeder_supply = np.where(roles == ROLE_FEEDER, feeder, NO_INDEX)
        return cls(area_supply, area_billed, feeder_supply, feeder_billed)


def _group_sum(
    group: npt.NDArray[np.int64], weights: npt.NDArray[np.int64], n: int
) -> npt.NDArray[np.int64]:
    """Exact integer sums per group (groups < 0 ignored).

    bincount adds in float64, which is exact for integers below 2**53 micro-kWh
    (9 GWh per group and window); larger totals fall back to integer np.add.at.
    """
    sel = group >= 0
    g, w = group[sel], weights[sel]
    if len(w) and int(np.abs(w).sum()) < 2**53:
        return np.rint(np.bincount(g, weights=w, minlength=n)).astype(np.int64)
    out = np.zeros(n, np.int64)
    np.add.at(out, g, w)
    return out


def _group_count(
    group: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_], n: int
) -> npt.NDArray[np.int64]:
    sel = (group >= 0) & mask
    return np.bincount(group[sel], minlength=n).astype(np.int64)


def _classify(
    *,
    label: str,
    supply_meters: int,
    supply_determined: int,
    supply_ukwh: int,
    billed_expected: int,
    billed_reporting: int,
    loss_rate: float,
    band: LossBand,
    min_coverage: float,
) -> tuple[BalanceStatus, str]:
    if supply_meters == 0:
        return BalanceStatus.INCOMPUTABLE, f"no {label} meter in the topology"
    if supply_determined < supply_meters:
        return BalanceStatus.INCOMPUTABLE, f"{label} meter has no reading bracketing the window"
    if supply_ukwh <= 0:
        return BalanceStatus.INCOMPUTABLE, (
            f"supply is zero or negative ({supply_ukwh / UKWH_PER_KWH:.3f} kWh)"
        )
    coverage = billed_reporting / billed_expected if billed_expected else 1.0
    if coverage < min_coverage:
        return BalanceStatus.INCOMPUTABLE, (
            f"coverage {coverage:.1%} ({billed_reporting}/{billed_expected} meters) "
            f"below {min_coverage:.0%}"
        )
    if loss_rate > band.upper_rate:
        return BalanceStatus.HIGH_LOSS, f"loss rate {loss_rate:.2%} above {band.upper_rate:.2%}"
    if loss_rate < band.lower_rate:
        return BalanceStatus.NEGATIVE_LOSS, (
            f"loss rate {loss_rate:.2%} below {band.lower_rate:.2%}"
        )
    return BalanceStatus.NORMAL, ""


def _named(topo: Topology) -> dict[BalanceLevel, npt.NDArray[np.bool_]]:
    """Which areas and feeders some meter of the topology names."""
    n_a, n_f = len(topo.area_ids), len(topo.feeder_ids)
    areas = np.zeros(n_a, np.bool_)
    areas[topo.meter_area[topo.meter_area != NO_INDEX]] = True
    feeders = np.zeros(n_f, np.bool_)
    feeders[topo.meter_feeder[topo.meter_feeder != NO_INDEX]] = True
    of_areas = topo.area_feeder[areas]
    feeders[of_areas[of_areas != NO_INDEX]] = True
    return {BalanceLevel.AREA: areas, BalanceLevel.FEEDER: feeders}


def compute_balances(
    *,
    topo: Topology,
    members: BalanceMembers,
    energy: MeterWindowEnergy,
    window_start_s: int,
    window_end_s: int,
    config: BalanceConfig,
    revision: int = 0,
    final: bool = False,
) -> list[Balance]:
    """Area balances, then feeder balances, for one window over ALL meters; an area or
    feeder that no meter of this topology version names has none (it is not in
    service yet, or any more: lineloss.timeline)."""
    out: list[Balance] = []
    named = _named(topo)
    e = np.where(energy.determined, energy.energy_ukwh, 0)
    levels = (
        (BalanceLevel.AREA, members.area_supply, members.area_billed, topo.area_ids),
        (BalanceLevel.FEEDER, members.feeder_supply, members.feeder_billed, topo.feeder_ids),
    )
    for level, supply_group, billed_group, ids in levels:
        n = len(ids)
        if n == 0:
            continue
        supply = _group_sum(supply_group, e, n)
        billed = _group_sum(billed_group, e, n)
        supply_meters = _group_count(supply_group, np.ones_like(energy.determined), n)
        supply_det = _group_count(supply_group, energy.determined, n)
        expected = _group_count(billed_group, np.ones_like(energy.determined), n)
        reporting = _group_count(billed_group, energy.reporting, n)
        for i, target in enumerate(ids):
            if not named[level][i]:
                continue
            if level == BalanceLevel.AREA:
                band = config.band_for_area(target)
                f = int(topo.area_feeder[i])
                feeder_id = topo.feeder_ids[f] if f != NO_INDEX else None
            else:
                band = config.band_for_feeder(target)
                feeder_id = target
            s, b = int(supply[i]), int(billed[i])
            rate = (s - b) / s if s > 0 else float("nan")
            status, reason = _classify(
                label="area" if level == BalanceLevel.AREA else "feeder head",
                supply_meters=int(supply_meters[i]),
                supply_determined=int(supply_det[i]),
                supply_ukwh=s,
                billed_expected=int(expected[i]),
                billed_reporting=int(reporting[i]),
                loss_rate=rate,
                band=band,
                min_coverage=config.min_coverage,
            )
            exp_i, rep_i = int(expected[i]), int(reporting[i])
            out.append(
                Balance(
                    level=level,
                    target_id=target,
                    feeder_id=feeder_id,
                    window_start=window_start_s,
                    window_end=window_end_s,
                    supply_kwh=s / UKWH_PER_KWH,
                    billed_kwh=b / UKWH_PER_KWH,
                    loss_kwh=(s - b) / UKWH_PER_KWH,
                    loss_rate=rate,
                    coverage=rep_i / exp_i if exp_i else 1.0,
                    meters_expected=exp_i,
                    meters_reporting=rep_i,
                    status=status,
                    reason=reason,
                    revision=revision,
                    final=final,
                )
            )
    return out
