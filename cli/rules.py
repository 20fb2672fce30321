"""`rtdb rules check` and `rtdb rules simulate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

from rich.console import Console

from rtdb.core.errors import RtdbError
from rtdb.rules import RulesError, Ruleset
from rtdb.rules.simulate import simulate


def run_check(file: str) -> int:
    try:
        ruleset = Ruleset.compile(Path(file).read_text())
    except RulesError as exc:
        print(f"{file}: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{file}: {exc}", file=sys.stderr)
        return 1
    indexes = sum(len(children) for _, children in ruleset.indexes())
    print(f"{file}: ok ({indexes} indexes declared)")
    return 0


def run_simulate(file: str, data: str | None, auth: str, op: Literal["read", "write", "update"], path: str,
                 value: str | None) -> int:
    console = Console()
    try:
        ruleset = Ruleset.compile(Path(file).read_text())
        data_json = json.loads(Path(data).read_text()) if data else None
        auth_json = json.loads(auth)
        value_json = json.loads(value) if value is not None else None
        if op in ("write", "update") and value is None:
            print("simulate: write and update need a VALUE", file=sys.stderr)
            return 2
        decision = simulate(ruleset, data_json, auth_json, op, path, value_json)
    except (RtdbError, OSError, ValueError) as exc:
        print(f"simulate: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    verdict = "[green]ALLOWED[/green]" if decision.allowed else "[red]DENIED[/red]"
    console.print(f"{op} {path}: {verdict}")
    for line in decision.trace:
        console.print("  " + line, markup=False, highlight=False, soft_wrap=True)
    return 0 if decision.allowed else 1
