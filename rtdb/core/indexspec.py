"""What a declared index says, read one way everywhere: a location *pattern* (segments
starting with ``$`` match any key, as in the rules) and the *child* its children are
ordered by (``(".value",)`` orders them by their own value). ``.indexOn`` in the rules
and ``rtdb serve --index PATH:CHILD`` both come here."""

from __future__ import annotations

from rtdb.core import path as paths
from rtdb.core.path import Path
from rtdb.core.query import QuerySpec

VALUE: Path = (".value",)


def index_child(spec: str) -> Path:
    """The child an ``.indexOn`` entry names (``"a/b"`` → ``("a", "b")``, ``".value"`` →
    :data:`VALUE`). Its keys are not checked here: :func:`check_child` does that where bad
    input must be refused (``--index``)."""
    return VALUE if spec == ".value" else tuple(s for s in spec.split("/") if s)


def check_child(spec: str) -> Path:
    """:func:`index_child`, raising :class:`~rtdb.core.errors.InvalidPath` for a child that
    is not a valid path."""
    return VALUE if spec == ".value" else paths.parse(spec)


def child_spec(child: Path) -> str:
    """The inverse of :func:`index_child`: how ``.indexOn`` spells ``child``."""
    return ".value" if child == VALUE else "/".join(child)


def order_child(query: QuerySpec) -> Path | None:
    """The index child a query's order needs (``orderByValue`` → :data:`VALUE`); ``None``
    for key and priority orders, which need no index."""
    if query.order_by == "value":
        return VALUE
    return query.child if query.order_by == "child" else None


def is_wildcard(segment: str) -> bool:
    return segment.startswith("$")


def covers(pattern: Path, path: Path) -> bool:
    """Whether ``path`` is, or is an ancestor of, a location ``pattern`` names."""
    return len(path) <= len(pattern) and all(is_wildcard(p) or p == k for p, k in zip(pattern, path))


def names(pattern: Path, path: Path) -> bool:
    """Whether ``pattern`` names the location ``path`` itself."""
    return len(path) == len(pattern) and covers(pattern, path)
