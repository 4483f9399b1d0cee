"""Cut the engine's final per-meter results into per-area observations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.observations import AreaWindow
from lineloss.domain import NO_INDEX, Balance, Topology
from streams.engine import MeterWindowResult

ROLE_CUSTOMER, ROLE_AREA, ROLE_FEEDER = 0, 1, 2


@dataclass(frozen=True)
class _Group:
    """Customers balanced against ``plus`` minus ``minus`` meters."""

    area_id: str
    feeder_id: str | None
    customers: npt.NDArray[np.int64]
    plus: npt.NDArray[np.int64]
    minus: npt.NDArray[np.int64]
    virtual: bool = False
    dedicated: bool = False


class AreaWindowBuilder:
    """Cuts a final window's per-meter results into one ``AreaWindow`` per area,
    plus one per feeder for its *unmetered part*: the customers of areas without an
    area meter and the dedicated-transformer customers, balanced against the head
    meter minus the metered areas. That lets the localiser find thieves where no
    area meter exists."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        roles, areas, feeders = topology.roles, topology.meter_area, topology.meter_feeder
        self._groups: list[_Group] = []
        empty = np.empty(0, np.int64)
        metered = np.zeros(len(topology.area_ids), np.bool_)
        for a, area_id in enumerate(topology.area_ids):
            meters = np.flatnonzero((roles == ROLE_AREA) & (areas == a))
            metered[a] = len(meters) > 0
            f = int(topology.area_feeder[a])
            self._groups.append(
                _Group(
                    area_id=area_id,
                    feeder_id=topology.feeder_ids[f] if f != NO_INDEX else None,
                    customers=np.flatnonzero((roles == ROLE_CUSTOMER) & (areas == a)),
                    plus=meters,
                    minus=empty,
                )
            )
        meter_feeder = np.where(
            areas != NO_INDEX, topology.area_feeder[np.maximum(areas, 0)], feeders
        )
        for f, feeder_id in enumerate(topology.feeder_ids):
            heads = np.flatnonzero((roles == ROLE_FEEDER) & (feeders == f))
            in_feeder = meter_feeder == f
            unmetered = (
                (roles == ROLE_CUSTOMER)
                & in_feeder
                & ((areas == NO_INDEX) | ~metered[np.maximum(areas, 0)])
            )
            dedicated = (roles == ROLE_CUSTOMER) & in_feeder & (areas == NO_INDEX)
            if len(heads) and unmetered.any():
                self._groups.append(
                    _Group(
                        area_id=f"{feeder_id}/unmetered",
                        feeder_id=feeder_id,
                        customers=np.flatnonzero(unmetered),
                        plus=heads,
                        minus=np.flatnonzero((roles == ROLE_AREA) & in_feeder),
                        virtual=True,
                    )
                )
            if dedicated.any():
                self._groups.append(
                    _Group(
                        area_id=f"{feeder_id}/dedicated",
                        feeder_id=feeder_id,
                        customers=np.flatnonzero(dedicated),
                        plus=empty,
                        minus=empty,
                        dedicated=True,
                    )
                )

    def build(self, r: MeterWindowResult, balances: dict[str, Balance]) -> list[AreaWindow]:
        out = []
        for g in self._groups:
            if len(g.plus):
                supply = float(r.energy_kwh[g.plus].sum() - r.energy_kwh[g.minus].sum())
                supply_profile = (
                    r.profile_kwh[g.plus].sum(axis=0) - r.profile_kwh[g.minus].sum(axis=0)
                    if r.profile_kwh is not None
                    else None
                )
            else:
                supply, supply_profile = float("nan"), None
            c = g.customers
            out.append(
                AreaWindow(
                    area_id=g.area_id,
                    feeder_id=g.feeder_id,
                    window_start=r.window_start,
                    window_end=r.window_end,
                    meter_ids=tuple(str(m) for m in self.topology.meter_ids[c]),
                    energy_kwh=r.energy_kwh[c],
                    profile_kwh=r.profile_kwh[c] if r.profile_kwh is not None else None,
                    supply_kwh=supply,
                    supply_profile_kwh=supply_profile,
                    flags=r.flags[c],
                    events=r.events[c],
                    balance=balances.get(g.area_id),
                    voltage_v=r.voltage_v[c] if r.voltage_v is not None else None,
                    virtual=g.virtual,
                    dedicated=g.dedicated,
                    phase_s=r.phase_s[c] if r.phase_s is not None else None,
                    peak_kwh=r.peak_kwh[c] if r.peak_kwh is not None else None,
                    multiplier=self.topology.multiplier[c],
                )
            )
        return out
