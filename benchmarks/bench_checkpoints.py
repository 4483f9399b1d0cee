"""What a checkpoint costs, full or incremental (kafka_io.pieces), without a broker.

    .venv/bin/python benchmarks/bench_checkpoints.py --feeders 2 --areas-per-feeder 3 \\
        --days 10 --every 1 --json bench-checkpoints.json

Generates a grid (untimed), encodes its readings as concentrator batches keyed by
feeder, in arrival order, and steps them through one partition's two halves
(``WorkerCores``, ``WorkerDetection``) in steps of ``--step`` messages. After every
``--every`` steps it takes a checkpoint both ways: the full state (what a
one-message checkpoint holds) and the pieces a ``PieceWriter`` per half would send.
Reports the bytes of each, summed, and the time taken to split the state into
pieces (serialising the arrays and hashing them) against serialising it whole.
Live, a checkpoint follows every few messages (every 2 s): ``--step 1 --every 1``
is that; a backlog takes thousands of messages per step.

With ``--restore BOOTSTRAP`` it then writes the last checkpoint (its pieces and
manifest) to fresh topics of that broker and times what a restarted worker does
with it: ``kafka_io.checkpoints.read_checkpoints`` (read and assemble) and
``PartitionCore.restore``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_kafka import encode_backlog

from kafka_io.checkpoints import (
    CheckpointHomes,
    checkpoint_records,
    read_checkpoints,
    send_records,
)
from kafka_io.core import PartitionCore, WorkerCores
from kafka_io.detection import WorkerDetection, checkpoint_bytes, split_checkpoint
from kafka_io.pieces import BALANCE, DETECTION, PieceWriter
from kafka_io.schema import Origin
from kafka_io.topics import KafkaSettings, ensure_topics
from lineloss.config import EngineConfig
from loaders.synthetic import SyntheticGridConfig, generate_grid, write_grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeders", type=int, default=2)
    ap.add_argument("--areas-per-feeder", type=int, default=3)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument(
        "--customers-per-area", type=int, nargs=2, default=(30, 80), metavar=("LO", "HI")
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--step", type=int, default=1, help="messages per step")
    ap.add_argument("--every", type=int, default=1, help="steps per checkpoint")
    ap.add_argument("--restore", metavar="BOOTSTRAP", help="also time a restore through it")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        grid_cfg = SyntheticGridConfig(
            seed=args.seed,
            n_feeders=args.feeders,
            areas_per_feeder=args.areas_per_feeder,
            feeders_per_substation=1,  # one shard per feeder, as measured before regions
            days=args.days,
            customers_per_area=(args.customers_per_area[0], args.customers_per_area[1]),
        )
        write_grid(generate_grid(grid_cfg), Path(tmp))
        topology, messages, readings = encode_backlog(Path(tmp))
    config = EngineConfig()
    cores = WorkerCores(topology, config, 1)
    detection = WorkerDetection(config)
    balance_writer, detection_writer = PieceWriter(), PieceWriter()
    located = [(Origin("r", 0, i), value) for i, (_key, value) in enumerate(messages)]
    full_bytes = piece_bytes = checkpoints = 0
    full_s = pieces_s = 0.0
    largest = 0
    steps = range(0, len(located), args.step)
    for k, lo in enumerate(steps):
        outs = cores.process(located[lo : lo + args.step])
        detection.run({p: out.detection for p, out in outs.items()})
        if k % args.every:
            continue
        core = cores.cores[0]
        (detection_half,) = detection.snapshots([0]).values()
        t0 = time.perf_counter()
        full = len(checkpoint_bytes(core.snapshot(), detection_half))
        t1 = time.perf_counter()
        b = balance_writer.split_arrays(core.state())
        d = detection_writer.split({DETECTION: detection_half})
        t2 = time.perf_counter()
        full_s += t1 - t0
        pieces_s += t2 - t1
        full_bytes += full
        piece_bytes += b.new_bytes + d.new_bytes
        largest = max(largest, full)
        checkpoints += 1
        if checkpoints % 200 == 1:
            print(
                f"step {k + 1}/{len(steps)}: state {full / 1e6:.2f} MB, "
                f"sent {(b.new_bytes + d.new_bytes) / 1e3:.1f} kB",
                flush=True,
            )
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
        "meters": int(topology.n_meters),
        "readings": readings,
        "messages": len(located),
        "step_messages": args.step,
        "checkpoints": checkpoints,
        "largest_state_mb": largest / 1e6,
        "full_mb": full_bytes / 1e6,
        "incremental_mb": piece_bytes / 1e6,
        "ratio": full_bytes / max(piece_bytes, 1),
        "full_ms_per_checkpoint": 1000 * full_s / checkpoints,
        "pieces_ms_per_checkpoint": 1000 * pieces_s / checkpoints,
    }
    print(
        f"{result['meters']} meters, {checkpoints} checkpoints: full {result['full_mb']:,.0f} MB, "
        f"incremental {result['incremental_mb']:,.1f} MB (1/{result['ratio']:.0f}); "
        f"{result['full_ms_per_checkpoint']:.1f} ms whole, "
        f"{result['pieces_ms_per_checkpoint']:.1f} ms in pieces per checkpoint"
    )
    if args.restore:
        (detection_half,) = detection.snapshots([0]).values()
        result |= time_restore(args.restore, cores.cores[0], detection_half, topology, config)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def time_restore(
    bootstrap: str, core: PartitionCore, detection_half: bytes, topology: Any, config: EngineConfig
) -> dict[str, float]:
    """Write ``core``'s checkpoint as a worker does (pieces, then the manifest) to
    fresh topics, then read it back and restore it as a restarted worker does."""
    from kafka import KafkaProducer

    settings = KafkaSettings(
        bootstrap, prefix=f"bench-restore-{uuid.uuid4().hex[:8]}", partitions=1
    )
    ensure_topics(settings)
    balance = PieceWriter().split_arrays(core.state())
    detection = PieceWriter().split({DETECTION: detection_half})
    producer = KafkaProducer(**settings.client(), max_request_size=4 * 1024 * 1024)
    t0 = time.perf_counter()
    halves = {BALANCE: balance, DETECTION: detection}
    records = checkpoint_records(
        settings, CheckpointHomes(1, 1), 0, halves, core.position, dict(core.next_offset)
    )
    send_records(producer, records)
    producer.close()
    t1 = time.perf_counter()
    (data,) = read_checkpoints(settings, {0}).values()
    t2 = time.perf_counter()
    PartitionCore.restore(topology, config, split_checkpoint(data)[0])
    t3 = time.perf_counter()
    out = {
        "restore_bytes_mb": (balance.new_bytes + detection.new_bytes) / 1e6,
        "restore_pieces": len(balance.new) + len(detection.new),
        "write_s": t1 - t0,
        "read_s": t2 - t1,
        "restore_core_s": t3 - t2,
    }
    print(
        f"restore through {bootstrap}: {out['restore_bytes_mb']:.1f} MB in "
        f"{out['restore_pieces']} pieces: written in {out['write_s']:.1f} s, read and "
        f"assembled in {out['read_s']:.1f} s, core restored in {out['restore_core_s']:.1f} s"
    )
    return out


if __name__ == "__main__":
    main()
