"""`rtdb serve`: the checks that belong to the command (the data dir, its lock, the admin
token a first production start makes), then :func:`rtdb.runner.run`."""

from __future__ import annotations

import logging
from dataclasses import replace

from rtdb.runner import StartError, configure_logging, run
from rtdb.server.settings import Settings

from . import datadir
from .errors import CliError

log = logging.getLogger("rtdb")


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
        return run(settings, console=console_url(settings, token))
    except StartError as exc:
        raise CliError(exc.message, status=exc.status) from None
    finally:
        lock.release()


def console_url(settings: Settings, token: str | None) -> str:
    """The console's address as printed at start, with the admin token that rtdb made, if it did."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "", "::") else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}/" + (f"?token={token}" if token else "")
