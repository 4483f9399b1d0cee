"""Test configuration. Factories live in tests/support/factories.py (on the pytest path).

Hypothesis explores new examples on every local run; CI (``CI`` set) runs a fixed,
derandomised set so that a green build is reproducible.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
