"""Yjs documents in the engine (rtdb/engine/ydoc.py): updates stored with their JSON mirror in the
writer's transaction, rules on the mirror, refused writes into a mirror, compaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pycrdt import Doc, Map, Text

from rtdb.core.auth import ADMIN, ANONYMOUS, Caller
from rtdb.core.changes import ChangeSet
from rtdb.core.errors import InvalidData
from rtdb.engine.access import RulesAccess
from rtdb.engine.engine import Engine
from rtdb.engine.ydoc import YdocResult, load_doc
from rtdb.rules import Ruleset

DOC = ("docs", "one")
ALICE = Caller(admin=False, auth={"uid": "alice"})
BOB = Caller(admin=False, auth={"uid": "bob"})

RULES = """{"rules": {"docs": {"$d": {
  ".read": "auth != null",
  ".write": "auth != null && auth.uid == 'alice'",
  ".validate": "!newData.child('content').exists() || newData.child('content').val().length <= 10"
}}}}"""


@pytest.fixture
async def engine(tmp_path: Path):
    e = Engine(tmp_path, access=RulesAccess(Ruleset.compile(RULES)), synchronous="NORMAL")
    yield e
    await e.close()


class Editor:
    """A client-side document whose edits are collected as updates."""

    def __init__(self) -> None:
        self.doc = Doc()
        self.text = self.doc.get("content", type=Text)
        self.updates: list[bytes] = []
        self.doc.observe(lambda event: self.updates.append(event.update))

    def take(self) -> list[bytes]:
        out, self.updates = self.updates, []
        return out


async def stored_text(engine: Engine, ns: str = "t") -> str:
    rows = await engine.ydoc_rows(ns, DOC, caller=ADMIN)
    return str(load_doc(rows).doc.get("content", type=Text))


async def test_updates_are_stored_and_mirrored_as_one_changeset(engine: Engine) -> None:
    seen: list[ChangeSet] = []
    engine.feed.subscribe("t", seen.append)
    editor = Editor()
    editor.text += "hi"
    editor.text += " all"
    result = await engine.ydoc_write("t", DOC, [(u, ALICE) for u in editor.take()])
    assert result.refused == (None, None) and result.last == 2
    assert await engine.get("t", DOC, caller=ADMIN) == {"content": "hi all"}
    assert [(c.base, c.changes[0].new) for c in seen] == [(DOC, {"content": "hi all"})]
    assert await stored_text(engine) == "hi all"


async def test_maps_and_arrays_mirror_as_objects_and_arrays(engine: Engine) -> None:
    doc = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    doc.get("meta", type=Map)["title"] = "T"
    from pycrdt import Array

    doc.get("tags", type=Array).extend(["a", "b"])
    await engine.ydoc_write("t", DOC, [(u, ALICE) for u in updates])
    assert await engine.get("t", DOC, caller=ADMIN) == {"meta": {"title": "T"}, "tags": {"0": "a", "1": "b"}}


async def test_an_update_the_rules_refuse_is_never_stored_or_mirrored(engine: Engine) -> None:
    alice = Editor()
    alice.text += "ok"
    await engine.ydoc_write("t", DOC, [(u, ALICE) for u in alice.take()])
    bob = Editor()
    bob.doc.apply_update(alice.doc.get_update())
    bob.updates.clear()
    bob.text += "BOB"  # bob may not write
    alice.text += "!" * 20  # fails .validate (longer than 10)
    later = Editor()
    later.doc.apply_update(alice.doc.get_update())
    result = await engine.ydoc_write(
        "t", DOC, [(u, BOB) for u in bob.take()] + [(u, ALICE) for u in alice.take()]
    )
    assert [r is not None and r.startswith("permission_denied") for r in result.refused] == [True, True]
    assert await engine.get("t", DOC, caller=ADMIN) == {"content": "ok"}
    assert await stored_text(engine) == "ok"
    fine = Editor()  # a later allowed update still applies to the stored state, not the refused one
    fine.doc.apply_update((await engine.ydoc_rows("t", DOC, caller=ADMIN))[0][1])
    fine.updates.clear()
    fine.text.insert(0, ">")
    assert (await engine.ydoc_write("t", DOC, [(u, ALICE) for u in fine.take()])).refused == (None,)
    assert await engine.get("t", DOC, caller=ADMIN) == {"content": ">ok"}


async def test_reading_a_document_needs_read_access(engine: Engine) -> None:
    from rtdb.core.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        await engine.ydoc_rows("t", DOC, caller=ANONYMOUS)


async def test_a_resent_update_is_applied_once(engine: Engine) -> None:
    editor = Editor()
    editor.text += "abc"
    updates = editor.take()
    await engine.ydoc_write("t", DOC, [(u, ALICE) for u in updates])
    await engine.ydoc_write("t", DOC, [(u, ALICE) for u in updates])  # a client resending after a reconnect
    assert await engine.get("t", DOC, caller=ADMIN) == {"content": "abc"}
    assert await stored_text(engine) == "abc"


async def test_bytes_that_are_no_update_are_refused_and_change_nothing(engine: Engine) -> None:
    result = await engine.ydoc_write("t", DOC, [(b"\x01\x02\x03garbage", ALICE)])
    assert result.refused[0] is not None and result.refused[0].startswith("invalid_data")
    assert await engine.ydoc_rows("t", DOC, caller=ADMIN) == []


async def test_ordinary_writes_into_a_mirror_are_refused_and_around_it_allowed(engine: Engine) -> None:
    editor = Editor()
    editor.text += "doc"
    await engine.ydoc_write("t", DOC, [(u, ALICE) for u in editor.take()])
    with pytest.raises(InvalidData, match="JSON mirror of the Yjs document at /docs/one"):
        await engine.set("t", DOC + ("content",), "x", caller=ADMIN)
    with pytest.raises(InvalidData, match="would change the JSON mirror"):
        await engine.set("t", ("docs",), {"two": 1}, caller=ADMIN)
    with pytest.raises(InvalidData, match="JSON mirror"):
        await engine.update("t", ("docs",), {"one/content": "y"}, caller=ADMIN)
    await engine.update("t", ("docs",), {"two": 2}, caller=ADMIN)  # a sibling: fine
    await engine.set("t", ("docs",), {"one": {"content": "doc"}, "two": 3}, caller=ADMIN)  # mirror unchanged: fine
    assert await engine.get("t", ("docs",), caller=ADMIN) == {"one": {"content": "doc"}, "two": 3}


async def test_a_document_needs_an_empty_path_that_is_not_inside_another(engine: Engine) -> None:
    await engine.set("t", ("docs", "taken"), "data", caller=ADMIN)
    editor = Editor()
    editor.text += "x"
    result = await engine.ydoc_write("t", ("docs", "taken"), [(u, ALICE) for u in editor.take()])
    assert result.refused[0] is not None and "holds data" in result.refused[0]
    await engine.ydoc_write("t", DOC, [(editor.doc.get_update(), ALICE)])
    result = await engine.ydoc_write("t", DOC + ("inner",), [(editor.doc.get_update(), ADMIN)])
    assert result.refused[0] is not None and "cannot nest" in result.refused[0]


async def test_a_long_log_is_compacted_into_one_row_holding_the_same_document(engine: Engine) -> None:
    engine.writes.ydocs.compact_rows = 5
    editor = Editor()
    for i in range(12):
        editor.text += str(i % 10)
        await engine.ydoc_write("t", DOC, [(u, ADMIN) for u in editor.take()])  # admin: past .validate's 10
    rows = await engine.ydoc_rows("t", DOC, caller=ADMIN)
    assert len(rows) < 6 and rows[-1][0] == 12  # row numbers keep growing
    assert await stored_text(engine) == "012345678901"
    engine.writes.ydocs.docs.clear()  # the writer reloads from the compacted rows
    editor.text += "x"
    await engine.ydoc_write("t", DOC, [(u, ADMIN) for u in editor.take()])
    assert await engine.get("t", DOC, caller=ADMIN) == {"content": "012345678901x"}




async def test_a_document_made_after_ordinary_writes_guards_its_mirror_at_once(engine: Engine, tmp_path: Path) -> None:
    # the writing connection asks "any document here?" once per group: a group that found none
    # must not make a later group (or a later write of the same group) skip the check
    await engine.set("t", ("docs", "two"), 1, caller=ADMIN)
    editor = Editor()
    editor.text += "doc"
    made, overwrite = await asyncio.gather(  # queued together: one group, the document first
        engine.ydoc_write("t", DOC, [(u, ALICE) for u in editor.take()]),
        engine.set("t", DOC + ("content",), "x", caller=ADMIN), return_exceptions=True)
    assert isinstance(made, YdocResult) and made.refused == (None,)
    assert isinstance(overwrite, InvalidData) and "JSON mirror" in str(overwrite)
    with pytest.raises(InvalidData, match="JSON mirror"):
        await engine.set("t", DOC + ("content",), "y", caller=ADMIN)
    # another writer of the same file (as --workers)
    other = Engine(tmp_path, access=RulesAccess(Ruleset.compile(RULES)), synchronous="NORMAL")
    try:
        await other.set("u", ("a",), 1, caller=ADMIN)
        editor.text += "!"
        await engine.ydoc_write("u", DOC, [(u, ALICE) for u in editor.take()])
        with pytest.raises(InvalidData, match="JSON mirror"):
            await other.set("u", DOC, {"content": "z"}, caller=ADMIN)
    finally:
        await other.close()
    assert await engine.get("t", DOC, caller=ADMIN) == {"content": "doc"}
