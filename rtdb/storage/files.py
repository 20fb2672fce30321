"""Who has a namespace's files open, so that dropping a namespace never pulls them from
under a process that still uses them.

Every store that opens a namespace file (a server's, each ``--workers`` worker's, the
writer process's, ``rtdb export``'s) keeps a *shared* ``flock`` on
``<data-dir>/.locks/<ns>.sqlite`` for as long as its connections are open. Deleting the
files (:func:`delete_files`) takes the *exclusive* lock: it waits until every process
has closed the namespace (a drop asks them to), and while it holds the lock nobody can
open the files again. This matters because SQLite finds a file's WAL and shared-memory
file by name: a connection left open on a deleted file would write commits nobody
reads, and when it closed it would delete, by name, the WAL of a namespace created
anew in its place.

The lock files stay (empty) after a drop: a process may be waiting on one, and a new
lock file would not exclude it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path as FsPath

from rtdb.core.errors import Unavailable

LOCKS_DIR = ".locks"
HOLD_WAIT_S = 30.0
"""How long opening a namespace waits for a drop of it to finish."""
DROP_WAIT_S = 10.0
"""How long a drop waits for other processes to close the namespace."""
_POLL_S = 0.005


class Hold:
    """A shared or exclusive hold on a namespace's files; :meth:`release` ends it (so does
    the end of the process)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the only descriptor of its open file: the flock goes with it
            self._fd = None


def hold(file: FsPath, *, exclusive: bool = False, wait_s: float | None = None) -> Hold:
    """Hold ``file`` (a namespace's database file), waiting at most ``wait_s`` for a
    conflicting hold to end; :class:`Unavailable` after that. In a data directory where
    nothing can be written a shared hold is a no-op (nothing can delete files there)."""
    wait_s = (DROP_WAIT_S if exclusive else HOLD_WAIT_S) if wait_s is None else wait_s
    locks = file.parent / LOCKS_DIR
    try:
        locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(locks / file.name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        if exclusive:
            raise
        return Hold(None)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            return Hold(fd)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                name = file.stem
                raise Unavailable(f"Namespace {name} is still open in another process" if exclusive
                                  else f"Namespace {name} is being dropped") from None
            time.sleep(_POLL_S)
        except BaseException:
            os.close(fd)
            raise


def namespace_files(file: FsPath) -> list[FsPath]:
    """The database file's companions first (WAL, shared memory, rollback journal), then itself."""
    return [file.with_name(file.name + suffix) for suffix in ("-wal", "-shm", "-journal")] + [file]


def delete_files(file: FsPath, *, wait_s: float = DROP_WAIT_S) -> int | None:
    """Delete a namespace's database once no process has it open (the caller asked them to
    close it): the bytes freed, or ``None`` if there was no database file. The WAL goes
    first, so an interrupted delete never leaves a WAL that a new file would replay."""
    lock = hold(file, exclusive=True, wait_s=wait_s)
    try:
        freed = 0
        found = False
        for path in namespace_files(file):
            try:
                size = os.stat(path).st_size
                os.unlink(path)
            except FileNotFoundError:
                continue
            freed += size
            found = found or path == file
        return freed if found else None
    finally:
        lock.release()
