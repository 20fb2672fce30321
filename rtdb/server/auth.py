"""Turning a request's credentials into a :class:`Caller`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from rtdb.core.auth import ANONYMOUS, Caller, json_numbers
from rtdb.core.errors import InvalidData
from rtdb.server.settings import Settings
from rtdb.server.tokens import TokenVerifier


class Authenticator:
    def __init__(self, settings: Settings, *, clock: Callable[[], int] | None = None) -> None:
        """``clock``: milliseconds since the epoch, the engine's (tokens expire by it)."""
        self.settings = settings
        self.tokens = TokenVerifier(
            emulator=settings.emulator,
            secret=settings.secret,
            admin_token=settings.admin_token,
            public_key=settings.jwt_public_key,
            jwks=settings.jwks,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            **({} if clock is None else {"clock": clock}),
        )

    def caller(self, bearer: str | None, params: Mapping[str, str]) -> Caller:
        """The caller of a REST request: ``?auth=``, ``?access_token=`` or a bearer token,
        downscoped by ``auth_variable_override`` when the credential is admin."""
        token = bearer or params.get("auth") or params.get("access_token")
        caller = ANONYMOUS if token is None else self.tokens.verify(token)
        override = params.get("auth_variable_override")
        if override is not None and caller.admin:
            caller = Caller(admin=False, auth=parse_override(override))
        return caller


def parse_override(raw: str) -> dict[str, object] | None:
    try:
        auth = json.loads(raw)
    except ValueError:
        raise InvalidData("auth_variable_override must be JSON") from None
    if auth is not None and not isinstance(auth, dict):
        raise InvalidData("auth_variable_override must be a JSON object or null")
    return json_numbers(auth)  # type: ignore[no-any-return]


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None
