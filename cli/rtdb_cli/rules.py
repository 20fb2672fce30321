"""`rtdb rules check` and `rtdb rules simulate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from rtdb.core import path as paths
from rtdb.core.errors import RtdbError
from rtdb.core.query import QuerySpec, parse_rest
from rtdb.core.value import normalize
from rtdb.rules import Ruleset
from rtdb.rules.loader import find_errors
from rtdb.rules.simulate import query_params, simulate

from .errors import CliError, report


def _read(file: str, what: str) -> str:
    try:
        return Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{what} {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{what} {file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def run_check(file: str) -> int:
    """Compile ``file``; print every error in it (one line each) and exit 1, or a summary and 0."""
    source = _read(file, "rules file")
    errors = find_errors(source)
    for error in errors:
        report(f"{file}: {error.message}")
    if errors:
        print(f"{file}: {len(errors)} {'error' if len(errors) == 1 else 'errors'}", file=sys.stderr)
        return 1
    ruleset = Ruleset.compile(source)
    indexes = sum(len(children) for _, children in ruleset.indexes())
    print(f"{file}: ok ({indexes} indexes declared)")
    return 0


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"{what}: not valid JSON ({exc})") from None
    except RecursionError:
        raise CliError(f"{what}: nested too deeply") from None


def _checked(value: Any, what: str, at: paths.Path = ()) -> Any:
    try:
        normalize(value, at)
    except RtdbError as exc:
        raise CliError(f"{what}: {exc.message}") from None
    return value


def run_simulate(file: str, data: str | None, auth: str, op: Literal["read", "write", "update"], path: str,
                 value: str | None, query: str | None = None) -> int:
    """Decide one operation; every bad input is named (rules file, --data, --auth, PATH, VALUE, --query)."""
    try:
        ruleset = Ruleset.compile(_read(file, "rules file"))
    except RtdbError as exc:
        raise CliError(f"rules file {file}: {exc.message}") from None
    data_json = _checked(_json(_read(data, "--data"), f"--data {data}"), f"--data {data}") if data else None
    auth_json = _json(auth, "--auth")
    if auth_json is not None and not isinstance(auth_json, dict):
        raise CliError("--auth: expected a JSON object or null")
    try:
        at = paths.parse(path)
    except RtdbError as exc:
        raise CliError(f"PATH {path!r}: {exc.message}") from None
    if op in ("write", "update") and value is None:
        raise CliError(f"{op} needs a VALUE (JSON)", status=2)
    if op == "read" and value is not None:
        raise CliError("read takes no VALUE", status=2)
    value_json = _json(value, "VALUE") if value is not None else None
    if op == "write":
        _checked(value_json, "VALUE", at)
    elif op == "update" and not isinstance(value_json, dict):
        raise CliError('VALUE: an update is a JSON object of relative paths to values, e.g. {"a/b": 1}')
    spec: QuerySpec | None = None
    if query is not None:
        if op != "read":
            raise CliError("--query applies to reads only", status=2)
        try:
            spec = parse_rest(query_params(query))
        except RtdbError as exc:
            raise CliError(f"--query {query!r}: {exc.message}") from None
    try:
        decision = simulate(ruleset, data_json, auth_json, op, path, value_json, query=spec)
    except RtdbError as exc:
        raise CliError(f"VALUE: {exc.message}") from None
    console = Console()
    verdict = "[green]ALLOWED[/green]" if decision.allowed else "[red]DENIED[/red]"
    console.print(f"{op} {path}{'?' + query if query else ''}: {verdict}", highlight=False)
    for line in decision.trace:
        console.print("  " + line, markup=False, highlight=False, soft_wrap=True)
    return 0 if decision.allowed else 1
