"""Snapshot reads whose location is known when the rule compiles.

``newData.child('a/b').val()`` names one place relative to ``newData``: the
compiler resolves the ``child``/``parent`` chain once and the fast form reads
the tree at ``base + keys`` directly, without a :class:`Snapshot` per step.
Anything else (a child name computed at run time, a snapshot chosen by ``?:``)
keeps the general form. Each function here answers exactly what the matching
:class:`Snapshot` method answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from rtdb.core.path import Path, is_valid_key
from rtdb.rules import syntax as s
from rtdb.rules.errors import EvalError
from rtdb.rules.snapshot import Snapshot
from rtdb.rules.variables import Env

Fn = Callable[[Env], Any]

_BASES: dict[str, Callable[[Env], Snapshot]] = {
    "root": attrgetter("root"),
    "data": attrgetter("data"),
    "newData": attrgetter("new_data"),
}


@dataclass(frozen=True, slots=True)
class Location:
    """``base`` (a variable), ``ups`` times ``parent()``, then down ``keys``
    (``None``: a child name no key can have, a location that cannot exist)."""

    base: str
    ups: int
    keys: Path | None


def locate(e: s.Expr) -> Location | None:
    """The location a (type-checked) snapshot expression names, if it is static."""
    if isinstance(e, s.Name):
        return Location(e.name, 0, ()) if e.name in _BASES else None
    if not isinstance(e, s.Call) or not isinstance(e.callee, s.Member):
        return None
    inner = locate(e.callee.obj)
    if inner is None:
        return None
    name, args = e.callee.name, e.args
    if name == "child" and len(args) == 1 and isinstance(args[0], s.Literal) and isinstance(args[0].value, str):
        if inner.keys is None:
            return inner
        keys = child_keys(args[0].value)
        return Location(inner.base, inner.ups, None if keys is None else inner.keys + keys)
    if name == "parent" and not args:
        if inner.keys is None:
            return inner
        if inner.keys:
            return Location(inner.base, inner.ups, inner.keys[:-1])
        return Location(inner.base, inner.ups + 1, ())
    return None


def child_keys(sub: str) -> Path | None:
    """The keys ``child(sub)`` goes down, ``None`` where no such child can exist."""
    keys = tuple(k for k in sub.split("/") if k)
    if not keys or not all(is_valid_key(k) for k in keys):
        return None
    return keys


def _where(loc: Location) -> Callable[[Env], tuple[Snapshot, Path | None]]:
    """The tree (as the base snapshot) and the absolute path of ``loc`` at run time."""
    base, ups, keys = _BASES[loc.base], loc.ups, loc.keys

    def where(env: Env) -> tuple[Snapshot, Path | None]:
        snap = base(env)
        path = snap.path
        if path is None:
            return snap, None
        if ups:
            if len(path) < ups:
                raise EvalError("parent() of the root")
            path = path[: len(path) - ups]
        return snap, None if keys is None else path + keys

    return where


def located_call(loc: Location, method: str, names: list[str] | None) -> Fn | None:
    """The fast form of ``<loc>.method(...)``; ``names`` are the literal child
    names of ``hasChild``/``hasChildren([...])``. ``None``: no fast form."""
    if loc.ups == 0 and loc.keys is not None:
        return _direct(_BASES[loc.base], loc.keys, method, names)
    where = _where(loc)
    read = _READS.get(method)
    if read is not None:
        r = read

        def located(env: Env) -> Any:
            snap, path = where(env)
            return r(snap, path)

        return located
    if method in ("hasChild", "hasChildren") and names is not None:
        wanted = _wanted(names)

        def has(env: Env) -> bool:
            snap, path = where(env)
            return path is not None and wanted is not None and _has_all(snap, path, wanted)

        return has
    return None


def _wanted(names: list[str]) -> list[Path] | None:
    """The key paths ``hasChildren(names)`` needs; ``None`` if one can never exist."""
    wanted = []
    for name in names:
        keys = child_keys(name)
        if keys is None:
            return None
        wanted.append(keys)
    return wanted


def _has_all(snap: Snapshot, path: Path, wanted: list[Path]) -> bool:
    exists = snap.tree.exists_below
    for keys in wanted:
        if not exists(path, keys):
            return False
    return True


def _val(snap: Snapshot, path: Path | None) -> Any:
    return None if path is None else snap.tree.leaf(path)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_READS: dict[str, Callable[[Snapshot, Path | None], Any]] = {
    "val": _val,
    "exists": lambda snap, path: path is not None and snap.tree.exists(path),
    "getPriority": lambda snap, path: None if path is None else snap.tree.priority(path),
    "isString": lambda snap, path: isinstance(_val(snap, path), str),
    "isNumber": lambda snap, path: _is_number(_val(snap, path)),
    "isBoolean": lambda snap, path: isinstance(_val(snap, path), bool),
}


def _direct(base: Callable[[Env], Snapshot], keys: Path, method: str, names: list[str] | None) -> Fn | None:
    """The common case: ``keys`` below a variable's own location, no ``parent()``."""
    if method == "val":

        def val(env: Env) -> Any:
            snap = base(env)
            return snap.tree.leaf_below(snap.path, keys)  # type: ignore[arg-type]

        return val
    if method == "exists":

        def exists(env: Env) -> bool:
            snap = base(env)
            return snap.tree.exists_below(snap.path, keys)  # type: ignore[arg-type]

        return exists
    if method == "isString":

        def is_string(env: Env) -> bool:
            snap = base(env)
            return isinstance(snap.tree.leaf_below(snap.path, keys), str)  # type: ignore[arg-type]

        return is_string
    if method == "isNumber":

        def is_number(env: Env) -> bool:
            snap = base(env)
            return _is_number(snap.tree.leaf_below(snap.path, keys))  # type: ignore[arg-type]

        return is_number
    if method in ("hasChild", "hasChildren") and names is not None:
        wanted = _wanted(names)
        if wanted is None:
            return lambda env: False
        if keys:
            wanted = [keys + w for w in wanted]
        below = wanted

        def has(env: Env) -> bool:
            snap = base(env)
            return _has_all(snap, snap.path, below)  # type: ignore[arg-type]

        return has
    if method == "hasChildren":

        def has_children(env: Env) -> bool:
            snap = base(env)
            return snap.tree.has_children(snap.path + keys)  # type: ignore[operator]

        return has_children
    return _general(base, keys, method)


def _general(base: Callable[[Env], Snapshot], keys: Path, method: str) -> Fn | None:
    read = _READS.get(method)
    if read is None:
        return None
    r = read

    def located(env: Env) -> Any:
        snap = base(env)
        return r(snap, snap.path + keys)  # type: ignore[operator]

    return located
