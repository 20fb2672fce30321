"""One way to start a child process of rtdb and give it its configuration.

A child is a fresh interpreter running ``python -m <module>``; its configuration travels
as JSON in the environment variable :data:`CONFIG_ENV` (read once, and removed, by
:func:`child_config`), and the file descriptors it needs are inherited by number. Each
child gets a process group of its own, so a Ctrl-C in the terminal reaches only the parent,
which stops its children in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

CONFIG_ENV = "RTDB_CHILD"


def spawn(module: str, config: Mapping[str, Any], *, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    """Start ``python -m module`` with ``config`` (JSON-able) and the descriptors ``pass_fds``."""
    env = {**os.environ, CONFIG_ENV: json.dumps(config)}
    return subprocess.Popen([sys.executable, "-m", module], pass_fds=pass_fds, env=env, process_group=0)


def child_config() -> dict[str, Any]:
    """The configuration :func:`spawn` gave this process (taken out of the environment, so
    that processes it starts in turn do not inherit it)."""
    raw = os.environ.pop(CONFIG_ENV, None)
    if raw is None:
        raise SystemExit(f"{CONFIG_ENV} is not set: this module is started by rtdb itself")
    config = json.loads(raw)
    if not isinstance(config, dict):
        raise SystemExit(f"{CONFIG_ENV} must hold a JSON object")
    return config
