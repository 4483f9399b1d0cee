"""Who is where: feeders, transformer areas, customers and their ids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loaders.synthetic._config import CUSTOMER_CLASSES, SyntheticGridConfig

RESIDENTIAL, COMMERCIAL, INDUSTRIAL, AGRICULTURAL = range(len(CUSTOMER_CLASSES))


@dataclass(frozen=True)
class Layout:
    """The physical grid as parallel arrays.

    Customers are numbered in generation order: the customers of area 0, of area 1, ...
    (grouped by their TRUE area), then the dedicated-transformer customers grouped by
    feeder. ``cust_area`` is -1 for dedicated customers.
    """

    feeder_ids: npt.NDArray[np.object_]  # (F,)
    area_ids: npt.NDArray[np.object_]  # (A,)
    area_feeder: npt.NDArray[np.int64]  # (A,)
    area_has_meter: npt.NDArray[np.bool_]  # (A,)
    area_first_customer: npt.NDArray[np.int64]  # (A,) row of its first customer
    cust_ids: npt.NDArray[np.object_]  # (C,)
    cust_area: npt.NDArray[np.int64]  # (C,) true area, -1 for dedicated
    cust_feeder: npt.NDArray[np.int64]  # (C,)
    cust_class: npt.NDArray[np.int64]  # (C,) index into CUSTOMER_CLASSES
    cust_phase: npt.NDArray[np.int64]  # (C,) supply phase 0..2 (A/B/C)

    @property
    def n_feeders(self) -> int:
        return len(self.feeder_ids)

    @property
    def n_areas(self) -> int:
        return len(self.area_ids)

    @property
    def n_customers(self) -> int:
        return len(self.cust_ids)

    @property
    def n_lv(self) -> int:
        """Customers supplied through a transformer area (the rest are dedicated)."""
        return int(np.count_nonzero(self.cust_area >= 0))

    @property
    def cust_dedicated(self) -> npt.NDArray[np.bool_]:
        return self.cust_area < 0


def _count_at_least_one(fraction: float, n: int) -> int:
    """round(fraction * n), but at least one case when the fraction is positive."""
    if fraction <= 0 or n == 0:
        return 0
    return int(min(n, max(1, round(fraction * n))))


def make_layout(cfg: SyntheticGridConfig, rng: np.random.Generator) -> Layout:
    n_f = cfg.n_feeders
    n_a = n_f * cfg.areas_per_feeder
    fw = max(2, len(str(n_f)))
    aw = max(2, len(str(cfg.areas_per_feeder)))
    feeder_ids = np.array([f"FD{f + 1:0{fw}d}" for f in range(n_f)], dtype=object)
    area_feeder = np.repeat(np.arange(n_f, dtype=np.int64), cfg.areas_per_feeder)
    area_ids = np.array(
        [
            f"{feeder_ids[f]}-TA{a + 1:0{aw}d}"
            for f in range(n_f)
            for a in range(cfg.areas_per_feeder)
        ],
        dtype=object,
    )
    n_no_meter = _count_at_least_one(cfg.areas_without_meter_fraction, n_a) if n_a > 1 else 0
    has_meter = np.ones(n_a, dtype=np.bool_)
    has_meter[rng.choice(n_a, size=n_no_meter, replace=False)] = False

    lo, hi = cfg.customers_per_area
    per_area = rng.integers(lo, hi + 1, size=n_a)
    dlo, dhi = cfg.dedicated_per_feeder
    per_feeder = rng.integers(dlo, dhi + 1, size=n_f)
    n_lv = int(per_area.sum())
    n_ded = int(per_feeder.sum())
    n_c = n_lv + n_ded

    # Each area has its own class mix around the regional one (urban vs rural areas).
    mix = np.asarray(cfg.class_mix, dtype=np.float64)
    mix = mix / mix.sum()
    alpha = np.maximum(mix * 25.0, 1e-3)
    area_mix = rng.dirichlet(alpha, size=n_a)
    area_mix[:, mix == 0] = 0.0
    area_mix /= area_mix.sum(axis=1, keepdims=True)
    cust_area_lv = np.repeat(np.arange(n_a, dtype=np.int64), per_area)
    cum = np.cumsum(area_mix, axis=1)[cust_area_lv]
    u = rng.random(n_lv)[:, None]
    cls_lv = np.minimum((u > cum).sum(axis=1), len(CUSTOMER_CLASSES) - 1)
    cls_ded = np.where(rng.random(n_ded) < 0.7, INDUSTRIAL, COMMERCIAL)

    cust_area = np.concatenate([cust_area_lv, np.full(n_ded, -1, dtype=np.int64)])
    cust_feeder = np.concatenate(
        [area_feeder[cust_area_lv], np.repeat(np.arange(n_f, dtype=np.int64), per_feeder)]
    )
    # Opaque ids: a customer id must not tell which area it belongs to.
    numbers = rng.choice(9_000_000, size=n_c, replace=False) + 1_000_000
    cust_ids = np.array([f"C{n}" for n in numbers.tolist()], dtype=object)
    first = np.concatenate([[0], np.cumsum(per_area)[:-1]]).astype(np.int64)
    return Layout(
        feeder_ids=feeder_ids,
        area_ids=area_ids,
        area_feeder=area_feeder,
        area_has_meter=has_meter,
        area_first_customer=first,
        cust_ids=cust_ids,
        cust_area=cust_area,
        cust_feeder=cust_feeder,
        cust_class=np.concatenate([cls_lv, cls_ded]).astype(np.int64),
        cust_phase=rng.integers(0, 3, size=n_c).astype(np.int64),
    )
