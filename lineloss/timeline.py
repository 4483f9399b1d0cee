"""A topology that changes over event time: registry updates applied live.

Utilities change their records every day: a new meter is commissioned, a meter is
replaced (the old one leaves service, a new id takes its place), a customer is moved
to another area or its record corrected, a current transformer changes the
multiplier. Each meter therefore has a *history*: states with the event time they
take effect from, ``None`` meaning out of service. A registry message carries a
meter's whole history, so a compacted topic that keeps only the newest message per
meter still knows what the meter was before.

``TopologyTimeline`` turns the histories into versions: one ``Topology`` per distinct
effective time, all on **one index space** (meter ``i`` is the same meter in every
version, and applying updates only appends ids). Per-meter state of the engine
(open slots, last readings, run keys ``meter << 32 | ts``) therefore never moves when
the topology changes; arrays only grow.

A window is balanced with the version in effect at its start, so a change that takes
effect in the middle of a window applies from the next window. The same updates give
the same balances whatever the moment they arrive, as long as it is before the
windows they change are final.

Pure: no Kafka, no files, no clock.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from lineloss.domain import Meter, MeterRole, Topology

BEGINNING_S: Final = -(2**62)
"""Effective time of a state that has always held (the registry's initial load)."""


@dataclass(frozen=True)
class MeterState:
    """What a meter is from ``effective_from_s`` on; ``meter`` None = out of service."""

    effective_from_s: int
    meter: Meter | None


MeterHistory = tuple[MeterState, ...]  # by effective time, strictly increasing


def always(meter: Meter) -> MeterHistory:
    """The history of a meter that has always been what it is now."""
    return (MeterState(BEGINNING_S, meter),)


def normalised(meter_id: str, history: MeterHistory) -> MeterHistory:
    """Sorted by effective time, one state per time (the last given wins), and every
    state about ``meter_id``; raises ValueError otherwise."""
    by_time: dict[int, Meter | None] = {}
    for st in history:
        if st.meter is not None and st.meter.meter_id != meter_id:
            raise ValueError(f"history of {meter_id} holds a state of {st.meter.meter_id}")
        by_time[int(st.effective_from_s)] = st.meter
    return tuple(MeterState(t, by_time[t]) for t in sorted(by_time))


def state_at(history: MeterHistory, t_s: int) -> Meter | None:
    """The meter as it is at ``t_s``; None when out of service (or not yet in)."""
    i = bisect_right([st.effective_from_s for st in history], t_s) - 1
    return history[i].meter if i >= 0 else None


def membership(m: Meter | None) -> tuple[str, str | None, str | None] | None:
    """What decides where a meter's energy counts (not its multiplier): a change of
    it cuts the meter's readings into before and after (see streams.engine)."""
    return None if m is None else (m.role.value, m.area_id, m.feeder_id)


class TopologyTimeline:
    """Meter histories, and the aligned topology versions they make.

    ``meter_ids``, ``area_ids`` and ``feeder_ids`` give the index space: the order in
    which ids first appeared, never reordered, so ``apply`` only appends.
    """

    def __init__(
        self,
        histories: Mapping[str, MeterHistory],
        *,
        meter_ids: list[str] | None = None,
        area_ids: list[str] | None = None,
        feeder_ids: list[str] | None = None,
    ) -> None:
        self.histories: dict[str, MeterHistory] = {
            k: normalised(k, h) for k, h in histories.items()
        }
        self.meter_ids = _extended(meter_ids or [], self.histories)
        states = [st.meter for h in self.histories.values() for st in h if st.meter is not None]
        self.area_ids = _extended(area_ids or [], {m.area_id: () for m in states if m.area_id})
        self.feeder_ids = _extended(
            feeder_ids or [], {m.feeder_id: () for m in states if m.feeder_id}
        )

    @classmethod
    def of(cls, topology: Topology) -> TopologyTimeline:
        """A timeline in which ``topology`` has always held, on its own index space."""
        return cls(
            {str(i): always(topology.meter(k)) for k, i in enumerate(topology.meter_ids)},
            meter_ids=[str(i) for i in topology.meter_ids],
            area_ids=list(topology.area_ids),
            feeder_ids=list(topology.feeder_ids),
        )

    # ------------------------------------------------------------------ changes
    def apply(self, updates: Mapping[str, MeterHistory | None]) -> TopologyTimeline:
        """A new timeline where each updated meter has the given history (None: the
        meter is deleted from the registry, as if it had never been in service).
        New ids are appended in sorted order, so every worker applying the same
        updates gets the same index space."""
        histories = dict(self.histories)
        for meter_id, history in updates.items():
            histories[meter_id] = (
                normalised(meter_id, history)
                if history is not None
                else (MeterState(BEGINNING_S, None),)
            )
        new_ids = sorted(set(histories) - set(self.meter_ids))
        return TopologyTimeline(
            histories,
            meter_ids=self.meter_ids + new_ids,
            area_ids=self.area_ids + _new_sorted(histories, self.area_ids, "area_id"),
            feeder_ids=self.feeder_ids + _new_sorted(histories, self.feeder_ids, "feeder_id"),
        )

    def changed_by(self, updates: Mapping[str, MeterHistory | None]) -> bool:
        """Whether ``apply(updates)`` would change anything (re-read registries are
        mostly repeats)."""
        return any(self._changes(meter_id, h) for meter_id, h in updates.items())

    def changes(self, updates: Mapping[str, MeterHistory | None]) -> dict[str, MeterHistory | None]:
        """The part of ``updates`` that ``apply`` would change (the rest repeats
        what this timeline already says)."""
        return {m: h for m, h in updates.items() if self._changes(m, h)}

    def _changes(self, meter_id: str, history: MeterHistory | None) -> bool:
        old = self.histories.get(meter_id)
        if history is None:
            return old is not None and any(st.meter is not None for st in old)
        return old != normalised(meter_id, history)

    def restricted(
        self, keep: Callable[[Meter], bool], previous: TopologyTimeline | None = None
    ) -> TopologyTimeline:
        """The timeline of the in-service states ``keep`` accepts (the others out of
        service): one shard's part. Meters ``previous`` had stay, so the index
        space of a shard only grows too."""
        out: dict[str, MeterHistory] = {}
        for meter_id, history in self.histories.items():
            kept = tuple(
                MeterState(st.effective_from_s, st.meter if st.meter and keep(st.meter) else None)
                for st in history
            )
            if any(st.meter is not None for st in kept) or (
                previous is not None and meter_id in previous.histories
            ):
                out[meter_id] = kept
        base = previous.meter_ids if previous is not None else []
        known = set(base)
        return TopologyTimeline(
            out,
            meter_ids=base + [i for i in self.meter_ids if i in out and i not in known],
            area_ids=previous.area_ids if previous is not None else [],
            feeder_ids=previous.feeder_ids if previous is not None else [],
        )

    # ------------------------------------------------------------------ versions
    @cached_property
    def starts_s(self) -> list[int]:
        """Effective times of the versions, increasing; the first is BEGINNING_S."""
        times = {st.effective_from_s for h in self.histories.values() for st in h}
        return sorted(times | {BEGINNING_S})

    @cached_property
    def versions(self) -> list[Topology]:
        out = []
        for t in self.starts_s:
            meters = {}
            for meter_id, history in self.histories.items():
                m = state_at(history, t)
                if m is not None:
                    meters[meter_id] = m
            out.append(
                Topology.aligned(
                    self.meter_ids, meters, area_ids=self.area_ids, feeder_ids=self.feeder_ids
                )
            )
        return out

    @cached_property
    def in_service(self) -> npt.NDArray[np.bool_]:
        """Versions x meters: whether the meter is in service in that version."""
        out = np.zeros((len(self.starts_s), len(self.meter_ids)), np.bool_)
        col = {m: i for i, m in enumerate(self.meter_ids)}
        for meter_id, history in self.histories.items():
            for v, t in enumerate(self.starts_s):
                out[v, col[meter_id]] = state_at(history, t) is not None
        return out

    def version_index(self, t_s: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Index of the version in effect at each time."""
        starts = np.asarray(self.starts_s, dtype=np.int64)
        return np.searchsorted(starts, np.asarray(t_s, dtype=np.int64), side="right") - 1

    def at(self, t_s: int) -> Topology:
        """The version in effect at ``t_s``."""
        return self.versions[int(self.version_index([t_s])[0])]

    @property
    def latest(self) -> Topology:
        return self.versions[-1]

    @property
    def n_meters(self) -> int:
        return len(self.meter_ids)

    def membership_changes(self) -> dict[int, list[int]]:
        """Meter index -> the effective times at which its membership changes."""
        out: dict[int, list[int]] = {}
        col = {m: i for i, m in enumerate(self.meter_ids)}
        for meter_id, history in self.histories.items():
            times = [
                b.effective_from_s
                for a, b in pairwise(history)
                if membership(a.meter) != membership(b.meter)
            ]
            if history and history[0].effective_from_s != BEGINNING_S:
                times.insert(0, history[0].effective_from_s)  # came into service
            if times:
                out[col[meter_id]] = times
        return out

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> dict[str, Any]:
        return {
            "meter_ids": self.meter_ids,
            "area_ids": self.area_ids,
            "feeder_ids": self.feeder_ids,
            "histories": {k: history_to_json(h) for k, h in self.histories.items()},
        }

    @cached_property
    def json_bytes(self) -> bytes:
        """``to_json`` encoded once (a checkpoint carries it every time)."""
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TopologyTimeline:
        return cls(
            {k: history_from_json(k, h) for k, h in d["histories"].items()},
            meter_ids=list(d["meter_ids"]),
            area_ids=list(d["area_ids"]),
            feeder_ids=list(d["feeder_ids"]),
        )


def history_to_json(history: MeterHistory) -> list[dict[str, Any]]:
    """The history as plain data: ``effective_from`` (None = always), then the meter's
    fields, or ``removed: true``."""
    out: list[dict[str, Any]] = []
    for st in history:
        item: dict[str, Any] = {
            "effective_from": None if st.effective_from_s == BEGINNING_S else st.effective_from_s
        }
        if st.meter is None:
            item["removed"] = True
        else:
            item.update(
                role=st.meter.role.value,
                area_id=st.meter.area_id,
                feeder_id=st.meter.feeder_id,
                multiplier=st.meter.multiplier,
                customer_class=st.meter.customer_class,
            )
            if st.meter.substation_id:
                item["substation_id"] = st.meter.substation_id
        out.append(item)
    return out


def history_from_json(meter_id: str, items: list[dict[str, Any]]) -> MeterHistory:
    """Inverse of ``history_to_json``; raises ValueError/KeyError on bad items."""
    states = []
    for item in items:
        t = item.get("effective_from")
        eff = BEGINNING_S if t is None else int(t)
        if item.get("removed"):
            states.append(MeterState(eff, None))
            continue
        role = MeterRole(item["role"])
        raw_multiplier = item.get("multiplier")
        multiplier = 1.0 if raw_multiplier is None else float(raw_multiplier)
        if not np.isfinite(multiplier) or multiplier <= 0:
            raise ValueError(f"multiplier must be a positive number, not {multiplier}")
        states.append(
            MeterState(
                eff,
                Meter(
                    meter_id=meter_id,
                    role=role,
                    area_id=(item.get("area_id") or None) if role != MeterRole.FEEDER else None,
                    feeder_id=item.get("feeder_id") or None,
                    multiplier=multiplier,
                    customer_class=item.get("customer_class") or None,
                    substation_id=(
                        (item.get("substation_id") or None) if role == MeterRole.FEEDER else None
                    ),
                ),
            )
        )
    if not states:
        raise ValueError(f"history of {meter_id} is empty")
    return normalised(meter_id, tuple(states))


def _extended(base: list[str], ids: Iterable[str | None]) -> list[str]:
    seen = set(base)
    return base + sorted(i for i in ids if i is not None and i not in seen)


def _new_sorted(histories: Mapping[str, MeterHistory], known: list[str], field: str) -> list[str]:
    seen = set(known)
    new = {
        getattr(st.meter, field)
        for h in histories.values()
        for st in h
        if st.meter is not None and getattr(st.meter, field)
    }
    return sorted(new - seen)
