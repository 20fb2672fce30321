"""Errors of the sans-I/O protocol layer (framing and decoding)."""

from __future__ import annotations


class ProtocolError(Exception):
    """The peer broke the wire protocol; the connection should be closed."""


class FramingError(ProtocolError):
    """Frames did not assemble into a message."""


class MessageTooBig(FramingError):
    """A message exceeded the configured size."""


class BadRequest(ProtocolError):
    """A data request that could not be decoded but carried a request number.

    The connection survives: the request is answered with ``status``.
    """

    def __init__(self, message: str, *, request_id: int, action: str | None, status: str = "invalid_request") -> None:
        super().__init__(message)
        self.request_id = request_id
        self.action = action
        self.status = status
