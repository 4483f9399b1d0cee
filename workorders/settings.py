"""One JSON file for everything the work-order side is configured with.

```json
{
  "policy": {"min_score": {"theft": 0.5}, "cooling_off_days": 30, "daily_capacity": 5,
             "team_capacity": {"north": 8},
             "priority_classes": [["P1", 1000, 3], ["P2", 200, 7], ["P3", 0, 14]]},
  "tariffs": {"currency": "CNY", "default": {"flat": 0.6},
              "classes": {"residential":
                            {"stepped": [[180, 0.4883], [350, 0.5383], [null, 0.7883]]}}},
  "teams": {"A001": "north", "A002": "north"}
}
```
Every key is optional; what is missing keeps the defaults of
:class:`~workorders.policy.WorkOrderPolicy` and :class:`~workorders.tariff.TariffBook`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workorders.policy import DAY_S, PriorityClass, WorkOrderPolicy
from workorders.tariff import TariffBook


@dataclass(frozen=True)
class WorkOrderSettings:
    policy: WorkOrderPolicy = field(default_factory=WorkOrderPolicy)
    tariffs: TariffBook = field(default_factory=TariffBook)
    team_by_area: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkOrderSettings:
        unknown = set(data) - {"policy", "tariffs", "teams"}
        if unknown:
            raise ValueError(f"unknown work-order settings: {sorted(unknown)}")
        p = dict(data.get("policy", {}))
        kwargs: dict[str, Any] = {}
        if "min_score" in p:
            kwargs["min_score"] = {**WorkOrderPolicy().min_score, **p.pop("min_score")}
        if "cooling_off_days" in p:
            kwargs["cooling_off_s"] = int(float(p.pop("cooling_off_days")) * DAY_S)
        if "priority_classes" in p:
            kwargs["priority_classes"] = tuple(
                PriorityClass(str(n), float(v), int(float(d) * DAY_S))
                for n, v, d in p.pop("priority_classes")
            )
        for key in ("daily_capacity", "reopen_kwh_growth", "reopen_score_rise", "team_capacity"):
            if key in p:
                kwargs[key] = p.pop(key)
        if p:
            raise ValueError(f"unknown work-order policy settings: {sorted(p)}")
        return cls(
            policy=WorkOrderPolicy(**kwargs),
            tariffs=TariffBook.from_dict(data["tariffs"]) if "tariffs" in data else TariffBook(),
            team_by_area={str(k): str(v) for k, v in data.get("teams", {}).items()},
        )

    @classmethod
    def load(cls, path: Path | None) -> WorkOrderSettings:
        return cls() if path is None else cls.from_dict(json.loads(path.read_text()))
