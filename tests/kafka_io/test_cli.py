"""CLI shells of the Kafka commands (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafka_io.collect import worker_command
from kafka_io.topics import KafkaSettings
from lineloss.cli import build_parser, main


def test_worker_needs_a_bootstrap(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("LINELOSS_KAFKA_BOOTSTRAP", raising=False)
    assert main(["worker"]) == 2
    assert "--bootstrap" in capsys.readouterr().err


def test_replay_needs_out_unless_publishing(capsys) -> None:
    assert main(["replay", "some-dir"]) == 2
    assert "--out is required" in capsys.readouterr().err


def test_replay_kafka_options_parse() -> None:
    argv = ["replay", "d", "--to-kafka", "h:9092", "--speed", "60"]
    argv += ["--prefix", "p", "--partitions", "8"]
    args = build_parser().parse_args(argv)
    assert (args.to_kafka, args.speed, args.prefix, args.partitions) == ("h:9092", "60", "p", 8)


def test_worker_command_passes_security_as_a_file(tmp_path: Path) -> None:
    cmd = worker_command(KafkaSettings("h:1", "p"), tmp_path / "e.json", tmp_path / "s.json")
    assert cmd[cmd.index("--kafka-security") + 1] == str(tmp_path / "s.json")
    assert "--exit-on-drain" in cmd and cmd[cmd.index("--prefix") + 1] == "p"


def test_speed_must_be_positive_or_max(capsys) -> None:
    assert main(["replay", "d", "--to-kafka", "h:9092", "--speed", "fast"]) == 2
    assert "--speed" in capsys.readouterr().err
