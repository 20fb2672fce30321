"""The server's rules file: loaded at start (before the engine exists: its rules are part
of the engine's configuration), then watched (watchfiles); each change goes to
:meth:`Engine.reload_default_rules`, which swaps the rules in only when the changed file
compiles completely."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import watchfiles

from rtdb.engine.engine import Engine
from rtdb.rules import RulesError, Ruleset

log = logging.getLogger("rtdb.rules")


def load_rules(file: Path) -> Ruleset:
    """Compile the rules file; raises :class:`RulesError` (with line and column) or ``OSError``."""
    return Ruleset.compile(file.read_text())


async def watch_rules(file: Path, engine: Engine, stop: asyncio.Event,
                      on_problem: Callable[[str | None], None] = lambda problem: None) -> None:
    """Reload ``file`` whenever it changes; a file that does not compile keeps the old rules
    (``on_problem`` hears why, and ``None`` once a reload worked: ``/healthz`` reports it)."""
    async for _changes in watchfiles.awatch(file.parent, stop_event=stop, debounce=50, step=20,
                                            watch_filter=lambda _change, name: Path(name) == file):
        try:
            await engine.reload_default_rules(file.read_text())
        except (RulesError, OSError, UnicodeDecodeError) as exc:
            log.error("rules file %s not reloaded, the previous rules stay: %s", file, exc)
            on_problem(f"rules file {file} not reloaded, the previous rules stay: {exc}")
            continue
        on_problem(None)
        log.info("rules reloaded from %s", file)
