"""Starting rtdb from :class:`~rtdb.server.settings.Settings` (what ``rtdb serve`` calls once
its flags are settings): the checks and migrations before anything listens, then one server
process (:mod:`rtdb.runner.server`) or, with ``workers > 1``, the supervisor of
:mod:`rtdb.runner.workers`."""

from __future__ import annotations

import gc
import logging
import os
import resource
import sqlite3
from dataclasses import replace
from pathlib import Path

from rtdb.runner.server import LOG_FORMAT, RtdbServer, StartError, build_app, uvicorn_config
from rtdb.runner.workers import supervise
from rtdb.server.monitor import JsonFormatter
from rtdb.server.settings import Settings
from rtdb.storage import migrate

log = logging.getLogger("rtdb")


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    if settings.log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())


def run(settings: Settings, *, console: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT (``console``: the console's address to print at start);
    :class:`StartError` when the configuration cannot work."""
    if settings.emulator:
        log.warning("EMULATOR MODE: `Bearer owner` is admin and, without a rules file, everyone may read and "
                    "write everything. Never expose this server.")
    if settings.rules is not None:
        log.info("rules from %s (watched for changes)", settings.rules)
    elif not settings.emulator:
        log.warning("No rules file (--rules): every non-admin read and write is refused; admins (the console's "
                    "token, --admin-token, --secret) may do anything.")
    _raise_open_files_limit()
    if settings.database_url is not None:
        log.info("namespaces in PostgreSQL at %s", _without_password(settings.database_url))
    else:
        migrate_data_dir(settings.data_dir)
    if console is not None:
        log.warning("Console: %s", console)
    if settings.workers == 0:
        settings = replace(settings, workers=os.cpu_count() or 1)
    if settings.workers > 1:
        return supervise(settings)
    app = build_app(settings)
    gc.freeze()  # see build_app
    RtdbServer(uvicorn_config(settings, app), app).run()
    return 0


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{parts.username + '@' if parts.username else ''}{host}" \
           f"{':' + str(parts.port) if parts.port else ''}{parts.path}"


def migrate_data_dir(data_dir: Path) -> None:
    """Rewrite namespace files of an older storage format before anything opens them (once)."""
    def progress(name: str, nodes: int) -> None:
        log.info("migrating namespace %s to the current storage format: %s nodes so far", name, f"{nodes:,}")

    try:
        done = migrate.migrate_dir(data_dir, progress)
    except (sqlite3.Error, ValueError) as exc:
        raise StartError(f"cannot start: migrating the data dir {data_dir} failed: {exc}") from None
    if done:
        log.info("migrated %d namespace(s) to the current storage format: %s", len(done), ", ".join(done))




def _raise_open_files_limit() -> None:
    """Every connection is a file descriptor: use the hard limit, not the (often 1024) soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            log.info("could not raise the open files limit from %d", soft)
