"""Client frame assembly and server frame splitting (spec 2.2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rtdb.protocol.errors import FramingError, MessageTooBig
from rtdb.protocol.framing import MAX_FRAME_CHARS, FrameAssembler, is_count_frame, split_message

from .cases import load_cases

CASES = load_cases("framing.json")


@pytest.mark.parametrize("case", CASES["assemble"], ids=lambda c: c["name"])
def test_client_frames_assemble_into_messages(case: dict[str, Any]) -> None:
    assembler = FrameAssembler()
    out = [m for m in (assembler.feed(f) for f in case["frames"]) if m is not None]
    assert out == case["messages"]
    assert not assembler.in_message


@pytest.mark.parametrize("case", CASES["split"], ids=lambda c: c["name"])
def test_long_server_messages_are_split_after_a_count_frame(case: dict[str, Any]) -> None:
    text = json.dumps({"t": "d", "d": "x" * (case["length"] - 16)}, separators=(",", ":"))
    assert len(text) == case["length"]
    frames = split_message(text)
    assert len(frames) == case["frames"]
    if len(frames) > 1:
        assert frames[0] == str(len(frames) - 1)
        assert all(len(f) <= MAX_FRAME_CHARS for f in frames[1:])
        assert "".join(frames[1:]) == text
    if "slices" in case:
        assert [len(f) for f in frames[1:]] == case["slices"]


def test_split_frames_reassemble_through_the_client_rules() -> None:
    """Mirror of the JS client's extractFrameCount_: a frame of <= 6 chars that is a number."""
    text = json.dumps({"v": "é✓😀" * 20000})
    frames = split_message(text)
    remaining = 0
    parts: list[str] = []
    messages: list[str] = []
    for frame in frames:
        if remaining == 0 and len(frame) <= 6 and frame.isdigit():
            remaining = int(frame)
            assert remaining > 0
            continue
        parts.append(frame)
        remaining -= 1
        if remaining == 0:
            messages.append("".join(parts))
            parts = []
    assert messages == [text]


def test_server_never_emits_a_bare_numeric_frame() -> None:
    with pytest.raises(FramingError, match="count frame"):
        split_message("0")
    with pytest.raises(FramingError, match="count frame"):
        split_message("")


def test_oversized_messages_are_refused_before_they_are_buffered() -> None:
    assembler = FrameAssembler(max_message_chars=40_000)
    with pytest.raises(MessageTooBig):
        assembler.feed("100")
    assembler = FrameAssembler(max_message_chars=20_000)
    assembler.feed("2")
    assembler.feed("x" * 16384)
    with pytest.raises(MessageTooBig):
        assembler.feed("x" * 16384)
    assert assembler.feed('{"ok":1}') == '{"ok":1}'


@pytest.mark.parametrize(
    ("frame", "expected"),
    [("0", True), ("3", True), ("12345", True), ("", False), ("1a", False), ("٣", False), ("{}", False)],
)
def test_count_frames_are_ascii_digits_only(frame: str, expected: bool) -> None:
    assert is_count_frame(frame) is expected
