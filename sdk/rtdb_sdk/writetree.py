"""Pending writes: the user's writes not yet acknowledged, in order, indexed by path.

The visible value at a path is the server's value there with every pending write
that overlaps the path applied in write order (:meth:`WriteTree.overlay`). A
merge is a set of independent sets at ``path + relative path`` that share one
write id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from rtdb.core.path import Path
from rtdb_sdk.nodetree import get_node, set_node

Node = object


@dataclass(slots=True)
class Write:
    """One pending user write. ``node`` for a set; ``children`` (relative path → node) for a merge.
    ``raw`` is what goes on the wire (server values unresolved)."""

    id: int
    path: Path
    node: Node = None
    children: dict[Path, Node] | None = None
    raw: object = None

    def entries(self) -> Iterator[tuple[Path, Node]]:
        """Every ``(absolute path, node)`` this write sets."""
        if self.children is None:
            yield self.path, self.node
        else:
            for rel, node in self.children.items():
                yield self.path + rel, node


@dataclass(slots=True)
class _Trie:
    ids: list[int] = field(default_factory=list)
    kids: dict[str, _Trie] = field(default_factory=dict)


class WriteTree:
    __slots__ = ("_root", "_writes")

    def __init__(self) -> None:
        self._writes: dict[int, Write] = {}
        self._root = _Trie()

    def __len__(self) -> int:
        return len(self._writes)

    def __iter__(self) -> Iterator[Write]:
        return iter(list(self._writes.values()))

    def __contains__(self, write_id: int) -> bool:
        return write_id in self._writes

    def get(self, write_id: int) -> Write | None:
        return self._writes.get(write_id)

    def add(self, write: Write) -> None:
        if self._writes and write.id <= next(reversed(self._writes)):
            raise ValueError("write ids must increase")
        self._writes[write.id] = write
        for path, _ in write.entries():
            trie = self._root
            for key in path:
                trie = trie.kids.setdefault(key, _Trie())
            trie.ids.append(write.id)

    def remove(self, write_id: int) -> Write | None:
        write = self._writes.pop(write_id, None)
        if write is None:
            return None
        for path, _ in write.entries():
            chain = [self._root]
            for key in path:
                nxt = chain[-1].kids.get(key)
                if nxt is None:
                    break
                chain.append(nxt)
            else:
                chain[-1].ids.remove(write_id)
                for depth in range(len(path), 0, -1):
                    node = chain[depth]
                    if node.ids or node.kids:
                        break
                    del chain[depth - 1].kids[path[depth - 1]]
        return write

    def overlapping(self, path: Path) -> list[Write]:
        """Pending writes at, above or below ``path``, in write order."""
        ids: set[int] = set()
        trie: _Trie | None = self._root
        for key in path:
            assert trie is not None
            ids.update(trie.ids)
            trie = trie.kids.get(key)
            if trie is None:
                break
        if trie is not None:
            stack = [trie]
            while stack:
                t = stack.pop()
                ids.update(t.ids)
                stack.extend(t.kids.values())
        return [self._writes[i] for i in sorted(ids)]

    def has_below(self, path: Path) -> bool:
        """Whether any pending write touches ``path`` or a path below it."""
        trie: _Trie | None = self._root
        for key in path:
            assert trie is not None
            trie = trie.kids.get(key)
            if trie is None:
                return False
        return trie is not None and (bool(trie.ids) or bool(trie.kids))

    def covers(self, path: Path) -> bool:
        """Whether a pending write sets ``path`` or an ancestor entirely (its value is known)."""
        trie: _Trie | None = self._root
        for key in path:
            assert trie is not None
            if trie.ids:
                return True
            trie = trie.kids.get(key)
            if trie is None:
                return False
        return trie is not None and bool(trie.ids)

    def overlay(self, base: Node, path: Path) -> Node:
        """``base`` (the server's node at ``path``) with the pending writes applied."""
        node = base
        n = len(path)
        for write in self.overlapping(path):
            for at, value in write.entries():
                if at[:n] == path:
                    node = set_node(node, at[n:], value)
                elif path[: len(at)] == at:
                    node = get_node(value, path[len(at) :])
        return node
