"""`rtdb import` and `rtdb export`: a JSON file into a namespace, and a namespace out as JSON.

Import never loses data. It checks the whole file's JSON syntax before it opens the
database, then validates the document (keys, depth, sizes: what a REST write is checked
for) and replaces the value at ``--path`` with it in one transaction: a value the
database refuses anywhere in the file rolls that back, and a namespace or data directory
the import created is removed again. A missing, empty or malformed file, or a value the
database refuses, leaves the existing data as it was. Memory is the file's bytes plus a
bounded working set: the document is decoded, validated and written piece by piece
(:mod:`rtdb.core.document`, :mod:`rtdb.storage.stream`), never held as one tree. Nobody
listens while it holds the data directory (see below), so the write skips what a
server's write computes for listeners (reading the old value, diffing it). It holds the
data directory's lock while it writes, so it refuses to run beside a server on the same
data directory (whose listeners would never hear of the change): a running server is
written to through its REST API instead.

Export walks the stored tree one object at a time in one read transaction (a
consistent snapshot, safe beside a running server). While either runs, a line
on standard error says every few seconds where it is (terminal or not); import
ends with one line that says what it wrote.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import sys
import threading
import time
from pathlib import Path as FsPath
from typing import IO

import msgspec

from rtdb.core import path as paths
from rtdb.core.auth import ADMIN
from rtdb.core.document import MalformedJson, check_json
from rtdb.core.errors import RtdbError
from rtdb.engine.access import RulesAccess, default_rules
from rtdb.engine.engine import Engine, check_namespace
from rtdb.server.settings import Settings
from rtdb.storage import migrate
from rtdb.storage.rows import FORMAT
from rtdb.storage.stream import write_document

from . import datadir
from .errors import CliError

PROGRESS_EVERY_S = 3.0
READ_CHUNK = 1 << 20


def _engine(settings: Settings) -> Engine:
    return Engine(settings.data_dir, access=RulesAccess(default_rules(emulator=False)), synchronous="NORMAL",
                  indexes=settings.index_map())


class Progress:
    """Every ``every`` seconds, one line on standard error with the current step (terminal or not: the
    log of a long import shows that it is alive and where it is); nothing for a quick one."""

    def __init__(self, command: str, every: float = PROGRESS_EVERY_S) -> None:
        self.command = command
        self.step = ""
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, args=(every,), daemon=True)
        self._ticker.start()

    def say(self, step: str) -> None:
        self.step = step

    def print(self, text: str) -> None:
        print(f"rtdb {self.command}: {text}", file=sys.stderr, flush=True)

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            if self.step:
                self.print(f"{self.step} ({time.monotonic() - self.started:.0f} s)")

    def close(self) -> None:
        self._stop.set()
        self._ticker.join()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _leaves(n: int) -> str:
    return "leaf" if n == 1 else "leaves"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# ----------------------------------------------------------------------------- import
def _path(at: str) -> paths.Path:
    try:
        return paths.parse(at)
    except RtdbError as exc:
        raise CliError(f"--path {at!r}: {exc.message}") from None


def run_import(settings: Settings, file: str, at: str, progress_every: float = PROGRESS_EVERY_S) -> int:
    base = _path(at)
    check_namespace(settings.namespace)
    source = "standard input" if file == "-" else file
    progress = Progress("import", progress_every)
    gc.disable()  # millions of new objects, none of them garbage: collections would only walk them
    try:
        raw = _read(file, source, progress)
        progress.say(f"read {_mb(len(raw))} from {source}; checking its JSON")
        document = _checked(raw, source)
        created = not settings.data_dir.exists()
        datadir.check_writable(settings.data_dir)
        lock = datadir.hold(settings.data_dir, f"rtdb import of {source}")
        try:
            progress.say(f"writing {paths.to_str(base)} of namespace {settings.namespace}")
            leaves = asyncio.run(_write(settings, base, document, source, progress))
        except CliError:  # the document was refused: nothing was committed
            if created:  # the data directory this import made (and holds) goes again
                shutil.rmtree(settings.data_dir, ignore_errors=True)
            raise
        finally:
            lock.release()
        progress.print(f"imported {leaves:,} {_leaves(leaves)} into {paths.to_str(base)} "
                     f"of namespace {settings.namespace} in {progress.elapsed:.1f} s")
    except datadir.DataDirInUse as exc:
        hint = "stop it first"
        if exc.url is not None:
            rel = paths.to_str(base).strip("/")
            hint += (f", or write through it so that its listeners hear of the change: curl -X PUT --data-binary "
                     f"@{'-' if file == '-' else file} '{exc.url}/{rel}.json?ns={settings.namespace}' with an admin "
                     f"credential")
        raise CliError(f"{exc.message}: nothing imported; {hint}") from None
    finally:
        gc.enable()
        progress.close()
    return 0


def _read(file: str, source: str, progress: Progress) -> bytearray:
    """The whole input, read in chunks so that progress can be shown while it arrives (into one
    buffer: its bytes are held once)."""
    try:
        stream: IO[bytes] = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"{source}: {exc.strerror or exc}: nothing imported") from None
    try:
        progress.say(f"reading {source}")
        data = bytearray()
        while chunk := stream.read(READ_CHUNK):
            data += chunk
            progress.step = f"reading {source}: {_mb(len(data))} so far"
        return data
    except OSError as exc:
        raise CliError(f"{source}: {exc.strerror or exc}: nothing imported") from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _checked(raw: bytearray, source: str) -> msgspec.Raw:
    """The document, once its JSON syntax is checked from end to end (before anything is opened)."""
    if not raw or raw.isspace():
        raise CliError(f"{source} is empty: nothing imported")
    try:
        return check_json(raw)
    except RtdbError as exc:
        raise _refused(source, exc) from None


def _refused(source: str, exc: RtdbError) -> CliError:
    if isinstance(exc, MalformedJson):
        return CliError(f"{source} is not valid JSON ({exc.message}): nothing imported")
    return CliError(f"{source}: {exc.message}: nothing imported")


async def _write(settings: Settings, base: paths.Path, document: msgspec.Raw, source: str,
                 progress: Progress) -> int:
    """Replace the node at ``base`` in one transaction (server values resolved as it commits); the
    leaves written. A refused document writes nothing, and a namespace it would have created is
    dropped again."""
    engine = _engine(settings)
    try:
        existed = engine.exists(settings.namespace)
        store = await engine.store(settings.namespace)
        now = engine.clock()
        where = f"{paths.to_str(base)} of namespace {settings.namespace}"
        total = _mb(len(document))

        def report(done: int, leaves: int) -> None:
            progress.step = f"writing {where}: {_mb(done)} of {total} of JSON, {leaves:,} {_leaves(leaves)}"

        try:
            return await store.write(lambda txn: write_document(txn, base, document, now, progress=report))
        except RtdbError as exc:
            if not existed:
                await engine.drop(settings.namespace, caller=ADMIN)
            raise _refused(source, exc) from None
    finally:
        await engine.close()


# ----------------------------------------------------------------------------- export
def run_export(settings: Settings, at: str, fmt: str, progress_every: float = PROGRESS_EVERY_S) -> int:
    base = _path(at)
    check_namespace(settings.namespace)
    if not FsPath(settings.data_dir).is_dir():
        raise CliError(f"--data-dir {settings.data_dir}: no such directory")
    progress = Progress("export", progress_every)
    try:
        progress.say(f"exporting {paths.to_str(base)} of namespace {settings.namespace}")
        asyncio.run(_export(settings, base, fmt, progress))
    finally:
        progress.close()
    return 0


async def _export(settings: Settings, base: paths.Path, fmt: str, progress: Progress) -> int:
    engine = _engine(settings)
    out = sys.stdout
    written = 0

    def write(chunk: str) -> None:
        nonlocal written
        out.write(chunk)
        written += len(chunk)
        progress.step = f"exporting: {_mb(written)} written"

    try:
        await engine.export(settings.namespace, base, write, keep_priorities=fmt == "export", caller=ADMIN)
        out.write("\n")
        out.flush()
        return written
    finally:
        await engine.close()


def run_migrate(settings: Settings) -> int:
    """``rtdb migrate``: rewrite every namespace file of an older storage format (offline)."""
    datadir.check_writable(settings.data_dir)
    try:
        lock = datadir.hold(settings.data_dir, "rtdb migrate")
    except datadir.DataDirInUse as exc:
        raise CliError(f"{exc.message}: nothing migrated (a running server has migrated its files already)") from None
    progress = Progress("migrate")
    try:
        done = migrate.migrate_dir(settings.data_dir, lambda name, n: progress.say(f"{name}: {n:,} nodes"))
    finally:
        lock.release()
    if done:
        progress.print(f"migrated {len(done)} namespace(s) to storage format {FORMAT}: {', '.join(done)} "
                       f"in {progress.elapsed:.1f} s")
    else:
        progress.print(f"every namespace in {settings.data_dir} is in storage format {FORMAT} already")
    return 0
