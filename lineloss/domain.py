"""Shared domain types: meters, topology, readings, balances, suspicions, rejects.

Every package (streams, detectors, loaders, dashboards, workorders) may import this
module; it imports none of them. Names carry their units (``energy_kwh``, ``window_s``)
and times inside the core are integer epoch seconds (UTC), so the core never needs a
clock or a time-zone database except at the window-grid edge.

Energy is money, so energies inside the core are fixed-point integers in micro-kWh
(``UKWH_PER_KWH`` units per kWh). Sums of integers do not depend on the order of
addition, which is what makes balances exact and independent of arrival order.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

UKWH_PER_KWH: Final = 1_000_000
"""Fixed-point scale of the core: one unit is 1e-6 kWh (1 mWh)."""

NO_INDEX: Final = -1
"""Index value meaning 'none' in integer index arrays (no area, no feeder)."""


class MeterRole(enum.StrEnum):
    CUSTOMER = "customer"
    AREA = "area"
    FEEDER = "feeder"


class BalanceStatus(enum.StrEnum):
    NORMAL = "normal"
    HIGH_LOSS = "high_loss"
    NEGATIVE_LOSS = "negative_loss"
    INCOMPUTABLE = "incomputable"


class BalanceLevel(enum.StrEnum):
    AREA = "area"  # 台区: area total meter vs its customers (400 V loss)
    FEEDER = "feeder"  # 馈线: head meter vs its areas and dedicated customers (10 kV loss)


class SuspicionCategory(enum.StrEnum):
    THEFT = "theft"
    METER_FAULT = "meter_fault"
    TOPOLOGY_ERROR = "topology_error"
    AREA_LOSS = "area_loss"


class TargetKind(enum.StrEnum):
    METER = "meter"
    AREA = "area"


class MeterEvent(enum.IntEnum):
    """Tamper and fault events a meter may report beside a reading (0 = none)."""

    NONE = 0
    COVER_OPEN = 1
    MAGNETIC = 2
    POWER_DOWN = 3
    VOLTAGE_LOSS = 4
    PHASE_LOSS = 5
    REVERSE_ENERGY = 6
    CLOCK_ERROR = 7
    OTHER = 8

    @classmethod
    def parse(cls, text: str) -> MeterEvent:
        """Map an event name from the data contract (``cover_open``) to its code."""
        if not text:
            return cls.NONE
        try:
            return cls[text.strip().upper()]
        except KeyError:
            return cls.OTHER


class RejectReason(enum.StrEnum):
    """Why a reading went to the dead-letter path instead of the balance."""

    MALFORMED = "malformed"
    UNKNOWN_METER = "unknown_meter"
    NEGATIVE_ENERGY = "negative_energy"
    DUPLICATE = "duplicate"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    CLOCK_JUMP = "clock_jump"
    TOO_LATE = "too_late"
    IMPLAUSIBLE_VALUE = "implausible_value"


@dataclass(frozen=True)
class Meter:
    meter_id: str
    role: MeterRole
    area_id: str | None
    feeder_id: str | None
    multiplier: float = 1.0
    customer_class: str | None = None
    # For a feeder meter: the substation (变电站) its feeder leaves from. Feeders of
    # one substation are one detection region (``Topology.region_of``).
    substation_id: str | None = None


def region_key(feeder_id: str, substation_id: str | None) -> str:
    """The region of a feeder: ``substation:<id>`` when its substation is named (so a
    substation id never collides with a feeder id), else the feeder id."""
    return f"substation:{substation_id}" if substation_id else feeder_id


@dataclass(frozen=True)
class Topology:
    """Which meter measures what, as parallel arrays indexed by meter index.

    Areas and feeders are numbered too (``area_ids[i]`` is area ``i``), so the core
    aggregates with ``np.bincount`` instead of dictionaries.
    """

    meter_ids: npt.NDArray[np.str_]
    roles: npt.NDArray[np.int8]  # 0 customer, 1 area, 2 feeder
    meter_area: npt.NDArray[np.int32]  # area index or NO_INDEX
    meter_feeder: npt.NDArray[np.int32]  # feeder index or NO_INDEX
    multiplier: npt.NDArray[np.float64]
    area_ids: tuple[str, ...]
    area_feeder: npt.NDArray[np.int32]  # feeder index of each area or NO_INDEX
    feeder_ids: tuple[str, ...]
    customer_class: tuple[str, ...] = ()
    feeder_substation: tuple[str, ...] = ()  # per feeder index; "" when not named
    _index: pd.Index = field(default_factory=lambda: pd.Index([]), repr=False, compare=False)

    ROLE_CODES: ClassVar[dict[MeterRole, int]] = {
        MeterRole.CUSTOMER: 0,
        MeterRole.AREA: 1,
        MeterRole.FEEDER: 2,
    }

    @classmethod
    def from_meters(cls, meters: list[Meter]) -> Topology:
        """Build the indexed topology. Areas and feeders get stable sorted indices."""
        return cls.aligned(
            [m.meter_id for m in meters],
            {m.meter_id: m for m in meters},
            area_ids=sorted({m.area_id for m in meters if m.area_id}),
            feeder_ids=sorted({m.feeder_id for m in meters if m.feeder_id}),
        )

    @classmethod
    def aligned(
        cls,
        meter_ids: list[str],
        meters: dict[str, Meter],
        *,
        area_ids: list[str],
        feeder_ids: list[str],
    ) -> Topology:
        """A topology over a given index space: meter ``i`` is ``meter_ids[i]``, area
        ``j`` is ``area_ids[j]``, whether or not they are in service. A meter id with
        no entry in ``meters`` is out of service: a customer of no area and no feeder,
        so it counts in no balance (lineloss.timeline keeps every version of a
        changing topology on one index space, so per-meter state never moves)."""
        area_idx = {a: i for i, a in enumerate(area_ids)}
        feeder_idx = {f: i for i, f in enumerate(feeder_ids)}
        missing = {m.area_id for m in meters.values() if m.area_id} - set(area_idx)
        missing |= {m.feeder_id for m in meters.values() if m.feeder_id} - set(feeder_idx)
        if missing:
            raise ValueError(f"areas or feeders missing from the index: {sorted(missing)[:5]}")
        area_feeder = np.full(len(area_ids), NO_INDEX, dtype=np.int32)
        substations = [""] * len(feeder_ids)
        for m in meters.values():
            if m.area_id and m.feeder_id and m.role != MeterRole.FEEDER:
                area_feeder[area_idx[m.area_id]] = feeder_idx[m.feeder_id]
            if m.role == MeterRole.FEEDER and m.feeder_id and m.substation_id:
                substations[feeder_idx[m.feeder_id]] = m.substation_id
        ids = np.array(meter_ids, dtype=np.str_)
        index = pd.Index(ids.astype(object))
        if not index.is_unique:
            dupes = sorted(set(index[index.duplicated()]))
            raise ValueError(f"meter ids must be unique; repeated: {dupes[:5]}")
        absent = Meter("", MeterRole.CUSTOMER, None, None)
        rows = [meters.get(i, absent) for i in meter_ids]
        return cls(
            meter_ids=ids,
            roles=np.array([cls.ROLE_CODES[m.role] for m in rows], dtype=np.int8),
            meter_area=np.array(
                [
                    area_idx[m.area_id] if m.area_id and m.role != MeterRole.FEEDER else NO_INDEX
                    for m in rows
                ],
                dtype=np.int32,
            ),
            meter_feeder=np.array(
                [feeder_idx[m.feeder_id] if m.feeder_id else NO_INDEX for m in rows],
                dtype=np.int32,
            ),
            multiplier=np.array([m.multiplier for m in rows], dtype=np.float64),
            area_ids=tuple(area_ids),
            area_feeder=area_feeder,
            feeder_ids=tuple(feeder_ids),
            customer_class=tuple(m.customer_class or "" for m in rows),
            feeder_substation=tuple(substations),
            _index=index,
        )

    @property
    def n_meters(self) -> int:
        return len(self.meter_ids)

    def index_of(self, meter_ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Meter indices for ids; NO_INDEX for ids not in the topology."""
        found = self._index.get_indexer(pd.Index(np.asarray(meter_ids, dtype=object)))
        return found.astype(np.int64)  # get_indexer answers -1 == NO_INDEX when missing

    def meter(self, i: int) -> Meter:
        role = MeterRole(list(self.ROLE_CODES)[int(self.roles[i])])
        area = int(self.meter_area[i])
        feeder = int(self.meter_feeder[i])
        return Meter(
            meter_id=str(self.meter_ids[i]),
            role=role,
            area_id=self.area_ids[area] if area != NO_INDEX else None,
            feeder_id=self.feeder_ids[feeder] if feeder != NO_INDEX else None,
            multiplier=float(self.multiplier[i]),
            customer_class=(self.customer_class[i] or None) if self.customer_class else None,
            substation_id=(
                (self.feeder_substation[feeder] or None)
                if role == MeterRole.FEEDER and feeder != NO_INDEX and self.feeder_substation
                else None
            ),
        )

    def region_of(self, feeder_id: str | None, area_id: str | None = None) -> str:
        """The detection region of a feeder (or of an area without one): its
        substation when the registry names it, else the feeder itself, else the area.

        Grid-level detectors look across the areas of one region, and the streaming
        workers shard by region (kafka_io.shards), so a customer recorded on one
        feeder and supplied by another of the same substation can be paired."""
        if feeder_id:
            return region_key(feeder_id, self._substations.get(feeder_id))
        return f"area:{area_id}" if area_id else ""

    @cached_property
    def _substations(self) -> dict[str, str]:
        return {f: s for f, s in zip(self.feeder_ids, self.feeder_substation, strict=False) if s}


@dataclass(frozen=True)
class ReadingBatch:
    """A columnar batch of readings, as the core consumes them.

    ``value`` is a raw register [kWh, before the multiplier] where ``is_interval`` is
    False, or an interval energy [kWh, after the multiplier] where it is True.
    ``source_pos`` says where each reading came from (file row, Kafka offset) so a
    rejected reading can be traced back.
    """

    meter_idx: npt.NDArray[np.int64]
    ts: npt.NDArray[np.int64]  # end of interval / frozen time [s since epoch, UTC]
    value: npt.NDArray[np.float64]
    is_interval: npt.NDArray[np.bool_]
    event: npt.NDArray[np.int16]
    voltage_v: npt.NDArray[np.float32]
    source_pos: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, sel: npt.NDArray[np.bool_] | npt.NDArray[np.int64]) -> ReadingBatch:
        return ReadingBatch(
            meter_idx=self.meter_idx[sel],
            ts=self.ts[sel],
            value=self.value[sel],
            is_interval=self.is_interval[sel],
            event=self.event[sel],
            voltage_v=self.voltage_v[sel],
            source_pos=self.source_pos[sel],
        )

    @classmethod
    def concat(cls, batches: list[ReadingBatch]) -> ReadingBatch:
        if not batches:
            return cls.empty()
        return cls(
            meter_idx=np.concatenate([b.meter_idx for b in batches]),
            ts=np.concatenate([b.ts for b in batches]),
            value=np.concatenate([b.value for b in batches]),
            is_interval=np.concatenate([b.is_interval for b in batches]),
            event=np.concatenate([b.event for b in batches]),
            voltage_v=np.concatenate([b.voltage_v for b in batches]),
            source_pos=np.concatenate([b.source_pos for b in batches]),
        )

    @classmethod
    def empty(cls) -> ReadingBatch:
        return cls(
            meter_idx=np.empty(0, np.int64),
            ts=np.empty(0, np.int64),
            value=np.empty(0, np.float64),
            is_interval=np.empty(0, np.bool_),
            event=np.empty(0, np.int16),
            voltage_v=np.empty(0, np.float32),
            source_pos=np.empty(0, np.int64),
        )


@dataclass(frozen=True)
class Rejects:
    """Readings refused by the core, each with its reason and a detail sentence."""

    source_pos: npt.NDArray[np.int64]
    meter_idx: npt.NDArray[np.int64]
    ts: npt.NDArray[np.int64]
    reason: tuple[RejectReason, ...]
    detail: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.reason)

    @classmethod
    def empty(cls) -> Rejects:
        e = np.empty(0, np.int64)
        return cls(source_pos=e, meter_idx=e, ts=e, reason=(), detail=())


@dataclass(frozen=True)
class Balance:
    """The energy balance of one area or feeder over one event-time window.

    ``revision`` counts re-issues: 0 is the first (provisional) result, each late
    reading that changes the numbers adds one. ``final`` is set once the window is
    past the re-collection horizon and can no longer change.
    """

    level: BalanceLevel
    target_id: str
    feeder_id: str | None
    window_start: int  # [s since epoch]
    window_end: int  # [s since epoch]
    supply_kwh: float
    billed_kwh: float
    loss_kwh: float
    loss_rate: float  # loss / supply, NaN when incomputable for lack of supply
    coverage: float  # reporting / expected meters, in [0, 1]
    meters_expected: int
    meters_reporting: int
    status: BalanceStatus
    reason: str
    revision: int
    final: bool

    def same_numbers(self, other: Balance) -> bool:
        """True when a re-computation changed nothing an analyst would see."""
        return (
            self.supply_kwh == other.supply_kwh
            and self.billed_kwh == other.billed_kwh
            and self.meters_reporting == other.meters_reporting
            and self.meters_expected == other.meters_expected
            and self.status == other.status
            and self.reason == other.reason
        )


@dataclass(frozen=True)
class Suspicion:
    """A ranked lead for an analyst or inspector: who, why, how sure, how much."""

    target_id: str
    target_kind: TargetKind
    category: SuspicionCategory
    score: float  # [0, 1], higher = more suspicious
    first_detected: int  # stream (event) time of the first finding [s since epoch]
    estimated_kwh: float  # estimated unbilled energy [kWh]
    evidence: str  # one line a person can read
    area_id: str | None = None
    detector: str = ""
    # Best score of each detector that flagged the target, strongest first: the
    # evidence pack shows them so an inspector sees which views agree.
    detector_scores: tuple[tuple[str, float], ...] = ()
    start_s: int | None = None  # estimated start of the anomaly [s since epoch]
