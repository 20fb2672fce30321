"""Verifying credentials (PyJWT) and turning them into a :class:`Caller`.

Accepted: the admin token / database secret / emulator ``owner`` (admin);
Firebase-ID-token-shaped JWTs (``auth = {uid, provider, token}``); legacy custom
tokens (``{"v": 0, "d": {...}, "admin"?}``, ``auth = d``); and, in emulator
mode only, unsigned (``alg: none``) mock user tokens as the official SDKs make them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt

from rtdb.core.auth import ADMIN, Caller, json_numbers, unverified_claims
from rtdb.core.errors import Unauthenticated

INVALID = "Auth token used in the request is invalid"
EXPIRED = "Auth token is expired"
ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]


def _now_ms() -> int:
    return int(time.time() * 1000)


class TokenVerifier:
    def __init__(
        self,
        *,
        emulator: bool = False,
        secret: str | None = None,
        admin_token: str | None = None,
        public_key: Path | None = None,
        jwks: Path | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.emulator = emulator
        self.secret = secret
        self.admin_token = admin_token
        self.audience = audience
        self.issuer = issuer
        self.clock = clock
        self._public_key: Any = None
        self._jwks: dict[str, Any] = {}
        if public_key is not None:
            self._public_key = public_key.read_text()
        if jwks is not None:
            keyset = jwt.PyJWKSet.from_dict(json.loads(jwks.read_text()))
            self._jwks = {k.key_id or str(i): k for i, k in enumerate(keyset.keys)}

    def is_admin_token(self, token: str) -> bool:
        return (
            (self.emulator and token == "owner")
            or (self.admin_token is not None and token == self.admin_token)
            or (self.secret is not None and token == self.secret)
        )

    def verify(self, token: str) -> Caller:
        """The caller a credential stands for; :class:`Unauthenticated` with Firebase's message otherwise."""
        if self.is_admin_token(token):
            return ADMIN
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated(INVALID) from None
        alg = header.get("alg")
        unsigned = alg == "none" or alg is None
        if unsigned:
            if not self.emulator:
                raise Unauthenticated(INVALID)
            claims = unverified_claims(token)
            if claims is None:
                raise Unauthenticated(INVALID)
        else:
            claims = self._verified_claims(token, str(alg), header.get("kid"))
        claims = json_numbers(claims)
        exp = claims.get("exp")
        if unsigned:
            # the SDKs' mock tokens say iat 0, exp 3600 (1970): like Firebase's emulator, never expire them
            exp = None
        if isinstance(exp, (int, float)) and exp * 1000 <= self.clock():
            raise Unauthenticated(EXPIRED)
        expires_ms = int(exp * 1000) if isinstance(exp, (int, float)) else None
        if "d" in claims and "v" in claims:  # legacy custom token
            if claims.get("admin") is True:
                return Caller(admin=True, expires_at_ms=expires_ms)
            d = claims.get("d")
            return Caller(auth=d if isinstance(d, dict) else None, expires_at_ms=expires_ms)
        uid = claims.get("user_id") or claims.get("sub") or claims.get("uid")
        if not isinstance(uid, str) or not uid:
            raise Unauthenticated(INVALID)
        firebase = claims.get("firebase")
        provider = firebase.get("sign_in_provider", "custom") if isinstance(firebase, dict) else "custom"
        return Caller(auth={"uid": uid, "provider": provider, "token": claims}, expires_at_ms=expires_ms)

    def _verified_claims(self, token: str, alg: str, kid: str | None) -> dict[str, Any]:
        key: Any
        if alg == "HS256":
            key = self.secret
        elif alg in ASYMMETRIC:
            key = self._public_key
            if self._jwks:
                jwk = self._jwks.get(kid or "") if kid else next(iter(self._jwks.values()))
                key = jwk.key if jwk is not None else None
        else:
            raise Unauthenticated(INVALID)
        if key is None:
            raise Unauthenticated(INVALID)
        options: Any = {"verify_exp": False, "verify_aud": self.audience is not None, "verify_iat": False}
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=self.audience, issuer=self.issuer, options=options,
                leeway=0,
            )
        except jwt.PyJWTError:
            raise Unauthenticated(INVALID) from None
        if not isinstance(claims, dict):
            raise Unauthenticated(INVALID)
        return claims
