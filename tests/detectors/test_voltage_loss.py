"""Voltage and phase loss from the voltages meters report (detectors.voltage_loss)."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.voltage_loss import VoltageLossParams, peer_ratios, voltage_losses

P = VoltageLossParams()
N_CUSTOMERS = 20
PARTS = 24


def _windows(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` windows of an area's voltages: the transformer's voltage swinging over
    the day (the same for everyone), each house a little lower down its cable."""
    rng = np.random.default_rng(seed)
    drop = rng.uniform(0.0, 0.06, N_CUSTOMERS)[:, None]
    out = []
    for _ in range(n):
        source = 231.0 * (1.0 + 0.03 * np.sin(np.linspace(0, 2 * np.pi, PARTS)))[None, :]
        out.append(source * (1.0 - drop) + rng.normal(0.0, 0.5, (N_CUSTOMERS, PARTS)))
    return out


def _profile(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.1, 1.0, (N_CUSTOMERS, PARTS))


def test_one_phase_of_three_lost_is_named_with_the_energy_it_missed() -> None:
    v = _windows(10)
    v[-1][4, 6:] *= 2.0 / 3.0  # from 06:00
    profile = _profile()
    found = voltage_losses(v, profile, P)
    assert [f.customer for f in found] == [4]
    f = found[0]
    assert f.kind == "phase_loss"
    assert f.ratio == pytest.approx(2.0 / 3.0, abs=0.02)
    assert (f.low_parts, f.known_parts) == (18, PARTS)
    assert f.usual_ratio == pytest.approx(1.0, abs=0.05)
    # recorded x (1/r - 1): what the lost third would have added
    expected = float(
        (profile[4, 6:] * (1.0 / (v[-1][4, 6:] / np.median(v[-1], axis=0)[6:]) - 1.0)).sum()
    )
    assert f.unbilled_kwh == pytest.approx(expected, rel=1e-3)
    assert f.unbilled_kwh == pytest.approx(0.5 * profile[4, 6:].sum(), rel=0.05)


def test_a_lost_voltage_element_is_a_voltage_loss() -> None:
    v = _windows(10)
    v[-1][7] *= 0.1
    (f,) = voltage_losses(v, None, P)
    assert (f.customer, f.kind, f.unbilled_kwh) == (7, "voltage_loss", 0.0)


def test_a_short_dip_is_not_a_loss() -> None:
    v = _windows(10)
    v[-1][4, 10:13] *= 0.6  # three hours: an eighth of the day
    assert voltage_losses(v, None, P) == []


def test_a_fault_inside_the_first_week_keeps_the_windows_before_it_as_reference() -> None:
    v = _windows(12)
    for w in v[3:]:
        w[2] *= 0.65  # from the fourth window on: every window after is low
    (f,) = voltage_losses(v, None, P)
    assert f.customer == 2
    assert f.usual_ratio == pytest.approx(1.0, abs=0.05)


def test_a_meter_low_from_the_start_is_not_named() -> None:
    # A line voltage among phase voltages, a head-end writing 0, or a fault older
    # than the history: no normal past to judge against.
    v = _windows(10)
    for w in v:
        w[5] /= np.sqrt(3.0)
        w[6] = 0.0
    assert voltage_losses(v, None, P) == []


def test_a_house_sagging_at_every_evening_peak_is_not_named() -> None:
    v = _windows(10)
    for w in v:
        w[9, 17:23] *= 0.72  # the far end of a long cable, every evening
    v[-1][9, 16:24] *= 0.95  # a heavier evening than usual
    assert voltage_losses(v, None, P) == []


def test_many_meters_low_together_is_the_network_not_a_meter() -> None:
    v = _windows(10)
    v[-1][:5, 8:] *= 0.6  # a phase of the network sagging (a broken neutral)
    r = peer_ratios(v[-1], P)
    assert np.isnan(r[:, 8:]).all()
    assert voltage_losses(v, None, P) == []


def test_gaps_and_windows_without_voltages() -> None:
    v: list[np.ndarray | None] = list(_windows(10))
    v[2] = None
    last = v[-1]
    assert last is not None
    last[3, 4:] *= 0.66
    last[3, :2] = np.nan  # no voltage reported there
    last[:, 20:] = np.nan  # nobody's voltage in the last four hours
    (f,) = voltage_losses(v, _profile(), P)
    assert (f.customer, f.known_parts, f.low_parts) == (3, 18, 16)
    assert np.isfinite(f.unbilled_kwh)
    assert voltage_losses([None], None, P) == []
    assert voltage_losses(v[-1:], None, P) == []  # nothing to compare with


def test_too_few_peers_give_no_reference() -> None:
    v = [w[:2] for w in _windows(10)]
    v[-1][0] *= 0.5
    assert voltage_losses(v, None, P) == []
