"""WebSocket text framing (spec 2.2): count frames, slices and keepalives.

Client → server: a frame of only ASCII digits is a control frame: ``0`` is a
keepalive, ``N`` announces that the next ``N`` frames form one message.
Server → client: a message longer than :data:`MAX_FRAME_CHARS` is sent as a count
frame followed by slices. A short all-digit frame is never sent on its own.
"""

from __future__ import annotations

from rtdb.protocol.errors import FramingError, MessageTooBig

MAX_FRAME_CHARS = 16384
DEFAULT_MAX_MESSAGE_CHARS = 16 * 1024 * 1024 + 64 * 1024
MAX_FRAME_COUNT = 1 << 20


class FrameAssembler:
    """Turns incoming client frames into complete JSON message texts.

    ``feed(frame)`` returns the completed message text, or ``None`` when the frame
    was a keepalive, a count frame, or a slice of a message still incomplete.
    """

    __slots__ = ("_max_chars", "_parts", "_remaining", "_size")

    def __init__(self, *, max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS) -> None:
        self._max_chars = max_message_chars
        self._remaining = 0
        self._parts: list[str] = []
        self._size = 0

    @property
    def in_message(self) -> bool:
        return self._remaining > 0

    def feed(self, frame: str) -> str | None:
        if self._remaining:
            self._size += len(frame)
            if self._size > self._max_chars:
                self._reset()
                raise MessageTooBig(f"message exceeds {self._max_chars} characters")
            self._parts.append(frame)
            self._remaining -= 1
            if self._remaining:
                return None
            text = "".join(self._parts)
            self._reset()
            return text
        if is_count_frame(frame):
            count = int(frame)
            if count == 0:
                return None
            if count > MAX_FRAME_COUNT or (count - 1) * MAX_FRAME_CHARS > self._max_chars:
                raise MessageTooBig(f"a message of {count} frames is too big")
            self._remaining = count
            return None
        if len(frame) > self._max_chars:
            raise MessageTooBig(f"message exceeds {self._max_chars} characters")
        return frame

    def _reset(self) -> None:
        self._remaining = 0
        self._parts = []
        self._size = 0


def is_count_frame(frame: str) -> bool:
    """A frame made only of ASCII digits (what the client sends as a count/keepalive)."""
    if not frame or len(frame) > 10:
        return False
    if not frame.isascii() or not frame.isdigit():
        return False
    return True


def split_message(text: str, *, max_frame_chars: int = MAX_FRAME_CHARS) -> tuple[str, ...]:
    """The frames that carry one server message: the text itself when it fits,
    else a count frame followed by slices of at most ``max_frame_chars``."""
    if max_frame_chars < 7:
        raise FramingError("frames must allow at least 7 characters")
    if len(text) <= max_frame_chars:
        if is_count_frame(text) or not text:
            raise FramingError("a server message must never look like a count frame")
        return (text,)
    slices = tuple(text[i : i + max_frame_chars] for i in range(0, len(text), max_frame_chars))
    return (str(len(slices)), *slices)
