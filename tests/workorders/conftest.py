"""Work-order fixtures: a suspicion factory, and the store under test on both
backends (SQLite in a temp file, and the real PostgreSQL that scripts/test starts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import postgres_schema_url, postgres_url  # noqa: F401  (fixtures)

from workorders.store import WorkOrderStore


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orders.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[WorkOrderStore]:
    with WorkOrderStore(store_url) as s:
        yield s
