"""The data directory as the command sees it: usable, and held by one server at a time.

A server (with ``--workers N``: its supervisor) holds an exclusive ``flock`` on
``<data-dir>/.lock`` for as long as it runs; ``rtdb import`` holds it while it
writes. The kernel drops the lock when its holder exits, killed or not, so a
crashed server never leaves a stale lock behind. The file records who holds it
(pid and what it is), for the message of whoever is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from pathlib import Path

from rtdb.storage.sqlite import probe_write

from .errors import CliError

LOCK_FILE = ".lock"


def check_writable(data_dir: Path) -> None:
    """Create ``data_dir`` if needed; raise :class:`CliError` unless files can be written in it."""
    if data_dir.exists() and not data_dir.is_dir():
        raise CliError(f"--data-dir {data_dir}: not a directory")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--data-dir {data_dir}: cannot create it: {exc.strerror or exc}") from None
    try:
        probe_write(data_dir)
    except OSError as exc:
        raise CliError(f"--data-dir {data_dir}: not a writable directory: {exc.strerror or exc}") from None


class DataDirInUse(CliError):
    """Another process holds the data directory; ``url`` is its server's, when it is one."""

    def __init__(self, message: str, url: str | None) -> None:
        super().__init__(message)
        self.url = url


class DataDirLock:
    """An exclusive hold on a data directory, released by :meth:`release` or when the process ends."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the only descriptor of the open file drops the flock
            self.fd = -1


def hold(data_dir: Path, holder: str, url: str | None = None) -> DataDirLock:
    """Lock ``data_dir`` for this process (``holder`` says what it is; ``url``: a server's), or raise
    :class:`DataDirInUse` naming the process that holds it."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other, other_url = _read_holder(fd)
        os.close(fd)
        raise DataDirInUse(f"data dir {data_dir} is in use by {other}", other_url) from None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "holder": holder, "url": url}).encode(), 0)
    return DataDirLock(fd)


def _read_holder(fd: int) -> tuple[str, str | None]:
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        info = json.loads(os.pread(fd, 4096, 0))
        return f"{info['holder']} (pid {int(info['pid'])})", info.get("url")
    return "another process", None


TOKEN_FILE = "admin-token"


def admin_token(data_dir: Path) -> tuple[str, bool]:
    """The admin token kept in ``data_dir`` for a production server started without admin
    credentials: made on the first start (``secrets.token_urlsafe``, file mode 0600), read on
    later ones; ``(token, made_now)``. A file others may read is narrowed to 0600 first."""
    file = data_dir / TOKEN_FILE
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if file.stat().st_mode & 0o077:
            os.chmod(file, 0o600)
        token = file.read_text(encoding="utf-8").strip()
        if not token:
            raise CliError(f"{file} is empty: delete it and a new admin token is made at the next start",
                           status=2) from None
        return token, False
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return token, True
