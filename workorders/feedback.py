"""What inspectors found, turned back into numbers the detectors can learn from.

Closed orders become labels in the same layout as a generated grid's labels.csv,
so ``lineloss evaluate`` and ``lineloss tune`` take them unchanged: the metrics are
then over the inspected customers only (precision-like; a theft nobody was sent
to cannot appear). Unreachable sites say nothing and are left out.

The hit rate is the share of inspected orders confirmed as theft or a meter fault,
per detector that flagged the order and per month of closing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from workorders.model import CONFIRMING_OUTCOMES, INSPECTED_OUTCOMES, Outcome, WorkOrder

LABEL_OF_OUTCOME = {
    Outcome.THEFT_CONFIRMED: "theft",
    Outcome.METER_FAULT: "meter_fault",
    Outcome.TOPOLOGY_ERROR: "topology_error",
    Outcome.NO_FINDING: "normal",
}
LABEL_COLUMNS = [
    "meter_id",
    "label",
    "start",
    "kind",
    "true_area_id",
    "recorded_area_id",
    "stolen_kwh",
]


def _iso(ts_s: int | None, tz: str) -> str:
    if ts_s is None:
        return ""
    return pd.Timestamp(ts_s, unit="s", tz="UTC").tz_convert(tz).isoformat()


def feedback_labels(orders: Iterable[WorkOrder], *, tz: str = "Asia/Shanghai") -> pd.DataFrame:
    """One label row per inspected meter order (its latest close wins)."""
    rows = []
    for o in orders:
        if o.target_kind != "meter" or o.outcome not in LABEL_OF_OUTCOME:
            continue
        assert o.outcome is not None
        label = LABEL_OF_OUTCOME[o.outcome]
        rows.append(
            {
                "meter_id": o.target_id,
                "label": label,
                # The detectors' estimated start is the best start we know; the
                # inspector's report has no start of its own.
                "start": _iso(o.evidence.start_s, tz) if label != "normal" else "",
                "kind": "",
                "true_area_id": o.area_id or "",
                "recorded_area_id": o.area_id or "",
                "stolen_kwh": o.recovered_kwh if label == "theft" and o.recovered_kwh else 0.0,
            }
        )
    df = pd.DataFrame(rows, columns=LABEL_COLUMNS)
    return df.sort_values("meter_id").reset_index(drop=True)


@dataclass(frozen=True)
class HitRate:
    detector: str
    month: str  # YYYY-MM of closing, local time
    closed: int
    inspected: int  # closed minus unreachable
    confirmed: int  # theft_confirmed or meter_fault
    hit_rate: float  # confirmed / inspected (NaN when nothing was inspected)


def hit_rates(orders: Iterable[WorkOrder], *, tz: str = "Asia/Shanghai") -> list[HitRate]:
    """Per detector that flagged the order (every detector with a score, not just the
    strongest: each gets credit or blame for its leads) and per month of closing."""
    acc: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for o in orders:
        if o.closed_s is None or o.outcome is None:
            continue
        month = pd.Timestamp(o.closed_s, unit="s", tz="UTC").tz_convert(tz).strftime("%Y-%m")
        detectors = [d for d, _ in o.evidence.detector_scores] or [o.evidence.detector]
        for d in dict.fromkeys([*detectors, "all"]):
            a = acc[(d, month)]
            a[0] += 1
            a[1] += int(o.outcome in INSPECTED_OUTCOMES)
            a[2] += int(o.outcome in CONFIRMING_OUTCOMES)
    return [
        HitRate(d, m, c, i, k, (k / i) if i else float("nan"))
        for (d, m), (c, i, k) in sorted(acc.items())
    ]
