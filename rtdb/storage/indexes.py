"""Declared indexes (``.indexOn``): a location pattern (``$`` segments match any key)
and the child each of its children is ordered by (``(".value",)`` orders by value)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rtdb.core.indexspec import VALUE, covers, is_wildcard, names
from rtdb.core.ordering import value_sort_bytes
from rtdb.core.path import Path
from rtdb.core.value import Node, child_at, children


@dataclass(frozen=True, slots=True)
class IndexDef:
    id: int
    pattern: Path
    child: Path

    def matches(self, path: Path) -> bool:
        return names(self.pattern, path)

    def matches_prefix(self, path: Path) -> bool:
        """Whether ``path`` is, or is an ancestor of, a location the pattern names."""
        return covers(self.pattern, path)

    def value_of(self, child_node: Node) -> Node:
        v = child_node if self.child == VALUE else child_at(child_node, self.child)
        return {"": 1} if children(v) else v


def index_rows_for(index: IndexDef, path: Path, node: Node) -> Iterator[tuple[Path, str, bytes]]:
    """``(parent, key, vsort)`` entries for every indexed location inside ``node`` stored at ``path``."""
    depth = len(index.pattern)
    if len(path) == depth:
        for key, child in children(node).items():
            yield path, key, value_sort_bytes(index.value_of(child))
        return
    segment = index.pattern[len(path)]
    kids = children(node)
    if is_wildcard(segment):
        for key, child in kids.items():
            yield from index_rows_for(index, path + (key,), child)
    elif segment in kids:
        yield from index_rows_for(index, path + (segment,), kids[segment])
