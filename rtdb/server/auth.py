"""Turning a request's credentials into a :class:`Caller`."""

from __future__ import annotations

import json
from collections.abc import Mapping

from rtdb.core.auth import ADMIN, ANONYMOUS, Caller
from rtdb.core.errors import InvalidData, Unauthenticated
from rtdb.server.settings import Settings


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def is_admin_token(self, token: str) -> bool:
        s = self.settings
        return (
            (s.emulator and token == "owner")
            or (s.admin_token is not None and token == s.admin_token)
            or (s.secret is not None and token == s.secret)
        )

    def caller(self, bearer: str | None, params: Mapping[str, str]) -> Caller:
        token = bearer or params.get("auth") or params.get("access_token")
        if token is None:
            caller = ANONYMOUS
        elif self.is_admin_token(token):
            caller = ADMIN
        elif self.settings.emulator:
            caller = ANONYMOUS  # user tokens get their meaning from the rules issue's verifier
        else:
            raise Unauthenticated("Auth token is invalid")
        override = params.get("auth_variable_override")
        if override is not None and caller.admin:
            try:
                auth = json.loads(override)
            except ValueError:
                raise InvalidData("auth_variable_override must be JSON") from None
            if auth is not None and not isinstance(auth, dict):
                raise InvalidData("auth_variable_override must be a JSON object or null")
            caller = Caller(admin=False, auth=auth)
        return caller


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None
