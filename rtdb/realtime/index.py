"""Listeners indexed by path: a trie with one node per path segment in use.

Given a written path, the listeners it concerns are found by walking the path
from the root (listeners at the path and its ancestors) and the trie below it
(listeners at descendants). Only trie nodes that hold listeners, or lead to
some, exist, so the cost follows the affected listeners, never all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from rtdb.core.path import Path

T = TypeVar("T")


class _Node(Generic[T]):
    __slots__ = ("children", "listeners")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.listeners: dict[T, None] = {}  # an ordered set


class PathIndex(Generic[T]):
    """A set of listeners (any hashable) per path."""

    __slots__ = ("_root", "_count")

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, path: Path, listener: T) -> None:
        node = self._root
        for key in path:
            child = node.children.get(key)
            if child is None:
                child = node.children[key] = _Node()
            node = child
        if listener not in node.listeners:
            node.listeners[listener] = None
            self._count += 1

    def remove(self, path: Path, listener: T) -> bool:
        trail: list[tuple[_Node[T], str]] = []
        node = self._root
        for key in path:
            child = node.children.get(key)
            if child is None:
                return False
            trail.append((node, key))
            node = child
        if listener not in node.listeners:
            return False
        del node.listeners[listener]
        self._count -= 1
        for parent, key in reversed(trail):  # prune nodes that lead nowhere
            child = parent.children[key]
            if child.listeners or child.children:
                break
            del parent.children[key]
        return True

    def at(self, path: Path) -> Iterator[T]:
        node = self._find(path)
        return iter(list(node.listeners)) if node is not None else iter(())

    def along(self, path: Path) -> Iterator[tuple[Path, T]]:
        """Listeners at the root, every ancestor of ``path`` and ``path`` itself."""
        node: _Node[T] | None = self._root
        depth = 0
        while node is not None:
            for listener in node.listeners:
                yield path[:depth], listener
            if depth == len(path):
                return
            node = node.children.get(path[depth])
            depth += 1

    def below(self, path: Path) -> Iterator[tuple[Path, T]]:
        """Listeners strictly below ``path`` (at any depth)."""
        start = self._find(path)
        if start is None:
            return
        stack: list[tuple[Path, _Node[T]]] = [(path + (k,), c) for k, c in reversed(start.children.items())]
        while stack:
            at, node = stack.pop()
            for listener in node.listeners:
                yield at, listener
            stack.extend((at + (k,), c) for k, c in reversed(node.children.items()))

    def between(self, top: Path, path: Path) -> Iterator[tuple[Path, T]]:
        """Listeners strictly below ``top`` down to and including ``path`` (``top`` must contain it)."""
        node = self._find(top)
        depth = len(top)
        while node is not None and depth < len(path):
            node = node.children.get(path[depth])
            depth += 1
            if node is not None:
                for listener in node.listeners:
                    yield path[:depth], listener

    def _find(self, path: Path) -> _Node[T] | None:
        node: _Node[T] | None = self._root
        for key in path:
            if node is None:
                return None
            node = node.children.get(key)
        return node
