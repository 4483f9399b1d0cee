"""Embedded runner: drive the pipeline from files, write the results as files.

The replay feeds readings in arrival order (``received_at`` when the data has it,
else file order) in batches, exactly as a streaming worker would receive them, so a
back-test exercises the same code as production.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from detectors import DetectorSettings
from lineloss.config import EngineConfig
from lineloss.domain import (
    Balance,
    BalanceLevel,
    Rejects,
    Suspicion,
    SuspicionCategory,
    TargetKind,
)
from lineloss.timeline import TopologyTimeline
from loaders.files import REJECT_COLUMNS, LoadedReadings, read_readings, read_topology_timeline
from streams.engine import MeterWindowResult
from streams.pipeline import Pipeline, StepOutput
from streams.registers import flag_names
from workorders.backtest import write_workorders
from workorders.settings import WorkOrderSettings

ProgressFn = Callable[[str], None]

BALANCE_COLUMNS = [
    "area_id",
    "feeder_id",
    "window_start",
    "window_end",
    "supply_kwh",
    "billed_kwh",
    "loss_kwh",
    "loss_rate",
    "coverage",
    "meters_expected",
    "meters_reporting",
    "status",
    "reason",
    "revision",
]
FEEDER_COLUMNS = ["feeder_id", *BALANCE_COLUMNS[2:]]
SUSPICION_COLUMNS = [
    "target_id",
    "target_kind",
    "category",
    "score",
    "first_detected",
    "estimated_kwh",
    "evidence",
    "area_id",
    "detector",
    "detector_scores",
    "start",
]


@dataclass(frozen=True)
class ReplayProgress:
    """Where a replay stands after a batch: what a sink needs for pipeline health."""

    readings_fed: int  # usable rows fed to the pipeline so far
    readings_total: int  # usable rows in the data
    accepted: int  # fed and not refused by the engine
    rejected_by_reason: dict[str, int]  # cumulative, refused rows at load included
    balances_emitted: int  # area and feeder balances issued (provisional, revised, final)
    stream_time_s: int | None  # newest accepted reading [s since epoch]
    elapsed_s: float
    done: bool


class ReplaySink(Protocol):
    """Receives results as the replay produces them (e.g. sinks.influx.InfluxReplaySink).

    Balances arrive in issue order, so a revision comes after the provisional balance
    it replaces; a sink that keys points by series and window start overwrites it.
    """

    def balances(self, balances: Sequence[Balance]) -> None: ...

    def suspicions(self, suspicions: Sequence[Suspicion], stream_time_s: int) -> None: ...

    def progress(self, progress: ReplayProgress) -> None: ...


@dataclass(frozen=True)
class ReplayResult:
    out_dir: Path
    readings: int
    accepted: int
    rejected: int
    area_windows: int
    status_counts: dict[str, int]
    suspicions: list[Suspicion]
    elapsed_s: float


def _iso(ts_s: np.ndarray | list[int], tz: str) -> list[str]:
    idx = pd.to_datetime(np.asarray(ts_s, dtype=np.int64), unit="s", utc=True).tz_convert(tz)
    return [t.isoformat() for t in idx]


def history_frame(balances: list[Balance], tz: str) -> pd.DataFrame:
    """Every emitted balance, area and feeder, in emission order."""
    return pd.DataFrame(
        {
            "level": [b.level.value for b in balances],
            "target_id": [b.target_id for b in balances],
            "feeder_id": [b.feeder_id or "" for b in balances],
            "window_start": _iso([b.window_start for b in balances], tz),
            "window_end": _iso([b.window_end for b in balances], tz),
            "supply_kwh": [b.supply_kwh for b in balances],
            "billed_kwh": [b.billed_kwh for b in balances],
            "loss_kwh": [b.loss_kwh for b in balances],
            "loss_rate": [round(b.loss_rate, 8) for b in balances],
            "coverage": [round(b.coverage, 6) for b in balances],
            "meters_expected": [b.meters_expected for b in balances],
            "meters_reporting": [b.meters_reporting for b in balances],
            "status": [b.status.value for b in balances],
            "reason": [b.reason for b in balances],
            "revision": [b.revision for b in balances],
            "final": [b.final for b in balances],
        }
    )


def balances_frame(balances: list[Balance], tz: str, level: BalanceLevel) -> pd.DataFrame:
    """Final balances of one level in the published column layout."""
    df = history_frame([b for b in balances if b.level == level and b.final], tz)
    if level == BalanceLevel.AREA:
        df = df.rename(columns={"target_id": "area_id"})[BALANCE_COLUMNS]
    else:
        df = df.drop(columns=["feeder_id"]).rename(columns={"target_id": "feeder_id"})
        df = df[FEEDER_COLUMNS]
    return df.reset_index(drop=True)


def format_detector_scores(scores: tuple[tuple[str, float], ...]) -> str:
    """``theft_localiser=0.91;meter_shape=0.62``: one CSV cell, strongest first."""
    return ";".join(f"{name}={score:g}" for name, score in scores)


def parse_detector_scores(text: str) -> tuple[tuple[str, float], ...]:
    """Inverse of :func:`format_detector_scores` (empty text -> no scores)."""
    out = []
    for part in filter(None, str(text).split(";")):
        name, _, score = part.partition("=")
        out.append((name, float(score)))
    return tuple(out)


def suspicions_frame(suspicions: list[Suspicion], tz: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "target_id": [s.target_id for s in suspicions],
            "target_kind": [s.target_kind.value for s in suspicions],
            "category": [s.category.value for s in suspicions],
            "score": [s.score for s in suspicions],
            "first_detected": _iso([s.first_detected for s in suspicions], tz),
            "estimated_kwh": [s.estimated_kwh for s in suspicions],
            "evidence": [s.evidence for s in suspicions],
            "area_id": [s.area_id or "" for s in suspicions],
            "detector": [s.detector for s in suspicions],
            "detector_scores": [format_detector_scores(s.detector_scores) for s in suspicions],
            "start": ["" if s.start_s is None else _iso([s.start_s], tz)[0] for s in suspicions],
        },
        columns=SUSPICION_COLUMNS,
    )


def read_suspicions(path: Path) -> list[Suspicion]:
    """Suspicions back from a ``suspicions.csv`` (the inverse of suspicions_frame)."""
    df = pd.read_csv(path, keep_default_na=False, dtype=str)

    def epoch_s(text: str) -> int | None:
        return int(pd.Timestamp(text).timestamp()) if text else None

    return [
        Suspicion(
            target_id=r["target_id"],
            target_kind=TargetKind(r["target_kind"]),
            category=SuspicionCategory(r["category"]),
            score=float(r["score"]),
            first_detected=epoch_s(r["first_detected"]) or 0,
            estimated_kwh=float(r["estimated_kwh"]),
            evidence=r["evidence"],
            area_id=r["area_id"] or None,
            detector=r["detector"],
            detector_scores=parse_detector_scores(r.get("detector_scores", "")),
            start_s=epoch_s(r.get("start", "")),
        )
        for r in df.to_dict("records")
    ]


def _engine_rejects_frame(rejects: list[Rejects], loaded: LoadedReadings) -> pd.DataFrame:
    if not rejects or sum(len(r) for r in rejects) == 0:
        return pd.DataFrame(columns=REJECT_COLUMNS)
    rows = np.concatenate([r.source_pos for r in rejects])
    pos_of_row = pd.Series(np.arange(len(loaded.batch)), index=loaded.batch.source_pos)
    pos = pos_of_row.loc[rows].to_numpy()
    return pd.DataFrame(
        {
            "source": loaded.source,
            "row": rows,
            "meter_id": loaded.raw_meter_ids[pos],
            "ts": loaded.raw_ts[pos],
            "reason": [x.value for r in rejects for x in r.reason],
            "detail": [d for r in rejects for d in r.detail],
        },
        columns=REJECT_COLUMNS,
    )


def meter_windows_frame(
    meter_ids: npt.NDArray[np.object_],
    window_start_s: npt.NDArray[np.int64],
    energy_kwh: npt.NDArray[np.float64],
    reporting: npt.NDArray[np.bool_],
    flags: npt.NDArray[np.int8],
    events: npt.NDArray[np.int32],
    tz: str,
) -> pd.DataFrame:
    """``meter_windows.parquet``: one row per meter and final window (flat arrays),
    sorted by window and meter, flags as names."""
    flag_text = {int(f): ";".join(flag_names(int(f))) for f in np.unique(flags)}
    frame = pd.DataFrame(
        {
            "meter_id": meter_ids,
            "window_start": pd.to_datetime(window_start_s, unit="s", utc=True).tz_convert(tz),
            "energy_kwh": energy_kwh,
            "reporting": reporting,
            "flags": pd.Series(flags).map(flag_text).to_numpy() if len(flags) else [],
            "events": events,
        },
        columns=["meter_id", "window_start", "energy_kwh", "reporting", "flags", "events"],
    )
    return frame.sort_values(["window_start", "meter_id"], kind="stable").reset_index(drop=True)


def _meter_windows_frame(
    results: list[MeterWindowResult], timeline: TopologyTimeline, tz: str
) -> pd.DataFrame:
    """The meters in service in each window (all of them, without registry changes)."""
    keep = [
        np.flatnonzero(timeline.in_service[int(timeline.version_index([r.window_start])[0])])
        for r in results
    ]
    ids = np.array(timeline.meter_ids, dtype=object)

    def cat(arrays: list[Any], dtype: Any) -> Any:
        return np.concatenate(arrays) if arrays else np.empty(0, dtype)

    return meter_windows_frame(
        cat([ids[k] for k in keep], object),
        cat(
            [np.full(len(k), r.window_start, np.int64) for r, k in zip(results, keep, strict=True)],
            np.int64,
        ),
        cat([r.energy_kwh[k] for r, k in zip(results, keep, strict=True)], np.float64),
        cat([r.reporting[k] for r, k in zip(results, keep, strict=True)], np.bool_),
        cat([r.flags[k] for r, k in zip(results, keep, strict=True)], np.int8),
        cat([r.events[k] for r, k in zip(results, keep, strict=True)], np.int32),
        tz,
    )


def run_replay(
    data_dir: Path,
    out_dir: Path,
    config: EngineConfig,
    *,
    batch_rows: int = 1_000_000,
    progress: ProgressFn | None = None,
    sink: ReplaySink | None = None,
    detector_settings: DetectorSettings | None = None,
    workorder_settings: WorkOrderSettings | None = None,
) -> ReplayResult:
    """Replay ``data_dir`` through the pipeline and write the results to ``out_dir``.

    ``sink``, when given, also receives every balance, the suspicions and progress
    counters after each batch (and once more after the final flush).
    """
    t0 = time.monotonic()
    say = progress or (lambda _msg: None)
    timeline, topo_rejects = read_topology_timeline(data_dir)
    topology = timeline.latest  # every meter the registry ever named, as it is now
    say(
        f"topology: {topology.n_meters} meters, {len(topology.area_ids)} areas, "
        f"{len(topology.feeder_ids)} feeders"
        + (f", {len(timeline.starts_s) - 1} dated changes" if len(timeline.starts_s) > 1 else "")
    )
    loaded = read_readings(data_dir, topology)
    n = len(loaded.batch)
    say(f"readings: {n:,} usable rows, {len(loaded.rejects):,} malformed")

    pipeline = Pipeline(timeline, config, detector_settings=detector_settings)
    history: list[Balance] = []
    meter_windows: list[MeterWindowResult] = []
    engine_rejects: list[Rejects] = []
    rejected_by_reason = Counter(
        [*topo_rejects.get("reason", []), *loaded.rejects.get("reason", [])]
    )

    def feed_sink(out: StepOutput, fed: int, done: bool) -> None:
        if sink is None:
            return
        sink.balances(out.balances)
        rejected_by_reason.update(r.value for r in out.rejects.reason)
        stream_time_s = pipeline.stream_time_s
        if stream_time_s is not None:
            sink.suspicions(pipeline.suspicions(), stream_time_s)
        sink.progress(
            ReplayProgress(
                readings_fed=fed,
                readings_total=n,
                accepted=fed - sum(len(r) for r in engine_rejects),
                rejected_by_reason=dict(rejected_by_reason),
                balances_emitted=len(history),
                stream_time_s=stream_time_s,
                elapsed_s=time.monotonic() - t0,
                done=done,
            )
        )

    last_report = time.monotonic()
    for lo in range(0, n, batch_rows):
        out = pipeline.step(loaded.batch.take(np.arange(lo, min(lo + batch_rows, n))))
        history.extend(out.balances)
        meter_windows.extend(out.final_meter_windows)
        engine_rejects.append(out.rejects)
        feed_sink(out, min(lo + batch_rows, n), done=False)
        now = time.monotonic()
        if now - last_report >= 2.0:
            done = min(lo + batch_rows, n)
            rate = done / max(now - t0, 1e-9)
            say(
                f"replay: {done:,}/{n:,} readings ({done / n:.0%}), {rate:,.0f} readings/s, "
                f"{sum(1 for b in history if b.final)} final balances"
            )
            last_report = now
    out = pipeline.flush()
    history.extend(out.balances)
    meter_windows.extend(out.final_meter_windows)
    feed_sink(out, n, done=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    tz = config.tz
    area_final = balances_frame(history, tz, BalanceLevel.AREA)
    area_final.to_csv(out_dir / "balances.csv", index=False)
    balances_frame(history, tz, BalanceLevel.FEEDER).to_csv(
        out_dir / "feeder_balances.csv", index=False
    )
    history_frame(history, tz).to_csv(out_dir / "balance_history.csv", index=False)
    suspicions = pipeline.suspicions()
    suspicions_frame(suspicions, tz).to_csv(out_dir / "suspicions.csv", index=False)
    orders = write_workorders(
        out_dir,
        suspicions,
        topology,
        now_s=max((b.window_end for b in history), default=0),
        settings=workorder_settings,
        meter_windows=meter_windows,
        tz=tz,
    )
    rejects = pd.concat(
        [
            topo_rejects if len(topo_rejects) else None,
            loaded.rejects if len(loaded.rejects) else None,
            _engine_rejects_frame(engine_rejects, loaded),
        ],
        ignore_index=True,
    )
    rejects.to_csv(out_dir / "rejects.csv", index=False)
    _meter_windows_frame(meter_windows, timeline, tz).to_parquet(
        out_dir / "meter_windows.parquet", index=False
    )
    n_engine_rejects = sum(len(r) for r in engine_rejects)
    status_counts = area_final["status"].value_counts().sort_index().to_dict()
    result = ReplayResult(
        out_dir=out_dir,
        readings=n + len(loaded.rejects),
        accepted=n - n_engine_rejects,
        rejected=len(loaded.rejects) + n_engine_rejects,
        area_windows=len(area_final),
        status_counts={str(k): int(v) for k, v in status_counts.items()},
        suspicions=suspicions,
        elapsed_s=time.monotonic() - t0,
    )
    (out_dir / "summary.json").write_text(
        json.dumps(
            {
                "readings": result.readings,
                "accepted": result.accepted,
                "rejected": result.rejected,
                "rejected_by_reason": rejects["reason"].value_counts().sort_index().to_dict(),
                "area_windows": result.area_windows,
                "status_counts": result.status_counts,
                "suspicions": len(suspicions),
                "workorders": len(orders),
                "window_s": config.window_s,
                "tz": tz,
            },
            indent=2,
        )
        + "\n"
    )
    say(
        f"done in {result.elapsed_s:.1f} s: {result.accepted:,} readings balanced, "
        f"{result.rejected:,} rejected, {len(suspicions)} suspicions -> {out_dir}"
    )
    return result
