"""The whole per-batch step: balance engine, then detectors on final balances.

This is the one piece of logic every runner drives: the embedded replay over files
and the streaming workers. Same readings in, same balances and suspicions out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from detectors import (
    DetectorSettings,
    SuspicionBook,
    ThresholdDecider,
    default_area_detectors,
    default_common_drop,
    default_grid_detectors,
    default_meter_detectors,
)
from detectors.base import Finding
from detectors.observations import AreaHistory, final_area_balances
from lineloss.config import EngineConfig
from lineloss.domain import (
    Balance,
    BalanceLevel,
    MeterEvent,
    ReadingBatch,
    Rejects,
    Suspicion,
    SuspicionCategory,
    Topology,
)
from lineloss.timeline import TopologyTimeline
from streams.area_windows import AreaWindowBuilder
from streams.engine import BalanceEngine, Emission, MeterWindowResult

_TAMPER_BITS = (1 << int(MeterEvent.COVER_OPEN)) | (1 << int(MeterEvent.MAGNETIC))


@dataclass
class StepOutput:
    balances: list[Balance] = field(default_factory=list)
    final_meter_windows: list[MeterWindowResult] = field(default_factory=list)
    rejects: Rejects = field(default_factory=Rejects.empty)


class DetectionStage:
    """Every detector, fed with final results in window order; owns the suspicion
    book and the per-area histories. Separate from the engine so that tuning can
    re-run detection over one recorded replay many times."""

    def __init__(
        self,
        topology: Topology | TopologyTimeline,
        config: EngineConfig,
        settings: DetectorSettings,
    ) -> None:
        self.settings = settings
        self.area_detectors = default_area_detectors(config.balance, settings)
        self.meter_detectors = default_meter_detectors(settings)
        self.grid_detectors = default_grid_detectors(settings)
        self.common_drop = default_common_drop(settings)
        self.book = SuspicionBook(
            decider=ThresholdDecider(**settings.get("decider", {})),
            tz=config.tz,
            **settings.get("book", {}),
        )
        self.set_timeline(
            topology if isinstance(topology, TopologyTimeline) else TopologyTimeline.of(topology)
        )
        self.histories: dict[str, AreaHistory] = {}

    def set_timeline(self, timeline: TopologyTimeline) -> None:
        """Cut later windows with ``timeline``'s version in effect at their start."""
        self.timeline = timeline
        self._builders: dict[int, AreaWindowBuilder] = {}

    def _builder(self, window_start_s: int) -> AreaWindowBuilder:
        v = int(self.timeline.version_index([window_start_s])[0])
        if v not in self._builders:
            self._builders[v] = AreaWindowBuilder(self.timeline.versions[v])
        return self._builders[v]

    def process(self, emission: Emission) -> None:
        for b in emission.balances:
            if b.final and b.level == BalanceLevel.AREA:
                for det in self.area_detectors:
                    finding = det.score_one(b)
                    if finding is not None:
                        self.book.add(finding)
                    det.learn_one(b)
        for result in emission.final_meter_windows:
            self._detect_meters(result, final_area_balances(emission.balances, result.window_start))

    def _detect_meters(self, result: MeterWindowResult, balances: dict[str, Balance]) -> None:
        """Meter-level detectors on one final window, area by area; their drop
        findings checked across the region (``CommonDropCheck``: every area holds
        the window by then); then the grid-wide detectors."""
        found: list[Finding] = []
        for w in self._builder(result.window_start).build(result, balances):
            h = self.histories.setdefault(w.area_id, AreaHistory())
            h.push(w)
            if w.n_customers == 0:
                continue  # every customer left (registry update): nothing to score
            tamper = _tamper_meters(h)
            for det in self.meter_detectors:
                found += [_with_tamper(f, tamper) for f in det.score_one(h)]
                det.learn_one(h)
        scopes = regions(self.histories, self.timeline.latest)
        for f in self.common_drop.without_explained(found, scopes.values()):
            self.book.add(f)
        for scope in sorted(scopes):
            for grid_det in self.grid_detectors:
                for f in grid_det.score_many(scopes[scope]):
                    self.book.add(f)


class Pipeline:
    def __init__(
        self,
        topology: Topology | TopologyTimeline,
        config: EngineConfig,
        *,
        detector_settings: DetectorSettings | None = None,
    ) -> None:
        self.engine = BalanceEngine(topology, config)
        self.detection = DetectionStage(topology, config, detector_settings or {})

    def apply_timeline(self, timeline: TopologyTimeline) -> list[str]:
        """Take registry updates (see ``BalanceEngine.apply_timeline``); returns the
        meters whose change came too late for windows already final."""
        late = self.engine.apply_timeline(timeline)
        self.detection.set_timeline(timeline)
        return late

    @property
    def stream_time_s(self) -> int | None:
        """Event time the pipeline has reached (``BalanceEngine.stream_time_s``)."""
        return self.engine.stream_time_s

    @property
    def histories(self) -> dict[str, AreaHistory]:
        return self.detection.histories

    def step(self, batch: ReadingBatch) -> StepOutput:
        """Balance a batch, then run the detectors on what became final. (The
        streaming worker runs the two halves in two processes, so that its balances
        never wait for detection: kafka_io.detection.)"""
        rejects = self.engine.ingest(batch)
        out = self._detect(self.engine.advance())
        out.rejects = rejects
        return out

    def flush(self) -> StepOutput:
        return self._detect(self.engine.flush())

    def _detect(self, emission: Emission) -> StepOutput:
        self.detection.process(emission)
        return StepOutput(
            balances=emission.balances, final_meter_windows=emission.final_meter_windows
        )

    def suspicions(self) -> list[Suspicion]:
        return self.detection.book.suspicions()


def regions(
    histories: dict[str, AreaHistory], topology: Topology
) -> dict[str, dict[str, AreaHistory]]:
    """The areas grid detectors look across at once: one region each, the feeders of
    one substation where the registry names it, else one feeder (an area without a
    feeder alone: ``Topology.region_of``). A customer recorded on one feeder and
    supplied by another can only be paired within a region. The region is also the
    shard unit of the streaming workers, so a worker owning some regions finds
    exactly what one process over the whole grid finds (docs/streaming.md#shards).
    Areas whose every customer left (registry update) have nothing to score."""
    out: dict[str, dict[str, AreaHistory]] = {}
    for area, h in histories.items():
        if not len(h) or h.windows[-1].n_customers == 0:
            continue
        out.setdefault(topology.region_of(h.windows[-1].feeder_id, area), {})[area] = h
    return out


def _tamper_meters(h: AreaHistory) -> set[str]:
    """Meters of the area that reported cover-open or magnetic events lately."""
    out: set[str] = set()
    for w in h.windows:
        for i in (w.events & _TAMPER_BITS).nonzero()[0]:
            out.add(w.meter_ids[i])
    return out


def _with_tamper(f: Finding, tamper: set[str]) -> Finding:
    """Tamper events raise a theft score (never required, always in the evidence)."""
    if f.category != SuspicionCategory.THEFT or f.target_id not in tamper:
        return f
    return replace(
        f,
        score=round(1.0 - (1.0 - f.score) * 0.7, 6),
        reason=f.reason + "; meter reported cover-open or magnetic tampering",
    )
