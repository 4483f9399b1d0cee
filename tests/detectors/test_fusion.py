"""The suspicion book: confirmation, persistence of localiser suspects, state."""

from __future__ import annotations

from dataclasses import replace

from factories import DAY, DAY0

from detectors.base import Finding
from detectors.fusion import REVERSED_PROFILE, SuspicionBook
from lineloss.domain import SuspicionCategory, TargetKind


def _finding(
    day: int, target: str = "C1", score: float = 0.7, detector: str = "theft_localiser"
) -> Finding:
    return Finding(
        detector=detector,
        target_id=target,
        target_kind=TargetKind.METER,
        category=SuspicionCategory.THEFT,
        score=score,
        ts=DAY0 + (day + 1) * DAY,
        estimated_kwh=1.0,
        reason="test",
        area_id="A1",
        window_start=DAY0 + day * DAY,
    )


def _reported(book: SuspicionBook) -> dict[str, int | None]:
    return {s.target_id: s.first_detected for s in book.suspicions()}


def test_a_localiser_suspect_that_vanishes_every_other_day_is_never_reported() -> None:
    book = SuspicionBook()
    for day in (10, 12, 14, 16):
        book.add(_finding(day, "FLICKER"))
    for day in (10, 11, 12):
        book.add(_finding(day, "STEADY"))
    # STEADY: day 10 opens the streak, days 11 and 12 count: reported after day 12.
    assert _reported(book) == {"STEADY": DAY0 + 13 * DAY}


def test_one_localiser_window_counts_only_when_nearly_sure() -> None:
    """One window of the localiser at 0.85-0.95 is not enough (session 21: such
    flags, never repeated, were a third of the false thefts of our fresh grids); two
    in a row at that score are reported at once, without the third window a weaker
    streak needs; a flag of 0.97 or more counts on its own."""
    book = SuspicionBook()
    book.add(_finding(10, "ONCE", score=0.95))
    for day in (10, 11):
        book.add(_finding(day, "SURE", score=0.9))
    book.add(_finding(11, "NEARLY", score=0.98))
    assert _reported(book) == {"SURE": DAY0 + 12 * DAY, "NEARLY": DAY0 + 12 * DAY}


def test_certain_findings_of_other_detectors_need_no_streak() -> None:
    book = SuspicionBook()
    book.add(_finding(10, "CAP", score=0.9, detector="consumption_shape:clipped_peak"))
    for day in (10, 12):  # a shape detector: any two windows, as before
        book.add(_finding(day, "FLAT", detector="consumption_shape:flat_profile"))
    assert _reported(book) == {"CAP": DAY0 + 11 * DAY, "FLAT": DAY0 + 13 * DAY}


def test_a_day_played_backwards_needs_two_windows_whatever_its_score() -> None:
    """A routine that turns for a few days matches the usual day reversed on one
    window's mean; a meter playing the day backwards does so every day."""
    book = SuspicionBook()
    book.add(_finding(10, "ONCE", score=0.9, detector=REVERSED_PROFILE))
    for day in (10, 11):
        book.add(_finding(day, "EVERY_DAY", score=0.9, detector=REVERSED_PROFILE))
    assert _reported(book) == {"EVERY_DAY": DAY0 + 12 * DAY}


def test_streaks_survive_a_state_round_trip() -> None:
    book = SuspicionBook()
    book.add(_finding(10))
    book.add(_finding(11))
    restored = SuspicionBook()
    restored.load_state_dict(book.state_dict())
    restored.add(_finding(12))
    book.add(_finding(12))
    assert _reported(restored) == _reported(book) == {"C1": DAY0 + 13 * DAY}


def test_a_weak_localiser_finding_corroborated_by_a_drop_in_the_same_window_counts() -> None:
    book = SuspicionBook()
    for day in (10, 11, 12):
        assert not book.add(_finding(day, "C1", score=0.35))  # too weak alone
        assert not book.add(_finding(day, "C4", score=0.45, detector="consumption_shape:drop"))
    assert _reported(book) == {}
    for day in (10, 11, 12):
        book.add(_finding(day, "C2", score=0.35))
        book.add(_finding(day, "C2", score=0.45, detector="consumption_shape:drop"))
        book.add(_finding(day, "C2", score=0.3, detector="consumption_shape:zero_hours"))
    # 1 - 0.65 * 0.55 = 0.64 per window, once per window, persistent from day 11.
    (s,) = book.suspicions()
    assert (s.target_id, s.score, s.first_detected) == ("C2", 0.6425, DAY0 + 13 * DAY)
    # A shape finding of another window does not corroborate.
    later = SuspicionBook()
    later.add(_finding(10, "C3", score=0.35))
    later.add(_finding(11, "C3", score=0.45, detector="consumption_shape:drop"))
    assert later.state_dict()["weak"] and _reported(later) == {}


def test_evidence_dates_are_the_grids_local_dates() -> None:
    """A window starting at local midnight in Shanghai starts at 16:00 UTC the day
    before: the evidence names the local day, not the UTC one."""
    local_midnight = 1_772_380_800  # 2026-03-02 00:00 +08:00 (2026-03-01 16:00 UTC)
    day = 86_400
    book = SuspicionBook(tz="Asia/Shanghai")
    book.add(
        Finding(
            detector="consumption_shape:scaled_drop",
            target_id="C1",
            target_kind=TargetKind.METER,
            category=SuspicionCategory.THEFT,
            score=0.9,
            ts=local_midnight + 5 * day,
            estimated_kwh=1.0,
            reason="test",
            area_id="A1",
            start_s=local_midnight + 2 * day,
        )
    )
    (s,) = book.suspicions()
    assert s.evidence.endswith(
        "since 2026-03-07 by consumption_shape:scaled_drop; estimated start 2026-03-04"
    )


def test_a_topology_pair_needs_two_windows_whatever_its_score() -> None:
    """An hourly regression over a week or two names an honest customer now and then
    for one window; a registry error stays named."""
    book = SuspicionBook()

    def pair(day: int, target: str) -> Finding:
        return replace(
            _finding(day, target, score=0.9, detector="topology"),
            category=SuspicionCategory.TOPOLOGY_ERROR,
        )

    book.add(pair(10, "ONCE"))
    for day in (10, 12):
        book.add(pair(day, "TWICE"))
    assert _reported(book) == {"TWICE": DAY0 + 13 * DAY}


def test_a_wrong_multiplier_fitted_on_daily_totals_needs_two_windows() -> None:
    """A registry's wrong multiplier holds in every window; a fit of one window's daily
    totals that does not recur named honest customers. A register stepping back
    needs no second look."""
    book = SuspicionBook()

    def fault(day: int, target: str, kind: str) -> Finding:
        return replace(
            _finding(day, target, score=0.9, detector=f"meter_fault:{kind}"),
            category=SuspicionCategory.METER_FAULT,
        )

    book.add(fault(7, "ONCE", "wrong_multiplier"))
    for day in (7, 8):
        book.add(fault(day, "STANDING", "wrong_multiplier"))
    book.add(fault(9, "STEPPED", "step_back"))
    assert _reported(book) == {"STANDING": DAY0 + 9 * DAY, "STEPPED": DAY0 + 10 * DAY}


def test_one_story_per_meter_the_stronger_of_a_theft_and_a_pair_wins() -> None:
    """A fault named with confidence explains a theft suspicion away; a topology pair
    does so only when it is at least as strong as the theft: a thief's area lacks its
    load from the theft on too, and a chance taker must not hide a clear theft."""
    book = SuspicionBook()

    def as_(f: Finding, category: SuspicionCategory, detector: str, reason: str) -> Finding:
        return replace(f, category=category, detector=detector, reason=reason)

    for day in (10, 11, 12):
        # STUCK: a stuck register (0.85) beats a stronger theft score (0.95).
        book.add(_finding(day, "STUCK", score=0.95))
        book.add(
            as_(
                _finding(day, "STUCK", score=0.85),
                SuspicionCategory.METER_FAULT,
                "meter_faults:stuck",
                "register not advancing",
            )
        )
        # MAPPED: the pair (0.9) is stronger than the theft (0.8).
        book.add(_finding(day, "MAPPED", score=0.8))
        book.add(
            as_(
                _finding(day, "MAPPED", score=0.9),
                SuspicionCategory.TOPOLOGY_ERROR,
                "topology",
                "recorded in A1, shows up in A2",
            )
        )
        # THIEF: the theft (0.92) is stronger than the pair (0.9).
        book.add(replace(_finding(day, "THIEF", score=0.92), reason="area loss rose"))
        book.add(
            as_(
                _finding(day, "THIEF", score=0.9),
                SuspicionCategory.TOPOLOGY_ERROR,
                "topology",
                "recorded in A1, shows up in A3",
            )
        )
    got = {(s.target_id, s.category): s for s in book.suspicions()}
    assert sorted((t, c.value) for t, c in got) == [
        ("MAPPED", "topology_error"),
        ("STUCK", "meter_fault"),
        ("THIEF", "theft"),
    ]
    assert "also looked like theft (test)" in got["STUCK", SuspicionCategory.METER_FAULT].evidence
    assert "also looked like theft" in got["MAPPED", SuspicionCategory.TOPOLOGY_ERROR].evidence
    thief = got["THIEF", SuspicionCategory.THEFT].evidence
    assert thief.startswith("area loss rose")
    assert "also looked like a wrong area (recorded in A1, shows up in A3)" in thief


def test_a_pair_and_a_multiplier_fit_on_one_meter_leave_the_pair() -> None:
    """A customer supplied by another area lacks nearly all of its billing in its
    recorded area's first week, which the fault detector's daily-total fit reads as
    a registry multiplier 11.5 x too high. The pair names where its energy goes; a
    wrong multiplier would keep it at home. A register stepping back on a paired
    meter is another story and stays."""
    book = SuspicionBook()

    def as_(day: int, target: str, category: SuspicionCategory, detector: str) -> Finding:
        return replace(
            _finding(day, target, score=0.9),
            category=category,
            detector=detector,
            reason=f"{detector} says so",
        )

    for day in (10, 11):
        for target in ("MAPPED", "STEPPED"):
            book.add(as_(day, target, SuspicionCategory.TOPOLOGY_ERROR, "topology"))
        book.add(as_(day, "MAPPED", SuspicionCategory.METER_FAULT, "meter_fault:wrong_multiplier"))
        book.add(as_(day, "STEPPED", SuspicionCategory.METER_FAULT, "meter_fault:step_back"))
        book.add(as_(day, "ALONE", SuspicionCategory.METER_FAULT, "meter_fault:wrong_multiplier"))
    got = {(s.target_id, s.category.value): s for s in book.suspicions()}
    assert sorted(got) == [
        ("ALONE", "meter_fault"),
        ("MAPPED", "topology_error"),
        ("STEPPED", "meter_fault"),
        ("STEPPED", "topology_error"),
    ]
    pair = got["MAPPED", "topology_error"].evidence
    assert "also fitted as a wrong multiplier (meter_fault:wrong_multiplier says so)" in pair


def test_a_voltage_or_phase_loss_explains_a_pair_on_its_meter() -> None:
    """A meter that lost a phase records two thirds of its energy (a lack in its
    area) and its voltage steps down (unlike its area's): the topology detectors'
    evidence for a customer wired elsewhere. The fault is the story; a pair on
    another meter stays."""
    book = SuspicionBook()
    for day in (10, 11):
        for target, category, detector in (
            ("LOST", SuspicionCategory.TOPOLOGY_ERROR, "voltage_topology"),
            ("LOST", SuspicionCategory.METER_FAULT, "meter_fault:phase_loss"),
            ("PAIRED", SuspicionCategory.TOPOLOGY_ERROR, "topology"),
        ):
            book.add(
                replace(
                    _finding(day, target, score=0.8),
                    category=category,
                    detector=detector,
                    reason=f"{detector} says so",
                )
            )
    got = {(s.target_id, s.category.value): s for s in book.suspicions()}
    assert sorted(got) == [("LOST", "meter_fault"), ("PAIRED", "topology_error")]
    assert "also looked like a wrong area (voltage_topology says so)" in (
        got["LOST", "meter_fault"].evidence
    )
