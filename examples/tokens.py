"""Unsigned user tokens for `rtdb serve --emulator` (what Firebase's createMockUserToken makes).

Emulator mode accepts them as signed-in users; a production server needs real,
signed tokens (see the README's auth settings).
"""

from __future__ import annotations

import base64
import json
import time


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def mock_user_token(uid: str, project: str = "demo") -> str:
    now = int(time.time())
    claims = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
        "sub": uid,
        "user_id": uid,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
