"""What unbilled energy is worth: flat tariffs per customer class and the stepped
residential tariff (阶梯电价).

Priority is expected value (score x value of the estimated unbilled energy), so the
value has to be the money the utility would actually have billed. Under a stepped
tariff the stolen kWh would have landed on top of what the customer was billed in
the same month, so they are priced at the marginal tiers above that, not at the
first tier: a thief on a big house costs more per kWh than one on a flat.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Tariff(Protocol):
    def value(
        self, unbilled_kwh: float, *, billed_kwh_per_month: float = 0.0, months: float = 1.0
    ) -> float:
        """Money the utility would have billed for ``unbilled_kwh`` spread evenly over
        ``months`` on top of ``billed_kwh_per_month``."""
        ...


@dataclass(frozen=True)
class FlatTariff:
    price_per_kwh: float

    def value(
        self, unbilled_kwh: float, *, billed_kwh_per_month: float = 0.0, months: float = 1.0
    ) -> float:
        return max(unbilled_kwh, 0.0) * self.price_per_kwh


@dataclass(frozen=True)
class SteppedTariff:
    """``tiers``: (upper bound of the tier in kWh per month or None for no bound, price
    per kWh), in increasing order of bound."""

    tiers: tuple[tuple[float | None, float], ...]

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValueError("a stepped tariff needs at least one tier")
        bounds = [b for b, _ in self.tiers]
        closed = [b for b in bounds if b is not None]
        if None in bounds[:-1] or any(lo >= hi for lo, hi in itertools.pairwise(closed)):
            raise ValueError("tier bounds must increase, and only the last may be open")

    def _cost_up_to(self, kwh: float) -> float:
        """Bill for ``kwh`` in one month."""
        cost, lower = 0.0, 0.0
        for upper, price in self.tiers:
            top = math.inf if upper is None else upper
            if kwh <= lower:
                break
            cost += (min(kwh, top) - lower) * price
            lower = top
        if kwh > lower:  # the last tier was bounded: price the rest at its price
            cost += (kwh - lower) * self.tiers[-1][1]
        return cost

    def value(
        self, unbilled_kwh: float, *, billed_kwh_per_month: float = 0.0, months: float = 1.0
    ) -> float:
        months = max(months, 1e-9)
        extra = max(unbilled_kwh, 0.0) / months
        base = max(billed_kwh_per_month, 0.0)
        return (self._cost_up_to(base + extra) - self._cost_up_to(base)) * months


# A typical State Grid residential schedule (monthly equivalent of the yearly
# 2160 / 4200 kWh steps, +0.05 and +0.30 CNY on the base price) and flat prices for
# the other classes. Utilities load their own with TariffBook.from_file.
DEFAULT_RESIDENTIAL = SteppedTariff(((180.0, 0.4883), (350.0, 0.5383), (None, 0.7883)))


@dataclass(frozen=True)
class TariffBook:
    by_class: dict[str, Tariff] = field(
        default_factory=lambda: {
            "residential": DEFAULT_RESIDENTIAL,
            "commercial": FlatTariff(0.82),
            "industrial": FlatTariff(0.68),
            "agricultural": FlatTariff(0.50),
        }
    )
    default: Tariff = field(default_factory=lambda: FlatTariff(0.6))
    currency: str = "CNY"

    def tariff(self, customer_class: str | None) -> Tariff:
        return self.by_class.get(customer_class or "", self.default)

    def value(
        self,
        customer_class: str | None,
        unbilled_kwh: float,
        *,
        billed_kwh_per_month: float = 0.0,
        months: float = 1.0,
    ) -> float:
        return round(
            self.tariff(customer_class).value(
                unbilled_kwh, billed_kwh_per_month=billed_kwh_per_month, months=months
            ),
            2,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TariffBook:
        """``{"currency": "CNY", "default": {"flat": 0.6}, "classes": {"residential":
        {"stepped": [[180, 0.4883], [350, 0.5383], [null, 0.7883]]}, ...}}``"""
        return cls(
            by_class={str(k): _tariff(v) for k, v in data.get("classes", {}).items()},
            default=_tariff(data.get("default", {"flat": 0.6})),
            currency=str(data.get("currency", "CNY")),
        )

    @classmethod
    def from_file(cls, path: Path) -> TariffBook:
        return cls.from_dict(json.loads(path.read_text()))


def _tariff(spec: dict[str, Any]) -> Tariff:
    if "flat" in spec:
        return FlatTariff(float(spec["flat"]))
    if "stepped" in spec:
        return SteppedTariff(
            tuple((None if b is None else float(b), float(p)) for b, p in spec["stepped"])
        )
    raise ValueError(
        f"a tariff is {{'flat': price}} or {{'stepped': [[bound, price], ...]}}, got {spec}"
    )
