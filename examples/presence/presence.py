"""Presence: who is online, kept right by onDisconnect and server timestamps.

    rtdb serve --emulator
    python examples/presence/presence.py http://127.0.0.1:9000?ns=presence

A device marks itself online and registers an onDisconnect write that marks it
offline with the server's time; whenever `.info/connected` turns true again
(after a reconnect) it does so again. A dashboard client watches `/status`. The
device then goes away without a word and the server records it as offline.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import rtdb_sdk


def track_presence(db: rtdb_sdk.Database, uid: str) -> rtdb_sdk.Listener:
    me = db.reference(f"status/{uid}")

    def on_connected(snap: rtdb_sdk.DataSnapshot) -> None:
        if snap.val() is not True:
            return

        async def announce() -> None:
            await me.on_disconnect().set({"state": "offline", "last_changed": rtdb_sdk.SERVER_TIMESTAMP})
            await me.set({"state": "online", "last_changed": rtdb_sdk.SERVER_TIMESTAMP})

        asyncio.get_running_loop().create_task(announce())

    return db.reference(".info/connected").on_value(on_connected)


async def main(url: str) -> None:
    async with rtdb_sdk.connect(url) as dashboard:
        states: list[Any] = []
        changed = asyncio.Event()

        def on_status(snap: rtdb_sdk.DataSnapshot) -> None:
            value = snap.val()
            states.append(value)
            print(
                f"  dashboard: phone is {value['state']} (since {value['last_changed']})"
                if value
                else "  dashboard: nobody"
            )
            changed.set()

        dashboard.reference("status/phone").on_value(on_status)

        async def wait_for(state: str) -> None:
            while not (states and states[-1] and states[-1]["state"] == state):
                changed.clear()
                await asyncio.wait_for(changed.wait(), 10)

        phone = await rtdb_sdk.connect(url)
        track_presence(phone, "phone")
        await wait_for("online")
        print(f"phone's clock is {phone.server_time_offset} ms behind the server")
        await phone.close()  # the app dies: the server runs the onDisconnect write
        await wait_for("offline")
        assert isinstance(states[-1]["last_changed"], int)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9000?ns=presence"))
