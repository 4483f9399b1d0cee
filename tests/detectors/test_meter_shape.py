"""The consumption-shape detector on hand-built areas."""

from __future__ import annotations

import numpy as np
from factories import area_day

from detectors.meter_shape import ConsumptionShapeDetector
from detectors.observations import AreaHistory

N_CUSTOMERS, N_DAYS, PARTS = 12, 20, 24


def _history(profiles: np.ndarray) -> AreaHistory:
    """An area without a meter of its own: days x customers x hours [kWh]."""
    h = AreaHistory()
    ids = tuple(f"C{i:02d}" for i in range(profiles.shape[1]))
    for d in range(profiles.shape[0]):
        h.push(
            area_day(d, ids, profiles[d].sum(axis=1), profile_kwh=profiles[d].astype(np.float32))
        )
    return h


def _households(rng: np.random.Generator) -> np.ndarray:
    hours = np.arange(PARTS)
    shape = 0.3 + np.exp(-((hours - 19.5) ** 2) / 6) + 0.5 * np.exp(-((hours - 8) ** 2) / 3)
    level = rng.uniform(0.5, 1.5, N_CUSTOMERS)
    noise = rng.lognormal(0.0, 0.2, (N_DAYS, N_CUSTOMERS, PARTS))
    return level[None, :, None] * shape[None, None, :] * noise


def _flat_days(h: AreaHistory) -> set[str]:
    det = ConsumptionShapeDetector()
    return {f.target_id for f in det.score_one(h) if f.detector.endswith("flat_profile")}


def test_a_flattened_day_is_found() -> None:
    rng = np.random.default_rng(1)
    p = _households(rng)
    p[-3:, 4] = p[-3:, 4].mean(axis=1, keepdims=True)  # h5: a flat day, total kept
    assert _flat_days(_history(p)) == {"C04"}


def test_a_pump_idling_on_some_days_is_not_a_flattened_day() -> None:
    """An irrigation pump runs hard on some days and idles at a flat base load on the
    others: its idle days are as flat as an h5 day, but its own history has them."""
    rng = np.random.default_rng(2)
    p = _households(rng)
    pump = np.full((N_DAYS, PARTS), 0.2) * rng.lognormal(0.0, 0.03, (N_DAYS, PARTS))
    runs = rng.random(N_DAYS) < 0.6
    runs[:10] = [True, True, False, True, True, False, True, False, True, True]
    runs[-3:] = [False, True, False]
    pump[runs, 8:16] += 0.5
    p[:, 6] = pump
    assert "C06" not in _flat_days(_history(p))
    # without the rarity rule (and the base-load rule, which its idle days also meet)
    # it would be
    det = ConsumptionShapeDetector(max_ref_share=1.01, flat_min_base_ratio=0.0)
    assert "C06" in {f.target_id for f in det.score_one(_history(p))}


def test_a_home_flat_at_its_base_load_is_away_not_flattened() -> None:
    """A home whose base load is half its day (a fridge, standby, a heater on a
    thermostat) left empty: its last days keep "half the total" and are flat, but flat
    at its base load, where a flattened meter's day sits at the day's mean use."""
    rng = np.random.default_rng(1)
    p = _households(rng)
    p[:, 5] += 0.3  # the heater
    base = np.sort(p[: N_DAYS - 3, 5], axis=-1)[:, :4].mean()  # its usual lowest hours
    p[-3:, 5] = base * rng.lognormal(0.0, 0.01, (3, PARTS))
    assert "C05" not in _flat_days(_history(p))
    det = ConsumptionShapeDetector(flat_min_base_ratio=0.0)
    assert "C05" in {f.target_id for f in det.score_one(_history(p))}


def test_a_flat_customer_empty_at_first_was_never_shaped() -> None:
    """A customer whose load is flat (a pump, a server cupboard), not read on the
    first day, then empty for eight days and half the ninth: those days are its
    meter's noise, a few watt-hours an hour in register steps, as varied as any
    shape, and made its "usual" variation high (1.18 for such a customer of a
    held-out grid, then called flattened every day). Its usual day is judged on its
    days at home."""
    rng = np.random.default_rng(3)
    p = _households(rng)

    def empty(days: int, parts: int) -> np.ndarray:
        return rng.choice([0.0, 0.01], size=(days, parts), p=[0.7, 0.3])

    p[:, 7] = 0.18 * rng.lognormal(0.0, 0.03, (N_DAYS, PARTS))  # flat, 4.3 kWh a day
    p[0, 7] = np.nan
    p[1:9, 7] = empty(8, PARTS)
    p[9, 7, :12] = empty(1, 12)[0]
    p[-3:, 7] = p[-3:, 7].mean(axis=1, keepdims=True)  # flat as ever
    assert "C07" not in _flat_days(_history(p))
    # A shaped customer empty at first whose meter is then flattened: still found.
    p[0, 8] = np.nan
    p[1:9, 8] = empty(8, PARTS)
    p[-3:, 8] = p[-3:, 8].mean(axis=1, keepdims=True)
    assert "C08" in _flat_days(_history(p))


def _drops(h: AreaHistory, **kw: object) -> set[str]:
    det = ConsumptionShapeDetector(**kw)  # type: ignore[arg-type]
    return {f.target_id for f in det.score_one(h) if f.detector.endswith("consumption_drop")}


def test_a_meter_slowed_by_a_factor_drawn_each_day_is_a_drop() -> None:
    """Recording 0.2, 0.7, 0.3, 0.6, 0.25 of its use on the last five days (below
    half on three of them, 41 % on average): the mean ratio sees the drop, a count
    of days each below half (four of five) does not."""
    rng = np.random.default_rng(3)
    p = _households(rng)
    p[-5:, 2] *= np.array([0.2, 0.7, 0.3, 0.6, 0.25])[:, None]
    h = _history(p)
    assert "C02" in _drops(h)
    assert "C02" not in _drops(h, drop_mean=False)
    assert _drops(h) == {"C02"}


def test_a_theft_older_than_half_the_history_is_still_a_drop() -> None:
    """Slowed to 30 % from day 8 of 20: by the last window most of its earlier days are
    theft days, and their median is the theft's level. The drop is measured against
    its first windows' level too (an independent grid's clip thief, 34 % of its use,
    stopped being a drop after nine days while the area meter still saw it)."""
    rng = np.random.default_rng(8)
    p = _households(rng)
    p[8:, 2] *= 0.3
    energy = p.sum(axis=2)
    # the median of all its days before the last three is already a theft day's
    assert energy[-5:, 2].mean() / np.median(energy[:-3, 2]) > 0.5
    assert "C02" in _drops(_history(p))


def _scaled(h: AreaHistory, **kw: float) -> set[str]:
    det = ConsumptionShapeDetector(**kw)  # type: ignore[arg-type]
    return {f.target_id for f in det.score_one(h) if f.detector.endswith("scaled_drop")}


def test_a_meter_recording_a_fraction_drops_its_base_load_too() -> None:
    """A slowed meter (h1) records 30 % of every hour, the night's fridge included:
    evidence on its own. An empty home falls as far in total but keeps its base load
    (the fridge does not travel): a drop, but not a scaled one."""
    rng = np.random.default_rng(4)
    p = _households(rng)
    p[-5:, 1] *= 0.3  # slowed meter
    base = np.sort(p[:10, 7], axis=-1)[:, :4].mean()
    p[-5:, 7] = base * rng.lognormal(0.0, 0.1, (5, PARTS))  # away: base load only
    h = _history(p)
    assert {"C01", "C07"} <= _drops(h)
    assert _scaled(h) == {"C01"}
    [f] = [f for f in ConsumptionShapeDetector().score_one(h) if f.detector.endswith("scaled_drop")]
    assert f.score >= 0.5 and "base load" in f.reason


def test_a_factor_drawn_each_day_is_judged_on_the_days_mean_base() -> None:
    """Recording 0.15, 0.65, 0.2, 0.7 and 0.45 of its use: two days keep more than
    0.6 of the base load (each day's base following its own total), so only three
    days are scaled one by one, but the five days' mean base is 43 % (independent
    h1 thieves were named 4-8 days later without the mean)."""
    rng = np.random.default_rng(11)
    p = _households(rng)
    p[-5:, 3] *= np.array([0.15, 0.65, 0.2, 0.7, 0.45])[:, None]
    h = _history(p)
    assert _scaled(h) == {"C03"}
    per_day = ConsumptionShapeDetector(scaled_base_mean=False)
    assert "C03" not in {f.target_id for f in per_day.score_one(h) if "scaled" in f.detector}


def test_a_shop_closed_at_weekends_in_a_slow_week_is_not_a_scaled_drop() -> None:
    """Weekdays at 0.7-0.8 of the usual and a weekend at 0.12, base load and all: the
    five days average to a meter at half with its base down alike, but days that low
    are a fifth of its first days (a development grid's shop, named falsely)."""
    rng = np.random.default_rng(12)
    p = _households(rng)
    weekend = np.isin(np.arange(N_DAYS) % 7, (4, 5))  # days 4, 5, 11, 12, 18, 19
    p[weekend, 10] *= 0.12
    p[-5:, 10] *= 0.7  # a slow week
    h = _history(p)
    assert "C10" in _drops(h)
    assert "C10" not in _scaled(h)
    unguarded = ConsumptionShapeDetector(scaled_low_ref_share=1.01)
    assert "C10" in {f.target_id for f in unguarded.score_one(h) if "scaled" in f.detector}


def test_an_empty_home_using_the_same_every_day_is_not_a_scaled_drop() -> None:
    """A home whose nights were heated (its usual base load, 0.3 kWh an hour) left
    empty: only its fridge runs, 0.1 kWh an hour, the same every day. Its total and
    base load fall together, as a slowed meter's would (an away household of unseen
    independent seed 19), but its days became far more alike than its lived-in days
    ever were; a slowed meter keeps the home's day-to-day swings."""
    rng = np.random.default_rng(4)
    p = _households(rng) * rng.lognormal(0.0, 0.3, (N_DAYS, N_CUSTOMERS, 1))  # days differ
    p[:, 5] += 0.3  # night heating: a high base load
    p[-5:, 5] = 0.1 * rng.lognormal(0.0, 0.05, (5, PARTS))  # the fridge alone
    p[-5:, 1] *= 0.3  # a slowed meter
    h = _history(p)
    assert _scaled(h) == {"C01"}
    det = ConsumptionShapeDetector(steady_ratio=0.0)
    assert {f.target_id for f in det.score_one(h) if f.detector.endswith("scaled_drop")} == {
        "C01",
        "C05",
    }


def test_a_dead_meter_is_not_a_scaled_drop() -> None:
    """Nothing recorded at all is a dead meter or a home switched off at the main
    breaker as often as a full bypass: the fault detector and the area's balance
    decide, not the shape."""
    rng = np.random.default_rng(5)
    p = _households(rng)
    p[-5:, 3] = 0.0
    assert "C03" not in _scaled(_history(p))


def _switched_off(rng: np.random.Generator, days: int) -> np.ndarray:
    """A home switched off at the breaker: its meter's noise, register steps of 10 Wh."""
    return rng.choice([0.0, 0.01], size=(days, PARTS), p=[0.7, 0.3])


def test_a_home_empty_for_some_of_the_days_is_not_a_scaled_drop() -> None:
    """Empty (switched off at the breaker) for three of the last five days and home
    on the other two: its mean ratio and mean base ratio fall together, like a
    slowed meter's, but no single day is scaled (each is near zero or whole)."""
    rng = np.random.default_rng(6)
    p = _households(rng)
    p[-3:, 9] = _switched_off(rng, 3)
    h = _history(p)
    assert "C09" in _drops(h)
    assert "C09" not in _scaled(h)


def test_a_shunt_passing_a_few_percent_of_every_hour_is_a_scaled_drop() -> None:
    """A shunt across the meter leaves it 4 % of every hour: under the share a
    scaled day must keep, like a dead meter or a switched-off home, but its hours
    keep the shape of the customer's days at home (an unseen independent grid's
    bypass, at 5 %). A home switched off but for a router, and one whose meter
    records only noise, keep no shape."""
    rng = np.random.default_rng(9)
    p = _households(rng)
    p[-5:, 2] *= 0.04  # the shunt
    p[-5:, 4] = 0.01 * rng.lognormal(0.0, 0.3, (5, PARTS))  # a router, nothing else
    p[-5:, 6] = _switched_off(rng, 5)
    h = _history(p)
    assert {"C02", "C04", "C06"} <= _drops(h)
    assert _scaled(h) == {"C02"}
    off = ConsumptionShapeDetector(residual_min_corr=1.01)
    assert "C02" not in {f.target_id for f in off.score_one(h) if "scaled" in f.detector}


def _levelled(h: AreaHistory, **kw: float) -> set[str]:
    det = ConsumptionShapeDetector(**kw)  # type: ignore[arg-type]
    return {f.target_id for f in det.score_one(h) if f.detector.endswith("levelled_drop")}


def test_a_meter_passing_on_a_fraction_of_the_days_mean_is_a_levelled_drop() -> None:
    """h4 (``mean(x) * g``, g drawn per reading from 0.1-0.8): the day loses its shape
    and about half its total but sits well above the home's lowest hours. Homes left
    empty level out too, at their base load (C05: its heater on a thermostat follows
    the weather, so its days differ), or the same every day (C06: a heater left on,
    three times its usual base load, whose days are all alike)."""
    rng = np.random.default_rng(7)
    days = rng.lognormal(0.0, 0.3, (N_DAYS, N_CUSTOMERS, 1))  # days differ
    p = _households(rng) * days
    hours = np.arange(PARTS)
    peaky = 0.03 + np.exp(-((hours - 19.5) ** 2) / 4) + 0.6 * np.exp(-((hours - 8) ** 2) / 2)
    for c in (3, 5, 6):
        p[:, c] = peaky[None, :] * days[:, c] * rng.lognormal(0.0, 0.2, (N_DAYS, PARTS))
    base = np.sort(p[: N_DAYS - 5], axis=-1)[..., :4].mean(-1).mean(0)  # usual lowest hours
    g = rng.uniform(0.1, 0.8, (3, PARTS, 4)).mean(-1)  # drawn per 15-min reading
    p[-3:, 3] = p[-3:, 3].mean(axis=1, keepdims=True) * g
    p[-5:, 5] = base[5] * days[-5:, 5] * rng.lognormal(0.0, 0.05, (5, PARTS))
    p[-5:, 6] = 3 * base[6] * rng.lognormal(0.0, 0.02, (5, PARTS))
    h = _history(p)
    assert _levelled(h) == {"C03"}
    findings = ConsumptionShapeDetector().score_one(h)
    [f] = [f for f in findings if f.detector.endswith("levelled_drop")]
    assert "base load" in f.reason and f.estimated_kwh > 0
    assert "C05" in _levelled(h, levelled_min_base_ratio=0.0)
    assert "C06" in _levelled(h, steady_ratio=0.0)


def _zero_hours(h: AreaHistory) -> set[str]:
    det = ConsumptionShapeDetector()
    return {f.target_id for f in det.score_one(h) if f.detector.endswith("zero_hours")}


NIGHT = np.r_[0:6, 22:24]


def test_a_meter_bypassed_every_night_records_zero_hours() -> None:
    """A home's night is a fridge and standby: 0.4 % of its day an hour, far below a
    share of its mean, yet never recorded as zero until the meter is bypassed from 22:00
    to 06:00. Lost readings (a first window before the meter's first reading, a
    concentrator's outage) are not zeros."""
    rng = np.random.default_rng(8)
    p = _households(rng)
    p[:, 5][:, NIGHT] = 0.05 * rng.lognormal(0.0, 0.2, (N_DAYS, len(NIGHT)))
    p[-3:, 5][:, NIGHT] = 0.0
    p[0] = np.nan  # the history starts mid-window: nothing read yet
    p[-2:, 6, 1:5] = np.nan  # an outage of the concentrator is not a zero
    assert _zero_hours(_history(p)) == {"C05"}


def test_hours_its_own_history_often_records_as_zero_are_not_a_case() -> None:
    """A holiday cottage's meter reads 0.00 at night on a third of its first days
    (less than the register's last digit): zero nights later are its normal."""
    rng = np.random.default_rng(9)
    p = _households(rng)
    p[:, 4][:, NIGHT] = 0.01
    p[np.ix_([1, 4, 8], [4], NIGHT)] = 0.0
    p[-3:, 4][:, NIGHT] = 0.0
    assert "C04" not in _zero_hours(_history(p))


def test_a_meter_slowed_three_days_ago_is_a_scaled_drop_already() -> None:
    """Slowed to 30 % three days ago: the five-day mean (58 %) is not yet a drop,
    but each of the three days took the base load down with the total. An empty home
    for those three days keeps its base load and is not."""
    rng = np.random.default_rng(10)
    p = _households(rng)
    p[-3:, 1] *= 0.3
    base = np.sort(p[:10, 7], axis=-1)[:, :4].mean()
    p[-3:, 7] = base * rng.lognormal(0.0, 0.1, (3, PARTS))
    h = _history(p)
    assert _scaled(h) == {"C01"}
    assert not {f.target_id for f in ConsumptionShapeDetector(scaled_fast_days=0).score_one(h)}


def test_days_a_quarter_down_base_and_all_are_not_a_scaled_drop() -> None:
    """A home whose electric heating went off (or a household curve a few weeks off
    its neighbours'): each of its last three days at 67-74 % of its usual, its base
    load at 45-54 %. Scaled-looking, but no deeper than a cold week's swing: the fast path
    asks for a drop's depth (their mean under ``drop_ratio``), as a meter slowed to
    half has."""
    rng = np.random.default_rng(10)
    p = _households(rng)
    p[-3:, 1] *= 0.72
    lowest = np.argsort(p[-3:, 1], axis=-1)[:, :8]
    np.put_along_axis(
        p[-3:, 1], lowest, 0.45 / 0.72 * np.take_along_axis(p[-3:, 1], lowest, -1), -1
    )
    h = _history(p)
    assert "C01" not in _scaled(h)
    assert _scaled(h, drop_ratio=0.8) == {"C01"}


def _reversed_days(h: AreaHistory, **kw: float) -> set[str]:
    det = ConsumptionShapeDetector(**kw)  # type: ignore[arg-type]
    return {f.target_id for f in det.score_one(h) if f.detector.endswith("reversed_profile")}


def test_a_fairly_symmetric_day_played_backwards_is_found() -> None:
    """Households with a morning and an evening peak of similar size: their usual day
    correlates 0.6 with its own reverse, so a reversed day (h6) gains only 0.4 of
    correlation on being played backwards; the margin asks for a share of that gap.
    Their honest days, noisy as they are, are not reversed."""
    hours = np.arange(PARTS)
    shape = 0.3 + np.exp(-((hours - 18) ** 2) / 5) + 0.8 * np.exp(-((hours - 6.5) ** 2) / 5)
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        level = rng.uniform(0.5, 1.5, N_CUSTOMERS)
        p = level[None, :, None] * shape * rng.lognormal(0.0, 0.2, (N_DAYS, N_CUSTOMERS, PARTS))
        p[-3:, 3] = p[-3:, 3, ::-1]  # h6
        h = _history(p)
        assert _reversed_days(h) == {"C03"}
        assert _reversed_days(h, max_symmetry=0.3) == set()  # the gate before


def test_a_reversed_home_whose_single_days_are_noisy_is_found_on_their_mean() -> None:
    """A household whose appliances switch on at different hours every day: one day
    correlates weakly with its own usual day, so its reversed days do not reach the
    0.5 a single day must on two of three days; the mean of its last three days,
    reversed, does. Its honest neighbours, as noisy, are not reversed, nor is a home away
    whose fridge-only days carry no shape."""
    rng = np.random.default_rng(11)
    p = _households(rng) * rng.lognormal(0.0, 0.8, (N_DAYS, N_CUSTOMERS, PARTS))
    p[-3:, 3] = p[-3:, 3, ::-1]  # h6
    p[-3:, 8] = 0.05 * rng.lognormal(0.0, 0.3, (3, PARTS))  # away
    h = _history(p)
    assert _reversed_days(h) == {"C03"}
    assert _reversed_days(h, reversed_mean_min_corr=1.01) == set()


def _clipped(h: AreaHistory) -> dict[str, float]:
    det = ConsumptionShapeDetector()
    return {f.target_id: f.score for f in det.score_one(h) if f.detector.endswith("clipped_peak")}


def test_a_meter_missing_what_runs_above_a_cap_shows_a_clipped_peak() -> None:
    """C02's meter misses every hour's use above 0.6 of its usual evening peak for
    its last six days: its highest hour sits at that ceiling every day, which its
    earlier days went well above, its night base and lived-in shape kept: a case
    on its own, just. A household using less on some evenings reaches no common
    ceiling, and a home left with its fridge sits at its base, not well above it."""
    rng = np.random.default_rng(12)
    p = _households(rng)
    p[:, :, :6] *= 0.3  # quiet nights: a base well under the evening peak
    cap = 0.6 * np.median(p[:-6, 2].max(axis=-1))
    p[-6:, 2] = np.minimum(p[-6:, 2], cap)
    p[-6:, 5] *= rng.uniform(0.4, 1.0, (6, 1))  # just using less, day by day
    base = np.sort(p[:-6, 9], axis=-1)[:, :4].mean()
    p[-6:, 9] = base * rng.lognormal(0.0, 0.1, (6, PARTS))  # away: the fridge alone
    found = _clipped(_history(p))
    assert set(found) == {"C02"}
    assert 0.5 <= found["C02"] < 0.6
    low = ConsumptionShapeDetector(ceiling_min_base_ratio=1e3)  # a ceiling near the base
    assert not [f for f in low.score_one(_history(p)) if f.detector.endswith("clipped_peak")]


def test_a_week_of_history_is_enough_to_start_but_not_to_be_certain() -> None:
    """Reversed from its tenth day (h6): a week of windows before the five recent
    ones stands for the customer's first windows, so the case is found on day 12,
    not day 15, at a score short of certain (0.8: the book waits for a second
    window; uncapped it scores 0.85). Six windows before the recent ones are not
    scored at all."""
    rng = np.random.default_rng(2)
    p = _households(rng)
    p[9:, 4] = p[9:, 4, ::-1]

    def reversed_scores(days: int, **kw: float) -> list[float]:
        found = ConsumptionShapeDetector(**kw).score_one(_history(p[:days]))  # type: ignore[arg-type]
        return [f.score for f in found if f.target_id == "C04" and "reversed" in f.detector]

    assert reversed_scores(11) == []  # six windows before the recent five
    assert reversed_scores(12) == [0.8]
    assert reversed_scores(12, short_reference_max_score=1.0) == [0.85]
    assert reversed_scores(15) == [0.85]  # the full ten windows
