import pytest

from rtdb.core.errors import InvalidPath
from rtdb.core.path import parse


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
