"""Reading a JWT's claims without verifying it: one function for the server and the SDK."""

from __future__ import annotations

import base64
import json
import math

import jwt

from rtdb.core.auth import json_numbers, unverified_claims


def _segment(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_the_sdks_unsigned_mock_token_yields_its_claims() -> None:
    token = _segment({"alg": "none", "typ": "JWT"}) + "." + _segment({"uid": "u1", "iat": 0, "exp": 3600}) + "."

    assert unverified_claims(token) == {"uid": "u1", "iat": 0, "exp": 3600}


def test_a_signed_token_is_read_whatever_its_key_and_expiry() -> None:
    token = jwt.encode({"uid": "u2", "exp": 1}, "a-key-nobody-here-knows-0123456789abcdef", algorithm="HS256")

    assert unverified_claims(token) == {"uid": "u2", "exp": 1}


def test_what_is_not_a_jwt_with_an_object_payload_yields_none() -> None:
    header = _segment({"alg": "none"})
    for token in ["", "owner", "a.b.c", header + "." + _segment([1, 2]) + ".", header + ".!!!."]:
        assert unverified_claims(token) is None, token


def test_claims_read_as_javascript_reads_them() -> None:
    claims = {"n": 2**53, "big": 2**70, "neg": -(2**60), "huge": 10**400, "tiny": -(10**400), "ok": True,
              "list": [1, 2**64], "nested": {"x": 2**63}, "f": 1.5, "s": "2"}
    assert json_numbers(claims) == {"n": 2**53, "big": float(2**70), "neg": float(-(2**60)), "huge": math.inf,
                                    "tiny": -math.inf, "ok": True, "list": [1, float(2**64)],
                                    "nested": {"x": float(2**63)}, "f": 1.5, "s": "2"}
    assert type(json_numbers(claims)["n"]) is int and json_numbers(claims)["ok"] is True
