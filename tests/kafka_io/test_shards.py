"""Which partition owns which meters: whole feeders, by Kafka's own partitioner."""

from __future__ import annotations

import pytest
from factories import make_topology

from kafka_io.shards import Shards, partition_of, shard_key

TOPO = make_topology(
    [
        ("H1", "feeder", None, "F1", 100.0),
        ("T1", "area", "A1", "F1", 40.0),
        ("C1", "customer", "A1", "F1", 1.0),
        ("C2", "customer", "A1", None, 1.0),  # feeder known only through its area
        ("D1", "customer", None, "F1", 1.0),  # dedicated-transformer customer
        ("T3", "area", "A3", "F2", 1.0),
        ("C4", "customer", "A3", "F2", 1.0),
        ("T4", "area", "A4", "F3", 1.0),
        ("C6", "customer", "A4", "F3", 1.0),
        ("T9", "area", "A9", None, 1.0),
        ("C9", "customer", "A9", None, 1.0),
        ("X1", "customer", None, None, 1.0),
    ]
)


def test_partition_of_is_kafkas_default_partitioner() -> None:
    from kafka.partitioner.default import murmur2

    for key in (b"", b"F1", b"FD01-TA03", "台区-7".encode(), bytes(range(40))):
        for n in (1, 3, 12):
            assert partition_of(key, n) == (murmur2(key) & 0x7FFFFFFF) % n


def test_a_meter_is_keyed_by_its_feeder_else_its_area_else_itself() -> None:
    keys = {m: shard_key(TOPO, int(TOPO.index_of([m])[0])) for m in TOPO.meter_ids.tolist()}
    assert keys == {
        "H1": "F1",
        "T1": "F1",
        "C1": "F1",
        "C2": "F1",
        "D1": "F1",
        "T3": "F2",
        "C4": "F2",
        "T4": "F3",
        "C6": "F3",
        "T9": "A9",
        "C9": "A9",
        "X1": "X1",
    }


@pytest.mark.parametrize("partitions", [1, 2, 3, 7])
def test_partitions_split_the_meters_into_whole_feeders(partitions: int) -> None:
    shards = Shards(TOPO, partitions)
    parts = [shards.topology_of(p) for p in range(partitions)]
    assert sorted(m for t in parts for m in t.meter_ids.tolist()) == sorted(TOPO.meter_ids.tolist())
    for p, t in enumerate(parts):
        for f in t.feeder_ids:  # a feeder's every meter is on one partition
            members = [
                m for m, k in zip(TOPO.meter_ids.tolist(), shards.keys, strict=True) if k == f
            ]
            assert set(members) <= set(t.meter_ids.tolist())
        local = shards.local_index(p)
        for m in t.meter_ids.tolist():  # full index -> the partition's own index
            assert t.meter_ids[local[TOPO.index_of([m])[0]]] == m
    with pytest.raises(ValueError, match="at least 1"):
        Shards(TOPO, 0)
