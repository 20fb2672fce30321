"""Who is calling: the identity every engine call carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from rtdb.core.value import MAX_SAFE_INT


@dataclass(frozen=True, slots=True)
class Caller:
    """``admin`` bypasses rules; otherwise rules see ``auth`` (``None`` = unauthenticated).

    An admin credential with ``auth_variable_override`` becomes a non-admin
    caller whose ``auth`` is the override.
    """

    admin: bool = False
    auth: dict[str, Any] | None = None
    expires_at_ms: int | None = None


ADMIN = Caller(admin=True)
ANONYMOUS = Caller()


def json_numbers(value: Any) -> Any:
    """Claims as a JavaScript server reads them: an integer beyond ±2**53 (which no double holds
    exactly) becomes a double, one beyond a double's range infinity. Rules compare numbers as
    doubles anyway, and a caller must cross to the writer process (msgpack: 64-bit integers)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            return value
        try:
            return float(value)
        except OverflowError:
            return float("inf") if value > 0 else float("-inf")
    if isinstance(value, dict):
        return {key: json_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_numbers(item) for item in value]
    return value


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT read without checking its signature or times; ``None`` when
    ``token`` is not a JWT with an object payload. For the emulator, which trusts any token,
    and for informational replies — never to grant access where signatures are required."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None
