"""The whole per-batch step: balance engine, then detectors on final balances.

This is the one piece of logic every runner drives: the embedded replay over files
and the streaming workers. Same readings in, same balances and suspicions out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors import Detector, SuspicionBook, ThresholdDecider, default_area_detectors
from lineloss.config import EngineConfig
from lineloss.domain import Balance, BalanceLevel, ReadingBatch, Rejects, Suspicion, Topology
from streams.engine import BalanceEngine, Emission, MeterWindowResult


@dataclass
class StepOutput:
    balances: list[Balance] = field(default_factory=list)
    final_meter_windows: list[MeterWindowResult] = field(default_factory=list)
    rejects: Rejects = field(default_factory=Rejects.empty)


class Pipeline:
    def __init__(
        self,
        topology: Topology,
        config: EngineConfig,
        *,
        detectors: list[Detector[Balance]] | None = None,
        decider: ThresholdDecider | None = None,
    ) -> None:
        self.engine = BalanceEngine(topology, config)
        self.detectors = (
            detectors if detectors is not None else default_area_detectors(config.balance)
        )
        self.book = SuspicionBook(decider=decider or ThresholdDecider())

    def step(self, batch: ReadingBatch) -> StepOutput:
        rejects = self.engine.ingest(batch)
        out = self._detect(self.engine.advance())
        out.rejects = rejects
        return out

    def flush(self) -> StepOutput:
        return self._detect(self.engine.flush())

    def _detect(self, emission: Emission) -> StepOutput:
        for b in emission.balances:
            if b.final and b.level == BalanceLevel.AREA:
                for det in self.detectors:
                    finding = det.score_one(b)
                    if finding is not None:
                        self.book.add(finding)
                    det.learn_one(b)
        return StepOutput(
            balances=emission.balances, final_meter_windows=emission.final_meter_windows
        )

    def suspicions(self) -> list[Suspicion]:
        return self.book.suspicions()
