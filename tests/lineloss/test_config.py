"""Engine settings read from JSON: every key optional, overrides last."""

from __future__ import annotations

import json
from pathlib import Path

from lineloss.config import EngineConfig, load_engine_config


def test_an_engine_config_file_sets_what_it_names_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "engine.json"
    path.write_text(
        json.dumps(
            {
                "window": "1h",
                "tz": "Europe/Berlin",
                "profile_max_interval_ratio": 3.0,
                "balance": {"area_band": {"lower_rate": -0.02, "upper_rate": 0.08}},
            }
        )
    )
    cfg = load_engine_config(path, tz="UTC")
    assert cfg.window_s == 3600 and cfg.tz == "UTC"  # the override wins
    assert cfg.profile_max_interval_ratio == 3.0
    assert (cfg.balance.area_band.lower_rate, cfg.balance.area_band.upper_rate) == (-0.02, 0.08)
    assert cfg.profile_s == EngineConfig().profile_s
    assert load_engine_config(None) == EngineConfig()
