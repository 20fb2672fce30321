"""`rtdb serve`: uvicorn (uvloop, httptools) around the app; ``/.ws`` runs on rtdb's
native WebSocket protocol (:mod:`rtdb.server.wsprotocol`)."""

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

from . import datadir
from .errors import CliError

log = logging.getLogger("rtdb")


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def serve(settings: Settings) -> int:
    """Run the server until SIGTERM/SIGINT. A configuration that cannot work (data dir, rules
    file, key files, another server on the data dir) raises :class:`CliError` before it listens."""
    if settings.workers > 1 and settings.write_process:
        raise CliError("--write-process runs with one worker (--workers 1)", status=2)
    configure_logging(settings)
    datadir.check_writable(settings.data_dir)
    # held for the life of this process (with --workers: the supervisor's); never inherited
    url = f"http://{settings.host}:{settings.port}"
    lock = datadir.hold(settings.data_dir, f"rtdb serve on {url}", url)
    try:
        token = None
        if not settings.emulator and settings.admin_token is None and settings.secret is None:
            token, made = datadir.admin_token(settings.data_dir)  # a first start that just works, closed
            settings = replace(settings, admin_token=token)
            if made:
                log.warning("no admin credentials configured: made an admin token, kept in %s (mode 0600)",
                            settings.data_dir / datadir.TOKEN_FILE)
        return _serve(settings, console=console_url(settings, token))
    finally:
        lock.release()


def console_url(settings: Settings, token: str | None) -> str:
    """The console's address as printed at start, with the admin token that rtdb made, if it did."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "", "::") else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}/" + (f"?token={token}" if token else "")


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    if settings.log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())


def _serve(settings: Settings, *, console: str | None = None) -> int:
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
        from .workers import supervise

        return supervise(settings)
    app = build_app(settings)
    gc.freeze()  # see below
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
        raise CliError(f"cannot start: migrating the data dir {data_dir} failed: {exc}") from None
    if done:
        log.info("migrated %d namespace(s) to the current storage format: %s", len(done), ", ".join(done))


# Each process calls ``gc.freeze()`` once its app is built: the hundreds of thousands of objects
# made by imports and start-up are never garbage, yet every full collection would walk them all
# again (a busy connection allocates enough to cause one every few thousand writes). Frozen, they
# are left out: pipelined writes went ×1.10–1.22 faster with the writer process (interleaved A/B).
def build_app(settings: Settings, feed: Broker | None = None) -> Litestar:
    """The app; :class:`CliError` when the configuration cannot work: rules, key files, indexes."""
    try:
        return create_app(settings, feed=feed)
    except RulesError as exc:
        raise CliError(f"cannot start: rules file {settings.rules}: {exc.message}", status=2) from None
    except UnicodeDecodeError as exc:
        raise CliError(f"cannot start: rules file {settings.rules}: not UTF-8 text ({exc.reason} at byte "
                       f"{exc.start})", status=2) from None
    except OSError as exc:
        if exc.filename is None:
            raise CliError(f"cannot start: {exc}", status=2) from None
        what = "rules file " if settings.rules is not None and exc.filename == str(settings.rules) else ""
        raise CliError(f"cannot start: {what}{exc.filename}: {exc.strerror or exc}", status=2) from None
    except ValueError as exc:
        raise CliError(f"cannot start: {exc}", status=2) from None


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
