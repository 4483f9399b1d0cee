"""Topology timelines: histories of meters as aligned versions on one index space."""

from __future__ import annotations

import numpy as np
import pytest
from changing_grid import TOPO, customer
from factories import DAY, DAY0

from lineloss.domain import NO_INDEX, Meter, MeterRole
from lineloss.timeline import (
    BEGINNING_S,
    MeterState,
    TopologyTimeline,
    always,
    history_from_json,
    history_to_json,
    state_at,
)


def test_of_a_topology_is_one_version_equal_to_it() -> None:
    tl = TopologyTimeline.of(TOPO)
    assert tl.starts_s == [BEGINNING_S]
    v = tl.latest
    assert list(v.meter_ids) == list(TOPO.meter_ids)
    assert v.area_ids == TOPO.area_ids and v.feeder_ids == TOPO.feeder_ids
    np.testing.assert_array_equal(v.meter_area, TOPO.meter_area)
    np.testing.assert_array_equal(v.area_feeder, TOPO.area_feeder)
    np.testing.assert_array_equal(v.multiplier, TOPO.multiplier)
    assert tl.in_service.all()
    assert tl.membership_changes() == {}


def test_apply_appends_new_ids_and_keeps_every_version_on_one_index_space() -> None:
    tl = TopologyTimeline.of(TOPO).apply(
        {
            "C9": (MeterState(DAY0 + DAY, customer("C9", "A3", "F1")),),
            "C0": (MeterState(DAY0 + DAY, customer("C0", "A1", "F1")),),
            "C2": (
                MeterState(BEGINNING_S, customer("C2", "A1", "F1")),
                MeterState(DAY0 + 2 * DAY, customer("C2", "A2", "F2")),
            ),
            "T1": (
                MeterState(BEGINNING_S, Meter("T1", MeterRole.AREA, "A1", "F1", 40.0)),
                MeterState(DAY0 + DAY, Meter("T1", MeterRole.AREA, "A1", "F1", 80.0)),
            ),
            "C3": (
                MeterState(BEGINNING_S, customer("C3", "A2", "F2")),
                MeterState(DAY0 + 2 * DAY, None),
            ),
        }
    )
    # Old ids keep their index; new ones come after, sorted; a new area likewise.
    assert tl.meter_ids == ["T1", "C1", "C2", "T2", "C3", "C0", "C9"]
    assert tl.area_ids == ["A1", "A2", "A3"]
    assert tl.starts_s == [BEGINNING_S, DAY0 + DAY, DAY0 + 2 * DAY]
    assert all(v.n_meters == 7 for v in tl.versions)
    first, mid, last = tl.versions
    c0, c2, c3, c9 = 5, 2, 4, 6
    assert first.meter_area[c0] == NO_INDEX and mid.area_ids[mid.meter_area[c0]] == "A1"
    assert mid.area_ids[mid.meter_area[c9]] == "A3"
    assert first.multiplier[0] == 40.0 and mid.multiplier[0] == 80.0
    assert mid.area_ids[mid.meter_area[c2]] == "A1" and last.area_ids[last.meter_area[c2]] == "A2"
    assert last.meter_area[c3] == NO_INDEX and last.meter_feeder[c3] == NO_INDEX
    assert tl.in_service[:, c3].tolist() == [True, True, False]
    assert tl.in_service[:, c0].tolist() == [False, True, True]
    assert tl.at(DAY0 + DAY + 5) is mid and tl.at(DAY0) is first
    # A multiplier change is no change of membership; a move, a removal and coming
    # into service are.
    assert tl.membership_changes() == {
        c2: [DAY0 + 2 * DAY],
        c3: [DAY0 + 2 * DAY],
        c0: [DAY0 + DAY],
        c9: [DAY0 + DAY],
    }


def test_deleting_a_meter_takes_it_out_of_service_for_all_time() -> None:
    tl = TopologyTimeline.of(TOPO).apply({"C1": None})
    assert "C1" in tl.meter_ids
    assert not tl.in_service[:, 1].any()
    assert tl.latest.meter_area[1] == NO_INDEX


def test_changed_by_tells_repeats_from_changes() -> None:
    tl = TopologyTimeline.of(TOPO)
    assert not tl.changed_by({"C1": always(customer("C1", "A1", "F1"))})
    assert tl.changed_by({"C1": always(customer("C1", "A2", "F2"))})
    assert tl.changed_by({"C7": always(customer("C7", "A2", "F2"))})
    assert tl.changed_by({"C1": None})
    assert not tl.apply({"C1": None}).changed_by({"C1": None})


def test_restricted_keeps_a_shards_states_and_its_earlier_meters() -> None:
    tl = TopologyTimeline.of(TOPO).apply(
        {
            "C2": (
                MeterState(BEGINNING_S, customer("C2", "A1", "F1")),
                MeterState(DAY0 + 2 * DAY, customer("C2", "A2", "F2")),
            )
        }
    )
    f1 = tl.restricted(lambda m: m.feeder_id == "F1")
    assert f1.meter_ids == ["T1", "C1", "C2"] and f1.area_ids == ["A1"]
    assert f1.in_service[:, 2].tolist() == [True, False]
    f2 = tl.restricted(lambda m: m.feeder_id == "F2")
    assert f2.meter_ids == ["C2", "T2", "C3"] and f2.area_ids == ["A2"]
    assert f2.in_service[:, 0].tolist() == [False, True]
    # C2 moves back for good: F2 keeps it (its index space only grows), out of service.
    back = tl.apply({"C2": always(customer("C2", "A1", "F1"))})
    f2_again = back.restricted(lambda m: m.feeder_id == "F2", previous=f2)
    assert f2_again.meter_ids == f2.meter_ids
    assert not f2_again.in_service[:, 0].any()


def test_histories_round_trip_through_json() -> None:
    history = (
        MeterState(BEGINNING_S, customer("C2", "A1", "F1", 2.0)),
        MeterState(DAY0 + DAY, None),
        MeterState(DAY0 + 3 * DAY, customer("C2", "A2", "F2")),
    )
    assert history_from_json("C2", history_to_json(history)) == history
    head = (MeterState(BEGINNING_S, Meter("H9", MeterRole.FEEDER, None, "F9", 1.0, None, "SS1")),)
    assert history_from_json("H9", history_to_json(head)) == head
    tl = TopologyTimeline.of(TOPO).apply({"C2": history})
    again = TopologyTimeline.from_json(tl.to_json())
    assert again.to_json() == tl.to_json()
    assert state_at(history, DAY0 + 2 * DAY) is None
    assert state_at(history, DAY0) == customer("C2", "A1", "F1", 2.0)


def test_histories_are_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        history_from_json("C1", [{"role": "customer", "multiplier": -2}])
    with pytest.raises(ValueError, match="empty"):
        history_from_json("C1", [])
    with pytest.raises(ValueError, match="holds a state of"):
        TopologyTimeline({"C1": always(customer("C2", "A1", "F1"))})
    # Out of order and repeated times: sorted, the last given wins.
    h = history_from_json(
        "C1",
        [
            {"effective_from": 20, "role": "customer", "area_id": "A2"},
            {"effective_from": None, "role": "customer", "area_id": "A1"},
            {"effective_from": 20, "removed": True},
        ],
    )
    assert [st.effective_from_s for st in h] == [BEGINNING_S, 20]
    assert h[1].meter is None


def test_changes_keeps_only_what_apply_would_change() -> None:
    tl = TopologyTimeline.of(TOPO)
    moved = always(customer("C1", "A2", "F2"))
    updates = {"C1": moved, "C2": always(customer("C2", "A1", "F1")), "C3": None}
    assert tl.changes(updates) == {"C1": moved, "C3": None}
    assert tl.apply(updates).changes(updates) == {}
