"""One server process: the app built from :class:`~rtdb.server.settings.Settings`, served by
uvicorn (uvloop, httptools) with ``/.ws`` on rtdb's native WebSocket protocol
(:mod:`rtdb.server.wsprotocol`). :mod:`rtdb.runner.start` runs one of these, or the
supervisor of :mod:`rtdb.runner.workers` whose workers are these too."""

from __future__ import annotations

import logging
from typing import Any

import uvicorn
from litestar import Litestar
from uvicorn.config import LOGGING_CONFIG

from rtdb.realtime.broker import Broker
from rtdb.rules import RulesError
from rtdb.server.app import create_app
from rtdb.server.httpprotocol import http_protocol_class
from rtdb.server.settings import Settings
from rtdb.server.wsprotocol import WsServer

log = logging.getLogger("rtdb")


class StartError(Exception):
    """A configuration that cannot work (rules file, key files, the port, the data dir):
    raised before the server listens; ``status`` is the exit status it deserves."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
