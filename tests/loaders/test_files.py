"""The data contract's registry files: topology.csv and its dated changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import DAY0

from lineloss.timeline import BEGINNING_S
from loaders.files import DataContractError, read_topology_timeline

TOPOLOGY = """meter_id,role,area_id,feeder_id,multiplier
T1,area,A1,F1,40
C1,customer,A1,F1,1
C2,customer,A1,F1,1
"""


def write(d: Path, changes: str | None) -> Path:
    (d / "topology.csv").write_text(TOPOLOGY)
    if changes is not None:
        (d / "topology_changes.csv").write_text(changes)
    return d


def test_without_changes_the_registry_has_always_been_as_it_is(tmp_path: Path) -> None:
    timeline, rejects = read_topology_timeline(write(tmp_path, None))
    assert timeline.starts_s == [BEGINNING_S] and len(rejects) == 0
    assert list(timeline.latest.meter_ids) == ["T1", "C1", "C2"]


def test_changes_extend_each_meters_history(tmp_path: Path) -> None:
    changes = (
        "meter_id,effective_from,role,area_id,feeder_id,multiplier,removed\n"
        "C2,2026-03-02T00:00:00+08:00,customer,A2,F1,1,\n"
        f"T1,{DAY0 + 86400},area,A1,F1,80,\n"
        "C1,2026-03-03T00:00:00+08:00,,,,,true\n"
        "C9,2026-03-02T00:00:00+08:00,customer,A2,F1,,\n"
        "C8,someday,customer,A2,F1,1,\n"
        ",2026-03-02T00:00:00+08:00,customer,A2,F1,1,\n"
        "C7,2026-03-02T00:00:00+08:00,meter,A2,F1,1,\n"
        "C6,2026-03-02T00:00:00+08:00,customer,A2,F1,-3,\n"
    )
    timeline, rejects = read_topology_timeline(write(tmp_path, changes))
    assert timeline.meter_ids == ["T1", "C1", "C2", "C9"]
    assert timeline.starts_s == [BEGINNING_S, DAY0 + 86400, DAY0 + 2 * 86400]
    c2 = timeline.histories["C2"]
    assert [st.meter.area_id for st in c2 if st.meter] == ["A1", "A2"]
    assert timeline.at(DAY0 + 86400).multiplier[0] == 80.0
    assert timeline.histories["C1"][-1].meter is None
    assert timeline.histories["C9"][0].effective_from_s == DAY0 + 86400
    assert sorted(rejects["meter_id"]) == ["", "C6", "C7", "C8"]
    assert set(rejects["source"]) == {"topology_changes.csv"}
    assert set(rejects["reason"]) == {"malformed"}


def test_a_changes_file_needs_its_columns(tmp_path: Path) -> None:
    with pytest.raises(DataContractError, match="effective_from"):
        read_topology_timeline(write(tmp_path, "meter_id,role\nC1,customer\n"))


def test_a_feeder_meter_names_its_substation_and_feeders_of_one_are_one_region(
    tmp_path: Path,
) -> None:
    (tmp_path / "topology.csv").write_text(
        "meter_id,role,area_id,feeder_id,multiplier,substation_id\n"
        "H1,feeder,,F1,100,SS1\n"
        "H2,feeder,,F2,100,SS1\n"
        "H3,feeder,,F3,100,\n"
        "T1,area,A1,F1,40,SS9\n"  # a substation on a non-feeder row is not read
        "C1,customer,A1,F1,1,\n"
    )
    (tmp_path / "topology_changes.csv").write_text(
        f"meter_id,effective_from,role,area_id,feeder_id,substation_id\nH3,{DAY0},feeder,,F3,SS2\n"
    )
    timeline, rejects = read_topology_timeline(tmp_path)
    assert len(rejects) == 0
    first, now = timeline.versions[0], timeline.latest
    assert first.feeder_substation == ("SS1", "SS1", "")
    assert [first.region_of(f) for f in ("F1", "F2", "F3")] == [
        "substation:SS1",
        "substation:SS1",
        "F3",
    ]
    assert now.region_of("F3") == "substation:SS2"
    assert now.region_of(None, "A7") == "area:A7"
    assert now.meter(int(now.index_of(["T1"])[0])).substation_id is None
