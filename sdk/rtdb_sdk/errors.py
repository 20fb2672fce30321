"""The SDK's errors: one hierarchy with Firebase's codes.

::

    DatabaseError                 .code (Firebase's, upper case), .status (wire), .path
    ├── PermissionDenied          PERMISSION_DENIED
    ├── InvalidToken              INVALID_TOKEN / EXPIRED_TOKEN
    ├── TooBig                    TOO_BIG
    ├── Unavailable               UNAVAILABLE
    ├── DataStale                 DATASTALE
    ├── MaxRetries                MAXRETRY     (a transaction ran 25 times)
    ├── Disconnected              DISCONNECT   (a request was lost with the socket)
    ├── Offline                   OFFLINE      (get() while offline, nothing cached)
    ├── InvalidArgument           INVALID_ARGUMENT (bad path, key, value or query; raised before sending)
    └── Closed                    CLOSED       (the database was closed)

A write rejected by the server raises ``"<CODE>: <server text>"`` as the JS SDK
does; a listen that fails cancels its callbacks with
``"<status> at <path>: <explanation>"``.
"""

from __future__ import annotations

__all__ = [
    "Closed",
    "DataStale",
    "DatabaseError",
    "Disconnected",
    "InvalidArgument",
    "InvalidToken",
    "MaxRetries",
    "Offline",
    "PermissionDenied",
    "TooBig",
    "Unavailable",
    "error_for_status",
    "listen_error",
]


class DatabaseError(Exception):
    """Base of every error the SDK raises. ``code`` is Firebase's upper-case code."""

    code = "UNKNOWN"

    def __init__(self, message: str, *, status: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status if status is not None else self.code.lower()
        self.path = path
        if status is not None and type(self) is DatabaseError:
            self.code = status.upper()


class PermissionDenied(DatabaseError):
    code = "PERMISSION_DENIED"


class InvalidToken(DatabaseError):
    code = "INVALID_TOKEN"


class TooBig(DatabaseError):
    code = "TOO_BIG"


class Unavailable(DatabaseError):
    code = "UNAVAILABLE"


class DataStale(DatabaseError):
    code = "DATASTALE"


class MaxRetries(DatabaseError):
    code = "MAXRETRY"


class Disconnected(DatabaseError):
    code = "DISCONNECT"


class Offline(DatabaseError):
    code = "OFFLINE"


class InvalidArgument(DatabaseError, ValueError):
    code = "INVALID_ARGUMENT"


class Closed(DatabaseError):
    code = "CLOSED"


_BY_STATUS: dict[str, type[DatabaseError]] = {
    "permission_denied": PermissionDenied,
    "invalid_token": InvalidToken,
    "expired_token": InvalidToken,
    "too_big": TooBig,
    "unavailable": Unavailable,
    "datastale": DataStale,
    "maxretry": MaxRetries,
    "disconnect": Disconnected,
}

_LISTEN_TEXT = {
    "permission_denied": "Client doesn't have permission to access the desired data.",
    "too_big": "The data requested exceeds the maximum size that can be accessed with a single request.",
    "unavailable": "The service is unavailable",
}


def error_for_status(status: str, detail: object, *, path: str | None = None) -> DatabaseError:
    """The error a failed write or transaction raises: ``"<CODE>: <detail>"``."""
    text = detail if isinstance(detail, str) and detail else status
    cls = _BY_STATUS.get(status, DatabaseError)
    error = cls(f"{status.upper()}: {text}", status=status, path=path)
    if status == "expired_token":
        error.code = "EXPIRED_TOKEN"
    return error


def listen_error(status: str, path: str) -> DatabaseError:
    """The error a failed or revoked listen cancels its callbacks with."""
    text = _LISTEN_TEXT.get(status, "Unknown Error")
    cls = _BY_STATUS.get(status, DatabaseError)
    return cls(f"{status} at {path}: {text}", status=status, path=path)
