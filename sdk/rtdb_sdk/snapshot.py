"""Data snapshots: immutable views of a node at a path, with children in query order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rtdb.core.path import Path
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node, children, priority_of, to_plain
from rtdb_sdk.nodetree import get_node

if TYPE_CHECKING:
    from rtdb_sdk.reference import Reference

DEFAULT_ORDER = QuerySpec()


class DataSnapshot:
    """The data at ``ref`` when the event fired (or ``get()`` returned)."""

    __slots__ = ("_node", "_spec", "ref")

    def __init__(self, ref: Reference, node: Node, spec: QuerySpec | None = None) -> None:
        self.ref = ref
        self._node = node
        self._spec = spec or DEFAULT_ORDER

    @property
    def key(self) -> str | None:
        return self.ref.key

    @property
    def path(self) -> Path:
        return self.ref.path

    def val(self) -> Any:
        """The value as plain Python (dicts, lists for array-like objects, leaves, ``None``)."""
        return to_plain(self._node)

    def export_val(self) -> Any:
        """The value with priorities (``.priority``/``.value``), as the export format has it."""
        return self._node

    def exists(self) -> bool:
        return self._node is not None

    @property
    def priority(self) -> str | int | float | None:
        p = priority_of(self._node)
        return p if isinstance(p, (str, int, float)) else None

    def child(self, path: str) -> DataSnapshot:
        ref = self.ref.child(path)
        return DataSnapshot(ref, get_node(self._node, ref.path[len(self.ref.path) :]))

    def has_child(self, path: str) -> bool:
        return self.child(path).exists()

    def has_children(self) -> bool:
        return bool(children(self._node))

    @property
    def size(self) -> int:
        return len(children(self._node))

    def __len__(self) -> int:
        return self.size

    def children(self) -> Iterator[DataSnapshot]:
        """The child snapshots in the query's order (priority, then key, by default)."""
        for key, node in self._spec.apply(children(self._node)):
            yield DataSnapshot(self.ref.child(key), node)

    def __iter__(self) -> Iterator[DataSnapshot]:
        return self.children()

    def __repr__(self) -> str:
        return f"DataSnapshot(key={self.key!r}, value={self.val()!r})"
