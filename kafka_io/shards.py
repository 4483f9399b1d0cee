"""Which readings partition owns which meters: the shard plan of the workers.

A shard is everything one balance needs, and the smallest such unit one level up is
the 10 kV feeder: its head meter, its areas' total meters and customers, and its
dedicated-transformer customers. The grid detectors need more: a customer recorded
on one feeder and supplied by another is paired across the feeders of one
substation, so a shard is a detection region (``Topology.region_of``): the feeders of
one substation where the registry names it, else one feeder. Readings are keyed by
their meter's region (an area without a feeder by the area, a meter with neither by
itself), and Kafka's
default partitioner (murmur2 of the key, as the Java client and kafka-python
compute it) maps the key to a partition. Each partition then has its own engine
over its own sub-topology, its own checkpoint and its own watermark, so any worker
can own any partition and a rebalance moves whole, self-contained states.

Pure: no Kafka client here; the partition count is a number.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import numpy.typing as npt

from lineloss.domain import NO_INDEX, Meter, Topology, region_key
from lineloss.timeline import TopologyTimeline
from streams.windows import WindowGrid


def _murmur2(data: bytes) -> int:
    """Kafka's murmur2 (32-bit, seed 0x9747b28c) of ``org.apache.kafka.common.utils
    .Utils.murmur2``, as an unsigned 32-bit number (Java's int, read unsigned)."""
    length = len(data)
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed message."""
    return (_murmur2(key) & 0x7FFFFFFF) % partitions


def shard_key(topology: Topology, meter_index: int) -> str:
    """The message key of a meter's readings: its feeder's region (its substation when
    named, else the feeder: ``Topology.region_of``), else its area, else itself."""
    f = int(topology.meter_feeder[meter_index])
    if f == NO_INDEX:
        a = int(topology.meter_area[meter_index])
        if a != NO_INDEX:
            f = int(topology.area_feeder[a])
            if f == NO_INDEX:
                return topology.area_ids[a]
    if f != NO_INDEX:
        return topology.region_of(topology.feeder_ids[f])
    return str(topology.meter_ids[meter_index])


class Shards:
    """The shard plan of a topology timeline over ``partitions`` readings partitions.

    A meter belongs to the partition of its shard key *in each version*: a customer
    moved to another feeder changes partition from the move on. A reading belongs
    to the owner of the window it falls in and, when it lies on a window's end, also
    to the owner of the next window (it closes the one and opens the other: see the
    cut in streams.engine), so at a move both partitions get it.
    """

    def __init__(self, topology: Topology | TopologyTimeline, partitions: int) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, not {partitions}")
        self.timeline = (
            topology if isinstance(topology, TopologyTimeline) else TopologyTimeline.of(topology)
        )
        self.topology = self.timeline.latest
        self.partitions = partitions
        # An area's feeder and a feeder's substation, as any version records them (a
        # customer may name only its area, and only a feeder meter its substation).
        self._area_feeder: dict[str, str] = {}
        self._substation: dict[str, str] = {}
        for v in self.timeline.versions:
            for a, f in enumerate(v.area_feeder.tolist()):
                if f != NO_INDEX:
                    self._area_feeder[v.area_ids[a]] = v.feeder_ids[f]
            for fid, sub in zip(v.feeder_ids, v.feeder_substation, strict=False):
                if sub:
                    self._substation[fid] = sub
        self._partition_of_key: dict[str, int] = {}
        owners = np.full((len(self.timeline.starts_s), self.timeline.n_meters), -1, np.int32)
        col = {m: i for i, m in enumerate(self.timeline.meter_ids)}
        starts = self.timeline.starts_s
        for meter_id, history in self.timeline.histories.items():
            for k, st in enumerate(history):
                until = history[k + 1].effective_from_s if k + 1 < len(history) else None
                lo = starts.index(st.effective_from_s)
                hi = starts.index(until) if until is not None else len(starts)
                if st.meter is not None:
                    owners[lo:hi, col[meter_id]] = self.owner(st.meter)
        self.owners = owners  # versions x meters: owning partition, -1 out of service

    def key(self, meter: Meter) -> str:
        """The message key of a meter's readings: the region of its feeder, else of
        its area's feeder, else its area, else itself (``shard_key`` on one meter)."""
        feeder = meter.feeder_id or self._area_feeder.get(meter.area_id or "")
        if feeder:
            return region_key(feeder, self._substation.get(feeder))
        return meter.area_id or meter.meter_id

    def owner(self, meter: Meter) -> int:
        k = self.key(meter)
        p = self._partition_of_key.get(k)
        if p is None:
            p = self._partition_of_key[k] = partition_of(k.encode(), self.partitions)
        return p

    @property
    def meter_partition(self) -> npt.NDArray[np.int32]:
        """Each meter's partition now (-1: out of service)."""
        return self.owners[-1]

    def homes(
        self,
        meter_idx: npt.NDArray[np.int64],
        window_starts: npt.NDArray[np.int64],
        next_window_starts: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
        """The owners of readings of full-index meters: of the window each falls in
        and of the next window (for readings on a window's end; else the same)."""
        within = self.timeline.version_index(window_starts)
        opens = self.timeline.version_index(next_window_starts)
        return self.owners[within, meter_idx], self.owners[opens, meter_idx]

    def homes_of(
        self, meter_idx: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], grid: WindowGrid
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
        """``homes`` of readings at times ``ts`` [s]. With one registry version (no
        dated change) owners do not depend on time, and the windows are not looked
        up: this runs on every step."""
        if len(self.timeline.starts_s) == 1:
            owners = self.owners[0, meter_idx]
            return owners, owners
        return self.homes(meter_idx, grid.window_start(ts), grid.window_start(ts + 1))

    def sub_timeline(
        self, partition: int, previous: TopologyTimeline | None = None
    ) -> TopologyTimeline:
        """The part of the timeline one partition balances: its meters' states while
        they are its own. Meters it had before stay (its index space only grows)."""
        return self.timeline.restricted(lambda m: self.owner(m) == partition, previous)

    @cached_property
    def _local(self) -> dict[int, tuple[Topology, npt.NDArray[np.int64]]]:
        out = {}
        for p in range(self.partitions):
            sub = self.sub_timeline(p).latest
            out[p] = (sub, self.local_index_in(sub))
        return out

    def local_index_in(self, sub: Topology) -> npt.NDArray[np.int64]:
        """Full meter index -> index in ``sub`` (NO_INDEX where it has no such id)."""
        return sub.index_of(self.topology.meter_ids)

    def topology_of(self, partition: int) -> Topology:
        """The meters of one partition now, in the full topology's order."""
        return self._local[partition][0]

    def local_index(self, partition: int) -> npt.NDArray[np.int64]:
        """Full meter index -> the partition topology's index, NO_INDEX if elsewhere."""
        return self._local[partition][1]
