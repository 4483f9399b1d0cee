"""Read the replay data contract (docs/data-contract.md) into core types.

Readers rename and parse at the boundary so the core never sees foreign columns:
timestamps become epoch seconds, events become codes, meter ids become indices.
Every row that cannot be used is kept, with its file, row number and reason, in a
rejects table; the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lineloss.domain import Meter, MeterEvent, MeterRole, ReadingBatch, Topology
from lineloss.timeline import MeterHistory, MeterState, TopologyTimeline

REJECT_COLUMNS = ["source", "row", "meter_id", "ts", "reason", "detail"]
_ROLES = {r.value for r in MeterRole}


class DataContractError(ValueError):
    """The input cannot be used at all (a missing file or required column)."""


@dataclass(frozen=True)
class LoadedReadings:
    """Readings in arrival order, the meter ids as written, and the rejected rows."""

    batch: ReadingBatch  # source_pos = row number in the file (header is row 1)
    raw_meter_ids: np.ndarray
    raw_ts: np.ndarray
    rejects: pd.DataFrame
    source: str
    received_s: np.ndarray | None = None  # arrival time [s since epoch], -1 unknown


def _reject_frame(
    source: str, rows: pd.DataFrame, reason: str, detail: str | pd.Series
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": source,
            "row": rows.index.to_numpy() + 2,
            "meter_id": rows.get("meter_id", pd.Series("", index=rows.index)).astype(str),
            "ts": rows.get("ts", pd.Series("", index=rows.index)).astype(str),
            "reason": reason,
            "detail": detail,
        },
        columns=REJECT_COLUMNS,
    )


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
        return df.reset_index(drop=True)
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)


def read_topology(data_dir: Path) -> tuple[Topology, pd.DataFrame]:
    """Parse topology.csv; bad rows are rejected, unknown extra columns ignored."""
    path = data_dir / "topology.csv"
    if not path.exists():
        raise DataContractError(f"{path}: missing; the data directory needs topology.csv")
    df = _read_table(path)
    for col in ("meter_id", "role"):
        if col not in df.columns:
            raise DataContractError(f"{path}: required column {col!r} is missing")
    text = ("meter_id", "role", "area_id", "feeder_id", "customer_class", "substation_id")
    for col in ("area_id", "feeder_id", "multiplier", "customer_class", "substation_id"):
        if col not in df.columns:
            df[col] = ""
    df = df.astype({c: str for c in text})
    for col in text:
        df[col] = df[col].str.strip()
    df["role"] = df["role"].str.lower()
    source = path.name
    rejects = []

    mult_text = df["multiplier"].astype(str).str.strip()
    mult = pd.to_numeric(mult_text.where(mult_text != "", "1"), errors="coerce")
    checks = [
        (df["meter_id"] == "", "malformed", "meter_id is empty"),
        (~df["role"].isin(_ROLES), "malformed", "role must be customer, area or feeder"),
        (
            (df["role"] == "area") & (df["area_id"] == ""),
            "malformed",
            "an area meter needs the area_id it measures",
        ),
        (
            (df["role"] == "feeder") & (df["feeder_id"] == ""),
            "malformed",
            "a feeder meter needs its feeder_id",
        ),
        (~np.isfinite(mult) | (mult <= 0), "malformed", "multiplier must be a positive number"),
    ]
    bad = pd.Series(False, index=df.index)
    for mask, reason, detail in checks:
        new = mask & ~bad
        if new.any():
            rejects.append(_reject_frame(source, df[new], reason, detail))
        bad |= mask
    dup = df["meter_id"].duplicated() & ~bad
    if dup.any():
        rejects.append(_reject_frame(source, df[dup], "duplicate", "meter_id already listed above"))
    bad |= dup
    good = df[~bad]
    meters = [
        Meter(
            meter_id=str(mid),
            role=MeterRole(str(role)),
            area_id=(str(area) or None) if role != "feeder" else None,
            feeder_id=str(feeder) or None,
            multiplier=float(m),
            customer_class=str(cls) or None,
            substation_id=(str(sub) or None) if role == "feeder" else None,
        )
        for mid, role, area, feeder, cls, sub, m in zip(
            good["meter_id"],
            good["role"],
            good["area_id"],
            good["feeder_id"],
            good["customer_class"],
            good["substation_id"],
            mult[~bad],
            strict=True,
        )
    ]
    rej = pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame(columns=REJECT_COLUMNS)
    return Topology.from_meters(meters), rej


CHANGES_FILE = "topology_changes.csv"


def read_topology_timeline(data_dir: Path) -> tuple[TopologyTimeline, pd.DataFrame]:
    """``topology.csv`` as the registry at the start, with the dated changes of the
    optional ``topology_changes.csv`` applied (docs/data-contract.md): a meter's
    history is its row of topology.csv (if any) from the beginning, then its
    changes by effective time. Bad change rows are rejected like topology rows."""
    topology, rejects = read_topology(data_dir)
    timeline = TopologyTimeline.of(topology)
    path = data_dir / CHANGES_FILE
    if not path.exists():
        return timeline, rejects
    df = _read_table(path)
    for col in ("meter_id", "effective_from"):
        if col not in df.columns:
            raise DataContractError(f"{path}: required column {col!r} is missing")
    optional = ("role", "area_id", "feeder_id", "multiplier", "customer_class", "substation_id")
    for col in (*optional, "removed"):
        if col not in df.columns:
            df[col] = ""
    df = df.astype(str).apply(lambda c: c.str.strip())
    eff_text = df["effective_from"]
    eff_s, eff_ok = _to_epoch_s(eff_text)
    as_number = pd.to_numeric(eff_text, errors="coerce")
    numeric = as_number.notna().to_numpy()
    eff_s = np.where(numeric, as_number.fillna(0).to_numpy(np.int64), eff_s)
    eff_ok = eff_ok | numeric
    removed = df["removed"].str.lower().isin(("true", "1", "yes"))
    role = df["role"].str.lower()
    mult_text = df["multiplier"]
    mult = pd.to_numeric(mult_text.where(mult_text != "", "1"), errors="coerce").to_numpy()
    checks = [
        (df["meter_id"] == "", "meter_id is empty"),
        (~pd.Series(eff_ok, index=df.index), "effective_from must be ISO 8601 or epoch seconds"),
        (~removed & ~role.isin(_ROLES), "role must be customer, area or feeder (or removed)"),
        (~removed & (role == "area") & (df["area_id"] == ""), "an area meter needs its area_id"),
        (~removed & (role == "feeder") & (df["feeder_id"] == ""), "a feeder meter needs feeder_id"),
        (~removed & ~(np.isfinite(mult) & (mult > 0)), "multiplier must be a positive number"),
    ]
    bad = pd.Series(False, index=df.index)
    found = [rejects]
    for mask, detail in checks:
        new = mask & ~bad
        if new.any():
            found.append(_reject_frame(CHANGES_FILE, df[new], "malformed", detail))
        bad |= mask
    histories: dict[str, list[MeterState]] = {}
    for i in np.flatnonzero(~bad.to_numpy()):
        row = df.iloc[i]
        meter_id = str(row["meter_id"])
        meter = None
        if not removed.iloc[i]:
            meter = Meter(
                meter_id=meter_id,
                role=MeterRole(role.iloc[i]),
                area_id=(row["area_id"] or None) if role.iloc[i] != "feeder" else None,
                feeder_id=row["feeder_id"] or None,
                multiplier=float(mult[i]),
                customer_class=row["customer_class"] or None,
                substation_id=(row["substation_id"] or None) if role.iloc[i] == "feeder" else None,
            )
        if meter_id not in histories:
            histories[meter_id] = list(timeline.histories.get(meter_id, ()))
        histories[meter_id].append(MeterState(int(eff_s[i]), meter))
    rej = pd.concat([f for f in found if len(f)], ignore_index=True) if len(found) > 1 else rejects
    updates: dict[str, MeterHistory | None] = {k: tuple(h) for k, h in histories.items()}
    return timeline.apply(updates), rej


def _readings_path(data_dir: Path) -> Path:
    for name in ("readings.parquet", "readings.csv"):
        if (data_dir / name).exists():
            return data_dir / name
    raise DataContractError(f"{data_dir}: needs readings.csv or readings.parquet")


def _to_epoch_s(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse ISO 8601 (offset or UTC) to epoch seconds; second array = parsed ok."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values if getattr(values.dt, "tz", None) else values.dt.tz_localize("UTC")
    else:
        parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    ok = parsed.notna().to_numpy()
    secs = np.zeros(len(values), dtype=np.int64)
    if ok.any():
        secs[ok] = parsed[ok].dt.as_unit("s").astype("int64").to_numpy()
    return secs, ok


def _numeric(df: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    """Values of a numeric column and whether each row has one (empty = absent)."""
    if col not in df.columns:
        return np.full(len(df), np.nan), np.zeros(len(df), np.bool_)
    s = df[col]
    if pd.api.types.is_numeric_dtype(s):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        return v, ~np.isnan(v)
    text = s.astype(str).str.strip()
    present = (text != "") & (text.str.lower() != "nan")
    v = pd.to_numeric(text.where(present, None), errors="coerce").to_numpy(dtype=np.float64)
    return v, present.to_numpy()


def read_readings(data_dir: Path, topology: Topology) -> LoadedReadings:
    """Parse readings.csv/parquet into one batch in arrival order.

    Arrival order is the ``received_at`` column when present, else file order.
    """
    path = _readings_path(data_dir)
    df = _read_table(path)
    source = path.name
    for col in ("meter_id", "ts"):
        if col not in df.columns:
            raise DataContractError(f"{path}: required column {col!r} is missing")
    if "register_kwh" not in df.columns and "interval_kwh" not in df.columns:
        raise DataContractError(f"{path}: needs a register_kwh or an interval_kwh column")

    meter_ids = df["meter_id"].astype(str).str.strip()
    ts_s, ts_ok = _to_epoch_s(df["ts"])
    reg, has_reg = _numeric(df, "register_kwh")
    itv, has_itv = _numeric(df, "interval_kwh")
    raw_reg = df["register_kwh"].astype(str) if "register_kwh" in df.columns else None
    raw_itv = df["interval_kwh"].astype(str) if "interval_kwh" in df.columns else None
    non_numeric = np.zeros(len(df), np.bool_)
    if raw_reg is not None:
        non_numeric |= has_reg & np.isnan(reg)
    if raw_itv is not None:
        non_numeric |= has_itv & np.isnan(itv)

    checks = [
        ((meter_ids == "").to_numpy(), "malformed", "meter_id is empty"),
        (~ts_ok, "malformed", "ts is not an ISO 8601 timestamp"),
        (non_numeric, "malformed", "energy value is not a number"),
        (has_reg & has_itv, "malformed", "row has both register_kwh and interval_kwh"),
        (~has_reg & ~has_itv, "malformed", "row has neither register_kwh nor interval_kwh"),
    ]
    bad = np.zeros(len(df), np.bool_)
    rejects = []
    for mask, reason, detail in checks:
        new = mask & ~bad
        if new.any():
            rejects.append(_reject_frame(source, df[new], reason, detail))
        bad |= mask

    good = np.flatnonzero(~bad)
    received = np.full(len(df), -1, np.int64)
    if "received_at" in df.columns:
        recv_s, recv_ok = _to_epoch_s(df["received_at"])
        received = np.where(recv_ok, recv_s, -1)
        # Rows without a usable arrival time arrive last, in file order.
        recv_s = np.where(recv_ok, recv_s, np.iinfo(np.int64).max)
        good = good[np.argsort(recv_s[good], kind="stable")]

    is_interval = has_itv[good]
    value = np.where(is_interval, itv[good], reg[good])
    if "event" in df.columns:
        ev_text = df["event"].astype(str).to_numpy()[good]
        codes = {name: MeterEvent.parse(name).value for name in pd.unique(ev_text)}
        event = pd.Series(ev_text).map(codes).to_numpy(dtype=np.int16)
    else:
        event = np.zeros(len(good), np.int16)
    volt, _ = _numeric(df, "voltage_v")
    batch = ReadingBatch(
        meter_idx=topology.index_of(meter_ids.to_numpy()[good]),
        ts=ts_s[good],
        value=value.astype(np.float64),
        is_interval=is_interval,
        event=event,
        voltage_v=volt[good].astype(np.float32),
        source_pos=(good + 2).astype(np.int64),
    )
    rej = pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame(columns=REJECT_COLUMNS)
    return LoadedReadings(
        batch=batch,
        raw_meter_ids=meter_ids.to_numpy()[good],
        raw_ts=df["ts"].astype(str).to_numpy()[good],
        rejects=rej,
        source=source,
        received_s=received[good],
    )
