"""The inspection queue, day by day, over replayed history: what inspectors would
have been sent to, when, and what they would have found.

``workorders.csv`` is the queue as of the end of the data. This module replays the
queue as it would have run: after each day's windows became final (``snapshots``:
the detection stage fed window by window, as the worker feeds it, over a recording
of the balance engine), the day's suspicions go through the same work-order service
that production runs (dedupe, valuation, priority, SLA, team capacity), each team
visits what the plan gives it for the day, and every visited order is closed with
what the labels say an inspector would have found there (``Truth``). Closed orders
follow the service's rules (reopened only on grown evidence after cooling-off).

That answers what an analyst sizing teams and thresholds asks: the hit rate of the
visits, how many thefts were caught and how long after they started, how long the
backlog grows at a given capacity. Pure (no clock, no I/O) apart from
``write_queue_backtest`` and ``run_queue_backtest`` (``lineloss queue-backtest``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from detectors import DetectorSettings
from lineloss.config import EngineConfig
from lineloss.domain import BalanceLevel, Suspicion, Topology
from streams.engine import Emission
from streams.pipeline import DetectionStage
from workorders.model import CONFIRMING_OUTCOMES, OrderState, Outcome, WorkOrder
from workorders.policy import Directory
from workorders.service import SYSTEM, WorkOrderService
from workorders.settings import WorkOrderSettings
from workorders.store import OrderQuery, WorkOrderStore

OUTCOME_OF_LABEL = {
    "theft": Outcome.THEFT_CONFIRMED,
    "meter_fault": Outcome.METER_FAULT,
    "topology_error": Outcome.TOPOLOGY_ERROR,
}
_OPEN = frozenset({OrderState.OPEN, OrderState.ASSIGNED, OrderState.IN_PROGRESS})
_CONFIRMING = frozenset(o.value for o in CONFIRMING_OUTCOMES)


@dataclass(frozen=True)
class Truth:
    """What an inspector finds at a site, from labels (``labels.csv`` layout):
    a labelled meter shows its label once its case has started (an unstarted theft
    is not there yet); an area order (a sweep of the transformer area) finds theft
    when any labelled thief of the area has started."""

    label: dict[str, str]
    start_s: dict[str, int | None]
    thieves_of_area: dict[str, list[str]]

    @classmethod
    def from_labels(cls, labels: pd.DataFrame, topology: Topology) -> Truth:
        cases = labels[labels["label"].astype(str) != "normal"]
        label = dict(zip(cases["meter_id"].astype(str), cases["label"].astype(str), strict=True))
        starts = cases["start"] if "start" in cases else pd.Series([""] * len(cases))
        start_s = {
            m: _epoch_s(s) for m, s in zip(cases["meter_id"].astype(str), starts, strict=True)
        }
        area_of = {
            str(m): topology.area_ids[a]
            for m, a in zip(topology.meter_ids, topology.meter_area.tolist(), strict=True)
            if a >= 0
        }
        thieves: dict[str, list[str]] = {}
        for m, lab in label.items():
            if lab == "theft" and m in area_of:
                thieves.setdefault(area_of[m], []).append(m)
        return cls(label, start_s, thieves)

    def started(self, meter_id: str, at_s: int) -> bool:
        start = self.start_s.get(meter_id)
        return meter_id in self.label and (start is None or start <= at_s)

    def outcome(self, order: WorkOrder, at_s: int) -> Outcome:
        if order.target_kind == "area":
            thieves = self.thieves_of_area.get(order.target_id, [])
            found = any(self.started(m, at_s) for m in thieves)
            return Outcome.THEFT_CONFIRMED if found else Outcome.NO_FINDING
        if not self.started(order.target_id, at_s):
            return Outcome.NO_FINDING
        return OUTCOME_OF_LABEL.get(self.label[order.target_id], Outcome.NO_FINDING)


@dataclass(frozen=True)
class Visit:
    day: str  # local date of the visit
    at_s: int
    order_id: str
    target_id: str
    target_kind: str
    category: str
    score: float
    estimated_value: float
    team: str
    outcome: str
    true_label: str  # the labels' word on the target ("normal" when unlabelled)
    days_since_start: float | None  # for a labelled case that had started


@dataclass(frozen=True)
class QueueDay:
    day: str
    at_s: int
    suspicions: int
    orders_created: int
    orders_reopened: int
    visits: int
    confirmed: int  # theft or meter fault found
    topology_found: int
    no_finding: int
    open_after: int  # backlog after the day's visits
    overdue_after: int


@dataclass
class QueueBacktest:
    days: list[QueueDay] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    summary: dict[str, object] = field(default_factory=dict)
    theft_starts_s: list[int] = field(default_factory=list)  # of the labelled thefts


def snapshots(
    emissions: Iterable[Emission],
    stage: DetectionStage,
    *,
    horizon_s: int,
    tz: str,
) -> Iterator[tuple[int, list[Suspicion]]]:
    """(decision time, current suspicions) once per local day: ``stage`` is fed
    each final window in
    order, and a window is known ``horizon_s`` after its end, when it becomes final
    live; a day's decisions come once its last window is known."""
    pending: int | None = None
    pending_day = ""
    for window in _final_windows(emissions):
        at_s = window.final_meter_windows[0].window_end + horizon_s
        day = _day(at_s, tz)
        if pending is not None and day != pending_day:
            yield pending, stage.book.suspicions()
        stage.process(window)
        pending, pending_day = at_s, day
    if pending is not None:
        yield pending, stage.book.suspicions()


def _final_windows(emissions: Iterable[Emission]) -> Iterator[Emission]:
    """Each final window alone, in window order: its final area balances and its
    meter window (what the worker's detection child is fed, window by window)."""
    for e in emissions:
        for result in sorted(e.final_meter_windows, key=lambda r: r.window_start):
            balances = [
                b
                for b in e.balances
                if b.final
                and b.level == BalanceLevel.AREA
                and b.window_start == result.window_start
            ]
            yield Emission(balances, [result])


def simulate_queue(
    days: Iterable[tuple[int, Sequence[Suspicion]]],
    truth: Truth,
    *,
    settings: WorkOrderSettings,
    directory: Directory,
    tz: str = "Asia/Shanghai",
) -> QueueBacktest:
    """Run the work-order service day by day: ingest the day's suspicions, visit
    the day's plan (``visit_day`` 0 of every team, at its capacity), close each
    visit with what ``truth`` says was there."""
    out = QueueBacktest()
    with WorkOrderStore("sqlite:///:memory:") as store:
        service = WorkOrderService(
            store, policy=settings.policy, tariffs=settings.tariffs, directory=directory
        )
        for at_s, suspicions in days:
            report = service.ingest(suspicions, now_s=at_s)
            today = [v.order for v in service.plan(SYSTEM) if v.visit_day == 0]
            found = []
            for order in today:
                outcome = truth.outcome(order, at_s)
                service.assign(SYSTEM, order.order_id, f"{order.team}/inspector", now_s=at_s)
                service.close(SYSTEM, order.order_id, outcome, now_s=at_s)
                found.append(outcome)
                out.visits.append(_visit(order, outcome, truth, at_s, tz))
            still_open = service.find(SYSTEM, OrderQuery(states=_OPEN, limit=1_000_000))
            out.days.append(
                QueueDay(
                    day=_day(at_s, tz),
                    at_s=at_s,
                    suspicions=len(suspicions),
                    orders_created=report.created,
                    orders_reopened=report.reopened,
                    visits=len(today),
                    confirmed=sum(o in CONFIRMING_OUTCOMES for o in found),
                    topology_found=sum(o == Outcome.TOPOLOGY_ERROR for o in found),
                    no_finding=sum(o == Outcome.NO_FINDING for o in found),
                    open_after=len(still_open),
                    overdue_after=sum(o.due_s < at_s for o in still_open),
                )
            )
    out.summary = summarise(out, truth)
    end_s = out.days[-1].at_s if out.days else 0
    out.theft_starts_s = sorted(
        s if s is not None else 0
        for m, s in truth.start_s.items()
        if truth.label[m] == "theft" and truth.started(m, end_s)
    )
    return out


def _visit(order: WorkOrder, outcome: Outcome, truth: Truth, at_s: int, tz: str) -> Visit:
    target = order.target_id
    start = truth.start_s.get(target)
    since = None
    if order.target_kind != "area" and truth.started(target, at_s) and start is not None:
        since = round((at_s - start) / 86400, 3)
    return Visit(
        day=_day(at_s, tz),
        at_s=at_s,
        order_id=order.order_id,
        target_id=target,
        target_kind=str(order.target_kind),
        category=order.evidence.category,
        score=order.evidence.score,
        estimated_value=order.evidence.estimated_value,
        team=order.team,
        outcome=outcome.value,
        true_label=truth.label.get(target, "normal"),
        days_since_start=since,
    )


def summarise(result: QueueBacktest, truth: Truth) -> dict[str, object]:
    """Hit rate of the visits; per labelled category, the share of the cases that
    started in the replayed span and were visited and found, and how soon."""
    visits = result.visits
    end_s = result.days[-1].at_s if result.days else 0
    summary: dict[str, object] = {
        "days": len(result.days),
        "visits": len(visits),
        "hit_rate": _share(sum(v.outcome in _CONFIRMING for v in visits), len(visits)),
        "topology_found": sum(v.outcome == Outcome.TOPOLOGY_ERROR.value for v in visits),
        "max_open": max((d.open_after for d in result.days), default=0),
        "open_at_end": result.days[-1].open_after if result.days else 0,
        "overdue_at_end": result.days[-1].overdue_after if result.days else 0,
    }
    for label, outcome in OUTCOME_OF_LABEL.items():
        cases = [m for m, lab in truth.label.items() if lab == label and truth.started(m, end_s)]
        found = {
            v.target_id: v.days_since_start
            for v in visits
            if v.target_kind != "area" and v.outcome == outcome.value and v.true_label == label
        }
        delays = [d for d in found.values() if d is not None]
        summary[label] = {
            "cases": len(cases),
            "found": len(found),
            "found_share": _share(len(found), len(cases)),
            "found_within_7d_share": _share(sum(d <= 7 for d in delays), len(cases)),
            "found_within_14d_share": _share(sum(d <= 14 for d in delays), len(cases)),
            "median_days_to_visit": float(np.median(delays)) if delays else None,
        }
    summary["area_sweeps_finding_theft"] = sum(
        v.target_kind == "area" and v.outcome == Outcome.THEFT_CONFIRMED.value for v in visits
    )
    return summary


def write_queue_backtest(result: QueueBacktest, out_dir: Path) -> None:
    """``queue_days.csv``, ``queue_visits.csv``, ``queue_summary.json`` and
    ``queue.png`` (visits per day by what was found, the backlog, the thefts caught)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    days = pd.DataFrame([asdict(d) for d in result.days], columns=list(QueueDay.__annotations__))
    visits = pd.DataFrame([asdict(v) for v in result.visits], columns=list(Visit.__annotations__))
    days.to_csv(out_dir / "queue_days.csv", index=False)
    visits.to_csv(out_dir / "queue_visits.csv", index=False)
    (out_dir / "queue_summary.json").write_text(json.dumps(result.summary, indent=2) + "\n")
    _plot(days, visits, result.summary, result.theft_starts_s, out_dir / "queue.png")


def _plot(
    days: pd.DataFrame,
    visits: pd.DataFrame,
    summary: dict[str, object],
    theft_starts: list[int],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    x = pd.to_datetime(days["day"]) if len(days) else pd.Series([], dtype="datetime64[ns]")
    missed = days["visits"] - days["confirmed"] - days["topology_found"] - days["no_finding"]
    bottom_stack = np.zeros(len(days))
    for column, values, color in (
        ("theft or fault found", days["confirmed"], "tab:red"),
        ("topology error found", days["topology_found"], "tab:orange"),
        ("nothing found", days["no_finding"] + missed, "tab:gray"),
    ):
        top.bar(x, values, bottom=bottom_stack, color=color, label=column, width=0.8)
        bottom_stack = bottom_stack + np.asarray(values, float)
    top.set_ylabel("visits per day")
    backlog = top.twinx()
    backlog.plot(x, days["open_after"], color="black", label="open orders")
    backlog.set_ylim(0, max(1, int(days["open_after"].max() if len(days) else 0)) * 1.1)
    backlog.set_ylabel("open orders after the day")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(
        f"Inspection queue, day by day: {len(visits)} visits, hit rate {summary.get('hit_rate')}"
    )
    thefts = summary.get("theft", {})
    cases = int(thefts.get("cases", 0)) if isinstance(thefts, dict) else 0
    caught = visits[(visits["true_label"] == "theft") & (visits["outcome"] == "theft_confirmed")]
    if len(days):
        per_day = caught.groupby("day").size().reindex(days["day"], fill_value=0).cumsum()
        bottom.step(
            x, per_day.to_numpy() / max(cases, 1), where="post", color="tab:red", label="caught"
        )
        started = [sum(s <= at for s in theft_starts) for at in days["at_s"]]
        bottom.step(
            x,
            np.array(started) / max(cases, 1),
            where="post",
            color="gray",
            linestyle="--",
            label="started",
        )
        bottom.legend(loc="upper left", fontsize=8)
    bottom.set_ylim(0, 1.05)
    bottom.set_ylabel(f"share of the {cases} thefts caught")
    bottom.set_xlabel("day")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_queue_backtest(
    data_dir: Path,
    labels_path: Path,
    out_dir: Path,
    config: EngineConfig,
    *,
    detector_settings: DetectorSettings | None = None,
    settings: WorkOrderSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> QueueBacktest:
    """``lineloss queue-backtest``: record the balance engine over ``data_dir``,
    feed detection window by window, run the queue day by day, write the report."""
    from streams.tuning import record
    from workorders.backtest import billed_kwh_per_month, directory_for

    say = progress or (lambda _m: None)
    settings = settings or WorkOrderSettings()
    rec = record(data_dir, config)
    say(f"recorded {rec.days:.0f} days of {rec.topology.n_meters} meters")
    labels = pd.read_csv(labels_path, dtype={"meter_id": str}, keep_default_na=False)
    truth = Truth.from_labels(labels, rec.topology)
    windows = [r for e in rec.emissions for r in e.final_meter_windows]
    directory = directory_for(
        rec.topology, settings, billed_kwh_per_month(windows, rec.topology.meter_ids)
    )
    stage = DetectionStage(rec.topology, config, detector_settings or {})
    days = snapshots(rec.emissions, stage, horizon_s=config.recollect_horizon_s, tz=config.tz)
    result = simulate_queue(days, truth, settings=settings, directory=directory, tz=config.tz)
    write_queue_backtest(result, out_dir)
    say(
        f"{len(result.days)} days, {len(result.visits)} visits, hit rate "
        f"{result.summary['hit_rate']} -> {out_dir}"
    )
    return result


def _share(n: int, of: int) -> float | None:
    return round(n / of, 4) if of else None


def _day(ts_s: int, tz: str) -> str:
    return pd.Timestamp(ts_s, unit="s", tz="UTC").tz_convert(tz).strftime("%Y-%m-%d")


def _epoch_s(value: object) -> int | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value) == "":
        return None
    ts = pd.Timestamp(str(value))
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.timestamp())
