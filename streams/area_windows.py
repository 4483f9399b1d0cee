"""Cut the engine's final per-meter results into per-area observations."""

from __future__ import annotations

import numpy as np

from detectors.observations import AreaWindow
from lineloss.domain import NO_INDEX, Balance, Topology
from streams.engine import MeterWindowResult

ROLE_CUSTOMER, ROLE_AREA = 0, 1


class AreaWindowBuilder:
    """Cuts a final window's per-meter results into one ``AreaWindow`` per area."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        roles, areas = topology.roles, topology.meter_area
        self._customers = [
            np.flatnonzero((roles == ROLE_CUSTOMER) & (areas == a))
            for a in range(len(topology.area_ids))
        ]
        self._area_meters = [
            np.flatnonzero((roles == ROLE_AREA) & (areas == a))
            for a in range(len(topology.area_ids))
        ]

    def build(self, r: MeterWindowResult, balances: dict[str, Balance]) -> list[AreaWindow]:
        topo = self.topology
        out = []
        for a, area_id in enumerate(topo.area_ids):
            cust, meters = self._customers[a], self._area_meters[a]
            if len(meters):
                supply = float(r.energy_kwh[meters].sum())  # NaN if any is NaN
                supply_profile = (
                    r.profile_kwh[meters].sum(axis=0) if r.profile_kwh is not None else None
                )
            else:
                supply, supply_profile = float("nan"), None
            f = int(topo.area_feeder[a])
            out.append(
                AreaWindow(
                    area_id=area_id,
                    feeder_id=topo.feeder_ids[f] if f != NO_INDEX else None,
                    window_start=r.window_start,
                    window_end=r.window_end,
                    meter_ids=tuple(str(m) for m in topo.meter_ids[cust]),
                    energy_kwh=r.energy_kwh[cust],
                    profile_kwh=r.profile_kwh[cust] if r.profile_kwh is not None else None,
                    supply_kwh=supply,
                    supply_profile_kwh=supply_profile,
                    flags=r.flags[cust],
                    events=r.events[cust],
                    balance=balances.get(area_id),
                    voltage_v=r.voltage_v[cust] if r.voltage_v is not None else None,
                )
            )
        return out
