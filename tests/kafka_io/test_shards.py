"""Which partition owns which meters: whole feeders, by Kafka's own partitioner."""

from __future__ import annotations

import numpy as np
import pytest
from factories import DAY, DAY0, make_topology

from kafka_io.shards import Shards, partition_of, shard_key
from lineloss.domain import Meter, MeterRole, Topology
from lineloss.timeline import BEGINNING_S, MeterState, TopologyTimeline

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


def test_the_feeders_of_a_named_substation_share_one_key() -> None:
    """The region (Topology.region_of) is the shard: the grid detectors pair a
    customer recorded on one feeder with an area of another feeder of its substation."""
    rows = [
        ("H1", MeterRole.FEEDER, None, "F1", "SS1"),
        ("H2", MeterRole.FEEDER, None, "F2", "SS1"),
        ("T1", MeterRole.AREA, "A1", "F1", None),
        ("C1", MeterRole.CUSTOMER, "A1", None, None),  # its feeder only through its area
        ("C2", MeterRole.CUSTOMER, "A2", "F2", None),
        ("C3", MeterRole.CUSTOMER, "A3", "F3", None),  # a feeder with no named substation
    ]
    topo = Topology.from_meters([Meter(m, r, a, f, 1.0, None, s) for m, r, a, f, s in rows])
    shards = Shards(topo, 5)
    keys = [shards.key(topo.meter(i)) for i in range(topo.n_meters)]
    assert keys == ["substation:SS1"] * 5 + ["F3"]
    assert [shard_key(topo, i) for i in range(topo.n_meters)] == keys
    assert len(set(shards.meter_partition[:5].tolist())) == 1


@pytest.mark.parametrize("partitions", [1, 2, 3, 7])
def test_partitions_split_the_meters_into_whole_feeders(partitions: int) -> None:
    shards = Shards(TOPO, partitions)
    parts = [shards.topology_of(p) for p in range(partitions)]
    assert sorted(m for t in parts for m in t.meter_ids.tolist()) == sorted(TOPO.meter_ids.tolist())
    for p, t in enumerate(parts):
        for f in t.feeder_ids:  # a feeder's every meter is on one partition
            members = [
                m for i, m in enumerate(TOPO.meter_ids.tolist()) if shards.key(TOPO.meter(i)) == f
            ]
            assert set(members) <= set(t.meter_ids.tolist())
        local = shards.local_index(p)
        for m in t.meter_ids.tolist():  # full index -> the partition's own index
            assert t.meter_ids[local[TOPO.index_of([m])[0]]] == m
    with pytest.raises(ValueError, match="at least 1"):
        Shards(TOPO, 0)


def test_a_moved_customer_changes_partition_at_its_move() -> None:
    """Owners per version; a reading on the window end at the move goes to both."""
    moved = Meter("C1", MeterRole.CUSTOMER, "A3", "F2", 1.0)
    timeline = TopologyTimeline.of(TOPO).apply(
        {"C1": (MeterState(BEGINNING_S, TOPO.meter(2)), MeterState(DAY0 + DAY, moved))}
    )
    partitions = next(n for n in range(2, 20) if partition_of(b"F1", n) != partition_of(b"F2", n))
    shards = Shards(timeline, partitions)
    f1, f2 = partition_of(b"F1", partitions), partition_of(b"F2", partitions)
    c1 = timeline.meter_ids.index("C1")
    assert shards.owners[:, c1].tolist() == [f1, f2]
    assert shards.meter_partition[c1] == f2
    idx = np.array([c1, c1, c1])
    window = np.array([DAY0, DAY0, DAY0 + DAY])  # before, on the end, after
    nxt = np.array([DAY0, DAY0 + DAY, DAY0 + DAY])
    within, opens = shards.homes(idx, window, nxt)
    assert within.tolist() == [f1, f1, f2] and opens.tolist() == [f1, f2, f2]
    # Both partitions keep C1 in their part, each while it is theirs.
    one, two = shards.sub_timeline(f1), shards.sub_timeline(f2)
    assert "C1" in one.meter_ids and "C1" in two.meter_ids
    assert one.in_service[:, one.meter_ids.index("C1")].tolist() == [True, False]
    assert two.in_service[:, two.meter_ids.index("C1")].tolist() == [False, True]
