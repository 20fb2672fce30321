"""Credentials → Caller, with signatures verified by PyJWT."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rtdb.core.errors import Unauthenticated
from rtdb.server.tokens import EXPIRED, INVALID, TokenVerifier

NOW = 1_800_000_000
SECRET = "s3cret-" + "x" * 33


def verifier(**kw: object) -> TokenVerifier:
    return TokenVerifier(clock=lambda: NOW * 1000, **kw)  # type: ignore[arg-type]


def id_token_claims(uid: str = "alice", **extra: object) -> dict[str, object]:
    return {"sub": uid, "user_id": uid, "iat": NOW - 10, "exp": NOW + 3600, "aud": "demo",
            "iss": "https://securetoken.google.com/demo", "firebase": {"sign_in_provider": "password"}, **extra}


def test_hs256_id_token_gives_uid_provider_and_all_claims() -> None:
    token = jwt.encode(id_token_claims(admin=True), SECRET, algorithm="HS256")
    caller = verifier(secret=SECRET).verify(token)
    assert not caller.admin
    assert caller.auth is not None and caller.auth["uid"] == "alice" and caller.auth["provider"] == "password"
    assert caller.auth["token"]["admin"] is True
    assert caller.expires_at_ms == (NOW + 3600) * 1000


def test_legacy_custom_token_gives_its_d_claims_and_admin_bypasses() -> None:
    legacy = jwt.encode({"v": 0, "iat": NOW, "d": {"uid": "bob", "role": "mod"}}, SECRET, algorithm="HS256")
    assert verifier(secret=SECRET).verify(legacy).auth == {"uid": "bob", "role": "mod"}
    admin = jwt.encode({"v": 0, "iat": NOW, "d": {"uid": "x"}, "admin": True}, SECRET, algorithm="HS256")
    assert verifier(secret=SECRET).verify(admin).admin


def test_the_secret_itself_and_the_admin_token_are_admin() -> None:
    assert verifier(secret=SECRET).verify(SECRET).admin
    assert verifier(admin_token="tok").verify("tok").admin
    with pytest.raises(Unauthenticated):
        verifier().verify("owner")
    assert verifier(emulator=True).verify("owner").admin


@pytest.mark.parametrize("make", [
    lambda: jwt.encode(id_token_claims(), "w" * 40, algorithm="HS256"),
    lambda: jwt.encode(id_token_claims(), SECRET, algorithm="HS256")[:-4] + "AAAA",
    lambda: "not-a-jwt",
    lambda: jwt.encode({"iat": NOW}, SECRET, algorithm="HS256"),
])
def test_forged_or_malformed_tokens_are_refused(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Unauthenticated, match=INVALID):
        verifier(secret=SECRET).verify(make())


def test_expired_token_is_refused_with_firebase_message() -> None:
    token = jwt.encode(id_token_claims(exp=NOW - 1), SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated, match=EXPIRED):
        verifier(secret=SECRET).verify(token)


def _unsigned(claims: dict[str, object]) -> str:
    def b64(d: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return b64({"alg": "none", "type": "JWT"}) + "." + b64(claims) + "."


def test_unsigned_mock_tokens_only_in_emulator_mode() -> None:
    token = _unsigned(id_token_claims("carol"))
    assert verifier(emulator=True).verify(token).auth["uid"] == "carol"  # type: ignore[index]
    with pytest.raises(Unauthenticated, match=INVALID):
        verifier(secret=SECRET).verify(token)


def test_the_sdks_mock_tokens_from_1970_are_accepted_and_never_expire_in_emulator_mode() -> None:
    # what connectDatabaseEmulator(..., { mockUserToken }) and rules-unit-testing send
    mock = {"iss": "https://securetoken.google.com/demo", "aud": "demo", "iat": 0, "exp": 3600, "auth_time": 0,
            "sub": "alice", "user_id": "alice", "firebase": {"sign_in_provider": "custom", "identities": {}}}
    caller = verifier(emulator=True).verify(_unsigned(mock))
    assert caller.auth is not None and caller.auth["uid"] == "alice"
    assert caller.expires_at_ms is None  # no stream or socket is cut off at "exp"
    with pytest.raises(Unauthenticated, match=INVALID):
        verifier(secret=SECRET).verify(_unsigned(mock))
    signed = jwt.encode(mock, SECRET, algorithm="HS256")  # a signed token's exp still counts
    with pytest.raises(Unauthenticated, match=EXPIRED):
        verifier(emulator=True, secret=SECRET).verify(signed)


def test_rs256_with_public_key_and_es256_with_jwks(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "pub.pem"
    pem.write_bytes(rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    token = jwt.encode(id_token_claims(), rsa_key, algorithm="RS256")
    assert verifier(public_key=pem, audience="demo").verify(token).auth["uid"] == "alice"  # type: ignore[index]
    with pytest.raises(Unauthenticated):
        verifier(public_key=pem, audience="other").verify(token)

    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    jwk["kid"] = "k1"
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    token = jwt.encode(id_token_claims("dan"), ec_key, algorithm="ES256", headers={"kid": "k1"})
    assert verifier(jwks=jwks).verify(token).auth["uid"] == "dan"  # type: ignore[index]
    forged = jwt.encode(id_token_claims("dan"), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                        headers={"kid": "k1"})
    with pytest.raises(Unauthenticated):
        verifier(jwks=jwks).verify(forged)


def test_the_authenticator_expires_tokens_by_the_clock_it_is_given() -> None:
    from rtdb.server.auth import Authenticator
    from rtdb.server.settings import Settings

    token = jwt.encode(id_token_claims(exp=NOW + 60), SECRET, algorithm="HS256")
    settings = Settings(secret=SECRET, jwt_audience="demo", jwt_issuer="https://securetoken.google.com/demo")

    before = Authenticator(settings, clock=lambda: (NOW + 59) * 1000).caller(token, {})
    assert before.expires_at_ms == (NOW + 60) * 1000
    with pytest.raises(Unauthenticated) as exc:
        Authenticator(settings, clock=lambda: (NOW + 60) * 1000).caller(token, {})
    assert exc.value.message == EXPIRED
