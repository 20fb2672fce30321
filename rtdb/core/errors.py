"""One error hierarchy for the whole server, in Firebase's vocabulary.

Each error has a stable ``code``; every transport maps it once (REST: status +
``{"error": message}``; WebSocket: a status string; SSE: ``cancel``).
"""

from __future__ import annotations


class RtdbError(Exception):
    """Base of every error the server reports to a client."""

    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidPath(RtdbError):
    code = "invalid_path"


class InvalidData(RtdbError):
    code = "invalid_data"


class InvalidQuery(RtdbError):
    code = "invalid_query"


class TooBig(RtdbError):
    code = "too_big"


class PermissionDenied(RtdbError):
    code = "permission_denied"


class Unauthenticated(RtdbError):
    code = "unauthenticated"


class IndexNotDefined(RtdbError):
    code = "index_not_defined"


class PreconditionFailed(RtdbError):
    """An ``if-match`` or transaction hash did not match the stored value. ``etag`` is
    ``None`` when the caller may not read the value (``current`` is then ``None`` too)."""

    code = "datastale"

    def __init__(self, message: str, current: object, etag: str | None) -> None:
        super().__init__(message)
        self.current = current
        self.etag = etag

    def __reduce__(self) -> tuple[object, ...]:  # pickled (copy, multiprocessing) with its value and ETag
        return (type(self), (self.message, self.current, self.etag))


class NoNamespace(RtdbError):
    code = "no_namespace"


class Unavailable(RtdbError):
    code = "unavailable"
