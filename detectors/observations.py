"""What meter-level detectors observe: one area's final window, with its history.

The pipeline turns each final window into one ``AreaWindow`` per area and keeps a
bounded history of them per area (``AreaHistory``), so detectors stay pure: they get
today and the recent past, and keep only small state of their own.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from lineloss.domain import Balance, BalanceLevel


@dataclass(frozen=True)
class AreaWindow:
    """One area in one final window, as recorded in the topology."""

    area_id: str
    feeder_id: str | None
    window_start: int  # [s since epoch]
    window_end: int  # [s since epoch]
    meter_ids: tuple[str, ...]  # customers recorded under this area
    energy_kwh: npt.NDArray[np.float64]  # per customer, NaN = not determined
    profile_kwh: npt.NDArray[np.float32] | None  # customers x parts, NaN = unknown
    supply_kwh: float  # area meter(s); NaN without an area meter or reading
    supply_profile_kwh: npt.NDArray[np.float32] | None  # parts
    flags: npt.NDArray[np.int8]  # register flags per customer
    events: npt.NDArray[np.int32]  # event bits per customer
    balance: Balance | None = None
    voltage_v: npt.NDArray[np.float32] | None = None  # customers x parts, mean [V]
    # A feeder's unmetered part (customers of areas without an area meter and
    # dedicated customers against head meter minus area meters), not a real area.
    virtual: bool = False
    phase_s: npt.NDArray[np.float32] | None = None  # per customer, offset from the grid [s]
    # A feeder's dedicated-transformer customers (专变), each behind its own
    # transformer: grouped only for their own checks (consumption shape, registers).
    # No supply, and not an area anyone is wired to (no topology pairing).
    dedicated: bool = False
    # Each customer's largest quarter-hour energies [kWh], largest first, NaN-padded
    # (``EngineConfig.peak_parts``); None when the engine keeps none.
    peak_kwh: npt.NDArray[np.float32] | None = None
    # Each customer's multiplier in the registry (CT x PT ratio; 1 for a direct
    # meter); None when unknown. A wrong multiplier that under-bills needs a CT the
    # registry missed: a direct meter's field ratio is then a CT ratio, never 1.6.
    multiplier: npt.NDArray[np.float64] | None = None

    def reindexed(self, meter_ids: tuple[str, ...]) -> AreaWindow:
        """This window over other customers: theirs where known, else unknown (NaN
        energy, no flags or events)."""
        pos = {m: i for i, m in enumerate(self.meter_ids)}
        src = np.array([pos.get(m, -1) for m in meter_ids], dtype=np.int64)
        known = src >= 0
        take = np.maximum(src, 0)

        def cut(a: Any, fill: Any) -> Any:
            if a is None:
                return None
            out = a[take] if len(a) else np.zeros((len(src), *a.shape[1:]), a.dtype)
            out = np.array(out, copy=True)
            out[~known] = fill
            return out

        return replace(
            self,
            meter_ids=meter_ids,
            energy_kwh=cut(self.energy_kwh, np.nan),
            profile_kwh=cut(self.profile_kwh, np.nan),
            flags=cut(self.flags, 0),
            events=cut(self.events, 0),
            voltage_v=cut(self.voltage_v, np.nan),
            phase_s=cut(self.phase_s, np.nan),
            peak_kwh=cut(self.peak_kwh, np.nan),
            multiplier=cut(self.multiplier, np.nan),
        )

    @property
    def n_customers(self) -> int:
        return len(self.meter_ids)

    @property
    def has_supply(self) -> bool:
        return bool(np.isfinite(self.supply_kwh))


# Shares of an area's known customer-windows that may lack a profile: for the
# shapes (``AreaHistory.profiles``), and for the hourly models of the loss, where
# they are spread evenly (``profiles(spread_unresolved=True)``).
MAX_UNRESOLVED_SHARE = 0.5
MAX_SPREAD_SHARE = 0.1


@dataclass
class AreaHistory:
    """The last ``max_windows`` windows of one area, oldest first."""

    max_windows: int = 35
    windows: deque[AreaWindow] = field(default_factory=deque)

    def push(self, w: AreaWindow) -> None:
        """Append a window; when the area's customers changed (a registry update),
        the kept windows are re-cut to the new customers first, so every window of
        the history has the same columns (a new customer has no past: NaN)."""
        if self.windows and self.windows[-1].meter_ids != w.meter_ids:
            self.windows = deque(old.reindexed(w.meter_ids) for old in self.windows)
        self.windows.append(w)
        while len(self.windows) > self.max_windows:
            self.windows.popleft()

    def __len__(self) -> int:
        return len(self.windows)

    def energy(self) -> npt.NDArray[np.float64]:
        """Windows x customers [kWh]."""
        return np.stack([w.energy_kwh for w in self.windows])

    def supply(self) -> npt.NDArray[np.float64]:
        return np.array([w.supply_kwh for w in self.windows])

    def profiles(self, spread_unresolved: bool = False) -> npt.NDArray[np.float32] | None:
        """Windows x customers x parts, or None when any window lacks a profile of
        the common length (profiles off, or a daylight-saving day) or when most of
        the customers' known windows have none (readings too sparse for parts: an
        area read once a day is judged on its days).

        A customer-window without a profile (all parts NaN) while its energy is
        known stays NaN: nothing is known of its shape. ``spread_unresolved`` is for
        models of the area's loss hour by hour, which need every customer's energy in
        some hour: such a window's energy is spread evenly over its parts, and there
        are no profiles once more than a tenth of the known customer-windows need it
        (half of an independent grid's households read once a day put their hours'
        shapes into the hourly loss as noise: 3 false thefts where the area's days
        gave 1)."""
        ps = [w.profile_kwh for w in self.windows]
        if not ps or any(p is None for p in ps):
            return None
        shapes = {p.shape for p in ps if p is not None}
        if len(shapes) != 1:
            return None
        out = np.stack([p for p in ps if p is not None])
        energy = self.energy()
        unresolved = np.isnan(out).all(axis=2) & np.isfinite(energy)
        most = MAX_SPREAD_SHARE if spread_unresolved else MAX_UNRESOLVED_SHARE
        if unresolved.sum() > most * np.isfinite(energy).sum():
            return None
        if spread_unresolved and unresolved.any():
            out[unresolved] = (energy[unresolved] / out.shape[2])[:, None].astype(np.float32)
        return out

    def supply_profiles(self) -> npt.NDArray[np.float32] | None:
        """Windows x parts of the area meter(s), or None as for ``profiles`` (an area
        meter read less often than the parts in most windows)."""
        ps = [w.supply_profile_kwh for w in self.windows]
        if not ps or any(p is None for p in ps) or len({p.shape for p in ps if p is not None}) != 1:
            return None
        out = np.stack([p for p in ps if p is not None])
        supply = self.supply()
        unresolved = np.isnan(out).all(axis=1) & np.isfinite(supply)
        if unresolved.sum() > MAX_UNRESOLVED_SHARE * np.isfinite(supply).sum():
            return None
        return out

    def voltages(self) -> npt.NDArray[np.float32] | None:
        """Customers x (windows x parts) mean voltages, or None when any window
        lacks them or their shapes differ."""
        vs = [w.voltage_v for w in self.windows]
        if not vs or any(v is None for v in vs) or len({v.shape for v in vs if v is not None}) != 1:
            return None
        return np.concatenate([v for v in vs if v is not None], axis=1)

    def phases(self) -> npt.NDArray[np.float64] | None:
        """Windows x customers offsets of the readings from the clock grid [s]."""
        ps = [w.phase_s for w in self.windows]
        if not ps or any(p is None for p in ps):
            return None
        return np.stack([p for p in ps if p is not None]).astype(np.float64)

    def peaks(self) -> npt.NDArray[np.float32] | None:
        """Windows x customers x peak parts [kWh], largest first, or None when any
        window lacks them (recorded before peaks existed, or peaks off)."""
        ps = [w.peak_kwh for w in self.windows]
        if not ps or any(p is None for p in ps) or len({p.shape for p in ps if p is not None}) != 1:
            return None
        return np.stack([p for p in ps if p is not None])

    def state_dict(self) -> dict[str, Any]:
        return {"max_windows": self.max_windows, "windows": list(self.windows)}


def final_area_balances(balances: list[Balance], window_start: int) -> dict[str, Balance]:
    return {
        b.target_id: b
        for b in balances
        if b.level == BalanceLevel.AREA and b.final and b.window_start == window_start
    }
