"""The simulation time grid and ISO 8601 formatting of epoch nanoseconds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

NS_PER_S = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_S
NS_PER_DAY = 86_400 * NS_PER_S


@dataclass(frozen=True)
class TimeGrid:
    """Internal simulation steps and the reading times derived from them.

    Steps are ``step_ns`` long and laid out in absolute (UTC) time from local midnight
    of the first day to local midnight after the last, so days with a DST change simply
    have more or fewer steps. All ``*_ns`` are epoch nanoseconds, UTC.
    """

    tz: str
    step_ns: int
    t0_ns: int
    step_start_ns: npt.NDArray[np.int64]  # (T,)
    tod_h: npt.NDArray[np.float64]  # (T,) local clock time at mid-step [h]
    day: npt.NDArray[np.int64]  # (T,) local day index of each step
    day_starts: npt.NDArray[np.int64]  # (D,) first step of each day
    day_ends: npt.NDArray[np.int64]  # (D,) one past the last step of each day
    weekend: npt.NDArray[np.bool_]  # (D,)
    month: npt.NDArray[np.int64]  # (D,) 1..12
    doy: npt.NDArray[np.float64]  # (T,) fractional local day of year
    reading_end_ns: npt.NDArray[np.int64]  # (R,) reading time (interval end / frozen time)
    reading_last_step: npt.NDArray[np.int64]  # (R,) last step covered by each reading
    reading_first_step: npt.NDArray[np.int64]  # (R,)
    reading_of_step: npt.NDArray[np.int64]  # (T,)

    @property
    def n_steps(self) -> int:
        return len(self.step_start_ns)

    @property
    def n_days(self) -> int:
        return len(self.day_starts)

    @property
    def n_readings(self) -> int:
        return len(self.reading_end_ns)

    @property
    def step_h(self) -> float:
        return self.step_ns / (3600 * NS_PER_S)

    @property
    def end_ns(self) -> int:
        return self.t0_ns + self.n_steps * self.step_ns


def make_time_grid(start: str, days: int, tz: str, step_minutes: int, daily: bool) -> TimeGrid:
    first = pd.Timestamp(start).normalize()
    t0 = pd.Timestamp(first, tz=tz)
    t_end = pd.Timestamp(first + pd.Timedelta(days=days), tz=tz)
    step_ns = step_minutes * NS_PER_MIN
    t0_ns = int(t0.value)
    n_steps = int((t_end.value - t0_ns) // step_ns)
    starts = t0_ns + step_ns * np.arange(n_steps, dtype=np.int64)
    mid_local = (
        pd.DatetimeIndex((starts + step_ns // 2).view("M8[ns]"), tz="UTC")
        .tz_convert(tz)
        .tz_localize(None)
    )
    tod_h = (
        mid_local.hour.to_numpy(np.float64)
        + mid_local.minute.to_numpy(np.float64) / 60.0
        + mid_local.second.to_numpy(np.float64) / 3600.0
    )
    day = ((mid_local.normalize() - first) // pd.Timedelta(days=1)).to_numpy(np.int64)
    day = np.clip(day, 0, days - 1)
    day_starts = np.searchsorted(day, np.arange(days), side="left").astype(np.int64)
    day_ends = np.searchsorted(day, np.arange(days), side="right").astype(np.int64)
    dates = pd.date_range(first, periods=days, freq="D")
    weekend = np.asarray(dates.day_of_week >= 5, dtype=np.bool_)
    month = dates.month.to_numpy(np.int64)
    doy = mid_local.day_of_year.to_numpy(np.float64) - 1.0 + tod_h / 24.0
    if daily:
        last = day_ends - 1
        first_step = day_starts
        reading_of_step = day
    else:
        last = np.arange(n_steps, dtype=np.int64)
        first_step = last
        reading_of_step = last
    reading_end_ns = starts[last] + step_ns
    return TimeGrid(
        tz=tz,
        step_ns=step_ns,
        t0_ns=t0_ns,
        step_start_ns=starts,
        tod_h=tod_h,
        day=day,
        day_starts=day_starts,
        day_ends=day_ends,
        weekend=weekend,
        month=month,
        doy=doy,
        reading_end_ns=reading_end_ns.astype(np.int64),
        reading_last_step=last.astype(np.int64),
        reading_first_step=first_step.astype(np.int64),
        reading_of_step=reading_of_step.astype(np.int64),
    )


def iso_strings(ns: npt.NDArray[np.int64], tz: str) -> npt.NDArray[np.object_]:
    """ISO 8601 local times with offset (``2026-03-01T00:15:00+08:00``), to the second.

    Vectorised: numpy formats the local wall time, the few distinct UTC offsets are
    formatted once and joined on.
    """
    ns = np.asarray(ns, dtype=np.int64)
    if ns.size == 0:
        return np.empty(0, dtype=object)
    utc = pd.DatetimeIndex(ns.view("M8[ns]"), tz="UTC")
    wall = utc.tz_convert(tz).tz_localize(None).to_numpy("M8[ns]")
    offset_s = (wall.view(np.int64) - ns) // NS_PER_S
    body = np.datetime_as_string(wall, unit="s").astype(object)
    uniq, inv = np.unique(offset_s, return_inverse=True)
    suffix = np.array([_offset_text(int(s)) for s in uniq], dtype=object)
    out: npt.NDArray[np.object_] = body + suffix[inv]
    return out


def _offset_text(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    minutes = abs(seconds) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def iso_strings_dictionary(
    ns: npt.NDArray[np.int64], tz: str
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.object_]]:
    """Dictionary-encode timestamps: codes per row and the ISO text of each distinct value.

    Many rows share few timestamps (reading grid, upload batches), so formatting the
    distinct values only is what keeps CSV writing fast.
    """
    uniq, inv = np.unique(np.asarray(ns, dtype=np.int64), return_inverse=True)
    return inv.astype(np.int32).reshape(-1), iso_strings(uniq, tz)


def to_timestamps(ns: npt.NDArray[np.int64], tz: str) -> pd.DatetimeIndex:
    """Epoch nanoseconds (UTC) to a tz-aware DatetimeIndex in ``tz``."""
    return pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("M8[ns]"), tz="UTC").tz_convert(tz)
