"""The PostgreSQL of the tests: 127.0.0.1:5432, database ``test`` (``RTDB_TEST_DATABASE_URL``
overrides). Every use gets a schema of its own, ``rtdb_test_<random>``, dropped afterwards;
nothing else in the database is touched. Without a reachable server the tests that need it
skip — unless ``RTDB_REQUIRE_SERVICES`` is set (CI), then they fail."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

BASE_URL = os.environ.get("RTDB_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")


def require() -> None:
    """Skip (or, with ``RTDB_REQUIRE_SERVICES``, fail) when PostgreSQL cannot be reached."""
    try:
        import psycopg
    except ImportError as exc:
        problem = f"psycopg is not installed: {exc}"
    else:
        try:
            psycopg.connect(BASE_URL, connect_timeout=3).close()
            return
        except psycopg.OperationalError as exc:
            problem = f"PostgreSQL at {BASE_URL} is unreachable: {exc}"
    if os.environ.get("RTDB_REQUIRE_SERVICES"):
        pytest.fail(problem + " (RTDB_REQUIRE_SERVICES is set)")
    pytest.skip(problem)


def url_for(schema: str) -> str:
    """``BASE_URL`` with ``schema`` as the connections' search path."""
    sep = "&" if "?" in BASE_URL else "?"
    return f"{BASE_URL}{sep}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A new empty schema (its name), dropped with everything in it afterwards."""
    require()
    import psycopg

    schema = f"rtdb_test_{secrets.token_hex(6)}"
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(BASE_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def fresh_url() -> Iterator[str]:
    """A database URL whose objects land in a fresh schema."""
    with fresh_schema() as schema:
        yield url_for(schema)
