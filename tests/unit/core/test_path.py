import pytest

from rtdb.core.errors import InvalidData, InvalidPath
from rtdb.core.path import check_key, is_valid_key, parse


def test_empty_segments_are_ignored() -> None:
    assert parse("/users/jack/name/") == ("users", "jack", "name")
    assert parse("/") == ()


@pytest.mark.parametrize("raw", ["/a.b", "/a$", "/a#", "/a[", "/a]", "/a%2Fb", "/a%00", "/a%5Cb"])
def test_invalid_url_paths_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPath, match="Invalid path"):
        parse(raw, decode=True)


def test_percent_decoding_of_url_segments() -> None:
    assert parse("/a%20b/%C3%A9", decode=True) == ("a b", "é")


def test_depth_and_length_limits() -> None:
    parse("/".join(["k"] * 32))
    with pytest.raises(InvalidPath, match="maximum depth"):
        parse("/".join(["k"] * 33))
    with pytest.raises(InvalidPath, match="768"):
        parse("x" * 769)


def test_priority_segment_only_where_allowed() -> None:
    assert parse("/a/.priority", allow_priority=True) == ("a", ".priority")
    with pytest.raises(InvalidPath):
        parse("/a/.priority")


@pytest.mark.parametrize("raw", ["/%ff", "/%ED%A0%80", "/%C0%AF", "/ok/%E9t%C3%A9", "/%F0%9F%98"])
def test_url_segments_that_are_not_utf8_are_refused_as_invalid_paths(raw: str) -> None:
    with pytest.raises(InvalidPath, match="Invalid token in path"):
        parse(raw, decode=True)


@pytest.mark.parametrize("raw", ["/a\ud800", "/\udfff/b", "/x/y\udc00z"])
def test_paths_with_a_lone_surrogate_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPath, match="Invalid token in path"):
        parse(raw)


def test_keys_with_a_lone_surrogate_are_refused() -> None:
    assert not is_valid_key("a\ud800")
    with pytest.raises(InvalidData, match="Key value can't be empty"):
        check_key("\udc00")
    assert is_valid_key("a\U0001f600")  # a real astral character is fine
