"""Evidence packs for inspectors' work orders.

Evidence is the hard part of a theft case: the inspector at the door, and later the
utility in a dispute, must show that the area's loss rose when the customer's
recorded consumption fell, and by about the same energy. A pack holds:

* a PNG sized to read on a phone: the area's loss and loss rate above the suspect
  meter's consumption, on one time axis in the area's local time, with the estimated
  start and the first detection marked, the meter's events, and a footer with the
  reason, the scores per detector and the estimated unbilled energy and its value;
* the raw series behind the plot as CSV, so every number can be checked;
* a JSON summary with the same facts and the derived before/after numbers.

Pure core, I/O at the edge: :func:`build_evidence_pack` asks an
:class:`EvidenceSource` for the series (:class:`ReplayOutputSource` reads the output
directory of ``lineloss replay``) and renders bytes without touching the disk;
:class:`EvidenceCache` keeps packs on disk per order and per fingerprint of what the
order says, so a pack is built once per version of its evidence.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import textwrap
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any, Final, Protocol

import matplotlib.dates as mdates
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow.parquet as pq
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lineloss.domain import MeterEvent

__all__ = [
    "DEFAULT_TZ",
    "PACK_VERSION",
    "SERIES_COLUMNS",
    "EvidenceCache",
    "EvidencePack",
    "EvidenceSeries",
    "EvidenceSource",
    "EvidenceSubject",
    "ReplayOutputSource",
    "UnknownAreaError",
    "build_evidence_pack",
    "event_names",
    "evidence_range_s",
    "subject_fingerprint",
]

# Bump when what a pack contains or how it looks changes: cached packs of the old
# version then no longer match any fingerprint and are rebuilt.
PACK_VERSION: Final = 1
DEFAULT_TZ: Final = "Asia/Shanghai"
DAY_S: Final = 86400

# The raw series, one row per window, in this column order (also the CSV's).
SERIES_COLUMNS: Final = (
    "window_start",  # tz-aware, the area's local time
    "window_end",
    "area_supply_kwh",
    "area_billed_kwh",
    "area_loss_kwh",
    "area_loss_rate",  # fraction
    "area_coverage",  # fraction of customer meters reporting
    "area_status",  # normal | high_loss | negative_loss | incomputable ("" = no balance)
    "meter_energy_kwh",  # NaN where the meter's energy is not determined
    "meter_reporting",  # nullable: <NA> where the data has no row for the meter
    "meter_flags",  # register flags, ";"-joined
    "meter_events",  # meter events seen in the window, ";"-joined names (cover_open, ...)
)
_AREA_VALUE_COLUMNS: Final = (
    "area_supply_kwh",
    "area_billed_kwh",
    "area_loss_kwh",
    "area_loss_rate",
    "area_coverage",
)
_INCOMPUTABLE: Final = "incomputable"


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class EvidenceSubject:
    """What an order is about, as the work-order service knows it.

    Every field enters the cache fingerprint: when the detectors add evidence to an
    order (a higher score, a new start), its pack is rebuilt.
    """

    order_id: str
    target_id: str
    target_kind: str  # "meter" | "area"
    category: str  # theft | meter_fault | topology_error | area_loss
    area_id: str | None
    score: float
    estimated_kwh: float  # estimated unbilled energy [kWh]
    estimated_value: float  # what it would have been billed [currency]
    currency: str  # e.g. "CNY"
    reason: str
    detector_scores: tuple[tuple[str, float], ...]  # strongest first
    start_s: int | None  # estimated anomaly start [s since epoch]
    first_detected_s: int  # when the system first reported it [s since epoch]

    def __post_init__(self) -> None:
        if self.target_kind not in ("meter", "area"):
            raise ValueError(f"target_kind must be 'meter' or 'area', not {self.target_kind!r}")
        if not self.order_id:
            raise ValueError("an evidence subject needs an order_id")


@dataclass(frozen=True, eq=False)
class EvidenceSeries:
    """The raw series of a pack: one row per window, columns :data:`SERIES_COLUMNS`.

    ``notes`` are what the source had to say about the data (e.g. that an area's
    series is its feeder's); they end up in the summary and on the plot.
    """

    frame: pd.DataFrame
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        missing = [c for c in SERIES_COLUMNS if c not in self.frame.columns]
        if missing:
            raise ValueError(f"evidence series lacks columns {missing}")
        if not isinstance(self.frame["window_start"].dtype, pd.DatetimeTZDtype):
            raise ValueError("evidence series: window_start must be tz-aware (the area's zone)")

    @property
    def tz(self) -> tzinfo:
        """The zone the windows are expressed in (the area's local time)."""
        dtype = self.frame["window_start"].dtype
        assert isinstance(dtype, pd.DatetimeTZDtype)
        return dtype.tz


class EvidenceSource(Protocol):
    """Where the series come from; the only I/O a pack needs, so tests swap it."""

    def series(self, subject: EvidenceSubject, *, from_s: int, to_s: int) -> EvidenceSeries:
        """Windows starting in [``from_s``, ``to_s``) [s since epoch] that the data has."""
        ...


class UnknownAreaError(KeyError):
    """The subject's area is not in the data (a typo, or another replay's output)."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument; this one is a sentence.
        return str(self.args[0]) if self.args else "unknown area"


@dataclass(frozen=True)
class EvidencePack:
    png: bytes
    csv: bytes  # the raw series, UTF-8 CSV
    summary: dict[str, Any]  # JSON-serialisable

    @property
    def summary_json(self) -> bytes:
        """The summary as stored and served: UTF-8 JSON, keys in build order."""
        return _summary_json(self.summary)


# --------------------------------------------------------------------- time, events


def _epoch_s(ts: pd.Series) -> npt.NDArray[np.int64]:
    """tz-aware timestamps -> [s since epoch], whatever their resolution."""
    if len(ts) == 0:
        return np.zeros(0, np.int64)
    delta = ts.dt.tz_convert("UTC") - pd.Timestamp(0, tz="UTC")
    return (delta // pd.Timedelta(seconds=1)).to_numpy(np.int64)


def _local(epoch_s: npt.ArrayLike, tz: tzinfo | str) -> pd.Series:
    return pd.Series(
        pd.to_datetime(np.asarray(epoch_s, dtype=np.int64), unit="s", utc=True).tz_convert(tz)
    )


def _ts_s(iso: str) -> int:
    """ISO 8601 with offset -> [s since epoch]."""
    return int(pd.Timestamp(iso).timestamp())


def _iso(epoch_s: int, tz: tzinfo | str) -> str:
    return pd.Timestamp(int(epoch_s), unit="s", tz="UTC").tz_convert(tz).isoformat()


_EVENT_BITS: Final = tuple(
    (1 << int(e), e.name.lower()) for e in MeterEvent if e is not MeterEvent.NONE
)


def event_names(mask: int) -> tuple[str, ...]:
    """Event bitmask of a meter window (bit ``1 << MeterEvent``) -> names, code order.

    >>> event_names((1 << MeterEvent.COVER_OPEN) | (1 << MeterEvent.POWER_DOWN))
    ('cover_open', 'power_down')
    """
    return tuple(name for bit, name in _EVENT_BITS if mask & bit)


def evidence_range_s(
    subject: EvidenceSubject, *, days_before: int = 21, days_after: int = 14
) -> tuple[int, int]:
    """Windows a pack asks for [s since epoch, half-open]: from ``days_before`` before
    the suspected start (first detection when no start is known) to ``days_after``
    after the first detection, so the plot shows normal behaviour, the change, and
    whether it lasted."""
    if days_before < 0 or days_after < 0:
        raise ValueError("days_before and days_after must be >= 0")
    anchor = subject.first_detected_s
    if subject.start_s is not None:
        anchor = min(subject.start_s, anchor)
    return anchor - days_before * DAY_S, subject.first_detected_s + days_after * DAY_S


# ------------------------------------------------------------ the replay-output source


class ReplayOutputSource:
    """:class:`EvidenceSource` over the output directory of ``lineloss replay``.

    Reads lazily and keeps what it read: ``balances.csv`` (and
    ``feeder_balances.csv``) once, and the windows of the last ``max_cached_meters``
    meters asked for. ``meter_windows.parquet`` is read with a filter on the meter, so
    a 100k-meter file is never materialised as a frame for one order. Safe to share
    between threads.

    A meter of a feeder's *unmetered part* (area ``FEEDER/unmetered``: customers of
    areas without an area meter, dedicated-transformer customers) is set against its
    feeder's balance, which is what the localiser compared it with; so is a
    dedicated customer named by its own checks (area ``FEEDER/dedicated``).
    """

    def __init__(self, out_dir: Path, *, max_cached_meters: int = 256) -> None:
        self.out_dir = Path(out_dir)
        self.max_cached_meters = max_cached_meters
        self._lock = threading.RLock()
        self._settings: tuple[tzinfo | str, int] | None = None
        self._areas: dict[str, pd.DataFrame] | None = None
        self._feeders: dict[str, pd.DataFrame] | None = None
        self._meters: OrderedDict[str, pd.DataFrame] = OrderedDict()
        self._stamp: tuple[tuple[int, int] | None, ...] | None = None

    # -- public

    def series(self, subject: EvidenceSubject, *, from_s: int, to_s: int) -> EvidenceSeries:
        self._forget_if_rewritten()
        tz, window_s = self._tz_and_window()
        notes: list[str] = []
        area_id = subject.target_id if subject.target_kind == "area" else subject.area_id
        area: pd.DataFrame | None = None
        if area_id:
            area = self._area(area_id, notes)
        meter: pd.DataFrame | None = None
        if subject.target_kind == "meter":
            meter = self._meter(subject.target_id)
        frame = _join(area, meter, from_s=from_s, to_s=to_s, tz=tz, window_s=window_s)
        return EvidenceSeries(frame, tuple(notes))

    # -- reading

    def _forget_if_rewritten(self) -> None:
        """A long-running service outlives a replay: when the output is rewritten,
        what was read from the old one is dropped (one stat per file and call)."""
        stamp = tuple(
            (st.st_mtime_ns, st.st_size) if (st := _stat(self.out_dir / name)) else None
            for name in _REPLAY_FILES
        )
        with self._lock:
            if stamp != self._stamp:
                self._settings, self._areas, self._feeders = None, None, None
                self._meters.clear()
                self._stamp = stamp

    def _path(self, name: str) -> Path:
        path = self.out_dir / name
        if not path.exists():
            raise FileNotFoundError(
                f"{path} not found: is {self.out_dir} the output of `lineloss replay`?"
            )
        return path

    def _tz_and_window(self) -> tuple[tzinfo | str, int]:
        """Zone and window length of the replay: its summary.json says, else the data."""
        with self._lock:
            if self._settings is None:
                self._settings = self._read_settings()
            return self._settings

    def _read_settings(self) -> tuple[tzinfo | str, int]:
        tz: tzinfo | str | None = None
        window_s: int | None = None
        summary = self.out_dir / "summary.json"
        if summary.exists():
            data = json.loads(summary.read_text())
            tz = data.get("tz") or None
            window_s = int(data["window_s"]) if data.get("window_s") else None
        if tz is None and (self.out_dir / "meter_windows.parquet").exists():
            field = pq.read_schema(self.out_dir / "meter_windows.parquet").field("window_start")
            tz = getattr(field.type, "tz", None) or None
        if tz is None or window_s is None:
            first = pd.read_csv(self._path("balances.csv"), nrows=1, dtype=str)
            if len(first):
                start = pd.Timestamp(str(first["window_start"].iloc[0]))
                end = pd.Timestamp(str(first["window_end"].iloc[0]))
                # A fixed UTC offset is all an ISO string says about the zone.
                tz = tz or start.tz
                window_s = window_s or int((end - start) / pd.Timedelta(seconds=1))
        return tz or DEFAULT_TZ, window_s or DAY_S

    def _area(self, area_id: str, notes: list[str]) -> pd.DataFrame:
        with self._lock:
            if self._areas is None:
                self._areas = _read_balances(self._path("balances.csv"), "area_id")
            areas = self._areas
        if area_id in areas:
            return areas[area_id]
        feeder_id, _, rest = area_id.rpartition("/")
        if rest in ("unmetered", "dedicated") and feeder_id:
            with self._lock:
                if self._feeders is None:
                    path = self.out_dir / "feeder_balances.csv"
                    self._feeders = _read_balances(path, "feeder_id") if path.exists() else {}
                feeders = self._feeders
            if feeder_id in feeders:
                what = (
                    f"{area_id} has no area meter"
                    if rest == "unmetered"
                    else f"a dedicated customer of {feeder_id} has no area"
                )
                notes.append(
                    f"{what}: the loss shown is feeder {feeder_id}'s "
                    "(head meter against its areas and dedicated customers)"
                )
                return feeders[feeder_id]
        known = sorted(areas)
        hint = ", ".join(known[:5]) + (", ..." if len(known) > 5 else "")
        raise UnknownAreaError(
            f"area {area_id!r} is not in {self.out_dir / 'balances.csv'} "
            f"({len(known)} areas: {hint or 'none'})"
        )

    def _meter(self, meter_id: str) -> pd.DataFrame:
        with self._lock:
            if meter_id in self._meters:
                self._meters.move_to_end(meter_id)
                return self._meters[meter_id]
        frame = _read_meter(self._path("meter_windows.parquet"), meter_id)
        with self._lock:
            self._meters[meter_id] = frame
            while len(self._meters) > max(self.max_cached_meters, 0):
                self._meters.popitem(last=False)
        return frame


_REPLAY_FILES: Final = (
    "summary.json",
    "balances.csv",
    "feeder_balances.csv",
    "meter_windows.parquet",
)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


# Bit-exact floats: the CSV of a pack must equal the replay's numbers. pandas 3.1
# parses every float exactly and deprecates the option; older pandas needs it.
_EXACT_FLOATS: Final[dict[str, Any]] = (
    {}
    if tuple(int(x) for x in pd.__version__.split(".")[:2]) >= (3, 1)
    else {"float_precision": "round_trip"}
)


def _read_balances(path: Path, key: str) -> dict[str, pd.DataFrame]:
    """Final balances per area (or feeder), windows as [s since epoch], our names."""
    numeric = ["supply_kwh", "billed_kwh", "loss_kwh", "loss_rate", "coverage"]
    raw = pd.read_csv(
        path,
        dtype={key: str, "window_start": str, "window_end": str, "status": str},
        usecols=[key, "window_start", "window_end", *numeric, "status"],
        # Ids such as "NA" stay ids; only empty numeric cells are missing.
        keep_default_na=False,
        na_values={c: [""] for c in numeric},
        **_EXACT_FLOATS,
    )
    frame = pd.DataFrame(
        {
            "id": raw[key],
            "window_start_s": _epoch_s(pd.Series(pd.to_datetime(raw["window_start"], utc=True))),
            "window_end_s": _epoch_s(pd.Series(pd.to_datetime(raw["window_end"], utc=True))),
            **{f"area_{c}": raw[c].astype(np.float64) for c in numeric},
            "area_status": raw["status"].astype(str),
        }
    )
    return {
        str(k): g.drop(columns="id").sort_values("window_start_s").reset_index(drop=True)
        for k, g in frame.groupby("id", sort=False)
    }


def _read_meter(path: Path, meter_id: str) -> pd.DataFrame:
    table = pq.read_table(
        path,
        columns=["window_start", "energy_kwh", "reporting", "flags", "events"],
        filters=[("meter_id", "==", meter_id)],
    )
    raw = table.to_pandas()
    events = raw["events"].fillna(0).astype(np.int64).to_numpy()
    return (
        pd.DataFrame(
            {
                "window_start_s": _epoch_s(raw["window_start"]),
                "meter_energy_kwh": raw["energy_kwh"].astype(np.float64),
                "meter_reporting": raw["reporting"].astype("boolean"),
                "meter_flags": raw["flags"].fillna("").astype(str),
                "meter_events": [";".join(event_names(int(m))) for m in events],
            }
        )
        .sort_values("window_start_s")
        .reset_index(drop=True)
    )


def _join(
    area: pd.DataFrame | None,
    meter: pd.DataFrame | None,
    *,
    from_s: int,
    to_s: int,
    tz: tzinfo | str,
    window_s: int,
) -> pd.DataFrame:
    """Area and meter windows in [from_s, to_s) side by side, one row per window."""

    def in_range(part: pd.DataFrame | None) -> pd.DataFrame | None:
        if part is None:
            return None
        s = part["window_start_s"]
        return part[(s >= from_s) & (s < to_s)]

    a, m = in_range(area), in_range(meter)
    starts = np.union1d(
        np.zeros(0, np.int64) if a is None else a["window_start_s"].to_numpy(np.int64),
        np.zeros(0, np.int64) if m is None else m["window_start_s"].to_numpy(np.int64),
    )
    out = pd.DataFrame({"window_start_s": starts.astype(np.int64)})
    if a is not None:
        out = out.merge(a, on="window_start_s", how="left")
    if m is not None:
        out = out.merge(m, on="window_start_s", how="left")
    end = out["window_end_s"] if "window_end_s" in out else pd.Series(np.nan, index=out.index)
    end = end.fillna(out["window_start_s"] + window_s).astype(np.int64)
    return _normalise(
        out.assign(
            window_start=_local(out["window_start_s"], tz),
            window_end=_local(end, tz),
        )
    )


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Exactly :data:`SERIES_COLUMNS` with fixed dtypes, sorted by window: what any
    source returns is made comparable, so CSV and summary are deterministic."""
    frame = frame.reset_index(drop=True)
    n = len(frame)
    tz = frame["window_start"].dt.tz
    out = pd.DataFrame(
        {
            "window_start": frame["window_start"].dt.tz_convert(tz),
            "window_end": pd.to_datetime(frame["window_end"], utc=True).dt.tz_convert(tz),
        },
        index=pd.RangeIndex(n),
    )
    for c in (*_AREA_VALUE_COLUMNS, "meter_energy_kwh"):
        values = frame[c] if c in frame else pd.Series(np.full(n, np.nan))
        out[c] = pd.to_numeric(values, errors="coerce").astype(np.float64)
    for c in ("area_status", "meter_flags", "meter_events"):
        text = frame[c] if c in frame else pd.Series([""] * n, dtype=object)
        out[c] = text.astype(object).where(text.notna(), "").astype(str)
    reporting = frame["meter_reporting"] if "meter_reporting" in frame else pd.Series([pd.NA] * n)
    out["meter_reporting"] = reporting.astype("boolean")
    out = out[list(SERIES_COLUMNS)]
    return out.sort_values("window_start", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------- the pack (pure)


def build_evidence_pack(
    source: EvidenceSource,
    subject: EvidenceSubject,
    *,
    days_before: int = 21,
    days_after: int = 14,
) -> EvidencePack:
    """The evidence pack of ``subject``: PNG, raw series as CSV, JSON summary.

    Deterministic: the same subject and data give byte-identical output, so a
    pack can be cached, compared and cited.
    """
    from_s, to_s = evidence_range_s(subject, days_before=days_before, days_after=days_after)
    series = source.series(subject, from_s=from_s, to_s=to_s)
    frame = _normalise(series.frame)
    if subject.target_kind == "area":
        # An area's pack has no meter: whatever a source filled in does not belong.
        frame["meter_energy_kwh"] = np.nan
        frame["meter_reporting"] = pd.Series([pd.NA] * len(frame), dtype="boolean")
        frame["meter_flags"] = ""
        frame["meter_events"] = ""
    tz = series.tz
    summary = _summarise(subject, frame, tz, (from_s, to_s), series.notes)
    # Through JSON and back: what a fresh build returns equals what the cache serves.
    summary = json.loads(_summary_json(summary))
    return EvidencePack(
        png=_render_png(subject, frame, summary),
        csv=_series_csv(frame),
        summary=summary,
    )


def _summary_json(summary: dict[str, Any]) -> bytes:
    return (json.dumps(summary, ensure_ascii=False, indent=2, allow_nan=False) + "\n").encode()


def _series_csv(frame: pd.DataFrame) -> bytes:
    out = frame.copy()
    for c in ("window_start", "window_end"):
        out[c] = [t.isoformat() for t in frame[c]]
    return out.to_csv(index=False, lineterminator="\n").encode("utf-8")


def _num(x: Any, digits: int = 6) -> float | None:
    """A finite float for JSON, rounded to hide float noise; None for NaN/missing."""
    if x is None or x is pd.NA:
        return None
    value = float(x)
    return round(value, digits) if math.isfinite(value) else None


def _finite(x: float) -> float | None:
    """The subject's own numbers pass unrounded (the summary must match the order);
    only NaN and infinities, which JSON cannot hold, become None."""
    value = float(x)
    return value if math.isfinite(value) else None


def _window_s(frame: pd.DataFrame) -> int:
    if len(frame) == 0:
        return DAY_S
    lengths = _epoch_s(frame["window_end"]) - _epoch_s(frame["window_start"])
    return int(np.median(lengths))


def _per_window(window_s: int) -> str:
    return {86400: "day", 3600: "h", 1800: "30 min", 900: "15 min"}.get(
        window_s, f"{window_s} s window"
    )


def _split(subject: EvidenceSubject) -> tuple[int, str]:
    """Where before turns into after: the estimated start, else the first detection."""
    if subject.start_s is not None:
        return subject.start_s, "estimated_start"
    return subject.first_detected_s, "first_detection"


def _marks(frame: pd.DataFrame, column: str, tz: tzinfo) -> list[dict[str, Any]]:
    """Events (or flags) seen: name, windows it was seen in, first window, by first."""
    seen: dict[str, list[int]] = {}
    for start_s, text in zip(_epoch_s(frame["window_start"]), frame[column], strict=True):
        for name in filter(None, str(text).split(";")):
            seen.setdefault(name, []).append(int(start_s))
    rows = [
        {"name": name, "windows": len(starts), "first_window_start": _iso(min(starts), tz)}
        for name, starts in seen.items()
    ]
    return sorted(rows, key=lambda r: (r["first_window_start"], r["name"]))


def _summarise(
    subject: EvidenceSubject,
    frame: pd.DataFrame,
    tz: tzinfo,
    requested: tuple[int, int],
    source_notes: Sequence[str],
) -> dict[str, Any]:
    """The facts of the pack as plain JSON data.

    Before and after are the windows wholly before the split and those starting at or
    after it (the window the change happens in is neither), so a partial day does
    not blur the drop. Means skip what is not a measurement: windows the meter did
    not report in, and incomputable area balances (no supply, too few meters). The
    area's loss rate is pooled (loss / supply over the windows), not a mean of rates,
    so small windows do not dominate it.
    """
    starts = _epoch_s(frame["window_start"])
    ends = _epoch_s(frame["window_end"])
    split_s, split_on = _split(subject)
    window_s = _window_s(frame)
    # The window the split falls into is neither before nor after.
    before = ends <= split_s
    after = starts >= split_s
    notes = list(source_notes)

    status = frame["area_status"].to_numpy(dtype=object)
    has_area = frame["area_loss_kwh"].notna().to_numpy()
    usable = has_area & (status != _INCOMPUTABLE)
    loss = frame["area_loss_kwh"].to_numpy(np.float64)
    supply = frame["area_supply_kwh"].to_numpy(np.float64)

    def pooled_rate(mask: npt.NDArray[np.bool_]) -> float | None:
        s = float(supply[mask].sum())
        return _num(loss[mask].sum() / s) if mask.any() and s > 0 else None

    def mean(values: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> float | None:
        return _num(values[mask].mean()) if mask.any() else None

    area: dict[str, Any] | None = None
    if has_area.any():
        area = {
            "windows": int(has_area.sum()),
            "windows_incomputable": int((has_area & ~usable).sum()),
            "windows_before": int((usable & before).sum()),
            "windows_after": int((usable & after).sum()),
            "mean_loss_kwh_before": mean(loss, usable & before),
            "mean_loss_kwh_after": mean(loss, usable & after),
            "loss_rate_before": pooled_rate(usable & before),
            "loss_rate_after": pooled_rate(usable & after),
        }
        if area["windows_incomputable"]:
            notes.append(
                f"{area['windows_incomputable']} of {area['windows']} area windows are "
                "incomputable (no supply or too few meters reporting): left out of the means"
            )
    elif subject.target_kind == "area" or subject.area_id:
        notes.append(f"no balance of area {subject.area_id or subject.target_id} in this range")
    else:
        notes.append("no area recorded for this meter: its consumption is shown alone")

    meter: dict[str, Any] | None = None
    if subject.target_kind == "meter":
        reporting = frame["meter_reporting"].fillna(False).to_numpy(dtype=bool)
        has_row = frame["meter_reporting"].notna().to_numpy()
        energy = frame["meter_energy_kwh"].to_numpy(np.float64)
        # A window the meter did not report in may still carry energy interpolated
        # across a long gap: a guess, so it is neither averaged nor drawn.
        ok = reporting & np.isfinite(energy)
        meter = {
            "windows": len(frame),
            "windows_reporting": int(ok.sum()),
            "windows_not_reporting": int(len(frame) - ok.sum()),
            "windows_before": int((ok & before).sum()),
            "windows_after": int((ok & after).sum()),
            "mean_kwh_before": mean(energy, ok & before),
            "mean_kwh_after": mean(energy, ok & after),
            "change_fraction": None,
        }
        b, a = meter["mean_kwh_before"], meter["mean_kwh_after"]
        if b is not None and a is not None and b > 0:
            meter["change_fraction"] = _num((a - b) / b, 4)
        if len(frame) == 0:
            pass  # said once below, for the whole pack
        elif not has_row.any():
            notes.append(
                f"meter {subject.target_id} has no windows in the data for this range "
                "(not in the replayed topology?): its consumption is unknown (NaN)"
            )
        elif not ok.any():
            notes.append(
                f"meter {subject.target_id} reported in none of the {len(frame)} windows: "
                "its consumption is unknown (NaN)"
            )
        elif not ok.all():
            notes.append(
                f"meter {subject.target_id} did not report in {int((~ok).sum())} of "
                f"{len(frame)} windows (gaps in the plot)"
            )
    if len(frame) == 0:
        notes.append("the data has no window in the requested range")

    covered = bool(len(frame)) and bool(starts.min() <= split_s < ends.max())
    return {
        "pack_version": PACK_VERSION,
        "order_id": subject.order_id,
        "target_id": subject.target_id,
        "target_kind": subject.target_kind,
        "category": subject.category,
        "area_id": subject.area_id,
        "score": _finite(subject.score),
        "reason": subject.reason,
        "detector_scores": {name: _finite(score) for name, score in subject.detector_scores},
        "estimated_kwh": _finite(subject.estimated_kwh),
        "estimated_value": _finite(subject.estimated_value),
        "currency": subject.currency,
        "start": None if subject.start_s is None else _iso(subject.start_s, tz),
        "first_detected": _iso(subject.first_detected_s, tz),
        "split_at": _iso(split_s, tz),
        "split_on": split_on,
        "timezone": str(tz),
        "window_s": window_s,
        "window_range": {
            "requested_from": _iso(requested[0], tz),
            "requested_to": _iso(requested[1], tz),
            "first_window_start": _iso(int(starts.min()), tz) if len(frame) else None,
            "last_window_end": _iso(int(ends.max()), tz) if len(frame) else None,
            "windows": len(frame),
            "covers_split": covered,
        },
        "events": _marks(frame, "meter_events", tz),
        "flags": _marks(frame, "meter_flags", tz),
        "meter": meter,
        "area": area,
        "notes": notes,
    }


# ------------------------------------------------------------------------- the plot

_FIG_SIZE_IN: Final = (6.0, 7.5)  # portrait: reads on a phone without zooming
_DPI: Final = 110
_FONT_PT: Final = 8.0
_WRAP_CHARS: Final = 94  # footer characters per line at _FONT_PT on the figure's width
_MAX_REASON_LINES: Final = 4  # the whole reason is in the summary
_STATUS_COLOURS: Final = {
    "normal": "#8fa8c8",
    "high_loss": "#d7301f",
    "negative_loss": "#756bb1",
}
_METER_COLOUR: Final = "#2b8c6e"
_RATE_COLOUR: Final = "#222222"
_START_COLOUR: Final = "#444444"
_DETECTED_COLOUR: Final = "#c51b1b"
_GAP_COLOUR: Final = "#e3e3e3"
_EVENT_MARKERS: Final = ("v", "D", "s", "^", "P", "X", "*", "o")
# Area names are often Chinese (台区); DejaVu has no CJK glyphs, so fall back to
# whichever CJK font the machine has.
_CJK_FONTS: Final = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Heiti SC",
)


@functools.cache
def _families() -> tuple[str, ...]:
    available = {f.name for f in font_manager.fontManager.ttflist}
    return ("DejaVu Sans", *(f for f in _CJK_FONTS if f in available))


def _text_kw(size: float = _FONT_PT, **extra: Any) -> dict[str, Any]:
    # parse_math=False: a "$" in a reason or an id must not start TeX.
    return {"fontsize": size, "family": list(_families()), "parse_math": False, **extra}


def _fmt(x: float | None, spec: str = ".2f", none: str = "n/a") -> str:
    return none if x is None else format(x, spec)


def _footer_lines(subject: EvidenceSubject, summary: dict[str, Any]) -> list[str]:
    per = _per_window(int(summary["window_s"]))
    reason = textwrap.wrap(f"Why: {subject.reason or 'n/a'}", _WRAP_CHARS) or ["Why: n/a"]
    if len(reason) > _MAX_REASON_LINES:
        reason = [*reason[: _MAX_REASON_LINES - 1], reason[_MAX_REASON_LINES - 1][:-1] + "…"]
    scores = ", ".join(f"{n} {s:.2f}" for n, s in subject.detector_scores) or "n/a"
    lines = [
        *reason,
        *textwrap.wrap(f"Scores: {scores}", _WRAP_CHARS),
        f"Estimated unbilled: {subject.estimated_kwh:,.1f} kWh, worth "
        f"{subject.estimated_value:,.2f} {subject.currency}",
    ]
    split = "the estimated start" if summary["split_on"] == "estimated_start" else "detection"
    meter = summary["meter"]
    if meter is not None:
        change = meter["change_fraction"]
        lines.append(
            f"Meter: {_fmt(meter['mean_kwh_before'])} kWh/{per} before {split}, "
            f"{_fmt(meter['mean_kwh_after'])} after"
            + ("" if change is None else f" ({change:+.0%})")
            + f"; reported {meter['windows_reporting']} of {meter['windows']} windows"
        )
    area = summary["area"]
    if area is not None:
        rb, ra = area["loss_rate_before"], area["loss_rate_after"]
        lines.append(
            f"Area loss: {_fmt(area['mean_loss_kwh_before'], '.1f')} kWh/{per} before, "
            f"{_fmt(area['mean_loss_kwh_after'], '.1f')} after; rate "
            f"{_fmt(None if rb is None else 100 * rb, '.1f')} % -> "
            f"{_fmt(None if ra is None else 100 * ra, '.1f')} %"
        )
    marks = [
        f"{m['name']} in {m['windows']} window(s) from {m['first_window_start'][:10]}"
        for m in (*summary["events"], *summary["flags"])
    ]
    if marks:
        lines.extend(textwrap.wrap("Events: " + "; ".join(marks), _WRAP_CHARS))
    for note in summary["notes"]:
        lines.extend(textwrap.wrap(f"Note: {note}", _WRAP_CHARS))
    return lines


def _render_png(subject: EvidenceSubject, frame: pd.DataFrame, summary: dict[str, Any]) -> bytes:
    tz = frame["window_start"].dt.tz
    fig = Figure(figsize=_FIG_SIZE_IN, dpi=_DPI)
    FigureCanvasAgg(fig)  # no pyplot: nothing global to leak between requests

    footer = _footer_lines(subject, summary)
    height_in = _FIG_SIZE_IN[1]
    line_frac = _FONT_PT * 1.4 / 72 / height_in
    footer_top = 0.02 + len(footer) * line_frac
    top, bottom = 0.855, footer_top + 0.065  # title above, date ticks below
    gap = 0.05
    panel = (top - bottom - gap) / 2
    left, width = 0.115, 0.77
    ax_area = fig.add_axes((left, bottom + panel + gap, width, panel))
    ax_low = fig.add_axes((left, bottom, width, panel), sharex=ax_area)

    area_name = subject.target_id if subject.target_kind == "area" else subject.area_id
    title = f"{subject.target_id} · {subject.category.replace('_', ' ')}"
    fig.text(0.5, 0.975, title, ha="center", va="top", **_text_kw(12.5, weight="bold"))
    sub = (
        f"order {subject.order_id} · area {area_name or 'n/a'} · score {subject.score:.2f}"
        f" · times in {summary['timezone']}"
    )
    fig.text(0.5, 0.938, sub, ha="center", va="top", **_text_kw(_FONT_PT, color="#333333"))
    fig.text(
        0.03, footer_top, "\n".join(footer), ha="left", va="top", linespacing=1.4, **_text_kw()
    )

    starts = _epoch_s(frame["window_start"])
    ends = _epoch_s(frame["window_end"])
    x0 = np.asarray(mdates.date2num(starts.astype("datetime64[s]")), dtype=np.float64)
    widths = (ends - starts) / DAY_S
    per = _per_window(int(summary["window_s"]))

    _area_panel(ax_area, frame, x0, widths, per, area_name)
    if subject.target_kind == "meter":
        _meter_panel(ax_low, frame, x0, widths, per, subject.target_id)
    else:
        _coverage_panel(ax_low, frame, x0, widths)

    if len(frame):
        xlim = (float(x0.min()), float((x0 + widths).max()))
    else:  # nothing to show: at least the dates asked for, not autoscaled years
        rng = summary["window_range"]
        xlim = (_date_num(_ts_s(rng["requested_from"])), _date_num(_ts_s(rng["requested_to"])))
    ax_low.set_xlim(*xlim)
    _mark_start_and_detection(subject, (ax_area, ax_low), xlim, tz)

    locator = mdates.AutoDateLocator(tz=tz, minticks=4, maxticks=8)
    ax_low.xaxis.set_major_locator(locator)
    ax_low.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))
    ax_area.tick_params(labelbottom=False)
    for ax in (ax_area, ax_low):
        ax.tick_params(labelsize=7.5)
        ax.grid(axis="y", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)

    buf = io.BytesIO()
    # No "Software" chunk: the bytes depend only on the content, not the matplotlib build.
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def _date_num(epoch_s: int) -> float:
    return float(mdates.date2num(np.datetime64(int(epoch_s), "s")))


def _mark_start_and_detection(
    subject: EvidenceSubject,
    axes: tuple[Axes, Axes],
    xlim: tuple[float, float],
    tz: tzinfo,
) -> None:
    """Dashed line at the estimated start, solid at the first detection, through both
    panels, labelled above the top one: there a label never hides a bar or the legend.

    The start's label points left and the detection's right, so they cannot overlap
    however close the dates are; near an edge a label turns inwards, and if that
    brings the two together they become one label."""
    span = xlim[1] - xlim[0]
    # Width of a label in axes fraction: ~0.6 em per character at 7.5 pt on the
    # panel's 0.77 x 6 in.
    char = 7.5 * 0.6 / (0.77 * _FIG_SIZE_IN[0] * 72)
    # A label may reach this far (axes fraction) into the figure's side margins.
    label_overhang = 0.1

    def label(when_s: int, name: str) -> str:
        stamp = pd.Timestamp(int(when_s), unit="s", tz="UTC").tz_convert(tz)
        when = f"{stamp:%m-%d}" if stamp == stamp.normalize() else f"{stamp:%m-%d %H:%M}"
        return f"{name} {when}"

    marks: list[tuple[float, str, str]] = []  # (axes fraction, text, side)
    detected_x = _date_num(subject.first_detected_s)
    detected = "│ " + label(subject.first_detected_s, "detected")
    if subject.start_s is not None:
        start_x = _date_num(subject.start_s)
        for ax in axes:
            ax.axvline(start_x, linestyle="--", color=_START_COLOUR, linewidth=1.3, zorder=4)
        start = label(subject.start_s, "est. start") + " ┆"
        fs = (start_x - xlim[0]) / span if span > 0 else 0.0
        if 0.0 <= fs <= 1.0:
            side = "right" if fs >= len(start) * char - label_overhang else "left"
            marks.append((fs, start, side))
    for ax in axes:
        ax.axvline(detected_x, linestyle="-", color=_DETECTED_COLOUR, linewidth=1.3, zorder=4)
    fd = (detected_x - xlim[0]) / span if span > 0 else 1.0
    if 0.0 <= fd <= 1.0:
        side = "left" if fd + len(detected) * char <= 1.0 + label_overhang else "right"
        if marks and marks[0][2] == side:
            # Both labels turned the same way: one label for both lines.
            fs, start, _ = marks.pop()
            anchor = fs if side == "left" else fd
            marks.append((anchor, f"{start}  {detected}", side))
        else:
            marks.append((fd, detected, side))
    ax_top = axes[0]
    for frac, text, side in marks:
        colour = _DETECTED_COLOUR if text.startswith("│") else _START_COLOUR
        ax_top.text(
            frac,
            1.01,
            text,
            transform=ax_top.transAxes,
            ha=side,
            va="bottom",
            color=colour,
            **_text_kw(7.5, weight="bold"),
        )


def _bars(
    ax: Axes,
    x0: npt.NDArray[np.float64],
    widths: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    mask: npt.NDArray[np.bool_],
    colour: str,
) -> None:
    """One bar per masked window, starting at its window start, a little narrower
    than the window so adjacent windows stay apart."""
    ax.bar(x0[mask], values[mask], width=widths[mask] * 0.85, align="edge", color=colour, zorder=2)


def _spans(
    ax: Axes,
    x0: npt.NDArray[np.float64],
    widths: npt.NDArray[np.float64],
    mask: npt.NDArray[np.bool_],
    **kw: Any,
) -> None:
    """Shade the masked windows, one span per run of adjacent windows (separate spans
    leave antialiasing seams between them)."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return
    breaks = np.flatnonzero(np.diff(idx) > 1)
    for first, last in zip(
        idx[np.r_[0, breaks + 1]], idx[np.r_[breaks, len(idx) - 1]], strict=True
    ):
        ax.axvspan(x0[first], x0[last] + widths[last], linewidth=0, zorder=0, **kw)


def _area_panel(
    ax: Axes,
    frame: pd.DataFrame,
    x0: npt.NDArray[np.float64],
    widths: npt.NDArray[np.float64],
    per: str,
    area_name: str | None,
) -> None:
    ax.set_title(f"Area {area_name or 'n/a'}: loss per {per}", loc="left", pad=13, **_text_kw(9.0))
    ax.set_ylabel("loss [kWh]", fontsize=_FONT_PT)
    status = frame["area_status"].to_numpy(dtype=object)
    loss = frame["area_loss_kwh"].to_numpy(np.float64)
    has = np.isfinite(loss)
    incomputable = has & (status == _INCOMPUTABLE)
    handles: list[Any] = []
    for name, colour in _STATUS_COLOURS.items():
        mask = has & (status == name)
        if mask.any():
            _bars(ax, x0, widths, loss, mask, colour)
            handles.append(Patch(color=colour, label=f"loss, {name.replace('_', ' ')}"))
    other = has & ~incomputable & ~np.isin(status, list(_STATUS_COLOURS))
    if other.any():
        _bars(ax, x0, widths, loss, other, "#bbbbbb")
        handles.append(Patch(color="#bbbbbb", label="loss"))
    if incomputable.any():
        _spans(
            ax, x0, widths, incomputable, facecolor=_GAP_COLOUR, hatch="///", edgecolor="#bdbdbd"
        )
        handles.append(
            Patch(facecolor=_GAP_COLOUR, hatch="///", edgecolor="#bdbdbd", label="incomputable")
        )
    ax.axhline(0.0, color="#888888", linewidth=0.7)
    if not has.any():
        ax.text(
            0.5,
            0.5,
            "no area balance in this range",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="#666666",
            **_text_kw(9.0),
        )
        return
    twin = ax.twinx()
    rate = frame["area_loss_rate"].to_numpy(np.float64) * 100.0
    rate = np.where(incomputable, np.nan, rate)
    twin.plot(
        x0 + widths / 2,
        rate,
        color=_RATE_COLOUR,
        linewidth=1.2 if len(rate) <= 120 else 0.8,
        marker="." if len(rate) <= 120 else "",  # dots on hourly windows are a smear
        markersize=4,
        zorder=3,
    )
    twin.set_ylabel("loss rate [%]", fontsize=_FONT_PT)
    twin.tick_params(labelsize=7.5)
    handles.append(Line2D([], [], color=_RATE_COLOUR, marker=".", label="loss rate (right)"))
    top = np.nanmax(np.abs(loss[has & ~incomputable])) if (has & ~incomputable).any() else 1.0
    ax.set_ylim(min(0.0, float(np.nanmin(loss[has]))) * 1.1, float(top) * 1.45 or 1.0)
    if np.isfinite(rate).any():
        twin.set_ylim(
            min(0.0, float(np.nanmin(rate)) * 1.1), max(float(np.nanmax(rate)) * 1.45, 1.0)
        )
    ax.legend(
        handles=handles, loc="upper left", ncol=3, fontsize=7, framealpha=0.9, borderaxespad=0.3
    )


def _meter_panel(
    ax: Axes,
    frame: pd.DataFrame,
    x0: npt.NDArray[np.float64],
    widths: npt.NDArray[np.float64],
    per: str,
    meter_id: str,
) -> None:
    ax.set_title(f"Meter {meter_id}: consumption per {per}", loc="left", **_text_kw(9.0))
    ax.set_ylabel("consumption [kWh]", fontsize=_FONT_PT)
    energy = frame["meter_energy_kwh"].to_numpy(np.float64)
    ok = frame["meter_reporting"].fillna(False).to_numpy(dtype=bool) & np.isfinite(energy)
    names = sorted(
        {
            n
            for col in ("meter_events", "meter_flags")
            for t in frame[col]
            for n in str(t).split(";")
            if n
        }
    )
    handles: list[Any] = []
    if ok.any():
        _bars(ax, x0, widths, energy, ok, _METER_COLOUR)
        handles.append(Patch(color=_METER_COLOUR, label="consumption"))
    else:
        ax.text(
            0.5,
            0.4,
            "no reading from this meter in this range",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="#666666",
            **_text_kw(9.0),
        )
    if (~ok).any() and len(frame):
        _spans(ax, x0, widths, ~ok, facecolor=_GAP_COLOUR)
        handles.append(Patch(color=_GAP_COLOUR, label="no report"))
    # The top of the panel belongs to the legend and one row of marks per event
    # name: the bars stay below both, so nothing hides a bar.
    legend_rows = math.ceil((len(handles) + len(names)) / 3)
    marks_lo = 1.0 - 0.06 - 0.085 * legend_rows - 0.065 * len(names)
    top_kwh = float(energy[ok].max()) if ok.any() else 0.0
    ax.set_ylim(0.0, (top_kwh / max(marks_lo - 0.03, 0.2)) if top_kwh > 0 else 1.0)
    centres = x0 + widths / 2
    trans = ax.get_xaxis_transform()
    for i, name in enumerate(names):
        seen = np.array(
            [
                name in str(e).split(";") or name in str(f).split(";")
                for e, f in zip(frame["meter_events"], frame["meter_flags"], strict=True)
            ]
        )
        marker = _EVENT_MARKERS[i % len(_EVENT_MARKERS)]
        colour = "#b2182b" if name in _EVENT_NAMES else "#e08214"
        y = marks_lo + 0.065 * i + 0.03
        ax.scatter(
            centres[seen],
            np.full(int(seen.sum()), y),
            transform=trans,
            marker=marker,
            color=colour,
            s=30,
            zorder=5,
        )
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker=marker,
                color=colour,
                label=f"{name} ({int(seen.sum())})",
            )
        )
    if handles:
        ax.legend(
            handles=handles, loc="upper left", ncol=3, fontsize=7, framealpha=0.9, borderaxespad=0.3
        )


_EVENT_NAMES: Final = frozenset(name for _, name in _EVENT_BITS)


def _coverage_panel(
    ax: Axes, frame: pd.DataFrame, x0: npt.NDArray[np.float64], widths: npt.NDArray[np.float64]
) -> None:
    ax.set_title("Customer meters reporting (coverage)", loc="left", **_text_kw(9.0))
    ax.set_ylabel("coverage [%]", fontsize=_FONT_PT)
    coverage = frame["area_coverage"].to_numpy(np.float64) * 100.0
    has = np.isfinite(coverage)
    if has.any():
        _bars(ax, x0, widths, coverage, has, "#9ecae1")
    ax.axhline(100.0, color="#888888", linewidth=0.7, linestyle=":")
    ax.set_ylim(0.0, 110.0)


# ------------------------------------------------------------------------ the cache


def subject_fingerprint(
    subject: EvidenceSubject, *, days_before: int = 21, days_after: int = 14
) -> str:
    """16 hex digits naming one version of an order's evidence: every subject field,
    the window range and :data:`PACK_VERSION`. The replay data is not in it: a pack
    shows the data as it was when first built for this version of the order."""
    payload = {
        "pack_version": PACK_VERSION,
        "days_before": days_before,
        "days_after": days_after,
        "subject": dataclasses.asdict(subject),
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_PNG: Final = "evidence.png"
_CSV: Final = "series.csv"
_SUMMARY: Final = "summary.json"


class EvidenceCache:
    """Packs on disk: ``<root>/<order_id>/<fingerprint>/{evidence.png,series.csv,summary.json}``.

    Built on demand, once per version of an order's evidence; older versions stay (what
    an inspector downloaded last week can still be shown). A pack appears atomically:
    it is written to a temporary directory beside its place and renamed into it, so a
    reader sees a whole pack or none, and two builders racing both end with one.
    """

    def __init__(self, root: Path, *, days_before: int = 21, days_after: int = 14) -> None:
        if days_before < 0 or days_after < 0:
            raise ValueError("days_before and days_after must be >= 0")
        self.root = Path(root)
        self.days_before = days_before
        self.days_after = days_after

    def fingerprint(self, subject: EvidenceSubject) -> str:
        return subject_fingerprint(
            subject, days_before=self.days_before, days_after=self.days_after
        )

    def path_for(self, subject: EvidenceSubject) -> Path:
        return self.root / _path_component(subject.order_id) / self.fingerprint(subject)

    def get(self, subject: EvidenceSubject) -> EvidencePack | None:
        """The cached pack of this version of the order, or None."""
        return _read_pack(self.path_for(subject))

    def get_or_build(self, source: EvidenceSource, subject: EvidenceSubject) -> EvidencePack:
        path = self.path_for(subject)
        cached = _read_pack(path)
        if cached is not None:
            return cached
        pack = build_evidence_pack(
            source, subject, days_before=self.days_before, days_after=self.days_after
        )
        _write_pack(path, pack)
        return pack


def _path_component(order_id: str) -> str:
    """An order id as one safe directory name (no separators, never '.' or '..')."""
    name = urllib.parse.quote(str(order_id), safe="-_.")
    return name if name and not name.startswith(".") else "_" + name


def _read_pack(path: Path) -> EvidencePack | None:
    try:
        return EvidencePack(
            png=(path / _PNG).read_bytes(),
            csv=(path / _CSV).read_bytes(),
            summary=json.loads((path / _SUMMARY).read_bytes()),
        )
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_pack(path: Path, pack: EvidencePack) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        (tmp / _PNG).write_bytes(pack.png)
        (tmp / _CSV).write_bytes(pack.csv)
        (tmp / _SUMMARY).write_bytes(pack.summary_json)
        try:
            os.rename(tmp, path)
        except OSError:
            # Another builder won the race, or a broken pack (a file deleted by hand)
            # is in the way: keep a complete one, replace a broken one.
            if _read_pack(path) is not None:
                return
            shutil.rmtree(path, ignore_errors=True)
            os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
