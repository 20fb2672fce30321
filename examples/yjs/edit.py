"""Two processes editing one text: run `rtdb serve --emulator`, then in two terminals

    python examples/yjs/edit.py alice
    python examples/yjs/edit.py bob

Each appends its name every second and prints the shared text; the JSON mirror is at
http://127.0.0.1:9000/notes/shared.json?ns=demo (any REST or Firebase client can read it).
"""

from __future__ import annotations

import asyncio
import sys

from pycrdt import Text

from rtdb_sdk import open_doc


async def main(name: str) -> None:
    async with open_doc("http://127.0.0.1:9000?ns=demo", "notes/shared") as session:
        await session.synced()
        text = session.doc.get("content", type=Text)
        for i in range(10):
            text.insert(len(text), f"{name}{i} ")
            await asyncio.sleep(1)
            print(str(text))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "me"))
