"""Fixtures for tests against the real PostgreSQL that scripts/test starts.

``postgres_url`` is the server from ``LINELOSS_POSTGRES_URL`` (default
postgresql://lineloss@127.0.0.1:55432/lineloss, what ``scripts/postgres-local start``
prints). If it does not answer, the test fails: these tests are never skipped,
because a skipped test would hide a broken deployment.

Each test gets its own schema (``postgres_schema_url``), dropped afterwards, so tests
and concurrent runs never see each other's tables. The URL it yields carries
``options=-csearch_path=<schema>``, which libpq (and so psycopg) sends as a startup
option: every connection made from that URL creates and finds unqualified tables in
the test's schema, with no code change in the store under test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

DEFAULT_URL = "postgresql://lineloss@127.0.0.1:55432/lineloss"


def reachable(url: str, timeout_s: int = 5) -> str | None:
    """None if ``select 1`` works on ``url``, else the reason it does not."""
    try:
        with psycopg.connect(url, connect_timeout=timeout_s) as conn:
            row = conn.execute("select 1").fetchone()
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None if row == (1,) else f"select 1 returned {row!r}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("LINELOSS_POSTGRES_URL", DEFAULT_URL)
    problem = reachable(url)
    if problem is not None:
        pytest.fail(
            f"PostgreSQL does not answer at {url} (LINELOSS_POSTGRES_URL): {problem}. "
            "These tests need the real server: run them through scripts/test, which "
            "starts it with scripts/postgres-local start.",
            pytrace=False,
        )
    return url


def with_search_path(url: str, schema: str) -> str:
    """``url`` with ``-csearch_path=<schema>`` added to its libpq ``options``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = " ".join(v for k, v in query if k == "options")
    options = f"{options} -csearch_path={schema}".strip()
    query = [(k, v) for k, v in query if k != "options"] + [("options", options)]
    # quote, not quote_plus: libpq decodes %20 but not '+' as a space.
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def fresh_schema(url: str, prefix: str = "lineloss_test") -> str:
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return schema


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        # A connection the test left open in a transaction would block the drop
        # forever; fail after a while instead.
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose connections use a new, empty schema; dropped after the test."""
    schema = fresh_schema(postgres_url)
    try:
        yield with_search_path(postgres_url, schema)
    finally:
        drop_schema(postgres_url, schema)
