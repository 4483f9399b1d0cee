"""Event-time window grid: which window a timestamp belongs to.

Utilities close their books at local midnight, so windows are aligned to local days
in a configurable time zone. Day windows are calendar days (23 or 25 hours across a
daylight-saving change); sub-day windows step by their fixed length from each local
midnight. Windows are right-closed, ``(start, end]``, because a reading's timestamp
is the END of the interval it measures: the frozen register at 00:00 closes the
previous day.
"""

from __future__ import annotations

from itertools import pairwise
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd

from lineloss.config import parse_window

_DAY_S = 86400


class WindowGrid:
    """Window edges [s since epoch] for a window length and time zone.

    The edges are materialised lazily over the day range seen so far; windows are
    identified by their start time, which stays stable as the range grows.
    """

    def __init__(self, window_s: int, tz: str) -> None:
        self.window_s = parse_window(window_s)
        self.tz = tz
        ZoneInfo(tz)  # fail early on an unknown zone
        self._first_day: pd.Timestamp | None = None
        self._last_day: pd.Timestamp | None = None
        self._edges = np.empty(0, dtype=np.int64)

    @property
    def edges(self) -> npt.NDArray[np.int64]:
        return self._edges

    def _local_day(self, ts_s: int) -> pd.Timestamp:
        return (
            pd.Timestamp(ts_s, unit="s", tz="UTC").tz_convert(self.tz).normalize().tz_localize(None)
        )

    def _cover(self, lo_s: int, hi_s: int) -> None:
        # Cover one day either side so that (start, end] lookups at midnight work.
        first = self._local_day(lo_s) - pd.Timedelta(days=1)
        last = self._local_day(hi_s) + pd.Timedelta(days=1)
        if self._first_day is not None and self._last_day is not None:
            if first >= self._first_day and last <= self._last_day:
                return
            first = min(first, self._first_day)
            last = max(last, self._last_day)
        days = pd.date_range(first, last + pd.Timedelta(days=1), freq="D")
        midnights = (
            days.tz_localize(self.tz, ambiguous=True, nonexistent="shift_forward")
            .as_unit("s")
            .asi8.astype(np.int64)
        )
        if self.window_s == _DAY_S:
            edges = midnights
        else:
            parts = []
            for start, stop in pairwise(midnights):
                parts.append(np.arange(start, stop, self.window_s, dtype=np.int64))
            parts.append(midnights[-1:])
            edges = np.concatenate(parts)
        self._edges = edges
        self._first_day, self._last_day = first, last

    def window_start(self, ts_s: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Start of the window ``(start, end]`` holding each timestamp."""
        if len(ts_s) == 0:
            return np.empty(0, dtype=np.int64)
        self._cover(int(ts_s.min()), int(ts_s.max()))
        pos = np.searchsorted(self._edges, ts_s, side="left")
        return self._edges[pos - 1]

    def window_end(self, start_s: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """End of each window given its start."""
        if len(start_s) == 0:
            return np.empty(0, dtype=np.int64)
        self._cover(int(start_s.min()), int(start_s.max()) + self.window_s)
        pos = np.searchsorted(self._edges, start_s, side="right")
        return self._edges[pos]

    def starts_between(self, lo_s: int, hi_s: int) -> npt.NDArray[np.int64]:
        """Starts of all windows whose start lies in ``[lo_s, hi_s]``."""
        self._cover(lo_s, hi_s)
        e = self._edges
        return e[(e >= lo_s) & (e <= hi_s)]
