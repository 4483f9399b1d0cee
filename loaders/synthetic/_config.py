"""Configuration and result types of the synthetic grid generator."""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

THEFT_KINDS: tuple[str, ...] = ("h1", "h2", "h3", "h4", "h5", "h6", "bypass")
FAULT_KINDS: tuple[str, ...] = ("stuck", "zero", "wrong_multiplier", "clock_drift", "step_back")
# Faults a config may ask for beyond the default five (the recorded benchmark grids
# keep the default, so their figures stay comparable).
OPTIONAL_FAULT_KINDS: tuple[str, ...] = (
    "voltage_loss",
    "phase_loss",
    "register_jump",
    "reverse_energy",
)
CUSTOMER_CLASSES: tuple[str, ...] = ("residential", "commercial", "industrial", "agricultural")


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    a, b = value
    if not (low <= a <= b <= high):
        raise ValueError(f"{name} must satisfy {low} <= lo <= hi <= {high}, got {value}")


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")


@dataclass(frozen=True)
class SyntheticGridConfig:
    """Everything that shapes a synthetic grid; the same config always gives the same grid.

    Fractions are shares of customers (or of readings, for the data-quality faults);
    ``*_minutes`` / ``*_hours`` are durations in those units.
    """

    seed: int = 7
    # --- grid shape
    n_feeders: int = 2
    areas_per_feeder: int = 5
    # Feeders per substation, in feeder order (0: all on one). The substation is a
    # detection region: mapping errors across its feeders can be paired, and the
    # streaming workers shard by it (one feeder each keeps the shards small).
    feeders_per_substation: int = 0
    customers_per_area: tuple[int, int] = (30, 80)
    dedicated_per_feeder: tuple[int, int] = (1, 3)
    areas_without_meter_fraction: float = 0.05
    class_mix: tuple[float, float, float, float] = (0.80, 0.11, 0.05, 0.04)
    vacancy_fraction: float = 0.03
    # --- period and readings
    start: str = "2026-03-01"
    days: int = 28
    tz: str = "Asia/Shanghai"
    interval_minutes: int = 15
    daily: bool = False
    reading_kind: Literal["register", "interval"] = "register"
    with_voltage: bool = True
    register_decimals: int = 2
    rollover_meters: int = 3
    # --- losses (shares of supplied energy over the period)
    technical_loss_range: tuple[float, float] = (0.02, 0.05)
    feeder_loss_range: tuple[float, float] = (0.01, 0.03)
    # --- injected ground truth
    theft_fraction: float = 0.02
    theft_kinds: tuple[str, ...] = THEFT_KINDS
    fault_fraction: float = 0.01
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    topology_error_fraction: float = 0.01
    warmup_fraction: float = 1.0 / 3.0
    # Share of the thefts already running when the data begins (labelled with the
    # data's first step as their start): most thieves a utility finds have stolen
    # for months, and show no change point inside any history it keeps.
    theft_before_start_fraction: float = 0.0
    theft_event_probability: float = 0.3
    fault_event_probability: float = 0.4
    false_events_per_meter_day: float = 0.002
    # --- data quality
    batch_minutes: int = 15
    upload_delay_minutes: tuple[float, float] = (1.0, 10.0)
    daily_upload_delay_minutes: tuple[float, float] = (10.0, 360.0)
    batch_fail_fraction: float = 0.01
    recollect_delay_hours: tuple[float, float] = (2.0, 24.0)
    late_fraction: float = 0.002
    gap_fraction: float = 0.001
    offline_fraction: float = 0.005
    duplicate_fraction: float = 0.002
    bad_rows: int = 10

    def __post_init__(self) -> None:
        if self.n_feeders < 1 or self.areas_per_feeder < 1:
            raise ValueError("need at least one feeder and one area per feeder")
        if self.feeders_per_substation < 0:
            raise ValueError("feeders_per_substation must be >= 0 (0: all on one substation)")
        lo, hi = self.customers_per_area
        if not 1 <= lo <= hi:
            raise ValueError(f"customers_per_area must satisfy 1 <= lo <= hi, got {lo, hi}")
        dlo, dhi = self.dedicated_per_feeder
        if not 0 <= dlo <= dhi:
            raise ValueError(f"dedicated_per_feeder must satisfy 0 <= lo <= hi, got {dlo, dhi}")
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if self.interval_minutes < 1 or 1440 % self.interval_minutes:
            raise ValueError("interval_minutes must divide a day (1440 minutes)")
        if self.batch_minutes < 1:
            raise ValueError("batch_minutes must be >= 1")
        if self.reading_kind not in ("register", "interval"):
            raise ValueError(
                f"reading_kind must be 'register' or 'interval', not {self.reading_kind!r}"
            )
        if not 0 <= self.register_decimals <= 6:
            raise ValueError("register_decimals must lie in 0..6")
        if self.rollover_meters < 0 or self.bad_rows < 0:
            raise ValueError("rollover_meters and bad_rows must be >= 0")
        try:
            zoneinfo.ZoneInfo(self.tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.tz!r}") from exc
        try:
            dt.date.fromisoformat(self.start)
        except ValueError as exc:
            raise ValueError(
                f"start must be a local date like 2026-03-01, got {self.start!r}"
            ) from exc
        if (
            len(self.class_mix) != len(CUSTOMER_CLASSES)
            or min(self.class_mix) < 0
            or sum(self.class_mix) <= 0
        ):
            raise ValueError("class_mix needs four non-negative weights with a positive sum")
        for name in (
            "areas_without_meter_fraction",
            "vacancy_fraction",
            "theft_fraction",
            "fault_fraction",
            "topology_error_fraction",
            "warmup_fraction",
            "theft_before_start_fraction",
            "theft_event_probability",
            "fault_event_probability",
            "batch_fail_fraction",
            "late_fraction",
            "gap_fraction",
            "offline_fraction",
            "duplicate_fraction",
        ):
            _check_fraction(name, getattr(self, name))
        if self.warmup_fraction >= 1.0:
            raise ValueError("warmup_fraction must be < 1")
        if self.theft_fraction + self.fault_fraction + self.topology_error_fraction > 0.9:
            raise ValueError("theft, fault and topology error fractions together must stay <= 0.9")
        if self.false_events_per_meter_day < 0:
            raise ValueError("false_events_per_meter_day must be >= 0")
        _check_range("technical_loss_range", self.technical_loss_range, 0.0, 0.5)
        _check_range("feeder_loss_range", self.feeder_loss_range, 0.0, 0.5)
        _check_range("upload_delay_minutes", self.upload_delay_minutes, 0.0, 1e6)
        _check_range("daily_upload_delay_minutes", self.daily_upload_delay_minutes, 0.0, 1e6)
        _check_range("recollect_delay_hours", self.recollect_delay_hours, 0.0, 1e4)
        if not self.theft_kinds or set(self.theft_kinds) - set(THEFT_KINDS):
            raise ValueError(f"theft_kinds must be a non-empty subset of {THEFT_KINDS}")
        allowed = FAULT_KINDS + OPTIONAL_FAULT_KINDS
        if not self.fault_kinds or set(self.fault_kinds) - set(allowed):
            raise ValueError(f"fault_kinds must be a non-empty subset of {allowed}")

    def clean(self) -> SyntheticGridConfig:
        """The same grid without thieves, faults, mapping errors, false events or bad data.

        Loads, losses and meters stay identical (each part draws from its own random
        stream), so a clean twin shows exactly what the injected cases changed.
        """
        return dataclasses.replace(
            self,
            theft_fraction=0.0,
            fault_fraction=0.0,
            topology_error_fraction=0.0,
            false_events_per_meter_day=0.0,
            batch_fail_fraction=0.0,
            late_fraction=0.0,
            gap_fraction=0.0,
            offline_fraction=0.0,
            duplicate_fraction=0.0,
            bad_rows=0,
        )


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame()


@dataclass(frozen=True, eq=False)
class SyntheticGrid:
    """A generated grid: the replay contract frames plus ground truth.

    ``topology``, ``readings`` and ``labels`` are what ``write_grid`` writes as the data
    contract. ``readings`` holds every row that has a type (duplicates, unknown meters,
    negative values and far-future timestamps included), sorted by ``received_at``;
    ``bad_rows`` holds the rows that cannot be typed (malformed timestamp, non-numeric
    value) as raw strings. ``meter_truth`` and ``area_truth`` are what a detector should
    find (true multipliers, true areas, transformer sizes, technical loss rates).
    """

    topology: pd.DataFrame
    readings: pd.DataFrame
    labels: pd.DataFrame
    summary: dict[str, int | float]
    bad_rows: pd.DataFrame = field(default_factory=_empty_frame)
    meter_truth: pd.DataFrame = field(default_factory=_empty_frame)
    area_truth: pd.DataFrame = field(default_factory=_empty_frame)
    config: SyntheticGridConfig = field(default_factory=SyntheticGridConfig)
