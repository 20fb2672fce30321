"""Yjs documents inside the writer: the ``ydoc`` write command (issue 16).

``YdocCommand(path, items, now)`` (:mod:`rtdb.core.ipc`) takes a batch of Yjs updates for the
document at ``path``, each ``(update, caller)``, and in the writer's group transaction, for each
in order:

1. applies it to the writer's copy of the document (a pycrdt ``Doc``, loaded from the ``ydoc``
   rows through the same transaction, so it always matches what is stored);
2. computes the document's JSON mirror and asks the rules whether ``caller`` may write it at
   ``path`` (``newData`` is the mirror, so ``.validate`` rules constrain the document);
3. if allowed, stores the update as the document's next row; if refused (or the update or the
   mirror is invalid), drops the writer's copy, which is then reloaded from the rows: a refused
   update never reaches storage, the mirror or any peer.

After the batch the mirror is written once at ``path`` as an ordinary ``set`` (one ChangeSet for
every listener: REST, SSE, WebSocket, other workers). A document whose rows pass
:data:`COMPACT_ROWS` is compacted: its rows are replaced by one row holding the whole state,
numbered as the last row it covers, so row numbers only grow.

Yjs updates are idempotent: applying one that the document already holds changes nothing, so
a client resending its updates after a reconnect adds a redundant row at most (gone at the next
compaction), never a second copy of its edits.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Array, Doc, Map, Text

from rtdb.core import path as paths
from rtdb.core.errors import InvalidData, RtdbError
from rtdb.core.path import Path
from rtdb.core.value import Node, child_at, normalize, same
from rtdb.storage.store import Txn

COMPACT_ROWS = 1_000
"""Rows a document may have before its updates are merged into one snapshot row."""

DOCS_KEPT = 64
"""Documents whose state the writer keeps in memory (least recently used dropped first)."""

_KINDS: dict[str, type[Any]] = {"text": Text, "map": Map, "array": Array}


def ydoc_key(path: Path) -> str:
    """A document's key in the ``ydoc`` table: its path, keys joined with ``/``."""
    return "/".join(path)


@dataclass(frozen=True, slots=True)
class YdocResult:
    """What a ``ydoc`` command did: ``refused[i]`` is ``None`` when update ``i`` was stored, else
    why it was refused (``code: message``); ``last`` is the document's last row number; ``write``
    is the mirror's write (``None`` when the batch stored nothing)."""

    refused: tuple[str | None, ...]
    last: int
    write: Any = None  # rtdb.engine.writes.WriteResult


@dataclass(slots=True)
class LoadedDoc:
    doc: Doc[Any]
    last: int
    rows: int
    kinds: dict[str, str] = field(default_factory=dict)


def load_doc(rows: list[tuple[int, bytes]]) -> LoadedDoc:
    doc: Doc[Any] = Doc()
    for _, data in rows:
        doc.apply_update(data)
    return LoadedDoc(doc, rows[-1][0] if rows else 0, len(rows))


def infer_kind(doc: Doc[Any], name: str) -> str | None:
    """What root type ``name`` holds, judged on copies of ``doc`` (a root that arrives in an update
    has no type until it is read as one, and reading it fixes it): ``map`` if it has keyed entries,
    ``text`` if it reads as a non-empty string, ``array`` if it has items; ``None`` while empty."""
    state = doc.get_update()
    for kind, test in (("map", Map), ("text", Text)):
        copy: Doc[Any] = Doc()
        copy.apply_update(state)
        shared = copy.get(name, type=test)
        if (kind == "map" and len(shared) > 0) or (kind == "text" and str(shared) != ""):
            return kind
    copy = Doc()
    copy.apply_update(state)
    return "array" if len(copy.get(name, type=Array)) > 0 else None


def mirror_of(loaded: LoadedDoc, at: Path) -> Node:
    """The document as plain JSON, one child per root type (text → string, map → object,
    array → array), normalized as a write at ``at`` would be (raises :class:`InvalidData` if
    the document holds what the JSON tree cannot: a key with ``.``, ``/`` and the like)."""
    doc = loaded.doc
    out: dict[str, Any] = {}
    for name in sorted(doc.keys()):
        kind = loaded.kinds.get(name)
        if kind is None:
            kind = infer_kind(doc, name)
            if kind is None:
                continue
            loaded.kinds[name] = kind
        out[name] = doc.get(name, type=_KINDS[kind]).to_py()
    return normalize(out or None, at)


class DocWriter:
    """The writer's side of Yjs documents (one per :class:`rtdb.engine.writes.Writes`)."""

    def __init__(self) -> None:
        self.docs: OrderedDict[tuple[str, str], LoadedDoc] = OrderedDict()
        self.compact_rows = COMPACT_ROWS

    def _loaded(self, txn: Txn, ns: str, key: str) -> LoadedDoc:
        last = txn.ydoc_last(key)
        loaded = self.docs.get((ns, key))
        if loaded is None or loaded.last != last:  # never loaded, or stored rows moved (another process, a rollback)
            loaded = load_doc(txn.ydoc_rows(key))
            self.docs[(ns, key)] = loaded
            while len(self.docs) > DOCS_KEPT:
                self.docs.popitem(last=False)
        self.docs.move_to_end((ns, key))
        return loaded

    def forget(self, ns: str, key: str) -> None:
        self.docs.pop((ns, key), None)

    def run(self, writes: Any, txn: Txn, ns: str, path: Path, items: list[tuple[bytes, Any]], now: int) -> YdocResult:
        """``writes``: the :class:`rtdb.engine.writes.Writes` running the command (its rules and
        its ``_apply``, which writes the mirror and makes the ChangeSet)."""
        key = ydoc_key(path)
        loaded = self._loaded(txn, ns, key)
        old = txn.node(path)
        refused: list[str | None] = []
        mirror: Node = old
        stored = 0
        for update, caller in items:
            try:
                if loaded.rows == 0:
                    check_place(txn, path, old)
                try:
                    loaded.doc.apply_update(update)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException:  # pycrdt raises (or Yrs panics) on bytes that are no update
                    raise InvalidData("not a Yjs update") from None
                new = mirror_of(loaded, path)
                if not writes.access.can_write(ns, caller, path, new, txn, now).allowed:
                    raise _Refused("permission_denied: Permission denied")
            except (RtdbError, _Refused) as exc:
                refused.append(str(exc) if isinstance(exc, _Refused) else f"{exc.code}: {exc}")
                self.forget(ns, key)
                loaded = self._loaded(txn, ns, key)  # the stored rows: without the refused update
                continue
            loaded.last += 1
            loaded.rows += 1
            txn.ydoc_append(key, loaded.last, update)
            mirror = new
            stored += 1
            refused.append(None)
        if not stored:
            return YdocResult(tuple(refused), loaded.last)
        if loaded.rows > self.compact_rows:
            txn.ydoc_compact(key, loaded.last, loaded.doc.get_update())
            loaded.rows = 1
        write = writes._apply(txn, ns, "set", path, [(path, old, mirror)])
        return YdocResult(tuple(refused), loaded.last, write)


class _Refused(Exception):
    pass


def check_place(txn: Txn, path: Path, old: Node) -> None:
    """A new document needs a place of its own: no ordinary data at ``path`` and no other
    document at, above or below it."""
    other = txn.ydoc_near(path, limit=1)
    if other:
        raise InvalidData(f"/{other[0]} is a Yjs document: documents cannot nest")
    if old is not None:
        raise InvalidData(f"{paths.to_str(path)} holds data: a Yjs document needs an empty path")


def check_unmirrored(txn: Txn, path: Path, new: Node) -> None:
    """An ordinary write (set or update target ``path`` with value ``new``) must not change a
    document's mirror: refused inside a document's path, and above one unless it leaves the
    document's subtree as it is. The JSON tree and the document never diverge."""
    for key in txn.ydoc_near(path, limit=64):
        doc = tuple(key.split("/"))
        if len(doc) <= len(path):
            raise InvalidData(
                f"{paths.to_str(path)} is the JSON mirror of the Yjs document at /{key}: "
                f"edit it through the document (/.yjs/{key}), not with an ordinary write"
            )
        if not same(child_at(new, doc[len(path):]), txn.node(doc)):
            raise InvalidData(
                f"this write would change the JSON mirror of the Yjs document at /{key}: "
                f"edit it through the document (/.yjs/{key}), not with an ordinary write"
            )


__all__ = ["COMPACT_ROWS", "DocWriter", "LoadedDoc", "YdocResult", "check_unmirrored", "load_doc", "mirror_of",
           "ydoc_key"]
