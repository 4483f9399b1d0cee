"""Which readings partition owns which meters: the shard plan of the workers.

A shard is everything one balance needs, and the smallest such unit one level up is
the 10 kV feeder: its head meter, its areas' total meters and customers, and its
dedicated-transformer customers. So readings are keyed by their meter's feeder
(an area without a feeder by the area, a meter with neither by itself), and Kafka's
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

from lineloss.domain import NO_INDEX, Topology


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
    """The message key of a meter's readings: its feeder, else its area, else itself."""
    f = int(topology.meter_feeder[meter_index])
    if f == NO_INDEX:
        a = int(topology.meter_area[meter_index])
        if a != NO_INDEX:
            f = int(topology.area_feeder[a])
            if f == NO_INDEX:
                return topology.area_ids[a]
    if f != NO_INDEX:
        return topology.feeder_ids[f]
    return str(topology.meter_ids[meter_index])


class Shards:
    """The shard plan of one topology over ``partitions`` readings partitions."""

    def __init__(self, topology: Topology, partitions: int) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, not {partitions}")
        self.topology = topology
        self.partitions = partitions
        keys = [shard_key(topology, i) for i in range(topology.n_meters)]
        by_key = {k: partition_of(k.encode(), partitions) for k in set(keys)}
        self.keys = keys
        self.meter_partition: npt.NDArray[np.int32] = np.array(
            [by_key[k] for k in keys], dtype=np.int32
        )

    @cached_property
    def _local(self) -> dict[int, tuple[Topology, npt.NDArray[np.int64]]]:
        out = {}
        for p in range(self.partitions):
            members = np.flatnonzero(self.meter_partition == p)
            sub = Topology.from_meters([self.topology.meter(int(i)) for i in members])
            # full meter index -> index in the partition's topology (NO_INDEX elsewhere)
            local = np.full(self.topology.n_meters, NO_INDEX, dtype=np.int64)
            local[members] = np.arange(len(members))
            out[p] = (sub, local)
        return out

    def topology_of(self, partition: int) -> Topology:
        """The meters of one partition, in the full topology's order."""
        return self._local[partition][0]

    def local_index(self, partition: int) -> npt.NDArray[np.int64]:
        """Full meter index -> the partition topology's index, NO_INDEX if elsewhere."""
        return self._local[partition][1]
