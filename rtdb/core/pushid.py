"""Push ids (spec 1.6): 8 timestamp characters + 12 random ones, monotonic per generator."""

from __future__ import annotations

import secrets
import threading

PUSH_CHARS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


class PushIdGenerator:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_time = -1
        self._last_random = [0] * 12

    def next(self, now_ms: int) -> str:
        with self._lock:
            if now_ms == self._last_time:
                i = 11
                while i >= 0 and self._last_random[i] == 63:
                    self._last_random[i] = 0
                    i -= 1
                if i >= 0:
                    self._last_random[i] += 1
            else:
                self._last_time = now_ms
                self._last_random = [secrets.randbelow(64) for _ in range(12)]
            random = list(self._last_random)
        chars = []
        t = now_ms
        for _ in range(8):
            chars.append(PUSH_CHARS[t % 64])
            t //= 64
        return "".join(reversed(chars)) + "".join(PUSH_CHARS[r] for r in random)
