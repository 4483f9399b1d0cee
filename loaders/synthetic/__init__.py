"""A seeded, vectorised synthetic distribution grid that writes the replay data contract.

>>> from loaders.synthetic import SyntheticGridConfig, generate_grid
>>> grid = generate_grid(SyntheticGridConfig(n_feeders=1, areas_per_feeder=2, days=2))
>>> sorted(grid.topology["role"].unique())
['area', 'customer', 'feeder']
"""

from loaders.synthetic._config import (
    CUSTOMER_CLASSES,
    FAULT_KINDS,
    OPTIONAL_FAULT_KINDS,
    THEFT_KINDS,
    SyntheticGrid,
    SyntheticGridConfig,
)
from loaders.synthetic._generate import generate_grid
from loaders.synthetic._write import write_grid

__all__ = [
    "CUSTOMER_CLASSES",
    "FAULT_KINDS",
    "OPTIONAL_FAULT_KINDS",
    "THEFT_KINDS",
    "SyntheticGrid",
    "SyntheticGridConfig",
    "generate_grid",
    "write_grid",
]
