"""A JSON document validated and normalized piece by piece, for documents too large to hold whole.

:func:`walk` decodes lazily (:class:`msgspec.Raw`): an object or array of more than
``SMALL`` bytes of JSON is split into its children; those children are decoded and
normalized in runs of about ``SMALL`` bytes, and a child that is itself that large is
split in turn. The sink receives a depth-first walk: ``open`` a large object, the
normalized runs of its ``children``, ``close`` it; a document that is not large comes
``whole``. Memory: the document's bytes, one ``Raw`` per key of the large objects open
along the current path, and one run decoded.

Validation is exactly that of :func:`rtdb.core.value.normalize` over the whole document
written at ``base`` (the same checks in the same order, so the same first error): each
run is normalized by ``normalize(run, path)``, which checks the run's keys as the parent
object's own loop does and its children at their real depth and path length; a large
child's key is checked by ``normalize({key: None}, path)`` before its content. The
special keys of a large object (``.priority``, ``.value``, ``.sv``) are decoded whole and
checked by ``normalize`` on a stand-in with the object's keys.

The document must be well-formed JSON already (:func:`check_json`: a pass that builds
nothing); what only a full decode sees (invalid UTF-8 in a string, a number beyond a
double) raises :class:`MalformedJson` when its run is decoded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import msgspec

from rtdb.core.errors import InvalidData
from rtdb.core.path import Path
from rtdb.core.value import PRIORITY, SV, TOO_DEEP, VALUE, Node, normalize

SMALL = 256 * 1024
"""Bytes of JSON decoded at once: a larger object or array is split into its children."""

Json = bytes | bytearray | memoryview | msgspec.Raw
Finish = Callable[[Path, Node], Node]
"""What becomes of a normalized node at a path before the sink gets it (server values resolved)."""

_SPECIAL = (PRIORITY, VALUE, SV)
_OBJECT, _ARRAY = ord("{"), ord("[")
_decode = msgspec.json.Decoder().decode
_decode_object = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode_array = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_top = msgspec.json.Decoder(msgspec.Raw).decode


class MalformedJson(InvalidData):
    """The document is not JSON (or holds what no JSON decoder accepts); ``message`` is the decoder's."""


class Sink(Protocol):
    def whole(self, node: Node) -> None:
        """The document at ``base`` (normalized and finished; ``None``: nothing)."""

    def open(self, path: Path, priority: Any) -> None:
        """A large object at ``path`` (``priority`` normalized and finished); its children follow."""

    def children(self, path: Path, kids: dict[str, Node]) -> None:
        """A run of children of the object open at ``path``, normalized and finished, in document order."""

    def close(self, path: Path) -> None:
        """The object at ``path`` has no more children (perhaps none: then it is no node)."""


def check_json(document: Json) -> msgspec.Raw:
    """The document's value without the whitespace around it, once its syntax is checked from end to
    end (nothing is built: about 1 GB/s). Raises :class:`MalformedJson`, or :class:`InvalidData`
    naming the depth limit when it nests deeper than the decoder goes."""
    try:
        return _decode_top(document)
    except msgspec.DecodeError as exc:
        raise MalformedJson(str(exc)) from None
    except RecursionError:
        raise InvalidData(TOO_DEEP) from None


def walk(document: Json, base: Path, sink: Sink, *, finish: Finish | None = None, small: int = SMALL,
         progress: Callable[[int, int], None] | None = None) -> int:
    """Walk ``document`` (checked by :func:`check_json`) written at ``base`` into ``sink``; the
    leaves it holds. ``progress`` gets the bytes of JSON and the leaves done after each run."""
    return _Walk(sink, finish, small, progress).document(document, base)


def count_leaves(node: Node) -> int:
    """The leaves of a normalized node (a leaf with a priority is one; priorities are not counted)."""
    if type(node) is not dict:
        return 0 if node is None else 1
    if VALUE in node or SV in node:
        return 1
    count = 0
    for key, child in node.items():
        if key != PRIORITY:
            count += count_leaves(child) if type(child) is dict else 1
    return count


class _Walk:
    def __init__(self, sink: Sink, finish: Finish | None, small: int,
                 progress: Callable[[int, int], None] | None) -> None:
        self.sink = sink
        self.finish = finish
        self.small = small
        self.progress = progress
        self.leaves = 0
        self.done = 0  # bytes of JSON decoded

    def document(self, document: Json, base: Path) -> int:
        node = self._object(document, base) if self._large(document) else \
            self._finished(base, normalize(_decoded(document), base))
        if node is not _WALKED:
            self.leaves = count_leaves(node)
            self.sink.whole(node)
        return self.leaves

    def _large(self, raw: Json) -> bool:
        return len(raw) > self.small and memoryview(raw)[0] in (_OBJECT, _ARRAY)

    def _object(self, raw: Json, path: Path) -> Node:
        """Walk the large object or array ``raw`` at ``path`` into the sink (``_WALKED``), or return
        the node it stands for when it is a leaf in an object's clothes (``.value``, ``.sv``)."""
        children: Iterable[tuple[str, msgspec.Raw]]
        priority = None
        if memoryview(raw)[0] == _ARRAY:  # an object keyed "0", "1", …: no special keys
            children = ((str(i), child) for i, child in enumerate(_decoded(raw, _decode_array)))
        else:
            level = _decoded(raw, _decode_object)
            if VALUE in level or SV in level:
                stand_in = {k: _decoded(v) if k in _SPECIAL else None for k, v in level.items()}
                return self._finished(path, normalize(stand_in, path))
            if PRIORITY in level:
                priority = self._priority(level[PRIORITY], path)
            children = level.items()
        self.sink.open(path, priority)
        run: dict[str, Any] = {}
        size = 0
        for key, child in children:
            if key == PRIORITY:
                continue
            if self._large(child):
                self._run(path, run, size)
                run, size = {}, 0
                normalize({key: None}, path)  # the parent's checks of this key, before its content
                node = self._object(child, path + (key,))
                if node is not _WALKED and node is not None:
                    self.leaves += count_leaves(node)
                    self.sink.children(path, {key: node})
                continue
            run[key] = _decoded(child)
            size += len(child)
            if size >= self.small:
                self._run(path, run, size)
                run, size = {}, 0
        self._run(path, run, size)
        self.sink.close(path)
        return _WALKED

    def _run(self, path: Path, run: dict[str, Any], size: int) -> None:
        if not run:
            return
        kids = self._finished(path, normalize(run, path))
        if kids is not None:
            self.leaves += count_leaves(kids)
            self.sink.children(path, kids)
        self.done += size
        if self.progress is not None:
            self.progress(self.done, self.leaves)

    def _priority(self, raw: msgspec.Raw, path: Path) -> Any:
        """The object's own priority, checked as ``normalize`` checks it (before anything else of the
        object) and finished at the object's path, as a priority inside a whole document is."""
        node = self._finished(path, normalize({VALUE: True, PRIORITY: _decoded(raw)}, path))
        return node[PRIORITY] if isinstance(node, dict) else None

    def _finished(self, path: Path, node: Node) -> Node:
        return node if self.finish is None or node is None else self.finish(path, node)


_WALKED: Any = object()


def _decoded(raw: Json, decode: Callable[[Json], Any] = _decode) -> Any:
    try:
        return decode(raw)
    except msgspec.DecodeError as exc:
        raise MalformedJson(str(exc)) from None
    except RecursionError:
        raise InvalidData(TOO_DEEP) from None
