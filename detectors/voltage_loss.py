"""Voltage loss (失压) and phase loss (断相) seen in the voltages meters report.

A meter records energy as the voltage at its terminals times the current through
it. When its voltage circuit loses a phase (a loose or burnt voltage link, a blown
PT fuse, or on purpose: the under-voltage theft, 欠压法), the meter keeps reporting,
but the voltage it sees, and with it the energy it records, falls while the other
meters on the same transformer still see the full voltage. A three-phase meter that
reports the mean of its phases shows about two thirds of its neighbours' voltage
with one phase gone; a voltage element gone entirely shows (nearly) none.

So the test compares each meter's voltage, part by part, with the median of the
area's meters in the same part (the transformer's voltage, its tap and the 10 kV
line's swing cancel out), and names a meter whose ratio sits below ``low_ratio``
(0.78: State Grid's voltage-loss threshold is 78 % of the reference voltage) for a
good share of the window, when the same meter stood at ``usual_min_ratio`` (0.9) or
more in its windows before the first low one (the first ``ref_windows`` of them)
and was hardly ever low there: the drop is
a change at the meter, not a house at the far end of a long cable (whose voltage
sags with the load at every evening peak and recovers at night).

What is not named:

* a part where several meters of the area are low together: a sagging or lost phase
  of the network (a broken neutral shifts one phase down and another up), seen by
  every meter on it;
* a meter low from the start (no normal past): a fault older than the history looks
  the same as a meter reporting on another base (a line voltage among phase
  voltages, 1/sqrt(3) of them) or a head-end writing 0 where a meter measures no
  voltage; the area balance and the events are left to see it.

The unbilled energy follows from the physics: a part recorded at a ratio ``r`` of
the true voltage recorded ``r`` of the true energy, so ``recorded x (1 / r - 1)``
is missing (``r`` floored at ``min_estimate_ratio``: a meter that sees no voltage
records about nothing, and the estimate would be a guess).

Pure functions over arrays: customers x parts voltages and profiles, as
``AreaWindow`` holds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors._stats import quiet_nanmedian

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class VoltageLossParams:
    low_ratio: float = 0.78
    usual_min_ratio: float = 0.9
    # The meter's usual ratio, from its windows before its first low one (at most
    # ``ref_windows``): a median of ``usual_min_ratio`` and at most
    # ``max_past_low_share`` of its parts low (a house at the end of a long cable
    # sags below ``low_ratio`` at every evening peak).
    ref_windows: int = 7
    max_past_low_share: float = 0.05
    # Share of the window's known parts that must be low, and at least this many.
    min_low_share: float = 0.25
    min_low_parts: int = 2
    min_peers: int = 3  # meters with a voltage in a part for it to have a reference
    # A part where more than this share of the reporting meters (and more than
    # ``max_low_meters``) are low belongs to the network, not to one meter.
    max_low_share: float = 0.1
    max_low_meters: int = 2
    # Median ratio of the low parts at or above this: one phase of three missing
    # from a mean (about 2/3); below it: the voltage element lost.
    phase_loss_ratio: float = 0.5
    min_estimate_ratio: float = 0.1


@dataclass(frozen=True)
class VoltageLoss:
    customer: int
    ratio: float  # median of the meter's voltage / its peers' over its low parts
    low_parts: int
    known_parts: int
    usual_ratio: float  # its voltage / its peers' before its first low window
    unbilled_kwh: float
    kind: str  # "phase_loss" (about 2/3 of the peers' voltage) or "voltage_loss"


def peer_ratios(voltage_v: npt.NDArray[np.floating], p: VoltageLossParams) -> FloatArray:
    """Customers x parts: each meter's voltage over the median of the area's meters
    in that part. NaN where the meter has no voltage, where fewer than
    ``min_peers`` meters have one, and in parts where many meters are low together
    (the network's, not a meter's)."""
    v = voltage_v.astype(np.float64)
    known = np.isfinite(v)
    ref = quiet_nanmedian(v, axis=0)
    enough = (known.sum(axis=0) >= p.min_peers) & (ref > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(known & enough[None, :], v / np.where(enough, ref, 1.0)[None, :], np.nan)
    low = r < p.low_ratio
    n_low = low.sum(axis=0)
    network = (n_low > p.max_low_meters) & (n_low > p.max_low_share * known.sum(axis=0))
    r[:, network] = np.nan
    return r


def voltage_losses(
    voltages: Sequence[npt.NDArray[np.floating] | None],
    profile_kwh: npt.NDArray[np.floating] | None,
    p: VoltageLossParams,
) -> list[VoltageLoss]:
    """The meters of the last window (``voltages[-1]``, customers x parts) whose
    voltage fell well below their peers'; the earlier windows (None where a window
    has no voltages) give each meter's usual ratio. ``profile_kwh`` (customers x
    parts of the last window) gives the unbilled estimate; without it, 0."""
    today = voltages[-1]
    if today is None or today.size == 0:
        return []
    shape = today.shape
    past = [v for v in voltages[:-1] if v is not None and v.shape[0] == shape[0]]
    r = peer_ratios(today, p)
    known = np.isfinite(r).sum(axis=1)
    low = r < p.low_ratio
    n_low = low.sum(axis=1)
    hit = _low_window(n_low, known, p)
    if not hit.any() or not past:
        return []
    # Each meter's usual ratio from its windows before its first low one (at most
    # ``ref_windows``): a fault that began inside the first week leaves the windows
    # before it as the reference.
    past_r = [peer_ratios(v, p) for v in past]
    w_known = np.stack([np.isfinite(x).sum(axis=1) for x in past_r])  # windows x customers
    w_low = np.stack([(x < p.low_ratio).sum(axis=1) for x in past_r])
    with np.errstate(all="ignore"):
        w_median = np.stack([quiet_nanmedian(x, axis=1) for x in past_r])
    w_idx = np.arange(len(past))[:, None]
    was_low = _low_window(w_low, w_known, p)
    onset = np.where(was_low.any(axis=0), np.argmax(was_low, axis=0), len(past))
    ref = (w_idx < np.minimum(onset, p.ref_windows)[None, :]) & (w_known > 0)
    ref_known = np.where(ref, w_known, 0).sum(axis=0)
    with np.errstate(all="ignore"):
        usual = quiet_nanmedian(np.where(ref, w_median, np.nan), axis=0)
        ref_low = np.where(ref, w_low, 0).sum(axis=0) / ref_known
    hit &= (ref_known > 0) & (usual >= p.usual_min_ratio) & (ref_low <= p.max_past_low_share)
    out = []
    for i in np.flatnonzero(hit):
        ratio = float(np.median(r[i, low[i]]))
        unbilled = 0.0
        if profile_kwh is not None and profile_kwh.shape == shape:
            e = profile_kwh[i, low[i]].astype(np.float64)
            floor = np.maximum(r[i, low[i]], p.min_estimate_ratio)
            unbilled = float(np.nansum(e * (1.0 / floor - 1.0)))
        out.append(
            VoltageLoss(
                customer=int(i),
                ratio=ratio,
                low_parts=int(n_low[i]),
                known_parts=int(known[i]),
                usual_ratio=float(usual[i]),
                unbilled_kwh=round(unbilled, 3),
                kind="phase_loss" if ratio >= p.phase_loss_ratio else "voltage_loss",
            )
        )
    return out


def _low_window(
    n_low: npt.NDArray[np.integer], known: npt.NDArray[np.integer], p: VoltageLossParams
) -> npt.NDArray[np.bool_]:
    """A meter's window is low when at least ``min_low_share`` of its known parts
    (and ``min_low_parts``) are below ``low_ratio`` of its peers."""
    return (n_low >= p.min_low_parts) & (n_low >= p.min_low_share * np.maximum(known, 1))
