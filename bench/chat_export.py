"""A generated, seeded Firebase export of a chat app, for bench/storage_bench.py.

Users under 20-character push ids (nested profile, settings and notification objects,
short and long strings, numbers, booleans, some arrays and ``following`` maps), rooms
(meta, members, a ``pinned`` array) with messages under push ids (text of varied length,
uid, ts, sometimes ``edited``, nested ``reactions`` or an ``attachments`` array), and a
small ``stats`` object. Compact JSON, UTF-8, the same bytes for the same size and seed.

    .venv/bin/python bench/chat_export.py out.json --mb 50
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path

PUSH_CHARS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
WORDS = (
    "the a to and of in is it you that for on was with as have be at one this we can all so "
    "what about when your up out if just now like get time good know see think look back "
    "meeting tomorrow release deploy coffee weekend photo link docs issue fixed thanks great "
    "sounds plan lunch later maybe sure yes no idea today call team update draft review "
    "café naïve über 🎉 👍 😂"
).split()
FIRST = "Ada Alan Grace Linus Barbara Ken Margaret Dennis Frances Edsger Radia Guido Anita Donald Sophie".split()
LAST = ("Lovelace Turing Hopper Torvalds Liskov Thompson Hamilton Ritchie Allen Dijkstra Perlman Rossum Borg "
        "Knuth").split()
CITIES = [("Paris", "FR"), ("Oslo", "NO"), ("Lima", "PE"), ("Pune", "IN"), ("Osaka", "JP"), ("Austin", "US"),
          ("Lagos", "NG"), ("Porto", "PT"), ("Quito", "EC"), ("Perth", "AU")]
TAGS = "music travel code chess running photography cooking gaming books movies hiking design".split()
EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "🙏"]


@dataclass
class Export:
    path: Path
    json_bytes: int
    leaves: int
    users: list[str]
    rooms: int
    messages: int
    sample_message: str  # "rooms/<id>/messages/<id>"


def push_id(ms: int, rnd: random.Random) -> str:
    """A Firebase push id: 8 characters of timestamp, 12 random ones."""
    head = "".join(PUSH_CHARS[(ms >> (6 * i)) & 63] for i in range(7, -1, -1))
    return head + "".join(rnd.choice(PUSH_CHARS) for _ in range(12))


def words(rnd: random.Random, n: int) -> str:
    return " ".join(rnd.choice(WORDS) for _ in range(n))


def count_leaves(value: object) -> int:
    if isinstance(value, dict):
        return sum(count_leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_leaves(v) for v in value)
    return 0 if value is None else 1


def user_record(rnd: random.Random, ts: int, earlier: list[str]) -> dict[str, object]:
    first, last = rnd.choice(FIRST), rnd.choice(LAST)
    city, country = rnd.choice(CITIES)
    long_bio = rnd.random() < 0.3
    user: dict[str, object] = {
        "profile": {
            "displayName": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}{rnd.randint(1, 999)}@example.com",
            "photoURL": f"https://cdn.example.com/avatars/{rnd.getrandbits(64):016x}.jpg",
            "bio": words(rnd, rnd.randint(40, 120) if long_bio else rnd.randint(3, 12)),
            "location": {"city": city, "country": country,
                         "lat": round(rnd.uniform(-60, 70), 6), "lng": round(rnd.uniform(-180, 180), 6)},
            "birthYear": rnd.randint(1950, 2008),
        },
        "settings": {
            "theme": rnd.choice(["light", "dark", "system"]),
            "language": rnd.choice(["en", "fr", "es", "ja", "pt"]),
            "notifications": {"email": rnd.random() < 0.5, "push": rnd.random() < 0.7,
                              "digest": rnd.choice(["daily", "weekly", "never"])},
        },
        "createdAt": ts,
        "lastSeen": ts + rnd.randint(0, 10**10),
        "score": round(rnd.random() * 1000, 2),
        "level": rnd.randint(1, 60),
        "verified": rnd.random() < 0.4,
        "online": rnd.random() < 0.1,
    }
    if rnd.random() < 0.5:
        user["tags"] = rnd.sample(TAGS, rnd.randint(1, 5))
    if rnd.random() < 0.3:
        user["scores"] = [rnd.randint(0, 100) for _ in range(rnd.randint(5, 30))]
    if earlier and rnd.random() < 0.4:
        user["following"] = {uid: True for uid in rnd.sample(earlier, min(len(earlier), rnd.randint(1, 8)))}
    return user


def message_text(rnd: random.Random) -> str:
    p = rnd.random()
    return words(rnd, rnd.randint(2, 15) if p < 0.7 else rnd.randint(15, 60) if p < 0.95 else rnd.randint(100, 300))


def room_record(rnd: random.Random, ts: int, uids: list[str]) -> dict[str, object]:
    members = rnd.sample(uids, min(len(uids), rnd.randint(2, 30)))
    messages: dict[str, object] = {}
    for _ in range(rnd.randint(20, 600)):
        ts += rnd.randint(1_000, 600_000)
        msg: dict[str, object] = {"uid": rnd.choice(members), "text": message_text(rnd), "ts": ts}
        if rnd.random() < 0.1:
            msg["edited"] = True
        if rnd.random() < 0.15:
            msg["reactions"] = {rnd.choice(members): rnd.choice(EMOJI) for _ in range(rnd.randint(1, 4))}
        if rnd.random() < 0.05:
            msg["attachments"] = [{"type": "image", "url": f"https://cdn.example.com/i/{rnd.getrandbits(48):012x}.png",
                                   "w": rnd.choice([640, 1024, 1920]), "h": rnd.choice([480, 768, 1080])}]
        messages[push_id(ts, rnd)] = msg
    return {
        "meta": {"name": words(rnd, rnd.randint(1, 4)).title(), "topic": words(rnd, rnd.randint(3, 20)),
                 "createdBy": members[0], "createdAt": ts, "private": rnd.random() < 0.2},
        "members": {uid: True for uid in members},
        "pinned": list(messages)[: rnd.randint(0, 3)],
        "messages": messages,
    }


def generate_export(path: Path, mb: float, seed: int) -> Export:
    """Write a compact JSON export of about ``mb`` MB (30 % users, the rest rooms), section by section."""
    rnd = random.Random(seed)
    target = int(mb * 1e6)
    ts = 1_700_000_000_000
    uids: list[str] = []
    leaves = rooms = messages = written = 0
    sample_message = ""

    def dump(value: object) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    with path.open("wb") as out:
        def put(chunk: bytes) -> None:
            nonlocal written
            out.write(chunk)
            written += len(chunk)

        put(b'{"users":{')
        while written < target * 0.3:
            ts += rnd.randint(1_000, 5_000_000)
            uid = push_id(ts, rnd)
            user = user_record(rnd, ts, uids)
            leaves += count_leaves(user)
            put((b"," if uids else b"") + dump(uid) + b":" + dump(user))
            uids.append(uid)
        put(b'},"rooms":{')
        while written < target - 20_000:
            ts += rnd.randint(1_000, 5_000_000)
            rid = push_id(ts, rnd)
            room = room_record(rnd, ts, uids)
            room_messages: dict[str, object] = room["messages"]  # type: ignore[assignment]
            if rooms == 0:
                sample_message = f"rooms/{rid}/messages/{list(room_messages)[len(room_messages) // 2]}"
            leaves += count_leaves(room)
            messages += len(room_messages)
            put((b"," if rooms else b"") + dump(rid) + b":" + dump(room))
            rooms += 1
        stats = {"daily": [rnd.randint(0, 5000) for _ in range(365)], "version": 3, "name": "chat-prod"}
        leaves += count_leaves(stats)
        put(b'},"stats":' + dump(stats) + b"}")
    return Export(path, written, leaves, uids, rooms, messages, sample_message)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--mb", type=float, default=50)
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    export = generate_export(args.out, args.mb, args.seed)
    print(f"{export.json_bytes / 1e6:.1f} MB, {export.leaves:,} leaves, {len(export.users):,} users, "
          f"{export.rooms:,} rooms, {export.messages:,} messages")


if __name__ == "__main__":
    main()
