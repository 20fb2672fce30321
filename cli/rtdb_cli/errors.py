"""The one way a user error leaves the `rtdb` command: ``rtdb: error: …`` on one line."""

from __future__ import annotations

import sys


class CliError(Exception):
    """A user error: printed as one line by :func:`rtdb_cli.main.main`, which then exits ``status``."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def report(message: str) -> None:
    """Print ``rtdb: error: message`` as one line on standard error."""
    one_line = " ".join(message.split())
    print(f"rtdb: error: {one_line}", file=sys.stderr, flush=True)
