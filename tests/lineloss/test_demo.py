"""``lineloss demo`` end to end: generate, replay, summarise."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lineloss.cli import main


def test_demo_generates_replays_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Area-days by status: normal" in out
    assert "Top suspects" in out
    assert "injected" in out
    for name in ("topology.csv", "readings.csv", "labels.csv"):
        assert (tmp_path / "data" / name).exists()
    balances = pd.read_csv(tmp_path / "results" / "balances.csv")
    labels = pd.read_csv(tmp_path / "data" / "labels.csv")
    assert (labels["label"] != "normal").any()
    # Most area-days of a healthy synthetic grid balance normally, with a plausible
    # technical loss; the rest say why they are not.
    normal = balances[balances.status == "normal"]
    assert len(normal) > 0.5 * len(balances)
    assert normal.loss_rate.between(-0.01, 0.10).all()
    assert normal.loss_rate.median() == pytest.approx(0.035, abs=0.025)
    suspicions = pd.read_csv(tmp_path / "results" / "suspicions.csv")
    assert len(suspicions) >= 1
