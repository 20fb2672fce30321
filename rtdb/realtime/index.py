"""Listeners indexed by path: a :class:`~rtdb.core.pathmap.PathMap` of listener sets.

Given a written path, the listeners it concerns are found by walking the path
from the root (listeners at the path and its ancestors) and the trie below it
(listeners at descendants). Only trie nodes that hold listeners, or lead to
some, exist, so the cost follows the affected listeners, never all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from rtdb.core.path import Path
from rtdb.core.pathmap import PathMap

T = TypeVar("T")


class PathIndex(Generic[T]):
    """A set of listeners (any hashable) per path; each set keeps insertion order."""

    __slots__ = ("_map", "_count")

    def __init__(self) -> None:
        self._map: PathMap[dict[T, None]] = PathMap()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, path: Path, listener: T) -> None:
        listeners = self._map.get(path)
        if listeners is None:
            listeners = {}
            self._map.set(path, listeners)
        if listener not in listeners:
            listeners[listener] = None
            self._count += 1

    def remove(self, path: Path, listener: T) -> bool:
        listeners = self._map.get(path)
        if listeners is None or listener not in listeners:
            return False
        del listeners[listener]
        self._count -= 1
        if not listeners:
            self._map.pop(path)
        return True

    def at(self, path: Path) -> Iterator[T]:
        listeners = self._map.get(path)
        return iter(list(listeners)) if listeners is not None else iter(())

    def along(self, path: Path) -> Iterator[tuple[Path, T]]:
        """Listeners at the root, every ancestor of ``path`` and ``path`` itself."""
        for at, listeners in self._map.ancestors(path):
            for listener in listeners:
                yield at, listener

    def below(self, path: Path) -> Iterator[tuple[Path, T]]:
        """Listeners strictly below ``path`` (at any depth)."""
        for at, listeners in self._map.descendants(path):
            for listener in listeners:
                yield at, listener

    def between(self, top: Path, path: Path) -> Iterator[tuple[Path, T]]:
        """Listeners strictly below ``top`` down to and including ``path`` (``top`` must contain it)."""
        for at, listeners in self._map.between(top, path):
            for listener in listeners:
                yield at, listener
