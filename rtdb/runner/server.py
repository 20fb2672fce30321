"""Running a server from :class:`~rtdb.server.settings.Settings`: uvicorn (uvloop, httptools)
around the app, ``/.ws`` on rtdb's native WebSocket protocol (:mod:`rtdb.server.wsprotocol`);
with ``workers > 1`` the supervisor of :mod:`rtdb.runner.workers` instead. The ``rtdb serve``
command turns its flags into settings and calls :func:`run`."""

from __future__ import annotations

import gc
import logging
import os
import resource
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn
from litestar import Litestar
from uvicorn.config import LOGGING_CONFIG

from rtdb.realtime.broker import Broker
from rtdb.rules import RulesError
from rtdb.server.app import create_app
from rtdb.server.httpprotocol import http_protocol_class
from rtdb.server.monitor import JsonFormatter
from rtdb.server.settings import Settings
from rtdb.server.wsprotocol import WsServer
from rtdb.storage import migrate

log = logging.getLogger("rtdb")


class StartError(Exception):
    """A configuration that cannot work (rules file, key files, the port, the data dir):
    raised before the server listens; ``status`` is the exit status it deserves."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
        from rtdb.runner.workers import supervise

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


# Each process calls ``gc.freeze()`` once its app is built: the hundreds of thousands of objects
# made by imports and start-up are never garbage, yet every full collection would walk them all
# again (a busy connection allocates enough to cause one every few thousand writes). Frozen, they
# are left out: pipelined writes went ×1.10–1.22 faster with the writer process (interleaved A/B).
def build_app(settings: Settings, feed: Broker | None = None) -> Litestar:
    """The app; :class:`StartError` when the configuration cannot work: rules, key files, indexes."""
    try:
        return create_app(settings, feed=feed)
    except RulesError as exc:
        raise StartError(f"cannot start: rules file {settings.rules}: {exc.message}", status=2) from None
    except UnicodeDecodeError as exc:
        raise StartError(f"cannot start: rules file {settings.rules}: not UTF-8 text ({exc.reason} at byte "
                       f"{exc.start})", status=2) from None
    except OSError as exc:
        if exc.filename is None:
            raise StartError(f"cannot start: {exc}", status=2) from None
        what = "rules file " if settings.rules is not None and exc.filename == str(settings.rules) else ""
        raise StartError(f"cannot start: {what}{exc.filename}: {exc.strerror or exc}", status=2) from None
    except ValueError as exc:
        raise StartError(f"cannot start: {exc}", status=2) from None


def uvicorn_config(settings: Settings, app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=http_protocol_class(settings.header_timeout_s),
        ws=WsServer(app.state.ws, header_timeout=settings.header_timeout_s).protocol_class(),  # type: ignore[arg-type]
        log_level=settings.log_level.lower(),
        access_log=False,
        ws_per_message_deflate=False,  # ASGI WebSockets (/.yjs): small messages, compressing them cost ~20 % CPU
        lifespan="on",
        log_config=None if settings.log_format == "json" else LOGGING_CONFIG,  # json: uvicorn's lines through ours
        timeout_graceful_shutdown=5,
    )


def _raise_open_files_limit() -> None:
    """Every connection is a file descriptor: use the hard limit, not the (often 1024) soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            log.info("could not raise the open files limit from %d", soft)


class RtdbServer(uvicorn.Server):
    """uvicorn that ends long-lived responses (SSE streams) when shutdown starts,
    instead of waiting out the graceful-shutdown timeout."""

    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self.rtdb_app = app

    async def shutdown(self, sockets: Any = None) -> None:
        self.rtdb_app.state.sse.end_streams()
        self.rtdb_app.state.lp.close_all()  # held polls are answered with `close`: the clients reconnect
        await super().shutdown(sockets=sockets)
