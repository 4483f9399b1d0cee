"""The joint multi-thief model on hand-built areas with known thieves."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from factories import DAY, DAY0, area_day

from detectors.observations import AreaHistory
from detectors.theft_localiser import (
    DEFICIT,
    AreaModel,
    TheftLocaliser,
    _peer_drop,
    _probability,
)

N_CUSTOMERS, N_DAYS, PARTS = 24, 21, 24


def _loads(rng: np.random.Generator) -> np.ndarray:
    """True hourly loads, days x customers x hours [kWh]: a household day shape with
    random levels, day-to-day variation and hourly noise."""
    hours = np.arange(PARTS)
    shape = 0.4 + 0.6 * np.exp(-((hours - 19.5) ** 2) / 6) + 0.3 * np.exp(-((hours - 8) ** 2) / 3)
    level = rng.uniform(0.2, 1.2, N_CUSTOMERS)
    day = rng.lognormal(0.0, 0.15, (N_DAYS, N_CUSTOMERS, 1))
    noise = rng.lognormal(0.0, 0.3, (N_DAYS, N_CUSTOMERS, PARTS))
    return level[None, :, None] * shape[None, None, :] * day * noise


def _history(true: np.ndarray, recorded: np.ndarray, rng: np.random.Generator) -> AreaHistory:
    """Area meter = true load + fixed 1.5 kWh/h + I^2 R part + 0.2 % noise, rounded as a
    register with a x40 multiplier would be."""
    load = true.sum(axis=1)
    supply = load + 1.5 + 0.002 * load**2
    supply = supply * (1 + rng.normal(0, 0.002, supply.shape))
    supply = np.diff(np.round(np.cumsum(supply.ravel()) / 0.4) * 0.4, prepend=0.0)
    supply = supply.reshape(N_DAYS, PARTS)
    supply[0, 0] = load[0, 0] + 1.5
    h = AreaHistory()
    ids = tuple(f"C{i:02d}" for i in range(N_CUSTOMERS))
    for d in range(N_DAYS):
        h.push(
            area_day(
                d,
                ids,
                recorded[d].sum(axis=1),
                supply_kwh=float(supply[d].sum()),
                profile_kwh=recorded[d].astype(np.float32),
                supply_profile_kwh=supply[d].astype(np.float32),
            )
        )
    return h


@pytest.fixture
def two_thieves() -> tuple[AreaHistory, np.ndarray]:
    """C03 slows its meter to 40 % from day 9; C11 records zero from 17:00 to 22:00
    from day 13; C07 (an honest customer) is away from day 12, recording a tenth."""
    rng = np.random.default_rng(4)
    true = _loads(rng)
    rec = true.copy()
    rec[9:, 3] *= 0.4
    rec[13:, 11, 17:22] = 0.0
    true[12:, 7] *= 0.1  # on holiday: the area meter sees the drop too
    rec[12:, 7] = true[12:, 7]
    return _history(true, rec, rng), true - rec


def test_two_thieves_in_one_area_are_separated_with_their_starts(two_thieves) -> None:  # type: ignore[no-untyped-def]
    h, _ = two_thieves
    findings = TheftLocaliser().score_one(h)
    by_id = {f.target_id: f for f in findings}
    assert set(by_id) == {"C03", "C11"}  # the holiday-maker is not a suspect
    assert by_id["C03"].start_s == DAY0 + 9 * DAY
    assert by_id["C11"].start_s == DAY0 + 13 * DAY
    for f in findings:
        assert f.score > 0.6 and "joint model of 2 suspect(s)" in f.reason


def test_stolen_energy_is_estimated_within_its_stated_error(two_thieves) -> None:  # type: ignore[no-untyped-def]
    h, stolen = two_thieves
    model = TheftLocaliser().fit(h)
    assert model is not None
    got = {h.windows[-1].meter_ids[t.index]: t for t in model.thieves}
    for mid, truth in (("C03", stolen[9:, 3].sum()), ("C11", stolen[13:, 11].sum())):
        fit = got[mid]
        se = fit.stolen_kwh / fit.z
        assert abs(fit.stolen_kwh - truth) < 3 * se  # 28.7 and 22.2 kWh stolen
        assert abs(fit.stolen_kwh - truth) < 0.25 * truth


def test_no_thief_no_finding_and_short_history_is_silent() -> None:
    rng = np.random.default_rng(5)
    true = _loads(rng)
    h = _history(true, true.copy(), rng)
    assert TheftLocaliser().score_one(h) == []
    short = AreaHistory()
    for w in list(h.windows)[:7]:
        short.push(w)
    assert TheftLocaliser().score_one(short) == []


def test_a_theft_too_small_for_the_noise_is_not_claimed() -> None:
    """0.3 kWh a day from a small customer is below this area's meter noise."""
    rng = np.random.default_rng(6)
    true = _loads(rng)
    rec = true.copy()
    small = int(np.argmin(true.sum(axis=(0, 2))))
    rec[15:, small] *= 0.9
    assert TheftLocaliser().score_one(_history(true, rec, rng)) == []


def test_calibrated_score_weighs_the_suspects_own_drop() -> None:
    """The area's evidence (z) and the suspect's own drop against its peers are
    independent: a strong own drop lowers the z needed for an even chance; a
    "slowed meter" without one (a big neighbour whose load shape fits the loss)
    needs far more."""
    w = TheftLocaliser().calibration

    def even_z(drop_z: float, deficit: bool) -> float:
        return float(np.exp((-w[0] - w[2] * min(drop_z, 10.0) - w[3] * deficit) / w[1]))

    assert _probability(even_z(0.0, False), 0.0, False, w) == pytest.approx(0.5)
    assert even_z(10.0, True) < 4.0 < even_z(10.0, False) < 7.0 < 12.0 < even_z(0.0, False)
    assert _probability(20.0, 3.0, False, w) > _probability(10.0, 3.0, False, w)
    assert _probability(10.0, 8.0, False, w) > _probability(10.0, 1.0, False, w)
    assert _probability(0.0, 8.0, True, w) == 0.0
    # The old calibration (z alone) still works: an even chance at z = 7.
    assert _probability(7.0, 0.0, False, (-5.11, 2.63)) == pytest.approx(0.5, abs=0.02)


def test_three_thieves_starting_together_are_all_found() -> None:
    """A bypass (10 % recorded), evening hours at zero and a meter slowed to half,
    all from day 10: none alone can explain the area's new loss. Judged each at the
    size that would, all three were refused and the area stayed unexplained."""
    rng = np.random.default_rng(10)
    true = _loads(rng)
    rec = true.copy()
    big = np.argsort(-true.sum(axis=(0, 2)))
    bypass, evenings, slowed = big[0], big[3], big[6]
    rec[10:, bypass] *= 0.1
    rec[10:, evenings, 16:23] = 0.0
    rec[10:, slowed] *= 0.5
    h = _history(true, rec, rng)
    findings = TheftLocaliser().score_one(h)
    assert {f.target_id for f in findings} == {f"C{i:02d}" for i in (bypass, evenings, slowed)}
    assert all(f.start_s == DAY0 + 10 * DAY for f in findings)
    # As before (each judged at the size that alone explains the loss): none found.
    before = TheftLocaliser(
        capped_candidates=False, max_mismatched=0, min_z=6.0, calibration=(-5.11, 2.63)
    )
    assert before.score_one(h) == []


def test_a_customer_recorded_in_the_wrong_area_does_not_hide_a_thief() -> None:
    """C05, a shop open on weekdays, is fed by another transformer but recorded
    here: the area's loss swings by -96 kWh on every weekday. Its whole consumption
    joins the base model, and the thief (30 % recorded from day 12) shows."""
    rng = np.random.default_rng(20)
    true = _loads(rng)
    rec = true.copy()
    hours = np.arange(PARTS)
    shop = 8.0 * ((hours >= 8) & (hours < 20))
    weekdays = (np.arange(N_DAYS) % 7 < 5)[:, None]
    rec[:, 5] = weekdays * shop[None, :] * rng.lognormal(0, 0.2, (N_DAYS, PARTS))
    true[:, 5] = 0.0
    thief = int(np.argsort(-true.sum(axis=(0, 2)))[2])
    rec[12:, thief] *= 0.3
    h = _history(true, rec, rng)
    (found,) = TheftLocaliser().score_one(h)
    assert (found.target_id, found.start_s) == (f"C{thief:02d}", DAY0 + 12 * DAY)
    assert found.score > 0.95
    assert all(
        f.target_id != f"C{thief:02d}" for f in TheftLocaliser(max_mismatched=0).score_one(h)
    )


def test_peer_drop_sees_a_customer_falling_not_a_cold_week_moving_everybody() -> None:
    """Usual 10 kWh a window for six customers; from window 10 everybody uses 20 %
    less (weather) and customer 0 records 40 % of that: only customer 0 has a
    shortfall against its peers' level, of 6 kWh a window."""
    rng = np.random.default_rng(30)
    usual = np.full((20, 6), 10.0)
    totals = usual * rng.normal(1.0, 0.02, usual.shape)
    totals[10:] *= 0.8
    totals[10:, 0] *= 0.4
    drop, sd = _peer_drop(totals, usual, n_ref=7)
    assert drop[10:, 0].mean() == pytest.approx(4.8, abs=0.3)
    assert np.abs(drop[10:, 1:]).mean() < 0.5
    assert (sd > 0).all() and (sd < 0.5).all()


def test_a_neighbour_without_a_drop_of_its_own_is_not_a_slowed_meter() -> None:
    """The first test's area in a cold spell from day 12: everybody uses 30 % less.
    Against its own usual use every customer looks short; against its peers' level
    only the thieves are, so no honest customer becomes a slowed-meter suspect."""
    rng = np.random.default_rng(4)
    true = _loads(rng)
    true[12:] *= 0.7
    rec = true.copy()
    rec[9:, 3] *= 0.4
    rec[13:, 11, 17:22] = 0.0
    findings = TheftLocaliser().score_one(_history(true, rec, rng))
    assert {f.target_id for f in findings} <= {"C03", "C11"}
    assert "C03" in {f.target_id for f in findings}


def test_a_thief_whose_theft_dominates_the_loss_is_not_taken_for_a_mapping_error() -> None:
    """C02, a large customer (100 times the others), bypasses its meter from day 12:
    the area's loss afterwards is mostly its load. A whole-period column of it
    explains the loss's variance too; judged on the whole history it joined the
    base model as if recorded in the wrong area and hid its own theft."""
    rng = np.random.default_rng(40)
    true = _loads(rng)
    true[:, 2] *= 30.0
    rec = true.copy()
    rec[12:, 2] = 0.0
    found = TheftLocaliser().score_one(_history(true, rec, rng))
    assert [(f.target_id, f.start_s) for f in found] == [("C02", DAY0 + 12 * DAY)]
    assert found[0].score > 0.9


def test_a_customer_whose_own_use_later_falls_far_short_is_not_a_mismatched_column() -> None:
    """A feeder's unmetered part: C02, a dedicated customer 30 times the others, whose
    hourly swings the part's supply does not follow (head meter less the areas' meters,
    each cut into hours its own way: here C02's daily energy spread evenly), so before
    any theft the part's loss swings against C02's load and its whole-period column
    explains most of it. From day 12 C02 records a tenth. Put in the base model as a
    mismatched customer, that column absorbs its own theft (a generated grid: a
    12,000 kWh a day bypass with no suspect at all); a customer whose own use later
    falls far short of its usual is left to the suspects' search."""
    rng = np.random.default_rng(41)
    true = _loads(rng)
    true[:, 2] *= 30.0
    rec = true.copy()
    rec[12:, 2] *= 0.1
    seen = true.copy()
    seen[:, 2] = true[:, 2].mean(axis=1, keepdims=True)
    h = _history(seen, rec, rng)

    def mismatched(loc: TheftLocaliser) -> list[int]:
        m = loc._data(h)
        assert m is not None
        n_base = m.base.shape[1]
        loc._add_mismatched(m)
        # The customers whose whole recorded column joined the base model.
        added = m.base[:, n_base:]
        return [i for i in range(m.x.shape[1]) if (added == m.x[:, [i]]).all(axis=0).any()]

    assert mismatched(TheftLocaliser(mismatch_max_drop_z=np.inf)) == [2]
    assert mismatched(TheftLocaliser()) == []


def test_a_wrong_multiplier_whose_use_grows_later_does_not_hide_a_thief() -> None:
    """C05 is recorded at twice its use (a wrong multiplier), unremarkable while it uses
    little; from day 10 it uses eight times more and its area's loss falls far below
    zero. C09 records 30 % of its use from day 10. Judged on the reference windows
    only, C05's column is noise; over the whole history it lowers the loss, which no
    theft does, and joins the base model (an independent grid: 32 then 250 kWh a day,
    the grid's largest theft hidden behind it)."""
    rng = np.random.default_rng(43)
    true = _loads(rng)
    true[10:, 5] *= 8.0
    rec = true.copy()
    rec[:, 5] *= 2.0
    rec[10:, 9] *= 0.3
    h = _history(true, rec, rng)
    found = {f.target_id for f in TheftLocaliser().score_one(h)}
    assert found == {"C09"}
    assert "C09" not in {
        f.target_id for f in TheftLocaliser(mismatch_whole_period=False).score_one(h)
    }


def test_a_customer_using_more_than_its_peers_is_not_given_a_thiefs_loss() -> None:
    """C03 slows its meter to 40 % from day 9. C00, the largest customer, shifts its
    evening use three hours earlier from the same day and uses 30 % more, all of it
    recorded: it has an hourly shortfall against its usual day from the thief's
    start, but its own data say it stole nothing (it is above its peers' level).
    (A guard: this small area does not reproduce the development grids'
    misattributions, which the cap on the peer-level shortfall removed there.)"""
    rng = np.random.default_rng(4)
    true = _loads(rng)
    big = int(np.argmax(true.sum(axis=(0, 2))))
    true[9:, big] = 1.3 * np.roll(true[9:, big], -3, axis=1)
    rec = true.copy()
    rec[9:, 3] *= 0.4
    findings = TheftLocaliser().score_one(_history(true, rec, rng))
    assert f"C{big:02d}" not in {f.target_id for f in findings}
    assert "C03" in {f.target_id for f in findings}


def test_z_of_the_last_column_is_the_joint_models() -> None:
    """The swap test's helper computes a suspect's z as the joint model does."""
    rng = np.random.default_rng(4)
    true = _loads(rng)
    rec = true.copy()
    rec[9:, 3] *= 0.4
    loc = TheftLocaliser()
    model = loc.fit(_history(true, rec, rng))
    assert model is not None and model.thieves
    chosen = [(t.index, t.start, t.kind) for t in model.thieves]
    want = loc._joint(model, chosen)[-1].z
    got = loc._z_last(model, [loc._column(model, c) for c in chosen])
    assert got == pytest.approx(want, rel=1e-9)


def test_a_suspect_without_a_drop_does_not_keep_a_real_thiefs_share(two_thieves) -> None:  # type: ignore[no-untyped-def]
    """The largest honest customer forced into the model at C03's start, as the
    greedy search put large customers whose hourly deviations fit a real thief's
    loss on the development grids: it has no drop of its own against its peers,
    and once the thieves with one are described more flexibly (a coefficient per
    day, the other column) or a candidate with a drop competes for its share, it
    is not reported; the two thieves stay."""
    h, _ = two_thieves
    loc = TheftLocaliser()
    model = loc.fit(h)
    assert model is not None
    ids = h.windows[-1].meter_ids
    chosen = [(t.index, t.start, t.kind) for t in model.thieves]
    thieves = {ids[i] for i, _s, _k in chosen}
    assert thieves == {"C03", "C11"}
    honest = next(
        int(i) for i in np.argsort(-model.x.sum(axis=0)) if ids[int(i)] not in {"C03", "C11", "C07"}
    )
    c03 = next(c for c in chosen if ids[c[0]] == "C03")
    forced = (honest, c03[1], 1)
    fits = loc._joint(model, [*chosen, forced])
    assert fits[-1].drop_z < loc.min_drop_z
    starts = np.arange(loc.min_reference_windows, model.n_windows)
    kept, explained = loc._swap(model, [*chosen, forced], starts)
    reported = {ids[c[0]] for c in kept if c not in explained}
    assert reported >= {"C03", "C11"}
    assert ids[honest] not in reported


def test_a_suspect_given_more_than_it_can_have_stolen_is_not_reported() -> None:
    """C07 is away from day 12 (recording a tenth); from the same day the area loses
    2.5 x C07's shortfall to something no meter sees. The joint fit hands C07 that
    loss at 2.5 kWh per kWh of its shortfall: more than it can have stolen (at most
    1.5), so the area's loss moves with something else, and C07 is not reported."""
    rng = np.random.default_rng(11)
    true = _loads(rng)
    usual = true[:12, 7].mean(axis=0)
    true[12:, 7] *= 0.1
    rec = true.copy()
    hidden = 2.5 * (usual - true[12:, 7])  # days x hours, unmetered, starts with the absence
    seen = _history(true, rec, rng)
    h = AreaHistory()
    for d, w in enumerate(seen.windows):
        extra = hidden[d - 12] if d >= 12 else np.zeros(PARTS)
        supply = (w.supply_profile_kwh + extra).astype(np.float32)
        h.push(replace(w, supply_profile_kwh=supply, supply_kwh=float(supply.sum())))
    loose = TheftLocaliser(report_within_limits=False)
    model = loose.fit(h)
    assert model is not None
    [c07] = [th for th in model.thieves if th.index == 7]
    assert c07.coef > loose.max_gamma
    assert "C07" in {f.target_id for f in loose.score_one(h)}
    assert "C07" not in {f.target_id for f in TheftLocaliser().score_one(h)}


def test_a_suspect_whose_shortfall_the_loss_shows_only_a_quarter_of_is_not_reported(
    two_thieves,  # type: ignore[no-untyped-def]
) -> None:
    """C11 records zero five hours a day: the area's loss rises by most of its
    shortfall against its usual use (0.67 here; 0.6-1.5 for our grids' thieves).
    Had the loss shown a quarter of it, C11 would mostly have used less (a home
    away, lent a part of another loss): a bypass or a meter recording zero hours
    shows about all of what it no longer records."""
    h, _ = two_thieves
    fitted = TheftLocaliser().fit(h)
    assert fitted is not None
    [c11] = [th for th in fitted.thieves if th.index == 11]
    assert c11.kind == DEFICIT and 0.5 < c11.coef < 1.5
    assert "C11" in {f.target_id for f in TheftLocaliser().score_one(h)}

    class QuarterShare(TheftLocaliser):
        def fit(self, h: AreaHistory) -> AreaModel | None:
            model = super().fit(h)
            assert model is not None
            model.thieves = [
                replace(th, coef=0.25) if th.index == 11 else th for th in model.thieves
            ]
            return model

    assert "C11" not in {f.target_id for f in QuarterShare().score_one(h)}
    assert "C11" in {f.target_id for f in QuarterShare(min_deficit_share=0.2).score_one(h)}


def _left_empty(
    rng: np.random.Generator, kept_kwh: float | None, day_spread: float = 0.0
) -> AreaHistory:
    """C07 leaves home on day 12, its days then the same every day at ``kept_kwh`` an
    hour (None: at its usual base load, the mean of its four lowest hours), or
    varying from day to day by ``day_spread`` (a heater on a thermostat). From the
    same day the area loses about C07's shortfall to something no meter sees."""
    true = _loads(rng)
    usual = true[:12, 7].mean(axis=0)
    if kept_kwh is None:
        kept_kwh = float(np.sort(true[:12, 7], axis=-1)[:, :4].mean())
    days = rng.lognormal(0.0, day_spread, (N_DAYS - 12, 1))
    true[12:, 7] = kept_kwh * days * rng.lognormal(0.0, 0.02, (N_DAYS - 12, PARTS))
    hidden = (usual - true[12:, 7]) * rng.lognormal(0.0, 0.3, (N_DAYS - 12, PARTS))
    seen = _history(true, true.copy(), rng)
    h = AreaHistory()
    for d, w in enumerate(seen.windows):
        extra = hidden[d - 12] if d >= 12 else np.zeros(PARTS)
        supply = (w.supply_profile_kwh + extra).astype(np.float32)
        h.push(replace(w, supply_profile_kwh=supply, supply_kwh=float(supply.sum())))
    return h


def test_a_home_left_empty_is_not_a_thief_unless_the_loss_is_very_clear(
    two_thieves,  # type: ignore[no-untyped-def]
) -> None:
    """C07's short days are far more alike than its days at home were, and the joint
    model hands it the area's new loss: an empty home, reported only at z >=
    steady_min_z (z 28 here, a clean hand-built area; the independent grids' such
    homes reached 4.6-6.4) when its night base went down too (0.03 kWh an hour, well
    under its usual lowest hours: a bypass leaving one steady circuit metered). A
    meter slowed to 40 % of a lived-in home's swinging use (the fixture's C03) is
    not such a home."""
    h = _left_empty(np.random.default_rng(0), 0.03)
    model = TheftLocaliser().fit(h)
    assert model is not None
    [c07] = [th for th in model.thieves if th.index == 7]
    assert c07.z > TheftLocaliser().steady_min_z
    assert "C07" in {f.target_id for f in TheftLocaliser().score_one(h)}
    strict = TheftLocaliser(steady_min_z=1e9)
    assert "C07" not in {f.target_id for f in strict.score_one(h)}
    assert "C07" in {f.target_id for f in replace(strict, steady_ratio=0.0).score_one(h)}
    slowed, _ = two_thieves
    assert "C03" in {f.target_id for f in strict.score_one(slowed)}


def test_read_once_a_day_a_home_left_empty_is_never_a_thief() -> None:
    """Without hours there is no base load to have gone down: the very clear loss
    (z 28 hourly) no longer makes the steady empty home a suspect (two households
    away on an independent grid read once a day were called thieves at z 12 and 4)."""
    h = _left_empty(np.random.default_rng(0), 0.03)
    daily = AreaHistory()
    for w in h.windows:
        unknown = np.full_like(w.profile_kwh, np.nan)
        daily.push(replace(w, profile_kwh=unknown, supply_profile_kwh=np.full(PARTS, np.nan)))
    model = TheftLocaliser().fit(daily)
    assert model is not None and np.isnan(model.base_load).all()
    assert [daily.windows[-1].meter_ids[t.index] for t in model.thieves] == ["C07"]
    assert TheftLocaliser().score_one(daily) == []


def test_a_home_left_empty_with_its_fridge_running_is_never_a_thief() -> None:
    """The same home keeping its usual base load (its fridge runs on with nobody in):
    not reported at any z (an unseen independent grid's away household reached z 8.5
    where seven thefts began within the same ten days)."""
    h = _left_empty(np.random.default_rng(0), None)
    clear = TheftLocaliser(steady_min_z=5.0)  # the loss is "very clear" from z 5
    model = clear.fit(h)
    assert model is not None
    [c07] = [th for th in model.thieves if th.index == 7]
    assert c07.z > clear.steady_min_z
    assert "C07" not in {f.target_id for f in clear.score_one(h)}
    assert "C07" in {f.target_id for f in replace(clear, empty_base_ratio=1e9).score_one(h)}


def test_a_home_left_at_its_base_load_is_empty_though_its_days_vary_a_little() -> None:
    """Away, with a heater on a thermostat: its days vary (a quarter of its usual
    spread: not steady), but each sits at its base load, kept: an empty home while
    the loss is not very clear (unseen independent seed 22's away household, 1.6 x
    its base over eleven days, spread 0.26 of its usual, was named at z 5.1). Days
    that swing as much as the home's ever did are a meter's doing (h4 passes on a
    fraction of each day's use), not an empty home's."""
    det = TheftLocaliser(steady_min_z=20.0)  # z 10 in this clean area: not "very clear"
    h = _left_empty(np.random.default_rng(0), None, day_spread=0.03)
    model = det.fit(h)
    assert model is not None
    [c07] = [th for th in model.thieves if th.index == 7]
    assert c07.z < det.steady_min_z
    assert "C07" not in {f.target_id for f in det.score_one(h)}
    # not steady: without the base-load rule it is reported
    assert "C07" in {f.target_id for f in replace(det, empty_max_base_ratio=0.0).score_one(h)}
    swinging = _left_empty(np.random.default_rng(0), None, day_spread=0.15)
    assert "C07" in {f.target_id for f in det.score_one(swinging)}


def test_an_area_read_once_a_day_is_judged_on_its_days(two_thieves) -> None:  # type: ignore[no-untyped-def]
    """Daily frozen readings have no hours: the model runs on the windows, with a
    Newey-West bandwidth of one window (24 lags of a daily series spanned nearly the
    whole history) and a suspect per 10 days at most (21 days, 3 technical terms:
    one). The larger theft shows in the area's daily loss; the holiday-maker, whose
    drop the area meter sees too, does not."""
    h, stolen = two_thieves
    daily = AreaHistory()
    for w in h.windows:
        unknown = np.full_like(w.profile_kwh, np.nan)
        daily.push(replace(w, profile_kwh=unknown, supply_profile_kwh=np.full(PARTS, np.nan)))
    model = TheftLocaliser().fit(daily)
    assert model is not None and model.x.shape == (N_DAYS, N_CUSTOMERS) and model.hac_lag == 1
    assert [daily.windows[-1].meter_ids[t.index] for t in model.thieves] == ["C03"]
    findings = TheftLocaliser().score_one(daily)
    assert [f.target_id for f in findings] == ["C03"]
    assert findings[0].start_s >= DAY0 + 9 * DAY
    fit = model.thieves[0]
    assert abs(fit.stolen_kwh - stolen[fit.start :, 3].sum()) < 3 * fit.stolen_kwh / fit.z
