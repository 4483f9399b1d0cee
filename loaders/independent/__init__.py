"""A test grid built from models this team did not write (optional extra ``independent``).

Household demand from the CREST stochastic model (richardsonpy) or SimBench's measured
profiles, AC power flow (pandapower) on published German LV reference networks (Kerber's,
SimBench's), and meter-side thefts, faults
and registry errors, written in the replay data contract. Its purpose is to check the
detectors on shapes and physics nobody here tuned them to (docs/detection.md).

    pip install 'lineloss[independent]'
"""

from loaders.independent._anomalies import FAULT_KINDS, THEFT_KINDS
from loaders.independent._generate import (
    DEFAULT_FEEDERS,
    IndependentGridConfig,
    generate_independent,
)
from loaders.independent._network import AREA_NETWORKS, is_area_network

__all__ = [
    "AREA_NETWORKS",
    "DEFAULT_FEEDERS",
    "FAULT_KINDS",
    "THEFT_KINDS",
    "IndependentGridConfig",
    "generate_independent",
    "is_area_network",
]
