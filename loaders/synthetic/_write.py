"""write_grid: the data-contract directory (topology, readings, labels) plus ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from loaders.synthetic._config import SyntheticGrid
from loaders.synthetic._time import iso_strings, iso_strings_dictionary

_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="none")


def _epoch_ns(values: pd.Series) -> npt.NDArray[np.int64]:
    """A tz-aware datetime column as epoch nanoseconds (UTC); NaT becomes int64 min."""
    naive = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return naive.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _iso_column(values: pd.Series, tz: str) -> npt.NDArray[np.object_]:
    ns = _epoch_ns(values)
    out = np.full(len(ns), "", dtype=object)
    ok = ~values.isna().to_numpy()
    out[ok] = iso_strings(ns[ok], tz)
    return out


def _dictionary(codes: npt.NDArray[np.integer], words: npt.ArrayLike) -> pa.DictionaryArray:
    codes32 = np.asarray(codes, dtype=np.int32)
    indices = pa.array(codes32, mask=codes32 < 0)
    return pa.DictionaryArray.from_arrays(
        indices, pa.array(np.asarray(words, dtype=object), pa.string())
    )


def _readings_table(readings: pd.DataFrame, tz: str) -> pa.Table:
    cols: dict[str, pa.Array] = {}
    for name in readings.columns:
        col = readings[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            cols[name] = _dictionary(col.cat.codes.to_numpy(), col.cat.categories.astype(str))
        elif isinstance(col.dtype, pd.DatetimeTZDtype):
            codes, words = iso_strings_dictionary(_epoch_ns(col), tz)
            cols[name] = _dictionary(codes, words)
        else:
            cols[name] = pa.array(col.to_numpy(), from_pandas=True)
    return pa.table(cols)


def _raw_lines(bad: pd.DataFrame, header: list[str], tz: str) -> list[bytes]:
    received = _iso_column(bad["received_at"], tz)
    lines = []
    for i, row in enumerate(bad.itertuples(index=False)):
        fields = []
        for name in header:
            if name == "received_at":
                fields.append(str(received[i]))
            elif name in bad.columns:
                fields.append(str(getattr(row, name)))
            else:
                fields.append("")
        lines.append((",".join(fields) + "\n").encode())
    return lines


def _write_readings_csv(grid: SyntheticGrid, path: Path) -> None:
    readings = grid.readings
    tz = grid.config.tz
    header = list(readings.columns)
    table = _readings_table(readings, tz)
    bad = grid.bad_rows
    positions: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
    lines: list[bytes] = []
    if len(bad):
        positions = np.searchsorted(
            _epoch_ns(readings["received_at"]), _epoch_ns(bad["received_at"]), side="right"
        ).astype(np.int64)
        lines = _raw_lines(bad, header, tz)
    with path.open("wb") as fh:
        fh.write((",".join(header) + "\n").encode())
        prev = 0
        for pos, line in zip(positions.tolist(), lines, strict=True):
            _write_slice(table, prev, pos, fh)
            fh.write(line)
            prev = pos
        _write_slice(table, prev, table.num_rows, fh)


def _write_slice(table: pa.Table, start: int, stop: int, fh: BinaryIO) -> None:
    if stop > start:
        pa_csv.write_csv(table.slice(start, stop - start), fh, _CSV_OPTIONS)


def _small_csv(frame: pd.DataFrame, path: Path, tz: str) -> None:
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.DatetimeTZDtype):
            out[name] = _iso_column(out[name], tz)
    out.to_csv(path, index=False, lineterminator="\n")


def write_grid(grid: SyntheticGrid, out_dir: Path, *, fmt: str = "csv") -> None:
    """Write the data-contract directory for ``grid``.

    ``topology.csv``, ``labels.csv`` and ``readings.csv`` (``fmt="csv"``) or
    ``readings.parquet`` (``fmt="parquet"``), plus ``truth_meters.csv``,
    ``truth_areas.csv`` and ``summary.json``. CSV readings keep the malformed rows as raw
    text lines at their place in arrival order; Parquet cannot hold them and omits them.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', not {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tz = grid.config.tz
    _small_csv(grid.topology, out / "topology.csv", tz)
    _small_csv(grid.labels, out / "labels.csv", tz)
    _small_csv(grid.meter_truth, out / "truth_meters.csv", tz)
    _small_csv(grid.area_truth, out / "truth_areas.csv", tz)
    (out / "summary.json").write_text(json.dumps(grid.summary, indent=2, sort_keys=True) + "\n")
    for stale in ("readings.csv", "readings.parquet"):
        (out / stale).unlink(missing_ok=True)
    if fmt == "csv":
        _write_readings_csv(grid, out / "readings.csv")
    else:
        grid.readings.to_parquet(out / "readings.parquet", index=False)
