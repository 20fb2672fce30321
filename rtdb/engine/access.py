"""Access control as the engine sees it: a ruleset per namespace, admin bypass.

A namespace uses the rules deployed to it (``PUT /.settings/rules.json``,
persisted in its database file) or else the server's rules (``--rules FILE``,
hot-reloaded). With no rules file, production mode is closed to every non-admin
caller and emulator mode is open, as Google's emulator is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rtdb.core.auth import Caller
from rtdb.core.indexspec import index_child
from rtdb.core.path import Path
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node
from rtdb.rules import Decision, Ruleset
from rtdb.rules.ruleset import uncounted

log = logging.getLogger("rtdb.rules")

ADMIN_DECISION = Decision(True, ["admin credential: rules bypassed"])


class RulesAccess:
    def __init__(self, default: Ruleset) -> None:
        self.default = default
        self._namespaces: dict[str, Ruleset] = {}
        self._listeners: list[Callable[[str | None], None]] = []
        self.on_denied: Callable[[str, str, Path, Caller, list[str]], None] | None = None
        """Told of every denial, ``(ns, op, path, caller, trace)``, with the trace of the rules
        that decided (evaluated again with ``explain``: denials only pay for it). Called where
        the rules run, which may be a store's writer thread."""

    # -- which rules ---------------------------------------------------------------
    def ruleset(self, ns: str) -> Ruleset:
        return self._namespaces.get(ns, self.default)

    def set_default(self, ruleset: Ruleset) -> None:
        self.default = ruleset
        self._changed(None)

    def set_namespace(self, ns: str, ruleset: Ruleset) -> None:
        self._namespaces[ns] = ruleset
        self._changed(ns)

    def forget_namespace(self, ns: str) -> None:
        """The namespace was dropped: its deployed rules went with its file."""
        if self._namespaces.pop(ns, None) is not None:
            self._changed(ns)

    def on_change(self, callback: Callable[[str | None], None]) -> Callable[[], None]:
        """``callback(ns)`` after rules change (``None``: every namespace may be affected)."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _changed(self, ns: str | None) -> None:
        for callback in list(self._listeners):
            try:
                callback(ns)
            except Exception:
                log.exception("rules change listener failed")

    # -- decisions -----------------------------------------------------------------
    def can_read(self, ns: str, caller: Caller, path: Path, data: Any, now: int,
                 query: QuerySpec | None, *, explain: bool = False) -> Decision:
        if caller.admin:
            return ADMIN_DECISION
        rules = self.ruleset(ns)
        return self._decide(ns, "read", path, caller, explain, lambda explain: rules.can_read(
            path, auth=caller.auth, root=data, now=now, query=query, explain=explain))

    def can_write(self, ns: str, caller: Caller, path: Path, new: Node, data: Any, now: int, *,
                  explain: bool = False) -> Decision:
        if caller.admin:
            return ADMIN_DECISION
        rules = self.ruleset(ns)
        return self._decide(ns, "write", path, caller, explain, lambda explain: rules.can_write(
            path, new, auth=caller.auth, root=data, now=now, explain=explain))

    def can_update(self, ns: str, caller: Caller, path: Path, updates: dict[Path, Node], data: Any,
                   now: int, *, explain: bool = False) -> Decision:
        if caller.admin:
            return ADMIN_DECISION
        rules = self.ruleset(ns)
        return self._decide(ns, "update", path, caller, explain, lambda explain: rules.can_update(
            path, updates, auth=caller.auth, root=data, now=now, explain=explain))

    def _decide(self, ns: str, op: str, path: Path, caller: Caller, explain: bool,
                ask: Callable[[bool], Decision]) -> Decision:
        """``ask(explain)``; a denial is reported with the trace of the rules that decided,
        asked again with ``explain`` (uncounted: denials only pay for it)."""
        decision = ask(explain)
        if not decision.allowed and self.on_denied is not None and not explain:
            with uncounted():
                again = ask(True)
            self._denied(ns, op, path, caller, again)
        return decision

    def _denied(self, ns: str, op: str, path: Path, caller: Caller, decision: Decision) -> None:
        assert self.on_denied is not None
        try:
            self.on_denied(ns, op, path, caller, decision.trace)
        except Exception:  # noqa: BLE001 - reporting must never change the decision
            log.exception("reporting a denial failed")

    def declared_indexes(self, ns: str) -> list[tuple[Path, Path]]:
        """``(location pattern, child)`` for every ``.indexOn`` of the namespace's rules."""
        return [
            (pattern, index_child(child))
            for pattern, children in self.ruleset(ns).indexes()
            for child in children
        ]


def default_rules(*, emulator: bool) -> Ruleset:
    return Ruleset.open() if emulator else Ruleset.closed()
