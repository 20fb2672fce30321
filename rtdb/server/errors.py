"""The one mapping from engine errors to HTTP statuses and Firebase's ``{"error": …}`` bodies."""

from __future__ import annotations

import logging

from rtdb.core.errors import RtdbError

log = logging.getLogger("rtdb.server")

HTTP_STATUS = {
    "invalid_path": 400,
    "invalid_data": 400,
    "invalid_query": 400,
    "invalid_rules": 400,
    "too_big": 400,
    "index_not_defined": 400,
    "permission_denied": 401,
    "unauthenticated": 401,
    "datastale": 412,
    "no_namespace": 404,
    "unavailable": 503,
    "internal_error": 500,
}


def http_error(exc: BaseException) -> tuple[int, str]:
    """Status and message for any exception; unexpected ones are logged, never described."""
    if isinstance(exc, RtdbError):
        return HTTP_STATUS.get(exc.code, 400), exc.message
    log.error("internal error", exc_info=exc)
    return 500, "Internal server error"
