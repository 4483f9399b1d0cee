"""A drop shared by the customers most like the candidate is a common cause."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from factories import area_day

from detectors.base import Finding
from detectors.common_drop import Cohort, CommonDropCheck
from detectors.meter_shape import ConsumptionShapeDetector
from detectors.observations import AreaHistory
from lineloss.domain import SuspicionCategory, TargetKind

N_DAYS, N_AREAS, PER_AREA = 24, 3, 16
GROUP = [f"A{a}C{i}" for a in range(N_AREAS) for i in range(3)]  # 9 homes, 3 per area


def _ids(area: int) -> tuple[str, ...]:
    return tuple(f"A{area}C{i}" for i in range(PER_AREA))


def _days(seed: int) -> dict[str, np.ndarray]:
    """Daily kWh per customer: the group's homes (the first three of each area) share
    one day-to-day swing (a heating system following the weather), everyone else
    has swings of their own."""
    rng = np.random.default_rng(seed)
    weather = rng.lognormal(0.0, 0.15, N_DAYS)
    out = {}
    for a in range(N_AREAS):
        for m in _ids(a):
            level = rng.uniform(5.0, 15.0)
            own = rng.lognormal(0.0, 0.05 if m in GROUP else 0.15, N_DAYS)
            out[m] = level * own * (weather if m in GROUP else 1.0)
    return out


def _scope(days: dict[str, np.ndarray]) -> dict[str, AreaHistory]:
    """The areas' histories; nobody's first day is known (no register reading
    before it), as in a replay's first window."""
    scope = {}
    for a in range(N_AREAS):
        ids = _ids(a)
        h = AreaHistory()
        for d in range(N_DAYS):
            energy = np.array([days[m][d] if d else np.nan for m in ids])
            h.push(area_day(d, ids, energy, area_id=f"A{a}"))
        scope[f"A{a}"] = h
    return scope


def _drop(meter: str, area: int, scope: dict[str, AreaHistory]) -> Finding:
    last = scope[f"A{area}"].windows[-1]
    return Finding(
        detector="consumption_shape:scaled_drop",
        target_id=meter,
        target_kind=TargetKind.METER,
        category=SuspicionCategory.THEFT,
        score=0.6,
        ts=last.window_end,
        estimated_kwh=10.0,
        reason="scaled drop",
        area_id=f"A{area}",
    )


def _cohort(days: dict[str, np.ndarray], meter: str = "A1C0", area: int = 1) -> Cohort:
    scope = _scope(days)
    got = CommonDropCheck().cohorts([_drop(meter, area, scope)], scope)
    assert list(got) == [0]
    return got[0]


def test_a_drop_its_group_shared_is_explained() -> None:
    """A mild week: the homes heated alike, in three areas, all fall to about 0.6."""
    days = _days(1)
    for m in GROUP:
        days[m][-5:] *= 0.6
    c = _cohort(days)
    assert len(set(c.meter_ids) & set(GROUP)) >= 4 and "A1C0" not in c.meter_ids
    assert c.min_corr >= 0.6
    assert c.ratio < 0.8 and abs(c.ratio - c.own_ratio) < 0.1
    assert CommonDropCheck().explains(c)


def test_a_meter_falling_alone_is_not_explained() -> None:
    days = _days(2)
    days["A1C0"][-5:] *= 0.5  # a shunt: its group keeps its level
    c = _cohort(days)
    assert len(set(c.meter_ids) & set(GROUP)) >= 4
    assert c.ratio > 0.85 and c.own_ratio < 0.6 * c.ratio
    assert not CommonDropCheck().explains(c)


def test_a_meter_slowed_day_by_day_while_its_group_is_away_is_not_explained() -> None:
    """h1 (a factor drawn each day) whose cohort happens to fall as deep on average:
    its days do not follow the cohort's."""
    days = _days(3)
    for m in GROUP:
        days[m][-5:] *= 0.4
    days["A1C0"][-5:] /= 0.4  # the thief's home was not away ...
    days["A1C0"][-5:] *= np.array([0.15, 0.8, 0.15, 0.8, 0.3])  # ... its meter slowed
    c = _cohort(days)
    assert abs(c.ratio - c.own_ratio) < 0.15  # the means alone would explain it
    assert not CommonDropCheck().explains(c)


def test_a_drop_deeper_than_its_groups_is_not_explained() -> None:
    days = _days(4)
    for m in GROUP:
        days[m][-5:] *= 0.75
    days["A1C0"][-5:] *= 0.5  # the group at 0.75 of its usual, this meter at half that
    c = _cohort(days)
    assert not CommonDropCheck().explains(c)


def test_a_customer_like_nobody_has_no_cohort() -> None:
    """Swings of its own: nobody correlates at ``min_corr``; the finding stands."""
    days = _days(5)
    scope = _scope(days)
    f = _drop("A1C7", 1, scope)
    assert CommonDropCheck().cohorts([f], scope) == {}
    assert CommonDropCheck().without_explained([f], [scope]) == [f]


def test_only_drop_findings_of_the_listed_detectors_are_checked() -> None:
    """The drops and the localiser's suspects (a shortfall its cohort shared is no
    theft, whatever the area's loss did meanwhile) go; a flattened day or a fault
    is not a drop."""
    days = _days(6)
    for m in GROUP:
        days[m][-5:] *= 0.6
    scope = _scope(days)
    drop = _drop("A1C0", 1, scope)
    suspect = replace(drop, detector="theft_localiser")
    flat = replace(drop, detector="consumption_shape:flat_profile")
    fault = replace(drop, category=SuspicionCategory.METER_FAULT)
    kept = CommonDropCheck().without_explained([drop, suspect, flat, fault], [scope])
    assert kept == [flat, fault]


def test_the_consumption_shape_drops_of_a_group_go_and_a_lone_drop_stays() -> None:
    """End to end with the real drop detector: the group's homes fall to 0.45 (a
    holiday), one other customer's meter to 0.4; the detector flags all of them
    against their area's median customer, the check keeps the lone one."""
    days = _days(7)
    for m in GROUP:
        days[m][-5:] *= 0.45
    days["A2C8"][-5:] *= 0.4
    scope = _scope(days)
    det = ConsumptionShapeDetector()
    found = [f for a in sorted(scope) for f in det.score_one(scope[a])]
    flagged = {f.target_id for f in found if f.detector.endswith("consumption_drop")}
    assert {"A2C8"} | set(GROUP) <= flagged
    kept = CommonDropCheck().without_explained(found, [scope])
    assert {f.target_id for f in kept if f.detector.endswith("consumption_drop")} == {"A2C8"}
