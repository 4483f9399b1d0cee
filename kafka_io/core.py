"""The worker's step for one readings partition, free of any Kafka client:
messages in, messages out, snapshots.

Each partition owns the meters of its shards (kafka_io.shards: whole regions), with
its own balance engine, watermark and checkpoint, so a rebalance moves
self-contained states between workers. ``PartitionCore.process`` turns one ``take``
batch of the partition's messages into one engine step, and hands what became final
to the partition's detectors (``kafka_io.detection``, run in another process by the
worker, in one with ``InlineWorker``); the faust agent (kafka_io.worker) only moves
bytes.

Readings of another partition's meters (a publisher that keys by meter or by area)
are forwarded to their partition of the routed topic, each with its original origin.
(A separate topic, read alongside: appended to the readings topic, forwards would
queue behind its whole backlog and arrive too late for their windows.) The receiver
keeps the position (source partition, offset, index) it has taken forwarded readings
up to, so a forward re-sent after a crash is recognised and not counted twice. At
its end of stream a partition tells every other one it forwards no more; a partition
drains (flushes its engine) once it has its own end of stream and that word from all.

Partitions progress at their own pace (through a backlog, one may be days of event
time ahead of another), so a reading forwarded by a partition far behind would
reach windows its owner had already made final: ``too_late``. So finals wait for the
slowest sender. Each partition announces on the routed topic how far it has read its
own readings (``watermark``: its *source* watermark, over every reading it took,
its own meters' or not), whenever that lets one more window become final; a
partition makes a window final only once its own source watermark and every other
partition's announced one are past the window's end plus the horizon
(``final_watermark_s``). The forwards a partition sends before an announcement
precede it on the routed topic, so any reading it forwards is judged against its own
stream, as if it owned the meter. A partition that has ended (end of forwards) no
longer counts; one whose readings stopped is declared *idle* by its worker (wall
clock, the adapter's business: ``IDLE`` sent to the partition's own routed
partition, void if readings came after) and counts again from its next reading, so
a silent partition does not hold everyone's finals for ever.

Registry updates (lineloss.timeline) reach every core through ``WorkerCores.apply``:
each core takes its shard's part of the new timeline, so a customer moved to
another feeder leaves one partition's part and joins another's from its move on.
Readings are routed by the version of their window (kafka_io.shards).

Everything a restarted worker needs of the balance side is in ``snapshot()``: the
engine (streams.snapshot), the next offset and the forward positions; the checkpoint
adds the detection side's snapshot taken after the same step
(``kafka_io.detection.checkpoint_bytes``). Messages below the next offset are
skipped, so re-delivery after a crash neither counts a reading twice nor repeats its
dead letters.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from detectors import DetectorSettings
from kafka_io.detection import (
    DetectionInput,
    WorkerDetection,
    checkpoint_bytes,
    split_checkpoint,
)
from kafka_io.schema import (
    END_OF_FORWARDS,
    END_OF_STREAM,
    IDLE,
    WATERMARK,
    DeadLetter,
    Decoded,
    MessageError,
    Origin,
    ReadingColumns,
    ReadingRow,
    control_type,
    dead_letter,
    decode_rows,
    encode_control,
    encode_forwarded,
    encode_meter_windows,
    forwarded_origins,
)
from kafka_io.shards import Shards
from lineloss.config import EngineConfig
from lineloss.domain import Balance, BalanceLevel, Rejects, Suspicion, Topology
from lineloss.timeline import MeterHistory, TopologyTimeline
from streams.engine import BalanceEngine, Emission, MeterWindowResult, clock_jumps
from streams.snapshot import dumps, engine_state, loads, restore_engine
from streams.windows import WindowGrid

FORWARD_MAX_READINGS = 2000  # per forwarded message: well under Kafka's 1 MB default
HOLD_ALL = -(2**62)  # a final watermark no window end passes: nothing becomes final


@dataclass(frozen=True)
class Alignment:
    """Where a partition's finals stand against the other partitions (for
    operators: why are finals late?)."""

    partition: int
    source_watermark_s: int | None  # how far its own readings topic has been read
    final_watermark_s: int | None  # what its finals wait for; None: nothing holds
    holding_all: bool  # a partition not heard from yet: no window can become final
    waiting_for: tuple[int, ...]  # the partitions that set the hold (silent ones first)
    idle: bool  # its own readings stopped (declared by its worker)

    @property
    def finals_held_s(self) -> int | None:
        """How far behind its own source watermark the others hold its finals."""
        if self.source_watermark_s is None or self.final_watermark_s is None:
            return None
        return max(self.source_watermark_s - self.final_watermark_s, 0)


@dataclass
class Outputs:
    balances: list[Balance] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    forwards: list[tuple[int, bytes]] = field(default_factory=list)  # partition, message
    meter_windows: list[bytes] = field(default_factory=list)  # lineloss.meter_windows
    drained: bool = False  # this partition reached its end of stream and flushed
    readings: int = 0  # decoded readings fed to the pipeline in this step
    position: int = 0  # PartitionCore.position after the step
    # messages the consumer handed out of offset order, so not processed (errors)
    offset_warnings: list[str] = field(default_factory=list)
    # for the partition's detectors: what became final, in order
    detection: DetectionInput = field(default_factory=DetectionInput)
    alignment: Alignment | None = None  # after the step


class PartitionCore:
    """The balance engine over the meters of one readings partition."""

    def __init__(
        self,
        topology: Topology | TopologyTimeline,
        config: EngineConfig,
        partition: int,
        partitions: int,
        *,
        shards: Shards | None = None,
    ) -> None:
        self.shards = shards if shards is not None else Shards(topology, partitions)
        if self.shards.partitions != partitions or not 0 <= partition < partitions:
            raise ValueError(f"partition {partition} of {partitions} does not fit the shards")
        self.partition = partition
        self.partitions = partitions
        self.config = config
        self.grid = WindowGrid(config.window_s, config.tz)
        self.timeline = self.shards.sub_timeline(partition)
        self._local = self.shards.local_index_in(self.timeline.latest)
        self.engine = BalanceEngine(self.timeline, config)
        self.next_offset: dict[str, int] = {}  # per topic (readings, routed)
        self.end_of_stream = False
        self.forwards_done: set[int] = set()
        self.forwarded_upto: dict[int, tuple[int, int]] = {}  # source partition -> (offset, index)
        self.flushed = False
        # The next detection input (re)starts the partition's detectors: from
        # ``detection_saved`` (set by whoever restores this core) or fresh.
        self.detection_begin = True
        self.detection_saved: bytes | None = None
        self._timeline_changed = True
        # The latest offset ranges skipped (topic, from, to): a message from inside
        # one arriving later shows the consumer re-ordered the partition's messages.
        self._jumps: list[tuple[str, int, int]] = []
        # Event-time alignment between partitions (see the module docstring): the
        # newest reading taken from this partition's own readings (clock jumps
        # aside), the other partitions' announced watermarks (None: idle), whether
        # this partition's readings are idle, and the finalisable window its last
        # announcement let through (a restored core announces at its first step).
        self.source_frontier_s: int | None = None
        self.peer_watermarks: dict[int, int | None] = {}
        self.idle = False
        self._announced_key: int | None = None
        self._announce_due = True
        self._hold_used: int | str | None = "unset"

    def _jumped_over(self, origin: Origin) -> bool:
        return any(t == origin.topic and lo <= origin.offset < hi for t, lo, hi in self._jumps)

    def process(self, messages: Sequence[tuple[Origin, bytes | None]]) -> Outputs:
        """One step of this partition's messages: balances, dead letters, forwards,
        meter windows, and in ``detection`` the input of the partition's detectors."""
        cols = ReadingColumns()
        ended = went_idle = False
        warnings: list[str] = []
        bad_controls: list[DeadLetter] = []
        for origin, raw in messages:
            if origin.partition != self.partition:
                raise ValueError(f"partition {self.partition}'s core got {origin}")
            expected = self.next_offset.get(origin.topic)
            if origin.offset < (expected or 0):
                if self._jumped_over(origin):
                    warnings.append(
                        f"{origin.topic} offset {origin.offset} came after the partition "
                        f"had jumped over it (next offset {expected}): not processed, lost"
                    )
                continue  # already in the snapshot this worker restored
            if expected is not None and origin.offset > expected:
                # (Also legitimate: a transaction's commit marker takes an offset.)
                self._jumps.append((origin.topic, expected, origin.offset))
                del self._jumps[:-100]
            self.next_offset[origin.topic] = origin.offset + 1
            kind = control_type(raw)
            if kind == END_OF_STREAM:
                ended = not self.end_of_stream
                self.end_of_stream = True
            elif kind in (END_OF_FORWARDS, WATERMARK, IDLE):
                try:
                    went_idle |= self._control(kind, json.loads(raw or b""))
                except (ValueError, TypeError, KeyError) as exc:
                    detail = f"{kind} control message unusable: {exc!r}"
                    bad_controls.append(dead_letter("bad_value", detail, origin, "", raw))
            elif kind is None:
                sources = forwarded_origins(raw)
                if sources is None:
                    cols.add_message(origin, raw)
                    self.idle = False  # readings again: counts from its next announcement
                else:
                    self._take_forwarded(origin, raw, sources, cols)
        decoded = cols.decoded(self.shards.topology)
        out = Outputs(dead_letters=decoded.dead_letters + bad_controls, offset_warnings=warnings)
        forwarded = self._forwarded(decoded)
        jumped = self._read_up_to(decoded.batch.ts, ~forwarded)
        mine, away = self._route(decoded, forwarded)
        # A clock jump is judged against the stream a reading arrived on: one for
        # another partition is a dead letter here, not forwarded (its owner, maybe
        # days behind or ahead of this stream, does not judge it again).
        out.dead_letters += self._jumps_of(decoded, jumped & ~mine)
        away = [(k, q) for k, q in away if not jumped[k]]
        out.forwards = self._forwards(decoded, away) + self._announcements(went_idle)
        if ended:
            end = encode_control(END_OF_FORWARDS, source_partition=self.partition)
            out.forwards += [(p, end) for p in range(self.partitions) if p != self.partition]
        batch = decoded.batch.take(mine)
        batch = replace(batch, meter_idx=self._local[batch.meter_idx])
        out.readings = len(batch)
        emissions = []
        hold = self.final_watermark_s
        if len(batch):
            rejects = self.engine.ingest(batch, clock_judged=forwarded[mine])
            emissions.append(self.engine.advance(hold))
            out.dead_letters.extend(self._rejected(rejects, decoded))
        elif hold != self._hold_used and not self.flushed:
            emissions.append(self.engine.advance(hold))  # finals another partition held
        self._hold_used = hold
        if not self.flushed and self.drainable:
            emissions.append(self.engine.flush())
            self.flushed = out.drained = True
        for emission in emissions:
            out.balances.extend(emission.balances)
            out.meter_windows.extend(self._meter_windows(emission.final_meter_windows))
        out.detection = self._detection_input(emissions)
        out.position = self.position
        out.alignment = self.alignment
        return out

    def _detection_input(self, emissions: list[Emission]) -> DetectionInput:
        """The detectors see final area balances and final meter windows only."""
        finals = [
            Emission(
                [b for b in e.balances if b.final and b.level == BalanceLevel.AREA],
                e.final_meter_windows,
            )
            for e in emissions
            if e.final_meter_windows or any(b.final for b in e.balances)
        ]
        given = DetectionInput(
            finals,
            timeline=self.timeline if self._timeline_changed else None,
            begin=self.detection_begin,
            saved=self.detection_saved,
        )
        self.detection_begin, self.detection_saved = False, None
        self._timeline_changed = False
        return given

    @property
    def stream_time_s(self) -> int | None:
        """Event time the partition has reached (``BalanceEngine.stream_time_s``)."""
        return self.engine.stream_time_s

    def apply(self, shards: Shards) -> list[str]:
        """Take a new shard plan (a registry update): this partition's part of its
        timeline goes to the pipeline. Returns the meters whose change came too late
        for windows already final here."""
        self.shards = shards
        sub = shards.sub_timeline(self.partition, previous=self.timeline)
        self._local = shards.local_index_in(sub.latest)
        if sub.histories == self.timeline.histories and sub.meter_ids == self.timeline.meter_ids:
            return []
        self.timeline = sub
        self._timeline_changed = True
        return self.engine.apply_timeline(sub)

    # ------------------------------------------------------------ alignment
    def _control(self, kind: str, msg: dict[str, object]) -> bool:
        """Apply a control message from the routed topic; True when it makes this
        partition idle."""
        if kind == END_OF_FORWARDS:
            self.forwards_done.add(_int(msg["source_partition"]))
        elif kind == WATERMARK:
            source = _int(msg["source_partition"])
            mark = msg.get("watermark_s")
            if source != self.partition:
                self.peer_watermarks[source] = None if mark is None else _int(mark)
        elif kind == IDLE and _int(msg["partition"]) == self.partition and not self.idle:
            # Void if readings were taken past the offsets the worker had seen.
            seen = msg.get("next_offset") or {}
            if not isinstance(seen, dict):
                raise TypeError(f"next_offset {seen!r} is not an object")
            if all(self.next_offset.get(t, 0) <= _int(o) for t, o in seen.items()):
                self.idle = True
                self._announce_due = True  # its next reading makes it count again
                return True
        return False

    @property
    def source_watermark_s(self) -> int | None:
        """The watermark of this partition's own readings topic: every reading it
        took there, whichever partition balances it."""
        if self.source_frontier_s is None:
            return None
        return self.source_frontier_s - self.config.allowed_lateness_s

    def _read_up_to(self, ts: np.ndarray, own: np.ndarray) -> np.ndarray:
        """Move the source frontier to the newest of the readings taken from this
        partition's own topic (``own``), except clock jumps (the engine's rule: a
        minority far ahead of the stream), which are returned as a mask."""
        jumped = np.zeros(len(ts), np.bool_)
        if not own.any():
            return jumped
        jumped[own] = clock_jumps(ts[own], self.source_frontier_s, self.config.max_clock_jump_s)
        ok = ts[own & ~jumped]
        if len(ok):
            newest = int(ok.max())
            if self.source_frontier_s is None or newest > self.source_frontier_s:
                self.source_frontier_s = newest
        return jumped

    def _jumps_of(self, decoded: Decoded, jumped: np.ndarray) -> list[DeadLetter]:
        detail = (
            f"more than {self.config.max_clock_jump_s} s ahead of the readings of "
            f"partition {self.partition}, which it arrived on (meter clock jumped?)"
        )
        return [
            _dead_letter(decoded, int(decoded.batch.source_pos[k]), "clock_jump", detail)
            for k in np.flatnonzero(jumped).tolist()
        ]

    def _marks(self) -> dict[int, int | None]:
        """The watermarks finals wait for, by partition: this one's own source
        watermark and the others' announced ones (None: not known yet), leaving out
        the partitions that ended or are idle."""
        marks: dict[int, int | None] = {}
        if not self.idle and not self.end_of_stream:
            marks[self.partition] = self.source_watermark_s
        for q in range(self.partitions):
            if q == self.partition or q in self.forwards_done:
                continue
            if q not in self.peer_watermarks:
                marks[q] = None
            elif (mark := self.peer_watermarks[q]) is not None:
                marks[q] = mark
        return marks

    @property
    def final_watermark_s(self) -> int | None:
        """The watermark finals wait for: the slowest of ``_marks``; ``HOLD_ALL``
        while one is not known yet; None when nothing holds (every other partition
        ended or idle)."""
        marks = self._marks()
        if any(m is None for m in marks.values()):
            return HOLD_ALL
        return min(m for m in marks.values() if m is not None) if marks else None

    @property
    def alignment(self) -> Alignment:
        marks = self._marks()
        silent = tuple(q for q, m in marks.items() if m is None)
        known = {q: m for q, m in marks.items() if m is not None}
        low = None if silent or not known else min(known.values())
        return Alignment(
            partition=self.partition,
            source_watermark_s=self.source_watermark_s,
            final_watermark_s=low,
            holding_all=bool(silent),
            waiting_for=silent or tuple(q for q, m in known.items() if m == low),
            idle=self.idle,
        )

    def _announcements(self, went_idle: bool) -> list[tuple[int, bytes]]:
        """This partition's watermark to every other one, when it lets one more
        window become final (or after a restore, or on waking); null when it just
        went idle. Nothing once it has ended (its end of forwards says it all)."""
        if self.end_of_stream:
            return []
        if went_idle and self.idle:  # (not if readings came after the notice)
            mark = None
        else:
            wm = self.source_watermark_s
            if self.idle or wm is None:
                return []
            horizon = self.config.recollect_horizon_s
            key = int(self.grid.window_start(np.array([wm - horizon], np.int64))[0])
            if key == self._announced_key and not self._announce_due:
                return []
            self._announced_key, self._announce_due, mark = key, False, wm
        msg = encode_control(WATERMARK, source_partition=self.partition, watermark_s=mark)
        return [(q, msg) for q in range(self.partitions) if q != self.partition]

    # ------------------------------------------------------------ routing
    def _forwarded(self, decoded: Decoded) -> np.ndarray:
        """Which decoded readings another partition forwarded here."""
        b = decoded.batch
        if len(b) == 0:
            return np.zeros(0, np.bool_)
        sent_from = np.array([o.partition for o in decoded.messages], np.int64)
        return sent_from[decoded.message_of[b.source_pos]] != self.partition

    def _route(
        self, decoded: Decoded, forwarded: np.ndarray
    ) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Which readings this partition balances, and (reading, partition) pairs to
        forward. A reading of a meter in service nowhere at its time stays here and
        the engine dead-letters it. Readings another partition forwarded here
        (``forwarded``) are this one's (never passed on again: the sender keeps what
        is its own, so a reading on a window end at a move does not come back to
        it)."""
        b = decoded.batch
        if len(b) == 0:
            return np.zeros(0, np.bool_), []
        within, opens = self.shards.homes_of(b.meter_idx, b.ts, self.grid)
        p = self.partition
        mine = forwarded | (within == p) | (opens == p) | ((within < 0) & (opens < 0))
        own = ~forwarded
        away = [
            (int(k), int(within[k])) for k in np.flatnonzero(own & (within >= 0) & (within != p))
        ]
        away += [
            (int(k), int(opens[k]))
            for k in np.flatnonzero(own & (opens >= 0) & (opens != p) & (opens != within))
        ]
        return mine, away

    @property
    def position(self) -> int:
        """How far this partition has read, over both its topics: grows with every
        step, so of two checkpoints the further one has the larger position."""
        return sum(self.next_offset.values())

    @property
    def drainable(self) -> bool:
        """Own end of stream seen, and every other partition forwards no more."""
        others = set(range(self.partitions)) - {self.partition}
        return self.end_of_stream and others <= self.forwards_done

    def _take_forwarded(
        self, origin: Origin, raw: bytes | None, sources: list[Origin], cols: ReadingColumns
    ) -> None:
        """Readings another partition passed on, minus any it passed on before."""
        rows: list[ReadingRow | MessageError] = []
        origins: list[Origin] = []
        for item, src in zip(decode_rows(raw), sources, strict=True):
            at = (src.offset, src.index)
            if at <= self.forwarded_upto.get(src.partition, (-1, -1)):
                continue  # re-sent after the forwarding worker restarted
            self.forwarded_upto[src.partition] = at
            rows.append(item)
            origins.append(src)
        cols.add_rows(origin, rows, raw, origins=origins)

    def _forwards(self, decoded: Decoded, away: list[tuple[int, int]]) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        for p in sorted({q for _, q in away}):
            pos = sorted(k for k, q in away if q == p)  # arrival order: positions only grow
            for lo in range(0, len(pos), FORWARD_MAX_READINGS):
                chunk = pos[lo : lo + FORWARD_MAX_READINGS]
                src = decoded.batch.source_pos[chunk].tolist()
                msg = encode_forwarded(
                    [decoded.row(k) for k in chunk], [decoded.origin(k) for k in src]
                )
                out.append((p, msg))
        return out

    def _meter_windows(self, results: list[MeterWindowResult]) -> list[bytes]:
        """Final per-meter results of the meters in service in each window here."""
        out = []
        for r in results:
            v = int(self.timeline.version_index([r.window_start])[0])
            keep = np.flatnonzero(self.timeline.in_service[v])
            out += encode_meter_windows(
                r.window_start,
                r.window_end,
                [self.timeline.meter_ids[i] for i in keep],
                r.energy_kwh[keep],
                r.reporting[keep],
                r.flags[keep],
                r.events[keep],
            )
        return out

    def _rejected(self, r: Rejects, decoded: Decoded) -> list[DeadLetter]:
        return [
            _dead_letter(decoded, pos, reason.value, detail)
            for pos, reason, detail in zip(r.source_pos.tolist(), r.reason, r.detail, strict=True)
        ]

    def snapshot(self) -> bytes:
        """The balance side's state (an npz, loaded without pickle)."""
        return dumps(self.state())

    def state(self) -> dict[str, np.ndarray]:
        """The balance side's state as named arrays (``snapshot`` saves them in one
        npz; incremental checkpoints, kafka_io.pieces, one by one)."""
        state = engine_state(self.engine)
        state["worker.meta"] = np.array(
            json.dumps(
                {
                    "partition": self.partition,
                    "partitions": self.partitions,
                    "next_offset": self.next_offset,
                    "end_of_stream": self.end_of_stream,
                    "forwards_done": sorted(self.forwards_done),
                    "forwarded_upto": {str(p): list(at) for p, at in self.forwarded_upto.items()},
                    "flushed": self.flushed,
                    "source_frontier_s": self.source_frontier_s,
                    "peer_watermarks": {str(q): w for q, w in self.peer_watermarks.items()},
                    "idle": self.idle,
                    "announced_key": self._announced_key,
                }
            )
        )
        return state

    @classmethod
    def restore(
        cls,
        topology: Topology | TopologyTimeline,
        config: EngineConfig,
        data: bytes,
        *,
        shards: Shards | None = None,
    ) -> PartitionCore:
        """A partition in exactly the state ``snapshot`` captured (the balance half of
        a checkpoint: ``kafka_io.detection.split_checkpoint``)."""
        state = loads(data)
        meta = json.loads(str(state.pop("worker.meta")))
        core = cls(
            topology,
            config,
            int(meta["partition"]),
            int(meta["partitions"]),
            shards=shards,
        )
        core.engine = restore_engine(core.timeline, config, state)
        # The checkpoint's own part of the timeline, then what the registry says now.
        core.timeline = core.engine.timeline
        core.apply(core.shards)
        core.next_offset = {t: int(o) for t, o in meta["next_offset"].items()}
        core.end_of_stream = bool(meta["end_of_stream"])
        core.forwards_done = set(meta["forwards_done"])
        core.forwarded_upto = {
            int(p): (int(o), int(i)) for p, (o, i) in meta["forwarded_upto"].items()
        }
        core.flushed = bool(meta["flushed"])
        # (Checkpoints older than the alignment have none: peers announce again.)
        frontier = meta.get("source_frontier_s")
        core.source_frontier_s = None if frontier is None else int(frontier)
        core.peer_watermarks = {
            int(q): None if w is None else int(w)
            for q, w in meta.get("peer_watermarks", {}).items()
        }
        core.idle = bool(meta.get("idle", False))
        key = meta.get("announced_key")
        core._announced_key = None if key is None else int(key)
        return core


class WorkerCores:
    """The balance sides of the partitions one worker owns right now, each with its
    own ``PartitionCore``.

    A core is created on the first message of its partition after an assignment:
    restored from the partition's checkpoint (``load`` gets the saved checkpoints of
    a set of partitions, all at once: one read of the checkpoint topic), or fresh;
    its first detection input carries the checkpoint's detection half. ``revoke``
    drops the cores of partitions taken away, so a later assignment restores the
    state the next owner checkpointed instead of going on from a stale one.
    """

    def __init__(
        self,
        topology: Topology | TopologyTimeline,
        config: EngineConfig,
        partitions: int,
        *,
        load: Callable[[set[int]], dict[int, bytes]] = lambda _ps: {},
    ) -> None:
        self.config = config
        self.partitions = partitions
        self.shards = Shards(topology, partitions)
        self.load = load
        self.cores: dict[int, PartitionCore] = {}
        self.drained: set[int] = set()  # partitions this worker saw drain

    def prepare(self, partitions: set[int]) -> None:
        """Create the cores of newly assigned partitions now, all from one read of
        the checkpoints (``load``), rather than each on its first message: a
        partition that first speaks hours later would cost its own read of the
        checkpoint topic then, seconds during which no partition is stepped."""
        self._ensure(partitions)

    def _ensure(self, partitions: set[int]) -> None:
        missing = partitions - set(self.cores)
        if not missing:
            return
        saved = self.load(missing)
        for p in sorted(missing):
            if p in saved:
                balance, detection = split_checkpoint(saved[p])
                core = PartitionCore.restore(
                    self.timeline, self.config, balance, shards=self.shards
                )
                core.detection_saved = detection
            else:
                core = PartitionCore(
                    self.timeline, self.config, p, self.partitions, shards=self.shards
                )
            self.cores[p] = core

    @property
    def timeline(self) -> TopologyTimeline:
        return self.shards.timeline

    @property
    def topology(self) -> Topology:
        """The registry now, over every meter it ever named."""
        return self.shards.topology

    def apply(self, updates: dict[str, MeterHistory | None]) -> dict[int, list[str]]:
        """Registry updates (meter id -> its whole new history; None: deleted) to
        every owned partition and to those created later. Returns, per partition,
        the meters whose change came too late for windows already final there."""
        if not self.timeline.changed_by(updates):
            return {}
        self.shards = Shards(self.timeline.apply(updates), self.partitions)
        late = {p: core.apply(self.shards) for p, core in sorted(self.cores.items())}
        return {p: ms for p, ms in late.items() if ms}

    def process(self, messages: Sequence[tuple[Origin, bytes | None]]) -> dict[int, Outputs]:
        """One step: each partition's messages through its core, in partition order."""
        by_partition: dict[int, list[tuple[Origin, bytes | None]]] = {}
        for m in messages:
            by_partition.setdefault(m[0].partition, []).append(m)
        self._ensure(set(by_partition))
        outs = {p: self.cores[p].process(by_partition[p]) for p in sorted(by_partition)}
        self.drained.update(p for p, out in outs.items() if out.drained)
        return outs

    def revoke(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.cores.pop(p, None)

    @property
    def stream_time_s(self) -> int | None:
        """The newest event time any owned partition has reached; None before any."""
        times = [t for c in self.cores.values() if (t := c.stream_time_s) is not None]
        return max(times) if times else None


class InlineWorker:
    """Both halves of a worker's partitions in one process, step after step: what
    the worker's two processes compute, for tests, benchmarks and small runs."""

    def __init__(
        self,
        topology: Topology | TopologyTimeline,
        config: EngineConfig,
        partitions: int,
        detector_settings: DetectorSettings | None = None,
        *,
        load: Callable[[set[int]], dict[int, bytes]] = lambda _ps: {},
    ) -> None:
        self.cores = WorkerCores(topology, config, partitions, load=load)
        self.detection = WorkerDetection(config, detector_settings)

    def process(
        self, messages: Sequence[tuple[Origin, bytes | None]]
    ) -> tuple[dict[int, Outputs], dict[int, list[tuple[str, bytes]]]]:
        """One step: outputs per partition, and the suspicions it changed."""
        outs = self.cores.process(messages)
        return outs, self.detection.run({p: out.detection for p, out in outs.items()})

    def checkpoint(self, partition: int) -> bytes:
        core = self.cores.cores[partition]
        (detection,) = self.detection.snapshots([partition]).values()
        return checkpoint_bytes(core.snapshot(), detection)

    def apply(self, updates: dict[str, MeterHistory | None]) -> dict[int, list[str]]:
        return self.cores.apply(updates)

    def revoke(self, partitions: Iterable[int]) -> None:
        gone = list(partitions)
        self.cores.revoke(gone)
        self.detection.revoke(gone)

    @property
    def stream_time_s(self) -> int | None:
        return self.cores.stream_time_s

    def suspicions(self) -> list[Suspicion]:
        return self.detection.suspicions()


def _int(value: object) -> int:
    """An integer field of a control message (not a bool, not a fraction)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"{value!r} is not an integer")
    return int(value)


def _dead_letter(decoded: Decoded, pos: int, reason: str, detail: str) -> DeadLetter:
    """A refused reading (``pos`` in ``decoded``) with where it first arrived."""
    return dead_letter(reason, detail, decoded.origin(pos), decoded.meter_ids[pos])
