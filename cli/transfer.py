"""`rtdb import` and `rtdb export`: stream JSON in and out of a namespace.

Neither loads the whole tree: import feeds the engine batches of leaves as the
file is parsed (ijson), export walks the stored tree one object at a time.
A progress bar (rich) is shown when standard error is a terminal.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from typing import IO, Any

import ijson
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from rtdb.core import path as paths
from rtdb.core.auth import ADMIN
from rtdb.engine.access import RulesAccess, default_rules
from rtdb.engine.engine import Engine
from rtdb.server.settings import Settings

BATCH_LEAVES = 5000


def _engine(settings: Settings) -> Engine:
    return Engine(settings.data_dir, access=RulesAccess(default_rules(emulator=False)), synchronous="NORMAL",
                  indexes=settings.index_map())


def iter_leaves(stream: IO[bytes]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """``(relative path, leaf)`` for every leaf of a JSON document, in document order.
    ``.value`` leaves are reported at their parent; ``.priority`` keeps its key."""
    stack: list[str] = []
    counters: list[int | None] = []
    for _prefix, event, value in ijson.parse(stream, use_float=True):
        if event == "map_key":
            stack[-1] = value
            continue
        if event in ("start_map", "start_array"):
            _advance(stack, counters)
            stack.append("")
            counters.append(0 if event == "start_array" else None)
            continue
        if event in ("end_map", "end_array"):
            stack.pop()
            counters.pop()
            continue
        _advance(stack, counters)
        if value is None:
            continue
        where = tuple(stack[:-1]) if stack and stack[-1] == ".value" else tuple(stack)
        yield where, value


def _advance(stack: list[str], counters: list[int | None]) -> None:
    if counters and counters[-1] is not None:
        stack[-1] = str(counters[-1])
        counters[-1] += 1


def run_import(settings: Settings, file: str, at: str) -> int:
    base = paths.parse(at)
    stream: IO[bytes] = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
    try:
        total = None if file == "-" else _size(stream)
        return asyncio.run(_import(settings, settings.namespace, base, stream, total))
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _size(stream: IO[bytes]) -> int | None:
    try:
        return stream.seek(0, io.SEEK_END) or None
    finally:
        stream.seek(0)


async def _import(settings: Settings, ns: str, base: paths.Path, stream: IO[bytes], total: int | None) -> int:
    engine = _engine(settings)
    progress = _progress()
    try:
        with progress or nullcontext():
            task = progress.add_task("import", total=total) if progress else None
            await engine.set(ns, base, None, caller=ADMIN)
            batch: dict[str, Any] = {}
            priorities: dict[str, Any] = {}
            count = 0
            for rel, leaf in iter_leaves(stream):
                if rel and rel[-1] == ".priority":
                    priorities["/".join(rel)] = leaf
                    continue
                if not rel:
                    await engine.set(ns, base, leaf, caller=ADMIN)
                    continue
                batch["/".join(rel)] = leaf
                count += 1
                if len(batch) >= BATCH_LEAVES:
                    await engine.update(ns, base, batch, caller=ADMIN)
                    batch = {}
                    if progress and task is not None:
                        progress.update(task, completed=stream.tell())
            if batch:
                await engine.update(ns, base, batch, caller=ADMIN)
            for key, priority in priorities.items():
                await engine.update(ns, base, {key: priority}, caller=ADMIN)
            if progress and task is not None:
                progress.update(task, completed=total)
        print(f"imported {count} leaves into {paths.to_str(base)} of namespace {ns}", file=sys.stderr)
        return 0
    finally:
        await engine.close()


def _progress() -> Progress | None:
    if not sys.stderr.isatty():
        return None
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    transient=True)


def run_export(settings: Settings, at: str, fmt: str) -> int:
    return asyncio.run(_export(settings, settings.namespace, paths.parse(at), fmt))


async def _export(settings: Settings, ns: str, base: paths.Path, fmt: str) -> int:
    engine = _engine(settings)
    out = sys.stdout
    try:
        progress = _progress()
        with progress or nullcontext():
            task = progress.add_task("export", total=None) if progress else None
            written = 0

            def write(chunk: str) -> None:
                nonlocal written
                out.write(chunk)
                written += len(chunk)
                if progress and task is not None:
                    progress.update(task, completed=written)

            await engine.export(ns, base, write, keep_priorities=fmt == "export", caller=ADMIN)
        out.write("\n")
        out.flush()
        return 0
    finally:
        await engine.close()
