"""Transactions, as the JS SDK runs them (wire spec 10.1).

A value listener keeps the location in the mirror. The update function runs on
the local (visible) value; its result is applied locally as a pending write and
sent as a put carrying the hash of the server value it was computed from. The
server answers ``ok`` (committed) or ``datastale`` (someone wrote first): the
local write is reverted and the function reruns on the newer data, up to 25
times. A put lost with the socket is rerun once the connection is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rtdb.core import path as paths
from rtdb.core.hash import node_hash
from rtdb.core.path import Path
from rtdb.core.value import Node, priority_of, to_plain, with_priority
from rtdb.protocol.client import request_path
from rtdb.protocol.query import DEFAULT_QUERY_ID
from rtdb_sdk.errors import MaxRetries, error_for_status
from rtdb_sdk.events import Registration
from rtdb_sdk.repo import Repo, check_value, check_writable
from rtdb_sdk.servervalues import resolve_locally

MAX_ATTEMPTS = 25
FIRST_DATA_TIMEOUT_S = 5.0


class _Abort:
    """Return :data:`ABORT` from a transaction function to abort without writing."""

    _instance: _Abort | None = None

    def __new__(cls) -> _Abort:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "rtdb_sdk.ABORT"


ABORT = _Abort()


@dataclass(frozen=True, slots=True)
class TransactionOutcome:
    committed: bool
    node: Node


async def run_transaction(
    repo: Repo, path: Path, update: Callable[[Any], Any], *, apply_locally: bool = True
) -> TransactionOutcome:
    check_writable(path)
    first_data: asyncio.Future[None] = repo.loop.create_future()

    def on_value(_snapshot: Any) -> None:
        if not first_data.done():
            first_data.set_result(None)

    registration = Registration("value", on_value)
    repo.add_listener(path, None, DEFAULT_QUERY_ID, registration)
    try:
        if repo.conn.connected and not first_data.done():
            try:
                await asyncio.wait_for(asyncio.shield(first_data), FIRST_DATA_TIMEOUT_S)
            except TimeoutError:
                pass
        attempts = 0
        while True:
            current = repo.tree.visible(path)
            result = update(to_plain(current))
            if result is ABORT:
                return TransactionOutcome(False, current)
            node = check_value(result, path)
            prio = priority_of(current)
            if prio is not None and priority_of(node) is None:
                node = with_priority(node, prio)
            attempts += 1
            status, detail = await _attempt(repo, path, node, apply_locally)
            if status == "ok":
                return TransactionOutcome(True, repo.tree.visible(path))
            if status == "disconnect":
                attempts -= 1
                await repo.conn.wait_connected()
                continue
            if status != "datastale":
                raise error_for_status(status, detail, path=paths.to_str(path))
            if attempts >= MAX_ATTEMPTS:
                raise MaxRetries(
                    f"MAXRETRY: transaction at {paths.to_str(path)} failed {MAX_ATTEMPTS} times", status="maxretry"
                )
    finally:
        repo.remove_listener(path, DEFAULT_QUERY_ID, registration)


async def _attempt(repo: Repo, path: Path, node: Node, apply_locally: bool) -> tuple[str, Any]:
    stale_hash = node_hash(repo.tree.server_value(path))
    write_id = repo.next_write_id()
    if apply_locally:
        local = repo.tree.apply_user_set(write_id, path, repo_resolve(repo, node, path), raw=node)
        repo.queue.raise_events(local)
    answer = repo.request("txn", "p", {"p": request_path(path), "d": node, "h": stale_hash})
    status = "cancelled"
    try:
        status, detail = await answer
    finally:
        if apply_locally:
            repo.queue.raise_events(repo.tree.apply_ack(write_id, revert=status != "ok"))
    return status, detail


def repo_resolve(repo: Repo, node: Node, path: Path) -> Node:
    return resolve_locally(node, path, repo.now_ms(), repo.tree.visible)
