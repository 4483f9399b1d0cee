"""Readings as they reach the head-end: events, clock drift, upload batches, data faults."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from loaders.synthetic._anomalies import EVENT_CODE, EVENTS, Anomalies
from loaders.synthetic._config import SyntheticGridConfig
from loaders.synthetic._layout import Layout
from loaders.synthetic._meters import ROLE_AREA, ROLE_CUSTOMER, ROLE_FEEDER, Meters
from loaders.synthetic._physics import Voltages
from loaders.synthetic._time import (
    NS_PER_DAY,
    NS_PER_MIN,
    NS_PER_S,
    TimeGrid,
    iso_strings,
    to_timestamps,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NS_PER_H = 60 * NS_PER_MIN
# Normal meters raise a few false events; power-down dominates (outages, maintenance).
FALSE_EVENT_WEIGHTS = {
    "power_down": 0.40,
    "voltage_loss": 0.15,
    "clock_error": 0.15,
    "cover_open": 0.10,
    "reverse_energy": 0.10,
    "magnetic": 0.05,
    "phase_loss": 0.05,
}
BAD_KINDS = ("malformed_ts", "unknown_meter", "non_numeric", "negative_value", "future_ts")
MALFORMED_TS = (
    "2026-03-07 24:15:00",
    "07/03/2026 10:15",
    "2026-02-30T10:15:00+08:00",
    "20260307T101500",
    "not-a-time",
    "2026-03-07T10:15:00+8",
)
NON_NUMERIC = ("ERR", "--", "#N/A", "12.3.4", "0x1F", "null?")


@dataclass(frozen=True)
class Assembled:
    readings: pd.DataFrame
    bad_rows: pd.DataFrame
    summary: dict[str, int | float]


def _seconds(ns: npt.NDArray[np.float64] | float) -> npt.NDArray[np.int64]:
    """Round a duration [ns] to whole seconds [ns]."""
    out: IntArray = (np.round(np.asarray(ns) / NS_PER_S) * NS_PER_S).astype(np.int64)
    return out


def _choose(rng: np.random.Generator, n: int, p: float) -> IntArray:
    """A Binomial(n, p) number of distinct indices below n, sorted."""
    if n == 0 or p <= 0:
        return np.zeros(0, dtype=np.int64)
    k = int(rng.binomial(n, p))
    return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)


def _event_codes(
    cfg: SyntheticGridConfig,
    grid: TimeGrid,
    meters: Meters,
    anomalies: Anomalies,
    n_customers: int,
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.int8], dict[str, int]]:
    m, r = meters.n_meters, grid.n_readings
    codes = np.full(m * r, -1, dtype=np.int8)
    n_false = int(rng.poisson(cfg.false_events_per_meter_day * m * grid.n_days))
    f_meter = rng.integers(0, m, n_false)
    f_read = rng.integers(0, r, n_false)
    names = list(FALSE_EVENT_WEIGHTS)
    weights = np.array([FALSE_EVENT_WEIGHTS[n] for n in names])
    f_code = np.array([EVENT_CODE[n] for n in names])[
        rng.choice(len(names), size=n_false, p=weights / weights.sum())
    ]
    codes[f_meter * r + f_read] = f_code
    pos_of_c = np.empty(n_customers, dtype=np.int64)
    is_c = meters.role == ROLE_CUSTOMER
    pos_of_c[meters.source[is_c]] = np.flatnonzero(is_c)
    a_meter = pos_of_c[anomalies.event_row]
    a_read = grid.reading_of_step[anomalies.event_step]
    codes[a_meter * r + a_read] = anomalies.event_code.astype(np.int8)
    return codes, {"false_events": n_false, "anomaly_events": len(a_meter)}


def assemble(
    cfg: SyntheticGridConfig,
    layout: Layout,
    grid: TimeGrid,
    meters: Meters,
    anomalies: Anomalies,
    volts: Voltages | None,
    event_rng: np.random.Generator,
    rng: np.random.Generator,
) -> Assembled:
    m, r = meters.n_meters, grid.n_readings
    n = m * r
    summary: dict[str, int | float] = {}
    is_c = meters.role == ROLE_CUSTOMER
    is_a = meters.role == ROLE_AREA
    is_f = meters.role == ROLE_FEEDER
    c_src = meters.source[is_c]

    events, ev_counts = _event_codes(cfg, grid, meters, anomalies, layout.n_customers, event_rng)
    summary.update(ev_counts)

    # --- upload groups: one concentrator per area (by the registry's area), one terminal
    # per dedicated customer and per feeder head.
    group = np.empty(m, dtype=np.int64)
    rec_area = anomalies.recorded_area[c_src]
    ded_pos = np.flatnonzero(is_c)[rec_area < 0]
    lv_pos = np.flatnonzero(is_c)[rec_area >= 0]
    group[lv_pos] = rec_area[rec_area >= 0]
    group[is_a] = meters.source[is_a]
    group[ded_pos] = layout.n_areas + np.arange(len(ded_pos))
    group[is_f] = layout.n_areas + len(ded_pos) + meters.source[is_f]
    n_g = layout.n_areas + len(ded_pos) + layout.n_feeders
    if cfg.daily:
        per_batch = 1
        delay_lo, delay_hi = cfg.daily_upload_delay_minutes
    else:
        per_batch = max(1, cfg.batch_minutes // cfg.interval_minutes)
        delay_lo, delay_hi = cfg.upload_delay_minutes
    n_b = -(-r // per_batch)
    batch_of = np.arange(r) // per_batch
    batch_end = grid.reading_end_ns[np.minimum((np.arange(n_b) + 1) * per_batch - 1, r - 1)]
    base = rng.uniform(delay_lo, delay_hi, n_g)
    jitter = rng.exponential(max(0.25, 0.1 * (delay_hi - delay_lo)), (n_g, n_b))
    delay = _seconds((base[:, None] + jitter) * NS_PER_MIN)
    failed = rng.random((n_g, n_b)) < cfg.batch_fail_fraction
    lo_h, hi_h = cfg.recollect_delay_hours
    recollect = _seconds(rng.uniform(lo_h, hi_h, (n_g, n_b)) * NS_PER_H)
    recv_gb = batch_end[None, :] + delay + np.where(failed, recollect, 0)
    recv = recv_gb[group][:, batch_of].reshape(-1)
    summary["failed_batches"] = int(failed.sum())
    group_size = np.bincount(group, minlength=n_g)
    batch_len = np.bincount(batch_of, minlength=n_b)
    summary["recollected_batch_rows"] = int(
        (failed * group_size[:, None] * batch_len[None, :]).sum()
    )

    late = _choose(rng, n, cfg.late_fraction)
    recv[late] += _seconds(rng.uniform(lo_h, hi_h, len(late)) * NS_PER_H)
    summary["late_rows"] = len(late)

    keep = np.ones(n, dtype=np.bool_)
    gaps = _choose(rng, n, cfg.gap_fraction)
    keep[gaps] = False
    offline = _choose(rng, m, cfg.offline_fraction)
    period_ns = max(1, int((grid.reading_end_ns[-1] - grid.t0_ns) // r))
    for meter in offline:
        length = max(1, round(rng.uniform(2.0, 48.0) * NS_PER_H / period_ns))
        first = int(rng.integers(0, r))
        keep[meter * r + first : meter * r + min(r, first + length)] = False
    summary["offline_meters"] = len(offline)
    kept = np.flatnonzero(keep)
    summary["missing_rows"] = n - len(kept)

    dup_pick = _choose(rng, len(kept), cfg.duplicate_fraction)
    dups = kept[dup_pick]
    later = rng.random(len(dups)) < 0.5
    dup_delay = np.where(later, _seconds(rng.uniform(1.0, 360.0, len(dups)) * NS_PER_MIN), 0)
    summary["duplicates"] = len(dups)
    summary["duplicates_resent_later"] = int(later.sum())

    # --- arrival order: received_at, then meter (topology order), reading time, copy
    idx = np.concatenate([kept, dups])
    recv_all = np.concatenate([recv[kept], recv[dups] + dup_delay])
    second = np.concatenate([kept * 2, dups * 2 + 1])
    span = 2 * n + 2
    rel = recv_all - recv_all.min() if len(recv_all) else recv_all
    if len(rel) and int(rel.max()) // NS_PER_S < np.iinfo(np.int64).max // span - 1:
        order = np.argsort((rel // NS_PER_S) * span + second)
    else:
        order = np.lexsort((second, recv_all))
    del second, rel, recv, keep, kept
    idx = idx[order]
    recv_all = recv_all[order]
    del order

    meter_idx, read = np.divmod(idx, r)
    meter_code = meter_idx.astype(np.int32)
    del meter_idx
    ts = grid.reading_end_ns[read]
    del read
    d_start = np.full(m, -1, dtype=np.int64)
    d_rate = np.zeros(m)
    d_start[is_c] = anomalies.drift_start_step[c_src]
    d_rate[is_c] = anomalies.drift_min_per_day[c_src]
    drifting = d_start >= 0
    rows = np.flatnonzero(drifting[meter_code])
    if len(rows):
        mc = meter_code[rows]
        t_start = grid.t0_ns + d_start[mc] * grid.step_ns
        elapsed_days = np.maximum(0, ts[rows] - t_start) / NS_PER_DAY
        ts[rows] += _seconds(d_rate[mc] * elapsed_days * NS_PER_MIN)
    value_col = "register_kwh" if cfg.reading_kind == "register" else "interval_kwh"
    values = meters.values.reshape(-1)[idx]
    voltage = None
    if volts is not None:
        vm = np.full((m, r), np.nan)
        vm[is_c] = volts.customer_v[c_src] * _voltage_seen(anomalies, grid)[c_src]
        vm[is_a] = volts.area_v[meters.source[is_a]]
        voltage = vm.reshape(-1)[idx]
        del vm
    ev = events[idx]
    summary["events"] = int(np.count_nonzero(ev >= 0))

    # --- bad rows: typed ones join the readings, untyped ones stay raw text
    bad = _bad_rows(cfg, grid, meters, value_col, rng)
    for k, c in bad.counts.items():
        summary[f"bad_{k}"] = c
    if len(bad.meter):
        pos = np.searchsorted(recv_all, bad.received_ns, side="right")
        meter_code = np.insert(meter_code, pos, bad.meter.astype(np.int32))
        ts = np.insert(ts, pos, bad.ts_ns)
        values = np.insert(values, pos, bad.value)
        ev = np.insert(ev, pos, np.full(len(pos), -1, dtype=np.int8))
        if voltage is not None:
            voltage = np.insert(voltage, pos, np.full(len(pos), np.nan))
        # Bad rows come sorted by arrival, so rows sharing an insertion point stay sorted.
        recv_all = np.insert(recv_all, pos, bad.received_ns)

    all_ids = np.concatenate([meters.meter_ids, bad.extra_ids])
    columns: dict[str, object] = {
        "meter_id": pd.Categorical.from_codes(meter_code, categories=pd.Index(all_ids, dtype=str)),
        "ts": to_timestamps(ts, cfg.tz),
        value_col: values,
    }
    if voltage is not None:
        columns["voltage_v"] = voltage
    columns["event"] = pd.Categorical.from_codes(ev, categories=pd.Index(EVENTS, dtype=str))
    columns["received_at"] = to_timestamps(recv_all, cfg.tz)
    readings = pd.DataFrame(columns)

    summary["readings_rows"] = len(readings)
    summary["expected_readings"] = n
    summary["rows_per_meter_day"] = r / grid.n_days
    summary["feeder_meters"] = int(is_f.sum())
    summary["area_meters"] = int(is_a.sum())
    return Assembled(readings=readings, bad_rows=bad.raw, summary=summary)


@dataclass(frozen=True)
class BadRows:
    """Injected bad rows: typed ones (as arrays) and raw-text ones (as a frame of str)."""

    counts: dict[str, int]
    extra_ids: npt.NDArray[np.object_]  # ids of unknown meters, coded after the real ones
    meter: IntArray
    ts_ns: IntArray
    value: FloatArray
    received_ns: IntArray
    raw: pd.DataFrame  # meter_id, ts, <value column>, problem, received_at


def _bad_rows(
    cfg: SyntheticGridConfig,
    grid: TimeGrid,
    meters: Meters,
    value_col: str,
    rng: np.random.Generator,
) -> BadRows:
    counts = {
        k: cfg.bad_rows // len(BAD_KINDS) + int(i < cfg.bad_rows % len(BAD_KINDS))
        for i, k in enumerate(BAD_KINDS)
    }
    m, r = meters.n_meters, grid.n_readings
    decimals = cfg.register_decimals if cfg.reading_kind == "register" else 3
    customers = np.flatnonzero(meters.role == ROLE_CUSTOMER)
    n_unknown = counts["unknown_meter"]
    # Real customer ids are C1000000..C9999999, so a leading zero is never in the topology.
    unknown = rng.choice(1_000_000, size=n_unknown, replace=False)
    extra_ids = np.array([f"C0{u:06d}" for u in unknown.tolist()], dtype=object)
    meter: list[int] = []
    ts_ns: list[int] = []
    value: list[float] = []
    received: list[int] = []
    raw: list[dict[str, object]] = []
    for k in BAD_KINDS:
        for j in range(counts[k]):
            rd = int(rng.integers(0, r))
            who = int(rng.choice(customers))
            when = int(grid.reading_end_ns[rd])
            arrive = when + int(_seconds(rng.uniform(1.0, 15.0) * NS_PER_MIN))
            plausible = float(meters.values[who, rd])
            if k in ("malformed_ts", "non_numeric"):
                raw.append(
                    {
                        "meter_id": str(meters.meter_ids[who]),
                        "ts": MALFORMED_TS[j % len(MALFORMED_TS)]
                        if k == "malformed_ts"
                        else str(iso_strings(np.array([when]), cfg.tz)[0]),
                        value_col: NON_NUMERIC[j % len(NON_NUMERIC)]
                        if k == "non_numeric"
                        else f"{plausible:.{decimals}f}",
                        "problem": k,
                        "received_at": arrive,
                    }
                )
                continue
            if k == "unknown_meter":
                meter.append(m + j)
                value.append(plausible)
            elif k == "negative_value":
                meter.append(who)
                value.append(-round(float(rng.uniform(0.5, 500.0)), decimals))
            else:  # future_ts: the meter clock jumps years ahead
                meter.append(who)
                value.append(plausible)
                when += int(rng.choice([1, 10, 30])) * 365 * NS_PER_DAY
            ts_ns.append(when)
            received.append(arrive)
    by_arrival = np.argsort(np.array(received, dtype=np.int64), kind="stable")
    frame = pd.DataFrame(raw, columns=["meter_id", "ts", value_col, "problem", "received_at"])
    frame["received_at"] = to_timestamps(frame["received_at"].to_numpy(np.int64), cfg.tz)
    frame = frame.sort_values("received_at", kind="stable").reset_index(drop=True)
    return BadRows(
        counts=counts,
        extra_ids=extra_ids,
        meter=np.array(meter, dtype=np.int64)[by_arrival],
        ts_ns=np.array(ts_ns, dtype=np.int64)[by_arrival],
        value=np.array(value, dtype=np.float64)[by_arrival],
        received_ns=np.array(received, dtype=np.int64)[by_arrival],
        raw=frame,
    )


def _voltage_seen(anomalies: Anomalies, grid: TimeGrid) -> FloatArray:
    """(C, R) share of its true voltage each customer's meter sees at each reading:
    1 but after a voltage- or phase-loss fault (a reading covering the fault's first
    step already sees it)."""
    after = grid.reading_last_step[None, :] >= anomalies.voltage_from_step[:, None]
    faulty = (anomalies.voltage_from_step >= 0)[:, None] & after
    return np.where(faulty, anomalies.voltage_factor[:, None], 1.0)
