"""A map from paths to values that finds the entries above and below a path fast: a trie
with one node per path segment in use, so the cost of a lookup follows the entries it
finds, never the size of the map. The server's listener index and the SDK's views and
caches are built on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from rtdb.core.path import Path

T = TypeVar("T")

_MISSING = object()


class _Node:
    __slots__ = ("kids", "value")

    def __init__(self) -> None:
        self.value: object = _MISSING
        self.kids: dict[str, _Node] = {}


class PathMap(Generic[T]):
    __slots__ = ("_root", "_size")

    def __init__(self) -> None:
        self._root = _Node()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _find(self, path: Path) -> _Node | None:
        node: _Node | None = self._root
        for key in path:
            assert node is not None
            node = node.kids.get(key)
            if node is None:
                return None
        return node

    def get(self, path: Path) -> T | None:
        node = self._find(path)
        if node is None or node.value is _MISSING:
            return None
        return node.value  # type: ignore[return-value]

    def set(self, path: Path, value: T) -> None:
        node = self._root
        for key in path:
            nxt = node.kids.get(key)
            if nxt is None:
                nxt = node.kids[key] = _Node()
            node = nxt
        if node.value is _MISSING:
            self._size += 1
        node.value = value

    def pop(self, path: Path) -> T | None:
        chain = [self._root]
        for key in path:
            nxt = chain[-1].kids.get(key)
            if nxt is None:
                return None
            chain.append(nxt)
        value = chain[-1].value
        if value is _MISSING:
            return None
        chain[-1].value = _MISSING
        self._size -= 1
        for depth in range(len(path), 0, -1):
            node = chain[depth]
            if node.value is not _MISSING or node.kids:
                break
            del chain[depth - 1].kids[path[depth - 1]]
        return value  # type: ignore[return-value]

    def ancestors(self, path: Path) -> Iterator[tuple[Path, T]]:
        """Entries at ``path`` and above it, shallowest first."""
        node: _Node | None = self._root
        for depth in range(len(path) + 1):
            assert node is not None
            if node.value is not _MISSING:
                yield path[:depth], node.value  # type: ignore[misc]
            if depth == len(path):
                return
            node = node.kids.get(path[depth])
            if node is None:
                return

    def has_ancestor_or_self(self, path: Path) -> bool:
        return next(self.ancestors(path), None) is not None

    def descendants(self, path: Path) -> Iterator[tuple[Path, T]]:
        """Entries strictly below ``path``, depth first, children in insertion order."""
        top = self._find(path)
        if top is None:
            return
        stack = [(path + (k,), n) for k, n in reversed(top.kids.items())]
        while stack:
            at, node = stack.pop()
            if node.value is not _MISSING:
                yield at, node.value  # type: ignore[misc]
            stack.extend((at + (k,), n) for k, n in reversed(node.kids.items()))

    def between(self, top: Path, path: Path) -> Iterator[tuple[Path, T]]:
        """Entries strictly below ``top`` down to and including ``path`` (``top`` must contain it)."""
        node = self._find(top)
        for depth in range(len(top), len(path)):
            if node is None:
                return
            node = node.kids.get(path[depth])
            if node is not None and node.value is not _MISSING:
                yield path[: depth + 1], node.value  # type: ignore[misc]

    def items(self) -> Iterator[tuple[Path, T]]:
        if self._root.value is not _MISSING:
            yield (), self._root.value  # type: ignore[misc]
        yield from self.descendants(())
