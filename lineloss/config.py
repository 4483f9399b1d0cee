"""Settings, read once at the edge into frozen objects and passed down.

Defaults follow State Grid practice as summarised in DOMAIN.md: an area's daily loss
rate is qualified between -1 % and 10 %, below -1 % is negative loss (负损), above the
upper bound is high loss (高损), and an area whose collection success rate (采集成功率)
is too low cannot be judged at all (不可计算). Provinces differ, so every threshold
can be overridden per level and per area.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

WINDOW_ALIASES = {
    "15min": 900,
    "15m": 900,
    "30min": 1800,
    "1h": 3600,
    "60min": 3600,
    "1d": 86400,
    "day": 86400,
    "24h": 86400,
}


def parse_window(text: str | int) -> int:
    """Window length in seconds from '15min', '1h', '1d' or a number of seconds."""
    if isinstance(text, int):
        window_s = text
    else:
        key = text.strip().lower()
        if key in WINDOW_ALIASES:
            window_s = WINDOW_ALIASES[key]
        elif re.fullmatch(r"\d+", key):
            window_s = int(key)
        else:
            raise ValueError(f"unknown window {text!r}; use 15min, 1h, 1d or seconds")
    if window_s <= 0 or 86400 % window_s != 0:
        raise ValueError(f"window must divide a day evenly, got {window_s} s")
    return window_s


@dataclass(frozen=True)
class LossBand:
    """The qualified band of loss rates [fraction of supply]."""

    lower_rate: float = -0.01
    upper_rate: float = 0.10

    def __post_init__(self) -> None:
        if self.lower_rate >= self.upper_rate:
            raise ValueError(f"loss band lower {self.lower_rate} must be < upper {self.upper_rate}")


@dataclass(frozen=True)
class BalanceConfig:
    area_band: LossBand = LossBand(-0.01, 0.10)
    # 10 kV target from the seed example (8 %); utilities set their own.
    feeder_band: LossBand = LossBand(-0.01, 0.08)
    area_bands: dict[str, LossBand] = field(default_factory=dict)
    feeder_bands: dict[str, LossBand] = field(default_factory=dict)
    # Below this share of expected meters reporting, the balance is incomputable.
    min_coverage: float = 0.9

    def band_for_area(self, area_id: str) -> LossBand:
        return self.area_bands.get(area_id, self.area_band)

    def band_for_feeder(self, feeder_id: str) -> LossBand:
        return self.feeder_bands.get(feeder_id, self.feeder_band)


@dataclass(frozen=True)
class EngineConfig:
    """Event-time settings of the balance engine. All durations in seconds."""

    window_s: int = 86400
    tz: str = "Asia/Shanghai"
    # The watermark trails the newest accepted reading by this much; a window closes
    # provisionally once the watermark passes its end.
    allowed_lateness_s: int = 3600
    # Re-collection (补采) horizon: late readings revise a window until the watermark
    # is this far past its end; then the window is final and later readings rejected.
    recollect_horizon_s: int = 86400
    # A reading further than this ahead of the stream's event time is a clock jump.
    max_clock_jump_s: int = 2 * 86400
    # Interpolating a register across a longer gap than this is a guess, so the meter
    # does not count as reporting for the window (its energy still counts).
    max_bracket_gap_s: int = 2 * 86400
    # Revisions of a provisional window are issued at most once per this much stream
    # time (and always when it becomes final), so a trickle of late readings costs
    # one recomputation per interval, not one per batch.
    revision_interval_s: int = 900
    # Final windows also carry each meter's energy per sub-window of this length
    # (hourly load profiles for the shape detectors); 0 turns profiles off.
    profile_s: int = 3600
    # With profiles, each meter's ``peak_parts`` largest energies over sub-windows of
    # ``peak_part_s`` (a day's top quarter hours): a meter missing what runs above a
    # cap shows a ceiling there that an hourly profile blurs. 0 turns them off.
    peak_part_s: int = 900
    peak_parts: int = 16
    # A meter has no profile (NaN parts) in a window where its readings come less
    # often than this many part lengths (no more than half of its intervals within
    # it): a daily frozen reading says nothing about the hours of its day, and
    # prorating it would draw a flat day the detectors read as a shape.
    profile_max_interval_ratio: float = 1.5
    balance: BalanceConfig = field(default_factory=BalanceConfig)

    def __post_init__(self) -> None:
        parse_window(self.window_s)
        for name in ("allowed_lateness_s", "recollect_horizon_s", "max_clock_jump_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    def with_overrides(self, **changes: Any) -> EngineConfig:
        return replace(self, **changes)


def _band(data: dict[str, Any]) -> LossBand:
    return LossBand(float(data["lower_rate"]), float(data["upper_rate"]))


def load_engine_config(path: Path | None, **overrides: Any) -> EngineConfig:
    """Read an engine config from JSON (all keys optional), then apply overrides.

    Example::

        {"window": "1d", "tz": "Asia/Shanghai",
         "balance": {"area_band": {"lower_rate": -0.01, "upper_rate": 0.06},
                     "area_bands": {"A017": {"lower_rate": -0.01, "upper_rate": 0.12}},
                     "min_coverage": 0.95}}
    """
    data: dict[str, Any] = json.loads(path.read_text()) if path else {}
    bal = data.get("balance", {})
    balance = BalanceConfig(
        area_band=_band(bal["area_band"]) if "area_band" in bal else BalanceConfig.area_band,
        feeder_band=(
            _band(bal["feeder_band"]) if "feeder_band" in bal else BalanceConfig.feeder_band
        ),
        area_bands={k: _band(v) for k, v in bal.get("area_bands", {}).items()},
        feeder_bands={k: _band(v) for k, v in bal.get("feeder_bands", {}).items()},
        min_coverage=float(bal.get("min_coverage", BalanceConfig.min_coverage)),
    )
    fields: dict[str, Any] = {"balance": balance}
    if "window" in data:
        fields["window_s"] = parse_window(data["window"])
    for key in (
        "tz",
        "allowed_lateness_s",
        "recollect_horizon_s",
        "max_clock_jump_s",
        "max_bracket_gap_s",
        "revision_interval_s",
        "profile_s",
        "peak_part_s",
        "peak_parts",
        "profile_max_interval_ratio",
    ):
        if key in data:
            fields[key] = data[key]
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return EngineConfig(**fields)


def engine_config_to_dict(config: EngineConfig) -> dict[str, Any]:
    return asdict(config)
