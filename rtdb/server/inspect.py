"""The Firebase emulator's tool endpoints, served by ``rtdb serve`` for firebase-tools and
the Emulator UI (spec: long-polling.md §6).

* ``GET /.inspect/databases.json``: ``[{"name": ns}, ...]``, the namespaces that exist.
* ``GET /.inspect/coverage.json?ns=`` and ``GET /.inspect/coverage?ns=``: the rules
  coverage of a namespace (:mod:`rtdb.rules.coverage`), as JSON or as an HTML page.
* ``POST /<path>/.upload``: ``multipart/form-data`` field ``myFile`` (a JSON file) is set
  at ``<path>`` with the caller's rules (the Emulator UI's import; it authenticates with
  ``?access_token=``).
* ``POST /.settings/functionTriggers.json``: accepted and ignored (admins only); rtdb
  does not run Cloud Functions triggers.

Every answer carries ``Access-Control-Allow-Origin: *`` (``Response.send`` adds it).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from multipart import MultipartError, MultipartSegment, PushMultipartParser  # litestar's own parser

from rtdb.core import path as paths
from rtdb.core.auth import Caller
from rtdb.core.errors import InvalidData, PermissionDenied, TooBig
from rtdb.core.value import TOO_DEEP, to_plain
from rtdb.engine.engine import Engine
from rtdb.rules.coverage import Coverage, compute_coverage
from rtdb.server.settings import Settings

DATABASES_PATH = "/.inspect/databases.json"
COVERAGE_JSON_PATH = "/.inspect/coverage.json"
COVERAGE_HTML_PATH = "/.inspect/coverage"
TRIGGERS_PATH = "/.settings/functionTriggers.json"
UPLOAD_SUFFIX = "/.upload"
UPLOAD_FIELD = "myFile"
log = logging.getLogger("rtdb.server.inspect")


def list_namespaces(engine: Engine) -> list[str]:
    """The namespaces that exist: a database file in the data dir, or open in this process."""
    return sorted(set(engine.open_namespaces()) | set(engine.backend.namespaces()))


def check_inspector(settings: Settings, caller: Caller) -> None:
    """Who may read ``/.inspect/*``. In emulator mode anyone, as with Firebase's emulator:
    the Emulator UI fetches ``databases.json`` cross-origin every 5 s with no credentials,
    test code saves the coverage page without one, and an emulator holds test data. In
    production mode admins only: production Firebase has no such endpoints, a list of
    databases tells a stranger which namespaces to probe, and the coverage report shows
    the rules' source, which ``/.settings/rules.json`` also gives to admins only."""
    if not settings.emulator and not caller.admin:
        raise PermissionDenied("Permission denied")


def databases(engine: Engine, settings: Settings, caller: Caller) -> list[dict[str, str]]:
    """``/.inspect/databases.json``: ``[{"name": ns}, ...]`` in name order."""
    check_inspector(settings, caller)
    return [{"name": ns} for ns in list_namespaces(engine)]


async def coverage(engine: Engine, settings: Settings, ns: str, caller: Caller) -> Coverage:
    """The rules coverage of ``ns`` since its rules were last deployed or loaded. With
    ``--workers N`` each worker counts the requests it served: the report is one worker's."""
    check_inspector(settings, caller)
    if engine.exists(ns):
        await engine.store(ns)  # loads the rules deployed to it
    return compute_coverage(ns, engine.access.ruleset(ns))


def accept_triggers(ns: str, caller: Caller) -> None:
    """``POST /.settings/functionTriggers.json``: firebase-tools registers Cloud Functions
    triggers here when the Functions emulator runs; rtdb accepts them so it does not warn,
    and runs none."""
    if not caller.admin:
        raise PermissionDenied("Permission denied")
    log.info("namespace %s: a function trigger was registered and ignored; rtdb does not run "
             "Cloud Functions triggers", ns)


def upload_path(raw_path: str) -> paths.Path:
    """The data path of ``/<path>/.upload``."""
    return paths.parse(raw_path[: -len(UPLOAD_SUFFIX)], decode=True)


def boundary_of(content_type: str | None) -> str:
    """The boundary of a ``multipart/form-data`` request, else :class:`InvalidData`."""
    kind, _, rest = (content_type or "").partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise InvalidData("Upload must be multipart/form-data with a field myFile")
    for part in rest.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "boundary" and value.strip('"'):
            return value.strip('"')
    raise InvalidData("multipart/form-data without a boundary")


async def read_upload(chunks: Any, boundary: str, limit: int) -> Any:
    """The JSON value of field ``myFile`` of a multipart body streamed in ``chunks``.
    At most ``limit`` bytes are read; other fields are skipped without being kept."""
    found: bytearray | None = None
    current: bytearray | None = None
    size = 0
    try:
        with PushMultipartParser(boundary, max_segment_count=100) as parser:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooBig(f"Request body larger than {limit} bytes")
                for part in parser.parse(chunk):
                    if isinstance(part, MultipartSegment):
                        current = bytearray() if part.name == UPLOAD_FIELD and found is None else None
                    elif part:
                        if current is not None:
                            current.extend(part)
                    elif current is not None:  # end of the myFile part
                        found, current = current, None
            for _ in parser.parse(b""):  # end of input: an unfinished body is an error
                pass
            if not parser.closed:
                raise InvalidData("Incomplete multipart/form-data body")
    except MultipartError as exc:
        raise InvalidData(f"Invalid multipart/form-data: {exc}") from None
    if found is None:
        raise InvalidData("Missing multipart/form-data field myFile")
    try:
        return msgspec.json.decode(bytes(found))
    except msgspec.DecodeError:
        raise InvalidData("Invalid data; couldn't parse JSON object, array, or value.") from None
    except RecursionError:
        raise InvalidData(TOO_DEEP) from None


async def upload(engine: Engine, ns: str, path: paths.Path, value: Any, caller: Caller) -> Any:
    """Set ``path`` to the uploaded value as one write, with the caller's rules."""
    result = await engine.set(ns, path, value, caller=caller)
    return to_plain(result.node)
