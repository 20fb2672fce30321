"""Memory of one large write in the storage layer (a real SQLite file in tmp_path)."""

from __future__ import annotations

import sqlite3
import tracemalloc
from pathlib import Path

import msgspec

from rtdb.core.value import normalize
from rtdb.storage.txn import SCHEMA, Txn


def test_a_wide_write_does_not_hold_all_its_rows_at_once(tmp_path: Path) -> None:
    value = normalize({f"k{i:06d}": f"value {i:06d}" for i in range(60_000)})
    json_bytes = len(msgspec.json.encode(value))
    conn = sqlite3.connect(tmp_path / "ns.sqlite", isolation_level=None)
    conn.executescript(SCHEMA)
    txn = Txn(conn)
    conn.execute("BEGIN")
    tracemalloc.start()
    try:
        txn.set(("big",), value)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    conn.execute("COMMIT")
    assert conn.execute("SELECT count(*) FROM nodes").fetchone()[0] == 60_002  # root, big, the leaves
    conn.close()
    # All 60,000 rows at once take about nine times the JSON (tuples, path strings, sort
    # keys). Made a statement's worth at a time, what remains is mostly the bounded cache
    # of key sort bytes.
    assert peak < 2 * json_bytes, (peak, json_bytes)
