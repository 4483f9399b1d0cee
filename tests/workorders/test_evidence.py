"""Evidence packs: a replayed synthetic grid with injected thefts, and hand-made series.

The pack must show the replay's numbers exactly (an inspector's evidence is checked
against the system of record), be byte-identical when rebuilt, and be served from
disk until the order's evidence changes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from workorder_factories import THEFT_GRID

import workorders.evidence as ev
from lineloss.config import EngineConfig
from lineloss.domain import MeterEvent
from loaders.synthetic import generate_grid, write_grid
from streams.replay import parse_detector_scores, run_replay
from workorders.evidence import (
    EvidenceCache,
    EvidencePack,
    EvidenceSeries,
    EvidenceSubject,
    ReplayOutputSource,
    UnknownAreaError,
    build_evidence_pack,
    event_names,
    evidence_range_s,
    subject_fingerprint,
)

DAY = 86400
# 2026-03-01T00:00:00+08:00 [s since epoch]
DAY0 = 1772294400
PRICE_PER_KWH = 0.56  # CNY

GRID = THEFT_GRID


def _ts(text: str) -> int:
    return int(pd.Timestamp(text).timestamp())


def _read_csv(data: bytes | Path) -> pd.DataFrame:
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    return pd.read_csv(src, **ev._EXACT_FLOATS)


@dataclass(frozen=True)
class Grid:
    data: Path
    out: Path
    labels: pd.DataFrame
    suspicions: pd.DataFrame
    balances: pd.DataFrame
    meter_windows: pd.DataFrame
    topology: pd.DataFrame

    def subject_for(
        self, target_id: str, *, order_id: str = "WO-1", **changes: Any
    ) -> EvidenceSubject:
        """The subject the work-order service would build from the suspicion row."""
        row = self.suspicions[self.suspicions.target_id == target_id].iloc[0]
        subject = EvidenceSubject(
            order_id=order_id,
            target_id=target_id,
            target_kind=str(row.target_kind),
            category=str(row.category),
            area_id=str(row.area_id) or None,
            score=float(row.score),
            estimated_kwh=float(row.estimated_kwh),
            estimated_value=round(float(row.estimated_kwh) * PRICE_PER_KWH, 2),
            currency="CNY",
            reason=str(row.evidence),
            detector_scores=parse_detector_scores(str(row.detector_scores)),
            start_s=_ts(row.start) if row.start else None,
            first_detected_s=_ts(row.first_detected),
        )
        return dataclasses.replace(subject, **changes)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Grid:
    root = tmp_path_factory.mktemp("evidence")
    write_grid(generate_grid(GRID), root / "data", fmt="csv")
    run_replay(root / "data", root / "out", EngineConfig(tz=GRID.tz))
    return Grid(
        data=root / "data",
        out=root / "out",
        labels=pd.read_csv(root / "data" / "labels.csv", keep_default_na=False),
        suspicions=pd.read_csv(root / "out" / "suspicions.csv", keep_default_na=False),
        balances=_read_csv(root / "out" / "balances.csv"),
        meter_windows=pd.read_parquet(root / "out" / "meter_windows.parquet"),
        topology=pd.read_csv(root / "data" / "topology.csv", keep_default_na=False),
    )


@pytest.fixture(scope="module")
def thief(grid: Grid) -> EvidenceSubject:
    """The labelled thief with the most stolen energy among those detected, its
    subject built from the suspicion; from the label when none was detected."""
    thefts = grid.labels[(grid.labels.label == "theft") & (grid.labels.start != "")]
    assert len(thefts), "the grid must contain a labelled theft"
    raised = grid.suspicions[grid.suspicions.category == "theft"]
    detected = thefts[thefts.meter_id.isin(raised.target_id)]
    pool = detected if len(detected) else thefts
    label = pool.sort_values("stolen_kwh", ascending=False).iloc[0]
    if len(detected):
        return grid.subject_for(label.meter_id)
    start_s = _ts(label.start)
    return EvidenceSubject(
        order_id="WO-1",
        target_id=label.meter_id,
        target_kind="meter",
        category="theft",
        area_id=label.recorded_area_id,
        score=0.8,
        estimated_kwh=float(label.stolen_kwh),
        estimated_value=round(float(label.stolen_kwh) * PRICE_PER_KWH, 2),
        currency="CNY",
        reason="labelled theft",
        detector_scores=(("theft_localiser", 0.8),),
        start_s=start_s,
        first_detected_s=start_s + 3 * DAY,
    )


@pytest.fixture(scope="module")
def thief_pack(grid: Grid, thief: EvidenceSubject) -> EvidencePack:
    return build_evidence_pack(ReplayOutputSource(grid.out), thief)


@dataclass
class CountingSource:
    """Wraps a source and counts the calls, to see when the cache serves from disk."""

    inner: ev.EvidenceSource
    calls: list[str] = field(default_factory=list)

    def series(self, subject: EvidenceSubject, *, from_s: int, to_s: int) -> EvidenceSeries:
        self.calls.append(subject.target_id)
        return self.inner.series(subject, from_s=from_s, to_s=to_s)


def _meter_rows(grid: Grid, meter_id: str, starts: pd.Series) -> pd.DataFrame:
    mw = grid.meter_windows[grid.meter_windows.meter_id == meter_id]
    mw = mw.assign(window_start=[t.isoformat() for t in mw.window_start])
    return mw.set_index("window_start").loc[list(starts)]


def _png_pixels(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(matplotlib.image.imread(io.BytesIO(png), format="png"))


# ------------------------------------------------------------------ a replayed theft


def test_series_csv_is_the_replay_output_exactly(
    grid: Grid, thief: EvidenceSubject, thief_pack: EvidencePack
) -> None:
    csv = _read_csv(thief_pack.csv)
    assert list(csv.columns) == list(ev.SERIES_COLUMNS)

    # The windows are the area's balances in the range, clipped to the data.
    from_s, to_s = evidence_range_s(thief)
    area = grid.balances[grid.balances.area_id == thief.area_id]
    starts_s = area.window_start.map(_ts)
    area = area[(starts_s >= from_s) & (starts_s < to_s)]
    assert list(csv.window_start) == list(area.window_start)
    assert list(csv.window_end) == list(area.window_end)
    for ours, theirs in [
        ("area_supply_kwh", "supply_kwh"),
        ("area_billed_kwh", "billed_kwh"),
        ("area_loss_kwh", "loss_kwh"),
        ("area_loss_rate", "loss_rate"),
        ("area_coverage", "coverage"),
    ]:
        np.testing.assert_array_equal(csv[ours].to_numpy(), area[theirs].to_numpy(), ours)
    assert list(csv.area_status) == list(area.status)

    meter = _meter_rows(grid, thief.target_id, csv.window_start)
    np.testing.assert_array_equal(csv.meter_energy_kwh.to_numpy(), meter.energy_kwh.to_numpy())
    assert list(csv.meter_reporting) == list(meter.reporting)
    expected_events = [";".join(event_names(int(m))) for m in meter.events]
    assert list(csv.meter_events.fillna("")) == expected_events


def test_window_range_covers_the_start_and_is_clipped_to_the_data(
    grid: Grid, thief: EvidenceSubject, thief_pack: EvidencePack
) -> None:
    rng = thief_pack.summary["window_range"]
    split_s = thief.start_s if thief.start_s is not None else thief.first_detected_s
    assert _ts(rng["first_window_start"]) <= split_s < _ts(rng["last_window_end"])
    assert rng["covers_split"] is True
    label_start = str(grid.labels.set_index("meter_id").at[thief.target_id, "start"])
    assert _ts(rng["first_window_start"]) <= _ts(label_start) < _ts(rng["last_window_end"])
    # 21 days before the start reach before the data begins: the range is clipped.
    assert _ts(rng["requested_from"]) < _ts(rng["first_window_start"]) == DAY0
    assert rng["first_window_start"] == "2026-03-01T00:00:00+08:00"
    assert rng["windows"] == len(_read_csv(thief_pack.csv))
    assert thief_pack.summary["timezone"] == "Asia/Shanghai"


def test_summary_shows_the_drop_and_echoes_the_order(
    grid: Grid, thief: EvidenceSubject, thief_pack: EvidencePack
) -> None:
    s = thief_pack.summary
    meter = s["meter"]
    assert meter["windows_before"] >= 3 and meter["windows_after"] >= 3
    assert meter["mean_kwh_after"] < 0.9 * meter["mean_kwh_before"]
    assert meter["change_fraction"] < -0.1
    # Recomputed by hand from the CSV: windows wholly before / after the split.
    csv = _read_csv(thief_pack.csv)
    split_s = thief.start_s if thief.start_s is not None else thief.first_detected_s
    ok = csv.meter_reporting.astype(bool) & csv.meter_energy_kwh.notna()
    before = ok & (csv.window_end.map(_ts) <= split_s)
    after = ok & (csv.window_start.map(_ts) >= split_s)
    assert meter["mean_kwh_before"] == pytest.approx(csv.meter_energy_kwh[before].mean())
    assert meter["mean_kwh_after"] == pytest.approx(csv.meter_energy_kwh[after].mean())

    assert s["detector_scores"] == dict(thief.detector_scores)
    assert list(s["detector_scores"]) == [name for name, _ in thief.detector_scores]
    assert s["estimated_value"] == thief.estimated_value
    assert s["estimated_kwh"] == thief.estimated_kwh
    assert s["currency"] == "CNY"
    assert s["reason"] == thief.reason
    assert (s["order_id"], s["target_id"], s["category"]) == ("WO-1", thief.target_id, "theft")
    json.dumps(s, allow_nan=False)  # plain JSON, no NaN

    # Events: every event bit the meter raised in the range, counted per window.
    mw = grid.meter_windows[grid.meter_windows.meter_id == thief.target_id]
    mw = mw[mw.window_start.map(lambda t: t.isoformat()).isin(set(csv.window_start))]
    expected: dict[str, tuple[int, str]] = {}
    for start, mask in zip(mw.window_start, mw.events, strict=True):
        for name in event_names(int(mask)):
            n, first = expected.get(name, (0, start.isoformat()))
            expected[name] = (n + 1, min(first, start.isoformat()))
    got = {e["name"]: (e["windows"], e["first_window_start"]) for e in s["events"]}
    assert got == expected
    assert got, "thieves of this grid always raise a tamper event"


def test_png_is_a_phone_sized_png(thief_pack: EvidencePack) -> None:
    pixels = _png_pixels(thief_pack.png)
    assert pixels.shape[:2] == (825, 660)  # 7.5 x 6 in at 110 dpi: portrait
    # Not blank: the bars and text put a fair share of non-white pixels on it.
    assert (pixels[..., :3] < 0.9).any(axis=-1).mean() > 0.05


def test_area_subject_gives_a_pack_without_meter_values(grid: Grid) -> None:
    raised = grid.suspicions[grid.suspicions.target_kind == "area"]
    assert len(raised), "the grid's thefts raise an area suspicion"
    subject = grid.subject_for(raised.iloc[0].target_id)
    pack = build_evidence_pack(ReplayOutputSource(grid.out), subject)
    csv = _read_csv(pack.csv)
    assert len(csv) > 0
    assert csv.meter_energy_kwh.isna().all()
    assert csv.meter_reporting.isna().all()
    assert csv.meter_events.isna().all() and csv.meter_flags.isna().all()
    area = grid.balances[grid.balances.area_id == subject.target_id]
    area = area[area.window_start.isin(set(csv.window_start))]
    np.testing.assert_array_equal(csv.area_loss_kwh.to_numpy(), area.loss_kwh.to_numpy())
    assert pack.summary["meter"] is None and pack.summary["events"] == []
    assert pack.summary["area"]["windows"] == len(csv)
    assert _png_pixels(pack.png).shape[:2] == (825, 660)


def test_meter_that_never_reported_gives_nan_and_a_note(grid: Grid, thief: EvidenceSubject) -> None:
    # A meter the replay never saw (installed after it, say) in a known area.
    subject = dataclasses.replace(thief, target_id="C0000000", order_id="WO-2")
    pack = build_evidence_pack(ReplayOutputSource(grid.out), subject)
    csv = _read_csv(pack.csv)
    assert len(csv) > 0 and csv.area_loss_kwh.notna().all()
    assert csv.meter_energy_kwh.isna().all()
    meter = pack.summary["meter"]
    assert meter["windows_reporting"] == 0
    assert meter["mean_kwh_before"] is None and meter["mean_kwh_after"] is None
    assert any("C0000000" in n and "unknown" in n for n in pack.summary["notes"])
    assert _png_pixels(pack.png).shape[:2] == (825, 660)


def test_meter_without_area_is_shown_alone(
    grid: Grid, thief: EvidenceSubject, thief_pack: EvidencePack
) -> None:
    subject = dataclasses.replace(thief, area_id=None)
    pack = build_evidence_pack(ReplayOutputSource(grid.out), subject)
    csv = _read_csv(pack.csv)
    assert csv.area_loss_kwh.isna().all() and csv.meter_energy_kwh.notna().any()
    assert pack.summary["area"] is None
    assert pack.summary["meter"] == thief_pack.summary["meter"]  # same windows, same numbers
    assert any("no area recorded" in n for n in pack.summary["notes"])


def test_unknown_area_is_a_clear_error(grid: Grid, thief: EvidenceSubject) -> None:
    subject = dataclasses.replace(thief, area_id="NOWHERE-TA99")
    with pytest.raises(UnknownAreaError) as err:
        build_evidence_pack(ReplayOutputSource(grid.out), subject)
    assert isinstance(err.value, KeyError)
    message = str(err.value)
    assert "NOWHERE-TA99" in message and "balances.csv" in message
    assert thief.area_id is not None and thief.area_id in message  # names what is there


@pytest.mark.parametrize("group", ["unmetered", "dedicated"])
def test_dedicated_customer_is_set_against_its_feeder(
    grid: Grid, thief: EvidenceSubject, group: str
) -> None:
    """Named by the localiser in its feeder's unmetered part, or by its own checks in
    its feeder's dedicated group (streams.area_windows): either way its feeder's
    balance is the one that saw it."""
    topo = grid.topology
    dedicated = topo[(topo.role == "customer") & (topo.area_id == "")].iloc[0]
    subject = dataclasses.replace(
        thief, target_id=dedicated.meter_id, area_id=f"{dedicated.feeder_id}/{group}"
    )
    pack = build_evidence_pack(ReplayOutputSource(grid.out), subject)
    csv = _read_csv(pack.csv)
    feeder = _read_csv(grid.out / "feeder_balances.csv")
    feeder = feeder[feeder.feeder_id == dedicated.feeder_id].set_index("window_start")
    np.testing.assert_array_equal(
        csv.area_loss_kwh.to_numpy(), feeder.loc[list(csv.window_start), "loss_kwh"].to_numpy()
    )
    assert csv.meter_energy_kwh.notna().any()
    assert any("feeder" in n for n in pack.summary["notes"])


def test_source_reads_one_meter_with_a_filter_and_keeps_it(
    grid: Grid, thief: EvidenceSubject, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Any] = []
    real = pq.read_table

    def spy(*args: Any, **kwargs: Any) -> Any:
        reads.append(kwargs.get("filters"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ev.pq, "read_table", spy)
    source = ReplayOutputSource(grid.out)
    from_s, to_s = evidence_range_s(thief)
    first = source.series(thief, from_s=from_s, to_s=to_s)
    data_from_s = int(first.frame.window_start.min().timestamp())
    again = source.series(thief, from_s=data_from_s + DAY, to_s=to_s)
    assert reads == [[("meter_id", "==", thief.target_id)]]
    assert len(again.frame) == len(first.frame) - 1


def test_source_rereads_a_rewritten_output(
    grid: Grid, thief: EvidenceSubject, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(grid.out, out)
    source = ReplayOutputSource(out)
    from_s, to_s = evidence_range_s(thief)
    before = source.series(thief, from_s=from_s, to_s=to_s).frame
    balances = pd.read_csv(out / "balances.csv", dtype=str, keep_default_na=False)
    balances["loss_kwh"] = "1234.5"  # the next day's replay
    balances.to_csv(out / "balances.csv", index=False)
    after = source.series(thief, from_s=from_s, to_s=to_s).frame
    assert (before.area_loss_kwh != 1234.5).all() and (after.area_loss_kwh == 1234.5).all()


# -------------------------------------------------------------- cache and determinism


def test_cache_serves_from_disk_without_the_source(
    grid: Grid, thief: EvidenceSubject, tmp_path: Path
) -> None:
    source = CountingSource(ReplayOutputSource(grid.out))
    cache = EvidenceCache(tmp_path / "packs")
    first = cache.get_or_build(source, thief)
    assert source.calls == [thief.target_id]
    second = EvidenceCache(tmp_path / "packs").get_or_build(source, thief)  # a new process
    assert source.calls == [thief.target_id]
    assert (second.png, second.csv, second.summary) == (first.png, first.csv, first.summary)
    where = tmp_path / "packs" / "WO-1" / subject_fingerprint(thief)
    assert sorted(p.name for p in where.iterdir()) == ["evidence.png", "series.csv", "summary.json"]
    assert (where / "series.csv").read_bytes() == first.csv
    assert json.loads((where / "summary.json").read_text()) == first.summary
    # Nothing half-written is left beside the pack.
    assert [p.name for p in (tmp_path / "packs" / "WO-1").iterdir()] == [where.name]


def test_cache_rebuilds_when_the_subject_changes(
    grid: Grid, thief: EvidenceSubject, tmp_path: Path
) -> None:
    source = CountingSource(ReplayOutputSource(grid.out))
    cache = EvidenceCache(tmp_path)
    old = cache.get_or_build(source, thief)
    stronger = dataclasses.replace(thief, score=min(thief.score + 0.05, 1.0))
    assert cache.fingerprint(stronger) != cache.fingerprint(thief)
    new = cache.get_or_build(source, stronger)
    assert len(source.calls) == 2
    assert new.summary["score"] == stronger.score != old.summary["score"]
    assert new.png != old.png  # the subtitle shows the score
    assert new.csv == old.csv  # same data
    # Both versions are kept; each is served again without the source.
    cache.get_or_build(source, thief)
    cache.get_or_build(source, stronger)
    assert len(source.calls) == 2
    assert len(list((tmp_path / "WO-1").iterdir())) == 2


def test_cache_replaces_a_broken_pack(grid: Grid, thief: EvidenceSubject, tmp_path: Path) -> None:
    source = CountingSource(ReplayOutputSource(grid.out))
    cache = EvidenceCache(tmp_path)
    pack = cache.get_or_build(source, thief)
    (cache.path_for(thief) / "evidence.png").unlink()
    assert cache.get(thief) is None
    again = cache.get_or_build(source, thief)
    assert len(source.calls) == 2
    assert again.png == pack.png
    assert (cache.path_for(thief) / "evidence.png").read_bytes() == pack.png


def test_order_id_stays_one_directory_under_the_cache(
    grid: Grid, thief: EvidenceSubject, tmp_path: Path
) -> None:
    cache = EvidenceCache(tmp_path / "packs")
    subject = dataclasses.replace(thief, order_id="../../etc/x")
    path = cache.path_for(subject)
    assert path.parent.parent == tmp_path / "packs"
    assert ".." not in path.parts and "/" not in path.parent.name


def test_building_twice_gives_identical_bytes(
    grid: Grid, thief: EvidenceSubject, thief_pack: EvidencePack
) -> None:
    a = thief_pack
    b = build_evidence_pack(ReplayOutputSource(grid.out), thief)  # a fresh source
    assert a.csv == b.csv
    assert a.summary == b.summary and a.summary_json == b.summary_json
    assert a.png == b.png
    assert b"Software" not in a.png  # no matplotlib version in the bytes


# ------------------------------------------------------------- the core, by hand


@dataclass
class FrameSource:
    """An in-memory source: the series is given; the range is honoured."""

    frame: pd.DataFrame
    notes: tuple[str, ...] = ()

    def series(self, subject: EvidenceSubject, *, from_s: int, to_s: int) -> EvidenceSeries:
        s = (self.frame.window_start - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        return EvidenceSeries(self.frame[(s >= from_s) & (s < to_s)], self.notes)


def _hand_frame() -> pd.DataFrame:
    """Ten days: the meter drops from 10 to 2 kWh/day on day 5 at noon, the loss
    rises from 5 to 13 kWh on 100 kWh supplied; day 1 is incomputable, day 7 the
    meter did not report, day 6 it raised cover-open and magnetic."""
    days = 10
    start = pd.to_datetime(DAY0 + DAY * np.arange(days), unit="s", utc=True).tz_convert(
        "Asia/Shanghai"
    )
    energy = np.array([10, 10, 10, 10, 10, 6, 2, np.nan, 2, 2], dtype=float)
    loss = np.array([0, 5, 5, 5, 5, 9, 13, 13, 13, 13], dtype=float)
    return pd.DataFrame(
        {
            "window_start": start,
            "window_end": start + pd.Timedelta(days=1),
            "area_supply_kwh": np.where(np.arange(days) == 0, 0.0, 100.0),
            "area_billed_kwh": 100.0 - loss,
            "area_loss_kwh": loss,
            "area_loss_rate": np.where(np.arange(days) == 0, np.nan, loss / 100.0),
            "area_coverage": np.where(np.arange(days) == 0, 0.5, 1.0),
            "area_status": ["incomputable", *["normal"] * 5, *["high_loss"] * 4],
            "meter_energy_kwh": energy,
            "meter_reporting": ~np.isnan(energy),
            "meter_flags": [""] * days,
            "meter_events": ["", "", "", "", "", "", "cover_open;magnetic", "", "", "cover_open"],
        }
    )


def _hand_subject(**changes: Any) -> EvidenceSubject:
    subject = EvidenceSubject(
        order_id="WO-7",
        target_id="C1",
        target_kind="meter",
        category="theft",
        area_id="A1",
        score=0.9,
        estimated_kwh=40.0,
        estimated_value=22.4,
        currency="CNY",
        reason="consumption deficit tracks the area's loss; costs $5 a day",  # "$": no TeX
        detector_scores=(("theft_localiser", 0.9), ("consumption_shape", 0.6)),
        start_s=DAY0 + 5 * DAY + DAY // 2,
        first_detected_s=DAY0 + 8 * DAY,
    )
    return dataclasses.replace(subject, **changes)


def test_summary_numbers_by_hand() -> None:
    pack = build_evidence_pack(FrameSource(_hand_frame()), _hand_subject(), days_before=21)
    s = pack.summary
    # Day 5 holds the start: neither before nor after. Before: days 0-4; after: 6-9.
    assert s["meter"] == {
        "windows": 10,
        "windows_reporting": 9,
        "windows_not_reporting": 1,
        "windows_before": 5,
        "windows_after": 3,  # day 7 did not report
        "mean_kwh_before": 10.0,
        "mean_kwh_after": 2.0,
        "change_fraction": -0.8,
    }
    # The incomputable day 0 is left out of the area's numbers.
    assert s["area"] == {
        "windows": 10,
        "windows_incomputable": 1,
        "windows_before": 4,
        "windows_after": 4,
        "mean_loss_kwh_before": 5.0,
        "mean_loss_kwh_after": 13.0,
        "loss_rate_before": 0.05,
        "loss_rate_after": 0.13,
    }
    assert s["events"] == [
        {"name": "cover_open", "windows": 2, "first_window_start": "2026-03-07T00:00:00+08:00"},
        {"name": "magnetic", "windows": 1, "first_window_start": "2026-03-07T00:00:00+08:00"},
    ]
    assert s["split_at"] == "2026-03-06T12:00:00+08:00" and s["split_on"] == "estimated_start"
    assert s["window_range"]["requested_from"] == "2026-02-13T12:00:00+08:00"
    assert s["window_range"]["requested_to"] == "2026-03-23T00:00:00+08:00"
    assert any("did not report in 1 of 10" in n for n in s["notes"])
    assert any("incomputable" in n for n in s["notes"])


def test_range_without_a_start_is_anchored_on_detection() -> None:
    frame = _hand_frame()
    subject = _hand_subject(start_s=None, first_detected_s=DAY0 + 8 * DAY)
    pack = build_evidence_pack(FrameSource(frame), subject, days_before=3, days_after=1)
    csv = _read_csv(pack.csv)
    # Days 5..8: three days before detection (day 8) to one day after.
    assert list(csv.window_start) == [f"2026-03-{d:02d}T00:00:00+08:00" for d in (6, 7, 8, 9)]
    assert pack.summary["split_on"] == "first_detection"
    assert pack.summary["meter"]["windows_before"] == 2  # days 5, 6 (7 did not report)


def test_empty_series_still_gives_a_pack() -> None:
    frame = _hand_frame().iloc[:0]
    pack = build_evidence_pack(FrameSource(frame), _hand_subject())
    assert _read_csv(pack.csv).empty
    assert pack.summary["window_range"]["windows"] == 0
    assert any("no window" in n for n in pack.summary["notes"])
    assert _png_pixels(pack.png).shape[:2] == (825, 660)


def test_series_needs_the_columns_and_a_zone() -> None:
    frame = _hand_frame()
    with pytest.raises(ValueError, match="lacks columns"):
        EvidenceSeries(frame.drop(columns="area_loss_kwh"))
    with pytest.raises(ValueError, match="tz-aware"):
        EvidenceSeries(frame.assign(window_start=frame.window_start.dt.tz_localize(None)))


def test_event_names_decode_the_bitmask() -> None:
    assert event_names(0) == ()
    mask = (1 << MeterEvent.MAGNETIC) | (1 << MeterEvent.COVER_OPEN) | (1 << MeterEvent.OTHER)
    assert event_names(mask) == ("cover_open", "magnetic", "other")


def test_subject_is_checked() -> None:
    with pytest.raises(ValueError, match="target_kind"):
        _hand_subject(target_kind="feeder")
    with pytest.raises(ValueError, match="days_before"):
        evidence_range_s(_hand_subject(), days_before=-1)
