"""Paths and keys: parsing, validation and the relations between paths.

A path inside the system is a tuple of validated keys; ``()`` is the root.
Raw user paths never get past :func:`parse`.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from rtdb.core.errors import InvalidData, InvalidPath

Path = tuple[str, ...]
ROOT: Path = ()

PRIORITY_KEY = ".priority"
MAX_DEPTH = 32
MAX_PATH_BYTES = 768

# Lone surrogates (U+D800-U+DFFF) have no UTF-8 form: a key holding one could be
# neither measured, stored nor sent, so it is refused like a forbidden character.
_INVALID_KEY = re.compile(r"[\[\].#$/\x00-\x1f\x7f\ud800-\udfff]")
_INVALID_PATH_CHARS = re.compile(r"[\[\].#$\x00-\x1f\x7f\ud800-\udfff]")


def is_valid_key(key: str) -> bool:
    return bool(key) and _INVALID_KEY.search(key) is None and len(key.encode()) <= MAX_PATH_BYTES


def parse(raw: str, *, decode: bool = False, allow_priority: bool = False) -> Path:
    """Parse a user path such as ``/users/ada/`` into ``("users", "ada")``.

    With ``decode`` each segment is percent-decoded (URL paths). Empty segments
    are ignored, as Firebase does. With ``allow_priority`` the last segment may
    be ``.priority`` (a priority write). Raises :class:`InvalidPath`.
    """
    keys: list[str] = []
    segments = [s for s in raw.split("/") if s]
    tail = None
    if allow_priority and segments and segments[-1] == PRIORITY_KEY:
        tail = segments.pop()
    for segment in segments:
        if not segment:
            continue
        if decode and "%" in segment:
            if "%2f" in segment.lower() or "%5c" in segment.lower():
                raise InvalidPath("Invalid path: Invalid token in path")
            try:  # %ff, an encoded surrogate (%ED%A0%80) or an overlong form (%C0%AF) is not UTF-8
                segment = unquote(segment, errors="strict")
            except UnicodeDecodeError:
                raise InvalidPath("Invalid path: Invalid token in path") from None
        if _INVALID_PATH_CHARS.search(segment) or "\\" in segment and decode:
            raise InvalidPath("Invalid path: Invalid token in path")
        keys.append(segment)
    if tail is not None:
        keys.append(tail)
    path = tuple(keys)
    check_limits(path)
    return path


def check_limits(path: Path) -> None:
    if len(path) > MAX_DEPTH:
        raise InvalidPath(
            f"Invalid path: path specified exceeds the maximum depth that can be written ({MAX_DEPTH})"
        )
    if byte_length(path) > MAX_PATH_BYTES:
        raise InvalidPath(f"Invalid path: path is longer than {MAX_PATH_BYTES} bytes")


def check_key(key: str) -> None:
    """Raise :class:`InvalidData` for a key that may not appear in data."""
    if key in _known_keys:
        return
    _check_key(key)
    if len(_known_keys) >= _KNOWN_KEYS_MAX:
        _known_keys.clear()
    _known_keys.add(key)


_known_keys: set[str] = set()  # field names repeat in every record: check each once
_KNOWN_KEYS_MAX = 16384


def _check_key(key: str) -> None:
    if not key or _INVALID_KEY.search(key):
        raise InvalidData(
            "Invalid data; couldn't parse key beginning at 1:2. "
            "Key value can't be empty or contain $ # [ ] / or ."
        )
    if len(key.encode()) > MAX_PATH_BYTES:
        raise InvalidData(f"Invalid data; key longer than {MAX_PATH_BYTES} bytes")


def byte_length(path: Path) -> int:
    """UTF-8 bytes of the keys joined with ``/``."""
    return len("/".join(path).encode())


def to_str(path: Path) -> str:
    """``("a", "b")`` → ``"/a/b"``; the root is ``"/"``."""
    return "/" + "/".join(path)


def is_ancestor_or_self(ancestor: Path, path: Path) -> bool:
    return path[: len(ancestor)] == ancestor


def relative(ancestor: Path, path: Path) -> Path:
    """The part of ``path`` below ``ancestor`` (which must contain it)."""
    return path[len(ancestor) :]
