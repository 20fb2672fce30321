"""Access control as the engine sees it: who may read and write where.

:class:`RulesAccess` enforces a compiled ruleset; until one is configured,
:class:`DefaultAccess` lets admins do everything and, in emulator mode only,
everyone else too (production mode refuses non-admin callers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from rtdb.core.auth import Caller
from rtdb.core.path import Path
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    trace: list[str] = field(default_factory=list)


ALLOW = Decision(True)
DENY = Decision(False, ["no rules configured: only admin credentials may read or write"])


class Access(Protocol):
    def can_read(self, caller: Caller, path: Path, data: Any, now: int, query: QuerySpec | None) -> Decision: ...

    def can_write(self, caller: Caller, path: Path, new: Node, data: Any, now: int) -> Decision: ...

    def can_update(self, caller: Caller, path: Path, updates: dict[Path, Node], data: Any, now: int) -> Decision: ...

    def declared_indexes(self) -> list[tuple[Path, Path]]: ...


class DefaultAccess:
    def __init__(self, *, open_to_all: bool) -> None:
        self.open_to_all = open_to_all

    def _decide(self, caller: Caller) -> Decision:
        return ALLOW if caller.admin or self.open_to_all else DENY

    def can_read(self, caller: Caller, path: Path, data: Any, now: int, query: QuerySpec | None) -> Decision:
        return self._decide(caller)

    def can_write(self, caller: Caller, path: Path, new: Node, data: Any, now: int) -> Decision:
        return self._decide(caller)

    def can_update(self, caller: Caller, path: Path, updates: dict[Path, Node], data: Any, now: int) -> Decision:
        return self._decide(caller)

    def declared_indexes(self) -> list[tuple[Path, Path]]:
        return []
