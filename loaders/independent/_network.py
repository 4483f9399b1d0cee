"""Grid physics by AC power flow (pandapower) on published low-voltage networks.

Each transformer area is one of the LV networks that ship with pandapower (Kerber's
reference networks for German rural, village and suburban grids and their "extreme"
variants, Lindner's synthetic voltage-control networks) or one of SimBench's LV grids
(``simbench:1-LV-rural1--0-sw`` etc., their PV and storage left out): real cable and
overhead-line types and lengths, one load per house. The area meter (台区总表) sits at the
transformer's LV terminals, as in State Grid practice, so the area's loss is its lines'
I²R loss plus the customer meters' own consumption; the transformer's iron and copper
losses appear one level up, in the feeder's balance, with the MV cable losses from a
second power flow over the feeder.

A step is one 15-minute interval solved at its mean powers; the losses of the power's
variation inside the interval (I²R of the fluctuation) are not modelled, so the
technical loss is slightly low.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from loaders.independent._simbench import is_simbench, is_simbench_lv, simbench_net

FloatArray = npt.NDArray[np.float64]

# LV networks an area can be: name -> pandapower.networks factory name.
AREA_NETWORKS: dict[str, str] = {
    "kerber_dorfnetz": "create_kerber_dorfnetz",
    "kerber_vorstadtnetz_kabel_1": "create_kerber_vorstadtnetz_kabel_1",
    "kerber_vorstadtnetz_kabel_2": "create_kerber_vorstadtnetz_kabel_2",
    "kb_extrem_dorfnetz_trafo": "kb_extrem_dorfnetz_trafo",
    "kb_extrem_vorstadtnetz_trafo_1": "kb_extrem_vorstadtnetz_trafo_1",
    "kb_extrem_landnetz_kabel": "kb_extrem_landnetz_kabel",
    "kerber_landnetz_freileitung_1": "create_kerber_landnetz_freileitung_1",
    "kerber_landnetz_kabel_2": "create_kerber_landnetz_kabel_2",
}
METER_SELF_CONSUMPTION_W = 1.5  # an electronic meter's own draw, upstream of its register
_MV_CABLE = "NA2XS2Y 1x185 RM/25 12/20 kV"
# Reuse the admittance matrix step after step, but take each step's slack voltage
# ("gen": the ext_grid setpoint) and loads ("bus_pq"): with "gen" off pandapower keeps
# the first solve's slack voltage for good, and the busbar's daily swing and the MV
# drop never reached the houses (every independent grid before session 27).
_RECYCLE = {"trafo": False, "gen": True, "bus_pq": True}


def _pandapower() -> tuple[Any, Any, Any]:
    try:
        import pandapower
        import pandapower.networks
        import pandapower.toolbox
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the independent grid needs richardsonpy and pandapower: "
            "pip install 'lineloss[independent]'"
        ) from exc
    return pandapower, pandapower.networks, pandapower.toolbox


def _numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _run(pp: Any, net: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, numba=_numba(), recycle=_RECYCLE, init="results")


@dataclass(frozen=True)
class Transformer:
    """Nameplate of an area's distribution transformer (from the network's data)."""

    sn_kva: float
    iron_loss_kw: float  # no-load loss, always on
    vkr_percent: float  # copper loss at rated load, % of rating
    vk_percent: float
    i0_percent: float

    def hv_side(self, p_lv_w: float, q_lv_var: float) -> tuple[float, float]:
        """Power drawn at the MV terminals for a given LV output [W, var]."""
        load = math.hypot(p_lv_w, q_lv_var) / (1000.0 * self.sn_kva)
        vkx = math.sqrt(max(self.vk_percent**2 - self.vkr_percent**2, 0.0))
        p_w = p_lv_w + 1000.0 * (self.iron_loss_kw + self.vkr_percent / 100 * self.sn_kva * load**2)
        q_var = q_lv_var + 1000.0 * self.sn_kva * (self.i0_percent + vkx * load**2) / 100
        return p_w, q_var

    def lv_voltage_pu(self, mv_pu: float, p_lv_w: float, q_lv_var: float, tap: float) -> float:
        """LV busbar voltage: MV voltage times the tap ratio minus the series drop."""
        vkx = math.sqrt(max(self.vk_percent**2 - self.vkr_percent**2, 0.0))
        drop = (self.vkr_percent * p_lv_w + vkx * q_lv_var) / (100.0 * 1000.0 * self.sn_kva)
        return mv_pu * tap - drop


@dataclass
class AreaNetwork:
    """One LV network, fed from its transformer's LV busbar (the slack)."""

    name: str
    net: Any
    transformer: Transformer
    load_buses: npt.NDArray[np.int64]
    tap: float
    _pp: Any = field(repr=False)
    # The published load profile of each house, where the network names one (SimBench).
    load_profiles: tuple[str, ...] = ()

    @property
    def n_customers(self) -> int:
        return len(self.load_buses)

    def solve(
        self, p_w: FloatArray, q_var: FloatArray, slack_pu: float
    ) -> tuple[float, float, FloatArray]:
        """Power flow at the given house loads [W, var]: (P, Q at the area meter, house
        voltages [pu])."""
        self.net.load["p_mw"] = p_w / 1e6
        self.net.load["q_mvar"] = q_var / 1e6
        self.net.ext_grid["vm_pu"] = slack_pu
        _run(self._pp, self.net)
        p_mw = float(self.net.res_ext_grid["p_mw"].iloc[0])
        q_mvar = float(self.net.res_ext_grid["q_mvar"].iloc[0])
        vm = self.net.res_bus["vm_pu"].to_numpy()[self.load_buses]
        p_meter_w = 1e6 * p_mw + METER_SELF_CONSUMPTION_W * self.n_customers
        return p_meter_w, 1e6 * q_mvar, vm


def is_area_network(name: str) -> bool:
    """Whether ``area_network`` knows ``name``: one of ``AREA_NETWORKS`` or a SimBench
    LV grid (``simbench:<LV code>``)."""
    return name in AREA_NETWORKS or is_simbench_lv(name)


def area_network(name: str, tap: float = 1.025) -> AreaNetwork:
    """The named LV network (one of ``AREA_NETWORKS`` or ``simbench:<LV code>``) with
    its transformer replaced by a slack at the LV busbar and without generators."""
    pp, networks, toolbox = _pandapower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if is_simbench(name):
            net = simbench_net(name)
        else:
            factory: Callable[[], Any] = getattr(networks, AREA_NETWORKS[name])
            net = factory()
    if len(net.trafo) != 1:
        raise ValueError(f"{name}: an area has one transformer, this network {len(net.trafo)}")
    trafo = net.trafo.iloc[0]
    transformer = Transformer(
        sn_kva=1000.0 * float(trafo["sn_mva"]),
        iron_loss_kw=float(trafo["pfe_kw"]),
        vkr_percent=float(trafo["vkr_percent"]),
        vk_percent=float(trafo["vk_percent"]),
        i0_percent=float(trafo["i0_percent"]),
    )
    lv_bus, hv_bus = int(trafo["lv_bus"]), int(trafo["hv_bus"])
    toolbox.drop_buses(net, [hv_bus], drop_elements=True)  # with its ext_grid and trafo
    pp.create_ext_grid(net, lv_bus, vm_pu=1.0)
    for kind in ("sgen", "storage", "gen"):  # SimBench's PV and batteries: not modelled
        table = getattr(net, kind, None)
        if table is not None and len(table):
            table.drop(table.index, inplace=True)
    net.load.reset_index(drop=True, inplace=True)
    buses = net.bus.index.get_indexer(net.load["bus"].to_numpy())
    profiles = tuple(str(p) for p in net.load["profile"]) if "profile" in net.load else ()
    return AreaNetwork(name, net, transformer, buses.astype(np.int64), tap, pp, profiles)


@dataclass
class FeederNetwork:
    """A 10 kV cable feeder from the substation busbar through its areas' transformers."""

    net: Any
    area_buses: list[int]
    _pp: Any = field(repr=False)

    def solve(
        self, p_w: FloatArray, q_var: FloatArray, source_pu: float
    ) -> tuple[float, FloatArray]:
        """(P at the feeder head meter [W], MV voltage at each area [pu])."""
        self.net.load["p_mw"] = p_w / 1e6
        self.net.load["q_mvar"] = q_var / 1e6
        self.net.ext_grid["vm_pu"] = source_pu
        _run(self._pp, self.net)
        head_w = 1e6 * float(self.net.res_ext_grid["p_mw"].iloc[0])
        return head_w, self.net.res_bus["vm_pu"].to_numpy()[self.area_buses]


def feeder_network(segment_km: FloatArray) -> FeederNetwork:
    """A radial cable with one area at the end of each segment (lengths in km)."""
    pp, _, _ = _pandapower()
    net = pp.create_empty_network()
    head = pp.create_bus(net, vn_kv=10.0)
    pp.create_ext_grid(net, head, vm_pu=1.0)
    prev, buses = head, []
    for km in segment_km:
        bus = pp.create_bus(net, vn_kv=10.0)
        pp.create_line(net, prev, bus, length_km=float(km), std_type=_MV_CABLE)
        pp.create_load(net, bus, p_mw=0.0, q_mvar=0.0)
        buses.append(int(bus))
        prev = bus
    positions = net.bus.index.get_indexer(buses)
    return FeederNetwork(net, [int(b) for b in positions], pp)


@dataclass(frozen=True)
class FeederFlows:
    """Power-flow results of one feeder, step by step (T steps)."""

    area_p_w: FloatArray  # (A, T) at each area meter (transformer LV terminals)
    head_p_w: FloatArray  # (T,) at the feeder head meter
    house_voltage_pu: list[FloatArray]  # per area (n_customers, T)


def simulate_feeder(
    areas: list[AreaNetwork],
    feeder: FeederNetwork,
    house_p_w: list[FloatArray],
    house_q_var: list[FloatArray],
    source_pu: FloatArray,
    progress: Callable[[int, int], None] | None = None,
) -> FeederFlows:
    """Solve every step: MV first with the houses' sum (plus the transformer) to place
    each area's voltage, then each LV network at that voltage, then the MV again with the
    areas' exact draw for the head meter."""
    n_t = len(source_pu)
    n_a = len(areas)
    area_p = np.zeros((n_a, n_t))
    head = np.zeros(n_t)
    volts = [np.zeros((a.n_customers, n_t)) for a in areas]
    hv_p = np.zeros(n_a)
    hv_q = np.zeros(n_a)
    for t in range(n_t):
        for i, a in enumerate(areas):
            hv_p[i], hv_q[i] = a.transformer.hv_side(
                float(house_p_w[i][:, t].sum()), float(house_q_var[i][:, t].sum())
            )
        _, mv_pu = feeder.solve(hv_p, hv_q, float(source_pu[t]))
        for i, a in enumerate(areas):
            p_guess, q_guess = house_p_w[i][:, t].sum(), house_q_var[i][:, t].sum()
            slack = a.transformer.lv_voltage_pu(float(mv_pu[i]), p_guess, q_guess, a.tap)
            p_lv, q_lv, vm = a.solve(house_p_w[i][:, t], house_q_var[i][:, t], slack)
            area_p[i, t] = p_lv
            volts[i][:, t] = vm
            hv_p[i], hv_q[i] = a.transformer.hv_side(p_lv, q_lv)
        head[t], _ = feeder.solve(hv_p, hv_q, float(source_pu[t]))
        if progress is not None and (t + 1) % 96 == 0:
            progress(t + 1, n_t)
    return FeederFlows(area_p, head, volts)
