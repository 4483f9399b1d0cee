"""Area histories keep one column per customer, also when the customers change."""

from __future__ import annotations

import numpy as np

from detectors.observations import AreaHistory, AreaWindow


def window(day: int, meter_ids: tuple[str, ...], energy: list[float]) -> AreaWindow:
    n = len(meter_ids)
    return AreaWindow(
        area_id="A1",
        feeder_id="F1",
        window_start=day * 86400,
        window_end=(day + 1) * 86400,
        meter_ids=meter_ids,
        energy_kwh=np.array(energy),
        profile_kwh=np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 1,
        supply_kwh=sum(energy) * 1.05,
        supply_profile_kwh=None,
        flags=np.ones(n, np.int8),
        events=np.full(n, 4, np.int32),
        voltage_v=np.full((n, 2), 230.0, np.float32),
        phase_s=np.zeros(n, np.float32),
    )


def test_a_changed_customer_set_recuts_the_kept_windows() -> None:
    h = AreaHistory()
    h.push(window(0, ("C1", "C2"), [1.0, 2.0]))
    h.push(window(1, ("C1", "C2"), [1.5, 2.5]))
    # C2 moved away, C4 commissioned: the past of C4 is unknown, C2's is dropped.
    h.push(window(2, ("C1", "C4"), [1.2, 0.7]))
    assert [w.meter_ids for w in h.windows] == [("C1", "C4")] * 3
    energy = h.energy()
    np.testing.assert_array_equal(energy[:, 0], [1.0, 1.5, 1.2])
    assert np.isnan(energy[:2, 1]).all() and energy[2, 1] == 0.7
    profiles = h.profiles()
    assert profiles is not None and profiles.shape == (3, 2, 2)
    assert np.isnan(profiles[0, 1]).all() and profiles[0, 0].tolist() == [1.0, 2.0]
    old = h.windows[0]
    assert old.flags.tolist() == [1, 0] and old.events.tolist() == [4, 0]
    assert h.voltages() is not None and np.isnan(h.voltages()[1, :4]).all()
    # The supply is the area's and stays as it was.
    assert old.supply_kwh == 3.0 * 1.05


def test_an_area_that_loses_every_customer_keeps_a_history() -> None:
    h = AreaHistory()
    h.push(window(0, ("C1",), [1.0]))
    h.push(window(1, (), []))
    assert h.energy().shape == (2, 0)


def test_customers_read_too_rarely_for_parts_have_no_shape_and_mostly_so_no_profiles() -> None:
    """A customer-window without a profile while its energy is known (a meter read
    once a day) stays unknown for the shape detectors; the models of the area's loss
    hour by hour get its energy spread evenly, while few such windows need it. Once
    most of the area is read that rarely there are no profiles at all: the area is
    judged on its days."""
    from dataclasses import replace

    def history(daily_customers: list[int], daily_windows: int) -> AreaHistory:
        h = AreaHistory()
        for day in range(4):
            w = window(day, ("C1", "C2", "C3", "C4"), [2.0, 4.0, 6.0, 8.0])
            prof = w.profile_kwh.copy()
            if day >= 4 - daily_windows:
                prof[daily_customers] = np.nan
            h.push(replace(w, profile_kwh=prof, supply_profile_kwh=np.array([9.0, 11.0])))
        return h

    one = history([2], 1)  # C3 read once on the last day: 1 of 16 customer-windows
    shapes = one.profiles()
    assert shapes is not None and np.isnan(shapes[3, 2]).all() and not np.isnan(shapes[:3]).any()
    spread = one.profiles(spread_unresolved=True)
    assert spread is not None
    np.testing.assert_array_equal(spread[3, 2], [3.0, 3.0])
    np.testing.assert_array_equal(np.delete(spread, 2, axis=1), np.delete(shapes, 2, axis=1))
    assert one.supply_profiles() is not None

    c3 = history([2], 4)  # C3 read once a day throughout: a quarter of them
    assert c3.profiles() is not None and c3.profiles(spread_unresolved=True) is None

    most = history([1, 2, 3], 4)
    assert most.profiles() is None and most.profiles(spread_unresolved=True) is None
    daily = AreaHistory()
    for w in most.windows:
        daily.push(replace(w, supply_profile_kwh=np.full(2, np.nan)))
    assert daily.supply_profiles() is None
