"""rtdb_sdk: a realtime Python client for rtdb (and the Firebase Realtime Database wire protocol).

Async first::

    async with rtdb_sdk.connect("http://127.0.0.1:9000?ns=demo") as db:
        ref = db.reference("rooms/lobby")
        await ref.set({"topic": "hello"})
        ref.on_value(lambda snap: print(snap.val()))

and a blocking facade for scripts and notebooks: :func:`connect_sync`.
"""

from rtdb_sdk.blocking import SyncDatabase, SyncQuery, SyncReference, connect_sync
from rtdb_sdk.database import Database, connect
from rtdb_sdk.errors import (
    Closed,
    DatabaseError,
    DataStale,
    Disconnected,
    InvalidArgument,
    InvalidToken,
    MaxRetries,
    Offline,
    PermissionDenied,
    TooBig,
    Unavailable,
)
from rtdb_sdk.reference import DataSnapshot, Listener, OnDisconnect, Query, Reference, SnapshotStream, TransactionResult
from rtdb_sdk.servervalues import SERVER_TIMESTAMP, increment
from rtdb_sdk.transaction import ABORT
from rtdb_sdk.ydoc import DocSession, open_doc  # Yjs documents (issue 16)

__all__ = [
    "DocSession",
    "open_doc",
    "ABORT",
    "SERVER_TIMESTAMP",
    "Closed",
    "DataSnapshot",
    "DataStale",
    "Database",
    "DatabaseError",
    "Disconnected",
    "InvalidArgument",
    "InvalidToken",
    "Listener",
    "MaxRetries",
    "Offline",
    "OnDisconnect",
    "PermissionDenied",
    "Query",
    "Reference",
    "SnapshotStream",
    "SyncDatabase",
    "SyncQuery",
    "SyncReference",
    "TooBig",
    "TransactionResult",
    "Unavailable",
    "connect",
    "connect_sync",
    "increment",
]
