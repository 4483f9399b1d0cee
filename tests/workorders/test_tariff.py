"""Valuing unbilled energy: flat, stepped (阶梯电价), per customer class."""

from __future__ import annotations

import pytest

from workorders.tariff import FlatTariff, SteppedTariff, TariffBook

STEPS = SteppedTariff(((180.0, 0.5), (350.0, 0.6), (None, 0.8)))


def test_flat() -> None:
    assert FlatTariff(0.82).value(100.0) == pytest.approx(82.0)
    assert FlatTariff(0.82).value(-5.0) == 0.0


def test_stepped_prices_stolen_energy_on_top_of_the_monthly_bill() -> None:
    # From zero: 180 x 0.5 + 20 x 0.6
    assert STEPS.value(200.0) == pytest.approx(102.0)
    # On top of a 300 kWh month: 50 x 0.6 + 50 x 0.8
    assert STEPS.value(100.0, billed_kwh_per_month=300.0) == pytest.approx(70.0)
    # 600 kWh over 3 months on a 100 kWh/month customer: 3 x (80 x 0.5 + 120 x 0.6)
    assert STEPS.value(600.0, billed_kwh_per_month=100.0, months=3.0) == pytest.approx(336.0)
    # The same kWh are worth more on a bigger customer
    assert STEPS.value(100.0, billed_kwh_per_month=400.0) > STEPS.value(100.0)


def test_bounded_last_tier_prices_the_rest_at_its_price() -> None:
    t = SteppedTariff(((100.0, 1.0),))
    assert t.value(150.0) == pytest.approx(150.0)


@pytest.mark.parametrize("tiers", [(), ((None, 0.5), (100.0, 0.6)), ((200.0, 0.5), (100.0, 0.6))])
def test_bad_tiers_rejected(tiers: tuple[tuple[float | None, float], ...]) -> None:
    with pytest.raises(ValueError, match="tier"):
        SteppedTariff(tiers)


def test_book_from_dict_per_class_and_default() -> None:
    book = TariffBook.from_dict(
        {
            "currency": "EUR",
            "default": {"flat": 0.3},
            "classes": {
                "residential": {"stepped": [[180, 0.5], [350, 0.6], [None, 0.8]]},
                "commercial": {"flat": 0.9},
            },
        }
    )
    assert book.currency == "EUR"
    assert book.value("residential", 200.0) == pytest.approx(102.0)
    assert book.value("commercial", 10.0) == pytest.approx(9.0)
    assert book.value("unknown", 10.0) == pytest.approx(3.0)
    assert book.value(None, 10.0) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="flat"):
        TariffBook.from_dict({"default": {"per_kwh": 1}})
