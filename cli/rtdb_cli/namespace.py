"""`rtdb namespace drop|compact NAME`: a namespace as a whole, offline.

Both refuse a data directory that a running server holds (as ``rtdb import`` does): the
server's processes have the files open, and its listeners would not hear of the change.
Through a running server the same is ``DELETE /.namespace.json?ns=NAME`` and
``POST /.compact.json?ns=NAME`` with an admin credential.
"""

from __future__ import annotations

import asyncio

from rtdb.core.auth import ADMIN
from rtdb.engine.access import RulesAccess, default_rules
from rtdb.engine.engine import Engine, check_namespace
from rtdb.server.settings import Settings
from rtdb.storage.space import compact_file

from . import datadir
from .errors import CliError


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def run_namespace(settings: Settings, action: str, ns: str, *, full: bool = False) -> int:
    check_namespace(ns)
    data_dir = settings.data_dir
    if not data_dir.is_dir():
        raise CliError(f"--data-dir {data_dir}: no such directory")
    nothing = "nothing dropped" if action == "drop" else "nothing compacted"
    try:
        lock = datadir.hold(data_dir, f"rtdb namespace {action} {ns}")
    except datadir.DataDirInUse as exc:
        hint = "stop it first"
        if exc.url is not None:
            method, endpoint = ("DELETE", ".namespace.json") if action == "drop" else ("POST", ".compact.json")
            hint += f", or ask it with an admin credential: curl -X {method} '{exc.url}/{endpoint}?ns={ns}'"
        raise CliError(f"{exc.message}: {nothing}; {hint}") from None
    try:
        file = data_dir / f"{ns}.sqlite"
        if not file.exists():
            raise CliError(f"namespace {ns} does not exist in {data_dir}: {nothing}")
        if action == "drop":
            freed = asyncio.run(_drop(settings, ns))
            print(f"dropped namespace {ns}: {_mb(freed or 0)} freed")
        else:
            report = compact_file(file, full=full)
            how = "rewritten" if full or report.auto_vacuum != "incremental" else "free pages given back"
            print(f"compacted namespace {ns} ({how}): {_mb(report.bytes_before)} -> {_mb(report.bytes_after)}")
    finally:
        lock.release()
    return 0


async def _drop(settings: Settings, ns: str) -> int | None:
    engine = Engine(settings.data_dir, access=RulesAccess(default_rules(emulator=False)))
    try:
        return await engine.drop(ns, caller=ADMIN)
    finally:
        await engine.close()
