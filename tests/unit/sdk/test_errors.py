"""Typed errors with Firebase's codes and texts."""

from __future__ import annotations

import rtdb_sdk
from rtdb_sdk.errors import error_for_status, listen_error


def test_write_errors_carry_the_upper_case_code() -> None:
    error = error_for_status("permission_denied", "Permission denied", path="/x")
    assert isinstance(error, rtdb_sdk.PermissionDenied) and error.code == "PERMISSION_DENIED"
    assert str(error) == "PERMISSION_DENIED: Permission denied" and error.path == "/x"
    other = error_for_status("weird_status", "")
    assert (
        type(other) is rtdb_sdk.DatabaseError
        and other.code == "WEIRD_STATUS"
        and str(other) == "WEIRD_STATUS: weird_status"
    )
    assert error_for_status("expired_token", "x").code == "EXPIRED_TOKEN"
    assert isinstance(error_for_status("datastale", "x"), rtdb_sdk.DataStale)


def test_listen_errors_read_like_the_js_sdk() -> None:
    error = listen_error("permission_denied", "/secret")
    assert str(error) == "permission_denied at /secret: Client doesn't have permission to access the desired data."
    assert str(listen_error("nope", "/a")) == "nope at /a: Unknown Error"
    assert isinstance(listen_error("too_big", "/a"), rtdb_sdk.TooBig)


def test_invalid_argument_is_also_a_value_error() -> None:
    assert issubclass(rtdb_sdk.InvalidArgument, ValueError)
