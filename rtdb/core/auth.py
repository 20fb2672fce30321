"""Who is calling: the identity every engine call carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt


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


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT read without checking its signature or times; ``None`` when
    ``token`` is not a JWT with an object payload. For the emulator, which trusts any token,
    and for informational replies — never to grant access where signatures are required."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None
