"""One fixture for every store implementation: the storage tests run against each backend in
``BACKENDS`` (SQLite files today; a PostgreSQL store adds itself here)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from rtdb.storage.sqlite_backend import SqliteBackend
from rtdb.storage.store import Backend, Store

BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "sqlite": lambda data_dir: SqliteBackend(data_dir, synchronous="NORMAL"),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = backend.store("ns")
    await s.open()
    yield s
    await s.close()
