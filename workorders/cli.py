"""``lineloss workorders ...``: the work-order service from the command line.

The command line is the operator's tool: it acts as a supervisor of every team,
named by ``--as`` in the audit trail. Inspectors use the web page or the API.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workorders.service import WorkOrderService
    from workorders.settings import WorkOrderSettings

DEFAULT_DB = "sqlite:///workorders.db"


def _service(args: argparse.Namespace) -> tuple[WorkOrderService, WorkOrderSettings]:
    from workorders.backtest import billed_kwh_per_month_of_replay, directory_for
    from workorders.policy import Directory
    from workorders.service import WorkOrderService
    from workorders.settings import WorkOrderSettings
    from workorders.store import WorkOrderStore

    settings = WorkOrderSettings.load(args.config)
    directory = Directory(team_by_area=settings.team_by_area)
    if getattr(args, "data_dir", None) is not None:
        from loaders.files import read_topology

        topology, _ = read_topology(args.data_dir)
        out_dir: Path | None = getattr(args, "out_dir", None)
        billed = billed_kwh_per_month_of_replay(out_dir) if out_dir is not None else {}
        directory = directory_for(topology, settings, billed)
    service = WorkOrderService(
        WorkOrderStore(args.db),
        policy=settings.policy,
        tariffs=settings.tariffs,
        directory=directory,
    )
    return service, settings


def _actor(args: argparse.Namespace) -> Any:
    from workorders.model import Role
    from workorders.service import Principal

    return Principal(args.actor, Role.SUPERVISOR)


def _now_s(args: argparse.Namespace) -> int:
    import pandas as pd

    text = getattr(args, "now", None)
    return int(pd.Timestamp(text).timestamp()) if text else int(time.time())


def cmd_ingest(args: argparse.Namespace) -> int:
    import pandas as pd

    from streams.replay import read_suspicions

    svc, _ = _service(args)
    suspicions = read_suspicions(args.out_dir / "suspicions.csv")
    now_s = _now_s(args)
    if args.now is None and (args.out_dir / "balances.csv").exists():
        ends = pd.read_csv(args.out_dir / "balances.csv", usecols=["window_end"])["window_end"]
        if len(ends):  # a back-test: orders as of the end of the replayed data
            now_s = int(pd.to_datetime(ends, utc=True).max().timestamp())
    report = svc.ingest(suspicions, now_s=now_s)
    print(
        f"{len(suspicions)} suspicions: {report.created} orders created, {report.updated} "
        f"updated, {report.reopened} reopened, skipped {report.skipped or 'none'}"
    )
    return 0


def _states(names: list[str] | None) -> Any:
    from workorders.model import OrderState

    return None if not names else frozenset(OrderState(n) for n in names)


def cmd_list(args: argparse.Namespace) -> int:
    from workorders.api import order_out
    from workorders.store import OrderQuery

    svc, _ = _service(args)
    now_s = _now_s(args)
    q = OrderQuery(
        teams=frozenset({args.team}) if args.team else None,
        states=_states(args.state),
        overdue_at_s=now_s if args.overdue else None,
        limit=args.limit,
    )
    orders = svc.find(_actor(args), q)
    if args.json:
        print(json.dumps([order_out(o, now_s).model_dump(mode="json") for o in orders], indent=2))
        return 0
    print(f"{'order':20s} {'target':14s} {'category':15s} {'state':11s} {'prio':>9s} due")
    for o in orders:
        flag = " OVERDUE" if o.is_overdue(now_s) else ""
        due = time.strftime("%Y-%m-%d", time.gmtime(o.due_s))
        print(
            f"{o.order_id:20s} {o.target_id:14s} {o.evidence.category:15s} {o.state.value:11s} "
            f"{o.evidence.priority:9.0f} {due}{flag}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from workorders.api import _audit_out, order_out

    svc, settings = _service(args)
    who = _actor(args)
    order = svc.get(who, args.order_id)
    out = order_out(order, _now_s(args)).model_dump(mode="json")
    out["audit"] = [_audit_out(a).model_dump(mode="json") for a in svc.audit(who, args.order_id)]
    print(json.dumps(out, indent=2, ensure_ascii=False))
    if args.evidence_from is not None:
        from workorders.packs import EvidenceProvider

        provider = EvidenceProvider.for_replay(
            args.evidence_from, currency=settings.tariffs.currency
        )
        pack = provider(order)
        dest: Path = args.evidence_to or Path(f"{order.order_id}-evidence")
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "evidence.png").write_bytes(pack.png)
        (dest / "series.csv").write_bytes(pack.csv)
        (dest / "summary.json").write_bytes(pack.summary_json)
        print(f"evidence -> {dest}", file=sys.stderr)
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    svc, _ = _service(args)
    o = svc.assign(_actor(args), args.order_id, args.assignee, now_s=_now_s(args), notes=args.notes)
    print(f"{o.order_id} assigned to {o.assignee}")
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    from workorders.model import Outcome

    svc, _ = _service(args)
    o = svc.close(
        _actor(args),
        args.order_id,
        Outcome(args.outcome),
        now_s=_now_s(args),
        notes=args.notes,
        recovered_kwh=args.recovered_kwh,
    )
    print(f"{o.order_id} closed: {o.outcome}")
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    from workorders.feedback import feedback_labels
    from workorders.store import OrderQuery

    svc, _ = _service(args)
    closed = svc.find(_actor(args), OrderQuery.closed())
    labels = feedback_labels(closed, tz=args.tz)
    labels.to_csv(args.out, index=False)
    print(f"{len(labels)} labels from {len(closed)} closed orders -> {args.out}")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from sinks.influx import InfluxSettings, InfluxWriter
    from workorders.feedback import hit_rates
    from workorders.metrics import workorder_points
    from workorders.store import OrderQuery

    svc, _ = _service(args)
    now_s = _now_s(args)
    closed = svc.store.find(OrderQuery.closed())
    points = workorder_points(
        svc.store.state_counts(now_s), hit_rates(closed, tz=args.tz), now_s=now_s, tz=args.tz
    )
    settings = InfluxSettings(
        url=args.influx_url,
        database=args.influx_db,
        token=args.influx_token,
    )
    writer = InfluxWriter(settings)
    writer.write(points)
    health = writer.close()
    if health.points_written_total < len(points):
        print(
            f"lineloss workorders metrics: InfluxDB took {health.points_written_total}/"
            f"{len(points)} points: {health.last_error}",
            file=sys.stderr,
        )
        return 1
    print(f"{len(points)} work-order points -> {args.influx_url} db {args.influx_db}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from workorders.api import TokenBook, create_app
    from workorders.packs import EvidenceProvider

    svc, settings = _service(args)
    evidence = (
        EvidenceProvider.for_replay(args.evidence_from, currency=settings.tariffs.currency)
        if args.evidence_from
        else None
    )
    app = create_app(svc, TokenBook.from_file(args.tokens), evidence=evidence, tz=args.tz)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """The live service: suspicions topic in, orders topic out."""
    from kafka_io.topics import KafkaSettings
    from kafka_io.workorders import KafkaOrderSink, run_workorder_consumer

    if not args.bootstrap:
        print("lineloss workorders run: --bootstrap or $LINELOSS_KAFKA_BOOTSTRAP", file=sys.stderr)
        return 2
    kafka = KafkaSettings(args.bootstrap, args.prefix)
    svc, _ = _service(args)
    sink = KafkaOrderSink(kafka)
    svc.sinks = [sink]
    try:
        report = run_workorder_consumer(
            kafka,
            svc,
            idle_exit_s=args.idle_exit_s,
            say=lambda m: print(m, file=sys.stderr, flush=True),
        )
    finally:
        sink.close()
    print(
        f"{report.created} orders created, {report.updated} updated, {report.reopened} "
        f"reopened -> {kafka.workorders}"
    )
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("workorders", help="inspectors' work orders (docs/workorders.md)")
    p.add_argument(
        "--db",
        default=os.environ.get("LINELOSS_WORKORDERS_DB", DEFAULT_DB),
        help="store URL: sqlite:///PATH or postgresql://... (default $LINELOSS_WORKORDERS_DB "
        f"or {DEFAULT_DB})",
    )
    p.add_argument("--config", type=Path, help="work-order settings JSON (policy, tariffs, teams)")
    p.add_argument(
        "--as",
        dest="actor",
        default=os.environ.get("USER", "operator"),
        help="who acts, for the audit trail (default $USER)",
    )
    p.add_argument("--now", help="act as of this time (ISO 8601; default: now)")
    p.add_argument("--tz", default="Asia/Shanghai", help="local zone for months and dates")
    wo = p.add_subparsers(dest="workorders_command", required=True)

    q = wo.add_parser("ingest", help="create/update orders from a replay's suspicions.csv")
    q.add_argument("out_dir", type=Path, help="a replay's output directory")
    q.add_argument("--data-dir", type=Path, help="the replayed data (customer classes)")
    q.set_defaults(func=cmd_ingest)

    q = wo.add_parser("list", help="orders, most valuable first")
    q.add_argument("--state", action="append", help="open, assigned, in_progress, closed")
    q.add_argument("--team")
    q.add_argument("--overdue", action="store_true")
    q.add_argument("--limit", type=int, default=100)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_list)

    q = wo.add_parser("show", help="one order with its audit trail (and its evidence)")
    q.add_argument("order_id")
    q.add_argument("--evidence-from", type=Path, help="replay OUT_DIR to build the evidence from")
    q.add_argument("--evidence-to", type=Path, help="folder for evidence.png/series.csv")
    q.set_defaults(func=cmd_show)

    q = wo.add_parser("assign", help="assign an order to an inspector")
    q.add_argument("order_id")
    q.add_argument("assignee")
    q.add_argument("--notes")
    q.set_defaults(func=cmd_assign)

    q = wo.add_parser("close", help="close an order with what was found")
    q.add_argument("order_id")
    q.add_argument(
        "--outcome",
        required=True,
        choices=["theft_confirmed", "meter_fault", "topology_error", "no_finding", "unreachable"],
    )
    q.add_argument("--notes")
    q.add_argument("--recovered-kwh", type=float)
    q.set_defaults(func=cmd_close)

    q = wo.add_parser("labels", help="closed outcomes as labels for evaluate/tune")
    q.add_argument("--out", type=Path, required=True)
    q.set_defaults(func=cmd_labels)

    q = wo.add_parser("metrics", help="write state counts and hit rates to InfluxDB")
    q.add_argument("--influx-url", required=True)
    q.add_argument("--influx-db", default="lineloss")
    q.add_argument("--influx-token", default=os.environ.get("LINELOSS_INFLUX_TOKEN"))
    q.set_defaults(func=cmd_metrics)

    q = wo.add_parser("run", help="live: ingest the suspicions topic, publish orders to Kafka")
    q.add_argument("--bootstrap", default=os.environ.get("LINELOSS_KAFKA_BOOTSTRAP"))
    q.add_argument("--prefix", default="lineloss", help="topic prefix (default lineloss)")
    q.add_argument("--data-dir", type=Path, help="topology for customer classes (tariffs)")
    q.add_argument(
        "--idle-exit-s",
        type=float,
        help="stop after this long without a suspicion (default: never)",
    )
    q.set_defaults(func=cmd_run)

    q = wo.add_parser("serve", help="REST API and the inspectors' web page")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=int, default=8080)
    q.add_argument("--tokens", type=Path, required=True, help="tokens JSON (docs/workorders.md)")
    q.add_argument("--evidence-from", type=Path, help="replay OUT_DIR the evidence is built from")
    q.add_argument("--data-dir", type=Path, help="the replayed data (customer classes)")
    q.set_defaults(func=cmd_serve)
