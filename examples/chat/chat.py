"""Chat: two SDK clients in one room, under security rules.

    rtdb serve --emulator --rules examples/chat/rules.json
    python examples/chat/chat.py http://127.0.0.1:9000?ns=chat

Alice and Bob sign in (emulator mock tokens), listen to the room's last 10
messages and take turns writing; each sees the other's messages live. Bob then
tries to post as Alice: the rules refuse, his optimistic message disappears and
the write raises PermissionDenied.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import rtdb_sdk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tokens import mock_user_token  # noqa: E402

LINES = [
    ("alice", "Hi Bob!"),
    ("bob", "Hi Alice, how are you?"),
    ("alice", "Great, rtdb works offline too."),
    ("bob", "See you!"),
]


async def main(url: str) -> None:
    async with (
        rtdb_sdk.connect(url, token=mock_user_token("alice")) as alice,
        rtdb_sdk.connect(url, token=mock_user_token("bob")) as bob,
    ):
        seen: dict[str, list[str]] = {"alice": [], "bob": []}
        everyone_saw_all = asyncio.Event()

        def listener(name: str) -> Any:
            def on_message(snap: rtdb_sdk.DataSnapshot, _prev: str | None) -> None:
                msg = snap.val()
                seen[name].append(msg["text"])
                print(f"  [{name}'s screen] {msg['uid']}: {msg['text']}")
                if all(len(v) >= len(LINES) for v in seen.values()):
                    everyone_saw_all.set()

            return on_message

        for name, db in (("alice", alice), ("bob", bob)):
            room = db.reference("rooms/lobby/messages").order_by_child("at").limit_to_last(10)
            room.on_child_added(listener(name))

        for who, text in LINES:
            db = alice if who == "alice" else bob
            await db.reference("rooms/lobby/messages").push({"uid": who, "text": text, "at": rtdb_sdk.SERVER_TIMESTAMP})
        await asyncio.wait_for(everyone_saw_all.wait(), 10)
        # each screen got every message (a client sees its own message at once, maybe before an
        # earlier one of the other user arrives); both rooms list them in the order they were sent
        expected = [text for _, text in LINES]
        assert sorted(seen["alice"]) == sorted(seen["bob"]) == sorted(expected)
        for db in (alice, bob):
            room = await db.reference("rooms/lobby/messages").order_by_child("at").limit_to_last(10).get()
            assert [child.val()["text"] for child in room.children()] == expected

        print("bob tries to post as alice ...")
        try:
            await bob.reference("rooms/lobby/messages").push({"uid": "alice", "text": "I am Alice", "at": 0})
        except rtdb_sdk.PermissionDenied as exc:
            print(f"  refused: {exc.code}")
        else:
            raise SystemExit("the rules should have refused that write")
        messages = await alice.reference("rooms/lobby/messages").get()
        assert all(m.val()["uid"] != "alice" or m.val()["text"] != "I am Alice" for m in messages.children())
        print(f"{len(messages)} messages in the room")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9000?ns=chat"))
