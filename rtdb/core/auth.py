"""Who is calling: the identity every engine call carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
