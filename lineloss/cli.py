"""The ``lineloss`` command: thin shells over library functions.

Configuration is read here, once, into frozen settings objects; nothing below this
module reads the environment or the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lineloss.config import EngineConfig, load_engine_config, parse_window

if TYPE_CHECKING:
    from kafka_io.topics import KafkaSettings
    from loaders.synthetic import SyntheticGridConfig
    from sinks.influx import InfluxSettings


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _engine_config(args: argparse.Namespace) -> EngineConfig:
    return load_engine_config(
        args.config,
        window_s=parse_window(args.window) if args.window else None,
        tz=args.tz,
        allowed_lateness_s=args.allowed_lateness_s,
        recollect_horizon_s=args.recollect_horizon_s,
    )


def _detector_settings(args: argparse.Namespace) -> dict[str, dict[str, object]] | None:
    """Detector parameters from ``--detectors`` (the file ``lineloss tune`` writes)."""
    path: Path | None = getattr(args, "detectors", None)
    if path is None:
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise SystemExit(f"lineloss: {path}: expected a JSON object of detector settings")
    return data


def _add_detectors_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--detectors",
        type=Path,
        help="detector settings JSON, as written by `lineloss tune` (default: built-in)",
    )


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--window", help="window length: 15min, 1h or 1d (default 1d)")
    p.add_argument("--tz", help="time zone the windows align to (default Asia/Shanghai)")
    p.add_argument("--config", type=Path, help="engine config JSON (thresholds, bands)")
    p.add_argument("--allowed-lateness-s", type=int, dest="allowed_lateness_s")
    p.add_argument(
        "--recollect-horizon-s",
        type=int,
        dest="recollect_horizon_s",
        help="how long late readings may still revise a window (default 86400)",
    )


def _add_influx_options(p: argparse.ArgumentParser, *, from_env: bool = False) -> None:
    """The --influx-* options; with ``from_env`` (the worker, configured by its
    environment in docker-compose) URL, database and spill directory default to
    $LINELOSS_INFLUX_URL, $LINELOSS_INFLUX_DB and $LINELOSS_INFLUX_SPILL_DIR."""
    g = p.add_argument_group("InfluxDB output (docs/influxdb.md)")
    env = os.environ if from_env else {}
    g.add_argument(
        "--influx-url",
        default=env.get("LINELOSS_INFLUX_URL") or None,
        help="also write the results to this InfluxDB (v1 API"
        + ("; default $LINELOSS_INFLUX_URL)" if from_env else ")"),
    )
    g.add_argument(
        "--influx-db",
        default=env.get("LINELOSS_INFLUX_DB") or "lineloss",
        help="database (default " + ("$LINELOSS_INFLUX_DB or " if from_env else "") + "lineloss)",
    )
    if from_env:
        g.add_argument(
            "--influx-spill-dir",
            type=Path,
            default=env.get("LINELOSS_INFLUX_SPILL_DIR") or None,
            help="points wait here while InfluxDB is down (default $LINELOSS_INFLUX_SPILL_DIR "
            "or a directory under the system's temporary directory)",
        )
    g.add_argument("--influx-rp", help="retention policy (default: the database's default)")
    g.add_argument(
        "--influx-token",
        default=os.environ.get("LINELOSS_INFLUX_TOKEN"),
        help="token, InfluxDB 2.x/3.x (default $LINELOSS_INFLUX_TOKEN)",
    )
    g.add_argument("--influx-user", help="user name, InfluxDB 1.x with auth")
    g.add_argument(
        "--influx-password",
        default=os.environ.get("LINELOSS_INFLUX_PASSWORD"),
        help="password of --influx-user (default $LINELOSS_INFLUX_PASSWORD)",
    )


def _influx_settings(
    args: argparse.Namespace, spill_dir: Path | None = None
) -> InfluxSettings | None:
    """Settings of the InfluxDB sink, or None without --influx-url.

    Points InfluxDB cannot take wait in ``spill_dir`` (default OUT/influx-spill); the
    next run with the same directory writes them first.
    """
    if not args.influx_url:
        return None
    from sinks.influx import InfluxSettings

    return InfluxSettings(
        url=args.influx_url,
        database=args.influx_db,
        retention_policy=args.influx_rp,
        token=args.influx_token,
        username=args.influx_user,
        password=args.influx_password if args.influx_user else None,
        spill_dir=spill_dir if spill_dir is not None else args.out / "influx-spill",
    )


def cmd_replay(args: argparse.Namespace) -> int:
    if args.out is None and not args.to_kafka:
        print("lineloss replay: --out is required (except with --to-kafka)", file=sys.stderr)
        return 2
    if args.to_kafka or args.through_kafka:
        return cmd_replay_kafka(args)
    from loaders.files import DataContractError
    from streams.replay import run_replay

    config = _engine_config(args)
    try:
        influx = _influx_settings(args)
    except ValueError as exc:
        print(f"lineloss replay: {exc}", file=sys.stderr)
        return 2
    from sinks.influx import InfluxReplaySink, InfluxWriter, SinkBackpressure

    writer = InfluxWriter(influx) if influx is not None else None
    sink = InfluxReplaySink(writer, config) if writer is not None else None
    try:
        result = run_replay(
            args.data_dir,
            args.out,
            config,
            batch_rows=args.batch_rows,
            progress=None if args.quiet else _progress,
            sink=sink,
            detector_settings=_detector_settings(args),
        )
    except DataContractError as exc:
        print(f"lineloss replay: {exc}", file=sys.stderr)
        return 2
    except SinkBackpressure as exc:
        print(f"lineloss replay: {exc}", file=sys.stderr)
        return 3
    finally:
        health = writer.close() if writer is not None else None
    print(
        f"{result.accepted:,} readings balanced, {result.rejected:,} rejected "
        f"(see {args.out / 'rejects.csv'}); {result.area_windows} area-windows: "
        + ", ".join(f"{k} {v}" for k, v in result.status_counts.items())
        + f"; {len(result.suspicions)} suspicions -> {args.out}"
    )
    if influx is not None and health is not None:
        print(f"InfluxDB {influx.redacted()}: {health.points_written_total:,} points written")
        waiting = health.buffer_points + health.spill_pending_points
        if waiting:
            print(
                f"lineloss replay: InfluxDB unavailable ({health.last_error}); {waiting:,} "
                f"points wait in {influx.spill_dir} and are written by the next replay "
                "with the same --out",
                file=sys.stderr,
            )
            return 3
    return 0


def _fault_kinds(text: str) -> tuple[str, ...]:
    """``stuck,reverse_energy``: the fault kinds a generated grid draws from."""
    from loaders.synthetic import FAULT_KINDS, OPTIONAL_FAULT_KINDS

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(FAULT_KINDS + OPTIONAL_FAULT_KINDS))
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown fault kind(s) {unknown}; choose from {FAULT_KINDS + OPTIONAL_FAULT_KINDS}"
        )
    return kinds


def cmd_generate(args: argparse.Namespace) -> int:
    from loaders.synthetic import generate_grid, write_grid

    faults: dict[str, Any] = {}
    if args.fault_fraction is not None:
        faults["fault_fraction"] = args.fault_fraction
    if args.fault_kinds is not None:
        faults["fault_kinds"] = args.fault_kinds
    config = _grid_config(args, daily=args.daily, **faults)
    grid = generate_grid(config)
    write_grid(grid, args.out, fmt=args.format)
    print(f"wrote {len(grid.topology)} meters, {len(grid.readings):,} readings to {args.out}")
    return 0


def _feeder_spec(text: str) -> tuple[str, ...]:
    """``kerber_dorfnetz,simbench:1-LV-rural2--0-sw``: one feeder's areas, in order."""
    from loaders.independent import AREA_NETWORKS, is_area_network

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = sorted(n for n in names if not is_area_network(n))
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown area network(s) {unknown}; choose from {sorted(AREA_NETWORKS)} "
            "or a SimBench LV grid, simbench:1-LV-rural1--0-sw"
        )
    return names


def cmd_generate_independent(args: argparse.Namespace) -> int:
    from loaders.independent import DEFAULT_FEEDERS, IndependentGridConfig, generate_independent

    config = IndependentGridConfig(
        seed=args.seed,
        feeders=tuple(args.feeder) if args.feeder else DEFAULT_FEEDERS,
        days=args.days,
        start=args.start,
        theft_fraction=args.theft_fraction,
        fault_fraction=args.fault_fraction,
        topology_error_fraction=args.topology_error_fraction,
        workers=args.workers,
        demand=args.demand,
        simbench_shift_min=args.simbench_shift_min,
        simbench_offset_weeks=args.simbench_offset_weeks,
    )
    summary = generate_independent(config, args.out, progress=lambda msg: print(msg, flush=True))
    print(
        f"wrote {summary['customers']} customers in {summary['areas']} areas, "
        f"{summary['readings']:,} readings to {args.out}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from detectors.evaluation import evaluate, write_report

    out_dir: Path = args.out_dir
    suspicions = pd.read_csv(out_dir / "suspicions.csv", keep_default_na=False)
    labels = pd.read_csv(args.labels, keep_default_na=False)
    balances = pd.read_csv(out_dir / "balances.csv")
    days = float(balances["window_start"].nunique()) if len(balances) else 0.0
    ev = evaluate(suspicions, labels, days=days)
    report = args.report or out_dir / "evaluation"
    write_report(ev, report)
    for cat in ("theft", "meter_fault", "topology_error"):
        m = ev.metrics[cat]
        print(
            f"{cat:15s} cases {m['cases']:4d}  raised {m['raised']:4d}  "
            f"ROC AUC {m['roc_auc']:.3f}  PR AUC {m['pr_auc']:.3f}  "
            f"P@k {m['precision_at_k']:.2f}  recall {m['recall']:.2f}  "
            f"named right {m['named_right']}/{m['cases']}  "
            f"false alarms/1000/month {m['false_alarms_per_1000_customers_month']:.2f}  "
            f"median delay {m['delay_days_median']:.1f} d"
        )
    print(f"report -> {report}")
    return 0


def cmd_dashboards_generate(args: argparse.Namespace) -> int:
    from dashboards.generate import GENERATED_DIR, generate

    for path in generate(args.out or GENERATED_DIR):
        print(path)
    return 0


def cmd_dashboards_publish(args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    from dashboards.publish import InfluxDatasource, publish

    datasource = (
        InfluxDatasource(args.influx_url, args.influx_db, token=args.influx_token)
        if args.influx_url
        else None
    )
    try:
        result = publish(args.url, token=args.token, folder_uid=args.folder, datasource=datasource)
    except Exception as exc:  # grafana-client raises its own hierarchy and niquests errors
        print(f"lineloss dashboards publish: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    parts = urlsplit(args.url)
    base = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    for uid, url in result.dashboards:
        print(f"{uid}: {base}{url}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from streams.tuning import tune

    settings, score = tune(
        args.data_dir,
        args.labels,
        args.out,
        config=_engine_config(args),
        trials=args.trials,
        seed=args.seed,
        progress=_progress,
    )
    print(f"best objective {score:.3f} with {json.dumps(settings, sort_keys=True)} -> {args.out}")
    return 0


def cmd_queue_backtest(args: argparse.Namespace) -> int:
    from workorders.queue_backtest import run_queue_backtest
    from workorders.settings import WorkOrderSettings

    result = run_queue_backtest(
        args.data_dir,
        args.labels,
        args.out,
        _engine_config(args),
        detector_settings=_detector_settings(args),
        settings=WorkOrderSettings.load(args.workorders_config),
        progress=_progress,
    )
    print(json.dumps(result.summary, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lineloss.demo import run_demo

    return run_demo(args.out, seed=args.seed, progress=_progress)


# --- Kafka (issue 3, docs/streaming.md) ------------------------------------------------


def _add_kafka_options(p: argparse.ArgumentParser, *, bootstrap_flag: bool) -> None:
    g = p.add_argument_group("Kafka (docs/streaming.md)")
    if bootstrap_flag:
        g.add_argument(
            "--bootstrap",
            default=os.environ.get("LINELOSS_KAFKA_BOOTSTRAP"),
            help="bootstrap servers host:port[,...] (default $LINELOSS_KAFKA_BOOTSTRAP)",
        )
    g.add_argument("--prefix", default="lineloss", help="topic name prefix (default lineloss)")
    g.add_argument("--partitions", type=int, default=4, help="readings partitions (default 4)")
    g.add_argument(
        "--kafka-security",
        type=Path,
        help="JSON of kafka-python client settings: security_protocol, sasl_mechanism, "
        "sasl_plain_username, sasl_plain_password, ssl_cafile",
    )


def _kafka_missing() -> str | None:
    """The install command when the Kafka clients are missing, else None."""
    import importlib.util

    missing = [m for m in ("faust", "kafka") if importlib.util.find_spec(m) is None]
    if missing:
        return f"needs {', '.join(missing)}: pip install 'lineloss[kafka]'"
    return None


def _kafka_settings(args: argparse.Namespace, bootstrap: str) -> KafkaSettings:
    from kafka_io.topics import KafkaSettings

    security = json.loads(args.kafka_security.read_text()) if args.kafka_security else {}
    return KafkaSettings(bootstrap, args.prefix, args.partitions, security=security)


def cmd_replay_kafka(args: argparse.Namespace) -> int:
    """``replay --to-kafka`` (publish only) or ``--through-kafka`` (the whole path)."""
    import math

    if (missing := _kafka_missing()) is not None:
        print(f"lineloss replay: {missing}", file=sys.stderr)
        return 2
    if args.through_kafka:
        from kafka_io.collect import run_through_kafka

        settings = _kafka_settings(args, args.through_kafka)
        collected = run_through_kafka(
            args.data_dir,
            args.out,
            _engine_config(args),
            settings,
            progress=None if args.quiet else _progress,
            workers=args.workers,
            detectors_path=args.detectors,
            influx=_influx_settings(args),
        )
        finals = sum(1 for b in collected.history if b.final)
        print(
            f"{finals} final balances, {len(collected.suspicions)} suspicions, "
            f"{len(collected.dead_letters)} dead letters through {settings.bootstrap} -> {args.out}"
        )
        return 0
    from kafka_io.produce import publish_data_dir

    try:
        speed = math.inf if args.speed == "max" else float(args.speed)
        if not speed > 0:
            raise ValueError
    except ValueError:
        print(f"lineloss replay: --speed {args.speed!r}: a positive number or max", file=sys.stderr)
        return 2
    settings = _kafka_settings(args, args.to_kafka)
    published = publish_data_dir(
        args.data_dir, settings, speed=speed, progress=None if args.quiet else _progress
    )
    print(
        f"{published.readings:,} readings in {published.messages:,} messages and "
        f"{published.meters} meters -> {settings.readings}, {settings.topology}"
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from kafka_io.worker import WorkerFailed, WorkerSettings, run_worker

    if (missing := _kafka_missing()) is not None:
        print(f"lineloss worker: {missing}", file=sys.stderr)
        return 2
    if not args.bootstrap:
        msg = "lineloss worker: --bootstrap or $LINELOSS_KAFKA_BOOTSTRAP is needed"
        print(msg, file=sys.stderr)
        return 2
    kafka = _kafka_settings(args, args.bootstrap)
    spill_dir = args.influx_spill_dir or (
        Path(tempfile.gettempdir()) / "lineloss-influx-spill" / kafka.group_id
    )
    try:
        influx = _influx_settings(args, spill_dir=spill_dir)
    except ValueError as exc:
        print(f"lineloss worker: {exc}", file=sys.stderr)
        return 2
    settings = WorkerSettings(
        kafka,
        take_max=args.take_max,
        take_within_s=args.take_within_s,
        detection_lag_messages=args.detection_lag_messages,
        child_timeout_s=args.child_timeout_s,
        idle_after_s=args.idle_after_s,
        checkpoint_interval_s=args.checkpoint_interval_s,
        exit_on_drain=args.exit_on_drain,
        influx=influx,
        heartbeat=args.heartbeat,
    )
    try:
        run_worker(
            settings,
            _engine_config(args),
            say=_progress,
            detector_settings=_detector_settings(args),
        )
    except WorkerFailed as exc:  # logged with its traceback; the supervisor restarts us
        print(f"lineloss worker: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from kafka_io.produce import rows_of
    from kafka_io.simulate import SimulationSettings, arrival_times, run_simulation
    from loaders.files import read_readings, read_topology

    if (missing := _kafka_missing()) is not None:
        print(f"lineloss simulate: {missing}", file=sys.stderr)
        return 2
    if not args.bootstrap:
        print(
            "lineloss simulate: --bootstrap or $LINELOSS_KAFKA_BOOTSTRAP is needed", file=sys.stderr
        )
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data
        if data_dir is None:
            from loaders.synthetic import generate_grid, write_grid

            data_dir = Path(tmp)
            write_grid(generate_grid(_grid_config(args)), data_dir)
        topology, _ = read_topology(data_dir)
        loaded = read_readings(data_dir, topology)
    rows = rows_of(topology, loaded)
    assert loaded.received_s is not None
    arrivals = arrival_times(loaded.received_s, loaded.batch.ts)
    settings = SimulationSettings(
        speed=args.speed,
        single_fraction=args.single_fraction,
        duplicate_fraction=args.duplicate_fraction,
        bad_fraction=args.bad_fraction,
        backfill_h=args.backfill_h,
        seed=args.seed,
    )
    kafka = _kafka_settings(args, args.bootstrap)
    _progress(
        f"simulate: {topology.n_meters:,} meters, {len(rows):,} readings at {args.speed:g} x "
        f"event time -> {kafka.readings} on {kafka.bootstrap}"
    )
    try:
        report = run_simulation(
            topology,
            rows,
            arrivals,
            kafka,
            settings,
            tz=args.tz,
            duration_s=args.duration_s,
            progress=_progress,
        )
    except KeyboardInterrupt:
        print("lineloss simulate: stopped", file=sys.stderr)
        return 130
    print(
        f"sent {report.messages:,} messages: {report.readings:,} readings, "
        f"{report.duplicates:,} duplicates, {report.bad:,} broken"
    )
    return 0


def _add_grid_shape_options(p: argparse.ArgumentParser) -> None:
    """The synthetic grid's shape, for the commands that generate one."""
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--feeders", type=int, default=2)
    p.add_argument("--areas-per-feeder", type=int, default=5)
    p.add_argument(
        "--feeders-per-substation",
        type=int,
        default=0,
        help="feeders per substation, the workers' shard (default 0: all on one)",
    )
    p.add_argument("--days", type=int, default=28)


def _grid_config(args: argparse.Namespace, **more: Any) -> SyntheticGridConfig:
    """The synthetic grid of ``_add_grid_shape_options``."""
    from loaders.synthetic import SyntheticGridConfig

    return SyntheticGridConfig(
        seed=args.seed,
        n_feeders=args.feeders,
        areas_per_feeder=args.areas_per_feeder,
        feeders_per_substation=args.feeders_per_substation,
        days=args.days,
        **more,
    )


def _add_kafka_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="generated meters and concentrators publishing live to Kafka (delays, gaps, "
        "duplicates, bad messages)",
    )
    _add_kafka_options(p, bootstrap_flag=True)
    p.add_argument("--data", type=Path, help="a data directory to play (default: generate one)")
    _add_grid_shape_options(p)
    p.add_argument("--speed", type=float, default=1.0, help="x event time (96: a day in 15 min)")
    p.add_argument("--single-fraction", type=float, default=0.05, help="meters sending alone")
    p.add_argument("--duplicate-fraction", type=float, default=0.002, help="messages sent twice")
    p.add_argument("--bad-fraction", type=float, default=0.001, help="messages broken")
    p.add_argument("--backfill-h", type=float, default=0.0, help="also send the last N hours")
    p.add_argument("--duration-s", type=float, help="stop after this many seconds")
    p.add_argument("--tz", default="Asia/Shanghai", help="local time of the grid's days")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("worker", help="run a streaming worker on Kafka (faust-streaming)")
    _add_kafka_options(p, bootstrap_flag=True)
    p.add_argument("--take-max", type=int, default=5000, help="messages per step")
    p.add_argument("--take-within-s", type=float, default=0.2, help="max wait to fill a step [s]")
    p.add_argument(
        "--checkpoint-interval-s",
        type=float,
        default=2.0,
        help="write checkpoints (and let offsets commit) this often [s] (default 2)",
    )
    p.add_argument(
        "--detection-lag-messages",
        type=int,
        default=50_000,
        metavar="N",
        help="messages the detectors (own process) may run behind the balances before "
        "the next step waits for them (default 50,000; held in memory until checkpointed)",
    )
    p.add_argument(
        "--child-timeout-s",
        type=float,
        default=1800.0,
        metavar="S",
        help="stop the worker (status 1, for its supervisor to restart it) when a child "
        "process has run one step or detection for longer (default 1800)",
    )
    p.add_argument(
        "--idle-after-s",
        type=float,
        default=60.0,
        metavar="S",
        help="declare an owned readings partition idle after this long without a "
        "reading, so that the other partitions' finals stop waiting for it "
        "(default 60; docs/streaming.md#event-time-across-partitions)",
    )
    p.add_argument(
        "--exit-on-drain",
        action="store_true",
        help="stop once every partition reached its end-of-stream marker",
    )
    p.add_argument(
        "--heartbeat",
        type=Path,
        default=os.environ.get("LINELOSS_HEARTBEAT") or None,
        metavar="PATH",
        help="refresh this file after each step and every 5 s while idle "
        "(default $LINELOSS_HEARTBEAT, else none)",
    )
    _add_detectors_option(p)
    _add_engine_options(p)
    _add_influx_options(p, from_env=True)
    p.set_defaults(func=cmd_worker)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lineloss",
        description="Line-loss balances and theft, fault and topology detection.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("replay", help="replay a data directory through the embedded engine")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--out", type=Path, help="output directory (not with --to-kafka)")
    p.add_argument("--batch-rows", type=int, default=1_000_000)
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    _add_detectors_option(p)
    _add_engine_options(p)
    _add_influx_options(p)
    g = p.add_argument_group("Kafka replay")
    g.add_argument("--to-kafka", metavar="BOOTSTRAP", help="publish to Kafka instead of replaying")
    g.add_argument("--speed", default="max", help="with --to-kafka: N x event time, or max")
    g.add_argument(
        "--through-kafka",
        metavar="BOOTSTRAP",
        help="publish, run a worker until drained, collect its output into --out",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=1,
        help="with --through-kafka: workers sharing the partitions (default 1)",
    )
    _add_kafka_options(p, bootstrap_flag=False)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("generate", help="write a synthetic grid in the data contract")
    p.add_argument("out", type=Path)
    _add_grid_shape_options(p)
    p.add_argument("--daily", action="store_true", help="one frozen reading per day")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    p.add_argument("--fault-fraction", type=float, help="share of customers with a faulty meter")
    p.add_argument(
        "--fault-kinds",
        type=_fault_kinds,
        help="comma-separated fault kinds, the optional ones (voltage_loss, phase_loss, "
        "register_jump, reverse_energy) included (default: the five usual kinds)",
    )
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "generate-independent",
        help="a test grid from models we did not write: CREST households, pandapower AC "
        "power flow on published LV networks (needs the `independent` extra)",
    )
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument(
        "--feeder",
        type=_feeder_spec,
        action="append",
        help="one feeder's area networks, comma-separated; repeat per feeder "
        "(default: two feeders of three areas, 681 customers)",
    )
    p.add_argument("--days", type=int, default=28)
    p.add_argument("--start", default="2026-03-02", help="first local day (YYYY-MM-DD)")
    p.add_argument("--theft-fraction", type=float, default=0.03)
    p.add_argument("--fault-fraction", type=float, default=0.01)
    p.add_argument("--topology-error-fraction", type=float, default=0.01)
    p.add_argument("--workers", type=int, default=1, help="processes for the household model")
    p.add_argument(
        "--demand",
        choices=("crest", "simbench"),
        default="crest",
        help="household demand: the CREST model or SimBench's measured profiles",
    )
    p.add_argument(
        "--simbench-shift-min",
        type=int,
        default=120,
        help="each customer's SimBench curve moved by up to this many minutes "
        "(0 with no week offset: houses of one profile share its curve exactly)",
    )
    p.add_argument(
        "--simbench-offset-weeks",
        type=int,
        default=0,
        help="each customer's SimBench curve from a week up to this far away "
        "(its season ahead of or behind its neighbours')",
    )
    p.set_defaults(func=cmd_generate_independent)

    p = sub.add_parser("evaluate", help="score a replay's suspicions against labels")
    p.add_argument("out_dir", type=Path, help="a replay's output directory")
    p.add_argument("--labels", type=Path, required=True)
    p.add_argument("--report", type=Path, help="report folder (default OUT_DIR/evaluation)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("dashboards", help="Grafana dashboards: generate JSON, publish")
    dash = p.add_subparsers(dest="dashboards_command", required=True)
    q = dash.add_parser("generate", help="write the dashboard JSON (dashboards/generated)")
    q.add_argument("--out", type=Path, help="directory (default dashboards/generated)")
    q.set_defaults(func=cmd_dashboards_generate)
    q = dash.add_parser("publish", help="upload the dashboards to an existing Grafana")
    q.add_argument("--url", required=True, help="Grafana base URL, e.g. http://grafana:3000")
    q.add_argument(
        "--token",
        default=os.environ.get("LINELOSS_GRAFANA_TOKEN"),
        help="service-account token (default $LINELOSS_GRAFANA_TOKEN)",
    )
    q.add_argument("--folder", default="lineloss", help="folder uid (default lineloss)")
    q.add_argument("--influx-url", help="also create/update the InfluxDB datasource")
    q.add_argument("--influx-db", default="lineloss")
    q.add_argument("--influx-token", default=os.environ.get("LINELOSS_INFLUX_TOKEN"))
    q.set_defaults(func=cmd_dashboards_publish)

    p = sub.add_parser("tune", help="search detector parameters by replaying labelled data")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--labels", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("detectors.json"))
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    _add_engine_options(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser(
        "queue-backtest",
        help="the inspection queue day by day over history: visits, hit rate, thefts caught",
    )
    p.add_argument("data_dir", type=Path)
    p.add_argument("--labels", type=Path, required=True, help="what inspectors would find")
    p.add_argument("--out", type=Path, default=Path("queue-backtest"))
    p.add_argument(
        "--workorders-config",
        type=Path,
        help="work-order settings JSON: policy (thresholds, capacity), tariffs, teams",
    )
    _add_detectors_option(p)
    _add_engine_options(p)
    p.set_defaults(func=cmd_queue_backtest)

    _add_kafka_commands(sub)

    from workorders.cli import add_commands as add_workorder_commands

    add_workorder_commands(sub)

    p = sub.add_parser("demo", help="generate a grid, replay it, print a summary")
    p.add_argument("--out", type=Path, default=Path("demo-output"))
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
