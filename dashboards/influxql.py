"""InfluxQL fragments the dashboards share, built on the measurement schema's names.

Conditions every analyst panel needs, and why:

- ``"window" = '$window'``: an area may be balanced per day and per 15 minutes into
  the same database; mixing them would double count.
- ``"status" <> 'incomputable'`` wherever ``loss_rate`` or energy sums are read: an
  incomputable window has no trustworthy loss (no supply, too few meters), and its
  ``loss_rate`` field may be a stale value from an earlier issue of the window.
- ``$timeFilter``: Grafana's time range, so every query is bounded.

Balances need no de-duplication: a revision overwrites its provisional point.
"""

from __future__ import annotations

from dashboards.model import Variable
from sinks.influx.schema import AREA_BALANCE, SUSPICION

WINDOW = "\"window\" = '$window'"
COMPUTABLE = "\"status\" <> 'incomputable'"
INCOMPUTABLE = "\"status\" = 'incomputable'"
AREA = '"area" =~ /^$area$/'
CATEGORY = '"category" =~ /^($category)$/'  # multi-value: Grafana joins with |, no parens
TIME = "$timeFilter"


def where(*conditions: str) -> str:
    return "WHERE " + " AND ".join(conditions)


def window_variable() -> Variable:
    return Variable(
        "window",
        "Window",
        "query",
        f'SHOW TAG VALUES FROM "{AREA_BALANCE}" WITH KEY = "window"',
        default="1d",
    )


def tz_variable() -> Variable:
    """Time zone the windows follow, so ``GROUP BY time($window)`` buckets are windows."""
    return Variable(
        "tz", "Time zone", "constant", "Asia/Shanghai", default="Asia/Shanghai", hidden=True
    )


def area_variable() -> Variable:
    return Variable(
        "area", "Area", "query", f'SHOW TAG VALUES FROM "{AREA_BALANCE}" WITH KEY = "area"'
    )


def category_variable() -> Variable:
    return Variable(
        "category",
        "Category",
        "query",
        f'SHOW TAG VALUES FROM "{SUSPICION}" WITH KEY = "category"',
        multi=True,
        include_all=True,
    )
