"""A small synthetic grid replayed into a real InfluxDB, for the dashboard query tests.

The ``replayed`` fixture is module-scoped: one replay serves every panel query.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest
from influx_server import drop_database, fresh_database, influx_url

from kafka_io.core import Alignment, Outputs
from kafka_io.worker import alignment_points
from lineloss.config import EngineConfig
from loaders.synthetic import SyntheticGridConfig, generate_grid, write_grid
from sinks.influx import InfluxReplaySink, InfluxSettings, InfluxWriter, SinkHealth
from streams.replay import ReplayResult, read_suspicions, run_replay
from workorders.feedback import hit_rates
from workorders.metrics import workorder_points
from workorders.model import Outcome
from workorders.service import SYSTEM, WorkOrderService
from workorders.store import OrderQuery, WorkOrderStore

__all__ = ["AREA_NAMES", "GRID", "Replayed", "influx_url", "replayed"]

# Area names with the characters a real 台区 name may hold; the dashboards must
# find them through Grafana's regex-escaped $area.
AREA_NAMES = ["东村1号台区", '西村 2号,"南" 台区', "A/B\\C=1 (x)", "plain"]
GRID = SyntheticGridConfig(
    seed=11,
    n_feeders=1,
    areas_per_feeder=4,
    customers_per_area=(8, 15),
    dedicated_per_feeder=(1, 1),
    days=6,
    theft_fraction=0.15,
)


@dataclass(frozen=True)
class Replayed:
    settings: InfluxSettings
    out_dir: Path
    result: ReplayResult
    health: SinkHealth
    started_s: float  # wall clock before the replay [s since epoch]
    finished_s: float

    def csv(self, name: str) -> pd.DataFrame:
        return pd.read_csv(self.out_dir / name, keep_default_na=False, na_values=[""])


def _rename_areas(data_dir: Path) -> None:
    path = data_dir / "topology.csv"
    topo = pd.read_csv(path, dtype=str, keep_default_na=False)
    old = sorted(a for a in topo["area_id"].unique() if a)
    mapping = dict(zip(old, AREA_NAMES, strict=True))
    topo["area_id"] = topo["area_id"].map(lambda a: mapping.get(a, a))
    topo.to_csv(path, index=False)


def _work_orders(root: Path, writer: InfluxWriter, tz: str) -> None:
    """The replay's suspicions as work orders; the first one inspected and confirmed
    (now, in wall-clock time, as inspectors work); the snapshot written to InfluxDB
    the way `lineloss workorders metrics` writes it."""
    now_s = int(time.time())
    with WorkOrderStore(f"sqlite:///{root / 'orders.db'}") as store:
        svc = WorkOrderService(store)
        svc.ingest(read_suspicions(root / "out" / "suspicions.csv"), now_s=now_s - 3600)
        first = store.find()[0]
        svc.assign(SYSTEM, first.order_id, "li", now_s=now_s - 1800)
        svc.close(SYSTEM, first.order_id, Outcome.THEFT_CONFIRMED, now_s=now_s - 60)
        closed = store.find(OrderQuery.closed())
        writer.write(
            workorder_points(
                store.state_counts(now_s), hit_rates(closed, tz=tz), now_s=now_s, tz=tz
            )
        )


# What a Kafka worker reports of its partitions' alignment (kafka_io.worker
# alignment_points): partition 1 waits for partition 0, three hours behind it;
# partition 0 waited for the silent partition 2 at first, then it went idle.
ALIGNMENT = (
    # partition, source wm, final wm, held, holding all, waiting for, idle, seconds ago
    (0, 1_772_600_000, 0, 0, True, (2,), False, 120),
    (0, 1_772_610_000, 0, 0, False, (), False, 60),
    (1, 1_772_620_800, 1_772_610_000, 10_800, False, (0,), False, 60),
    (2, 0, 0, 0, False, (), True, 60),
)


def _alignment(writer: InfluxWriter) -> None:
    now_s = int(time.time())
    for p, src, final, _held, all_, waiting, idle, ago in ALIGNMENT:
        alignment = Alignment(p, src or None, final or None, all_, waiting, idle)
        outs = [Outputs(alignment=alignment)]
        writer.write(alignment_points(outs, time_ns=(now_s - ago) * 1_000_000_000))


@pytest.fixture(scope="module")
def replayed(influx_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    root = tmp_path_factory.mktemp("grid")
    write_grid(generate_grid(GRID), root / "data", fmt="csv")
    _rename_areas(root / "data")
    settings = replace(fresh_database(influx_url, "lineloss_dash"), spill_dir=root / "spill")
    config = EngineConfig(tz=GRID.tz)
    writer = InfluxWriter(settings)
    started = time.time()
    result = run_replay(
        root / "data",
        root / "out",
        config,
        batch_rows=3000,  # several batches: suspicions evolve, progress is reported
        sink=InfluxReplaySink(writer, config),
    )
    _work_orders(root, writer, GRID.tz)
    _alignment(writer)
    health = writer.close()
    yield Replayed(settings, root / "out", result, health, started, time.time())
    drop_database(settings)
