"""Admin endpoints for a namespace as a whole (admins only: anyone else gets 401).

* ``DELETE /.namespace.json?ns=NAME``: drop the namespace. Its realtime clients are told
  its data is now ``null`` and disconnected (they reconnect and listen afresh), every
  process lets go of it and its files are deleted. Answers
  ``{"namespace": NAME, "dropped": true, "bytesFreed": N}`` (``dropped`` is ``false`` if
  it did not exist). A write afterwards creates it anew, as any first write does.
* ``POST /.compact.json?ns=NAME``: give the namespace's free pages back to the file
  system and truncate its WAL, between writes. Answers ``{"namespace": NAME,
  "bytesBefore": N, "bytesAfter": M, "pagesFreed": P, "autoVacuum": "incremental",
  "walTruncated": true}``; 404 if the namespace does not exist.
"""

from __future__ import annotations

from typing import Any

from rtdb.core.auth import Caller
from rtdb.core.errors import InvalidData, PermissionDenied
from rtdb.engine.engine import Engine

NAMESPACE_PATH = "/.namespace.json"
COMPACT_PATH = "/.compact.json"


async def handle(engine: Engine, raw_path: str, method: str, ns: str, caller: Caller) -> dict[str, Any]:
    """The answer to a request for :data:`NAMESPACE_PATH` or :data:`COMPACT_PATH`."""
    if not caller.admin:
        raise PermissionDenied("Permission denied")
    if raw_path == NAMESPACE_PATH:
        if method != "DELETE":
            raise InvalidData(f"Use DELETE on {NAMESPACE_PATH} to drop a namespace")
        freed = await engine.drop(ns, caller=caller)
        return {"namespace": ns, "dropped": freed is not None, "bytesFreed": freed or 0}
    if method != "POST":
        raise InvalidData(f"Use POST on {COMPACT_PATH}")
    report = await engine.compact(ns, caller=caller)
    return {"namespace": ns, **report.as_json()}
