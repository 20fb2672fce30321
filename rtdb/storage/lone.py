"""Whether the request being served is all the event loop has to do.

A write is normally applied by its namespace's writer thread and its result handed
back to the event loop: two thread wake-ups, which on a small shared machine cost
about as much as the rest of a small write. When the transport knows the request
is the only thing the process serves (no other request under way, no WebSocket
open), nobody waits on the event loop while that write commits: the
transport sets :data:`ALONE` around the engine call, and a store whose writer
thread is idle with nothing queued applies and commits the write on the calling
thread (:meth:`rtdb.storage.sqlite.SqliteStore.write`). Order, group commit and
publish-before-ack are unchanged: only a write with nothing queued before it may
take that path, and it is published before it is acknowledged, as any other.

Reads take the same shortcut: a lone ``GET`` runs its read transaction on the calling
thread, on a reader connection of that thread's own, instead of a reader thread
(:meth:`rtdb.storage.sqlite.SqliteStore.read`).
"""

from __future__ import annotations

from contextvars import ContextVar

ALONE: ContextVar[bool] = ContextVar("rtdb_alone", default=False)
"""Set (in the request's task) by a transport whose request is the process's only work."""
