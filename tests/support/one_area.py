"""One area of three customers on one partition, and its concentrator batches: a
partition core small enough to build in a test (kafka_io tests)."""

from __future__ import annotations

import numpy as np
from factories import DAY0, make_topology

from kafka_io.schema import Origin, ReadingRow, encode_batch
from kafka_io.shards import Shards
from lineloss.config import EngineConfig

TOPO = make_topology(
    [
        ("T1", "area", "A1", "F1", 1.0),
        ("C1", "customer", "A1", "F1", 1.0),
        ("C2", "customer", "A1", "F1", 1.0),
        ("C3", "customer", "A1", "F1", 1.0),
    ]
)
CONFIG = EngineConfig(window_s=6 * 3600, allowed_lateness_s=1800, revision_interval_s=0)
PARTITIONS = 1
SHARDS = Shards(TOPO, PARTITIONS)


def quarter_hours(n: int, seed: int = 4) -> list[tuple[Origin, bytes]]:
    """``n`` quarter hours of the area's registers, one concentrator batch each, at
    offsets 0.. of partition 0 of topic "r"."""
    rng = np.random.default_rng(seed)
    regs = dict.fromkeys(["T1", "C1", "C2", "C3"], 100.0)
    out = []
    for k in range(n):
        for m in regs:
            regs[m] = round(regs[m] + float(rng.gamma(1.5, 0.4)) * (3 if m == "T1" else 1), 2)
        rows = [ReadingRow(m, DAY0 + 900 * (k + 1), v) for m, v in regs.items()]
        out.append((Origin("r", 0, k), encode_batch("A1", rows)))
    return out
