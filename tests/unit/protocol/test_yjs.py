"""y-protocols framing (rtdb/protocol/yjs.py): round trips, and strict refusal of bad input."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Text, create_sync_message, create_update_message

from rtdb.protocol.errors import MessageTooBig
from rtdb.protocol.yjs import (
    Awareness,
    AwarenessEntry,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    YProtocolError,
    decode_message,
    encode_awareness,
    encode_query_awareness,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
    write_varuint,
)

BIG = 1 << 20


def test_messages_round_trip_and_match_pycrdt_framing() -> None:
    doc = Doc()
    doc.get("content", type=Text).insert(0, "hello" * 100)  # payload over 127 bytes: a two-byte length
    update = doc.get_update()
    assert encode_update(update) == create_update_message(update)
    assert encode_sync_step1(doc.get_state()) == create_sync_message(doc)
    assert decode_message(encode_update(update), max_bytes=BIG) == SyncUpdate(update)
    assert decode_message(encode_sync_step2(update), max_bytes=BIG) == SyncStep2(update)
    assert decode_message(encode_sync_step1(b"\x00"), max_bytes=BIG) == SyncStep1(b"\x00")
    assert decode_message(encode_query_awareness(), max_bytes=BIG) == QueryAwareness()


def test_awareness_entries_round_trip() -> None:
    entries = (AwarenessEntry(3_000_000_000, 7, '{"user":{"name":"ada"}}'), AwarenessEntry(5, 1, "null"))
    assert decode_message(encode_awareness(entries), max_bytes=BIG) == Awareness(entries)


def test_varuint_uses_seven_bits_per_byte() -> None:
    assert write_varuint(0) == b"\x00"
    assert write_varuint(127) == b"\x7f"
    assert write_varuint(128) == b"\x80\x01"
    assert write_varuint(300) == b"\xac\x02"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated number"),
        (b"\x09", "unknown message type 9"),
        (b"\x00\x07\x00", "unknown sync message type 7"),
        (b"\x00\x02\x05ab", "truncated payload"),
        (b"\x00\x02\x01ab", "trailing bytes"),
        (b"\x00\x02" + b"\xff" * 12, "number too long"),
        (b"\x01\x03\x09\x01\x01", "awareness entry count exceeds the payload"),
        (b"\x01\x05\x01\x01\x01\x01\xff", "string is not UTF-8"),
    ],
)
def test_malformed_messages_raise_a_protocol_error(data: bytes, message: str) -> None:
    with pytest.raises(YProtocolError, match=message):
        decode_message(data, max_bytes=BIG)


def test_a_message_over_the_limit_is_refused_before_decoding() -> None:
    with pytest.raises(MessageTooBig):
        decode_message(encode_update(b"x" * 200), max_bytes=100)
