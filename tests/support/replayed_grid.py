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
    health = writer.close()
    yield Replayed(settings, root / "out", result, health, started, time.time())
    drop_database(settings)
