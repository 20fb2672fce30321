"""The `rtdb` command: serve, import, export, rules.

A user error of any subcommand ends it with one line, ``rtdb: error: …``, and a
non-zero status; no traceback reaches the user."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

from rtdb.core.errors import RtdbError
from rtdb.server.settings import Settings, check_settings

from .errors import CliError, report

log = logging.getLogger("rtdb")


def _add_settings(parser: argparse.ArgumentParser) -> None:
    for row in Settings.table():
        default = row["default"]
        shown = "none" if default in (None, (), False) else str(default)
        help_text = f"{row['help']} [env {row['env']}; default {shown}]"
        if row["kind"] == "bool":
            parser.add_argument(row["flag"], dest=row["name"], action="store_true", default=None, help=help_text)
        elif row["kind"] == "list":
            parser.add_argument(row["flag"], dest=row["name"], action="append", default=None,
                                metavar=row["metavar"] or None, help=help_text)
        else:
            parser.add_argument(row["flag"], dest=row["name"], default=None, metavar=row["metavar"] or None,
                                help=help_text)


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see {self.prog} --help)", status=2)


def _version() -> str:
    try:
        return version("rtdb")
    except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rtdb", description="A realtime JSON database, wire-compatible with Firebase.")
    parser.add_argument("--version", action="version", version=f"rtdb {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve = sub.add_parser("serve", help="Start the server.")
    _add_settings(serve)
    imp = sub.add_parser("import", help="Stream a JSON file into a namespace.")
    imp.add_argument("file", help="JSON file to import (- for standard input).")
    imp.add_argument("--path", default="/", help="Where to write the file's value (default: the root).")
    _add_store_args(imp)
    _add_progress_arg(imp)
    exp = sub.add_parser("export", help="Stream a namespace (or a path in it) as JSON to standard output.")
    exp.add_argument("--path", default="/", help="Path to export (default: the root).")
    exp.add_argument("--format", choices=["plain", "export"], default="plain",
                     help="`export` keeps priorities (as format=export does).")
    _add_store_args(exp)
    _add_progress_arg(exp)
    mig = sub.add_parser("migrate", help="Rewrite the data dir's namespace files in the current storage format "
                                         "(rtdb serve also does it at start).")
    mig.add_argument("--data-dir", dest="data_dir", default=None, help="Data directory [env RTDB_DATA_DIR].")
    nsp = sub.add_parser("namespace", help="Drop or compact a namespace (with no server running).")
    nsub = nsp.add_subparsers(dest="namespace_command", required=True, parser_class=_Parser)
    drop = nsub.add_parser("drop", help="Delete a namespace: its file, WAL and shared-memory file.")
    drop.add_argument("name", help="The namespace.")
    drop.add_argument("--data-dir", dest="data_dir", default=None, help="Data directory [env RTDB_DATA_DIR].")
    compact = nsub.add_parser("compact", help="Give a namespace's free pages back and truncate its WAL; a file "
                                              "without incremental auto-vacuum is rewritten (VACUUM).")
    compact.add_argument("name", help="The namespace.")
    compact.add_argument("--data-dir", dest="data_dir", default=None, help="Data directory [env RTDB_DATA_DIR].")
    compact.add_argument("--full", action="store_true",
                         help="Rewrite the whole file (VACUUM): also packs half-empty pages; needs free disk "
                              "space about the file's size.")
    rules = sub.add_parser("rules", help="Check or simulate a security rules file.")
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    check = rsub.add_parser("check", help="Compile a rules file; exit 1 with located errors if it is invalid.")
    check.add_argument("file")
    sim = rsub.add_parser("simulate", help="Decide one operation against data, printing the decision and trace.")
    sim.add_argument("file")
    sim.add_argument("--data", help="JSON file with the database contents (default: empty).")
    sim.add_argument("--auth", default="null", help="The `auth` variable as JSON (default: null).")
    sim.add_argument("--query", default=None,
                     help="For a read: REST query parameters, e.g. 'orderByChild=age&limitToFirst=10'.")
    sim.add_argument("op", choices=["read", "write", "update"])
    sim.add_argument("path")
    sim.add_argument("value", nargs="?", default=None, help="JSON value for write/update.")
    return parser


def _add_progress_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress-every", dest="progress_every", type=seconds, default=3.0, metavar="SECONDS",
                        help="Seconds between progress lines on standard error (default: 3).")


def seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def _add_store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", dest="data_dir", default=None, help="Data directory [env RTDB_DATA_DIR].")
    parser.add_argument("--namespace", dest="namespace", default=None, help="Namespace [env RTDB_NAMESPACE].")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; a user error is one ``rtdb: error:`` line and a non-zero status."""
    try:
        return _run(argv)
    except CliError as exc:
        report(exc.message)
        return exc.status
    except RtdbError as exc:  # bad path, namespace, key or value: the core's own message
        report(exc.message)
        return 1
    except BrokenPipeError:
        _silence_stdout()
        report("standard output was closed before the output was complete (broken pipe)")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the user gets one line, the details go to the debug log
        log.debug("unexpected error", exc_info=True)
        report(f"unexpected {type(exc).__name__}: {exc}")
        return 1


def _silence_stdout() -> None:
    """After a broken pipe, Python would fail again flushing stdout at exit: point it at /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _settings(flags: dict[str, object]) -> Settings:
    try:
        settings = Settings.from_sources(flags)
        check_settings(settings)
    except ValueError as exc:
        raise CliError(str(exc), status=2) from None
    return settings


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from .serve import serve

        return serve(_settings(vars(args)))
    if args.command == "rules":
        from .rules import run_check, run_simulate

        if args.rules_command == "check":
            return run_check(args.file)
        return run_simulate(args.file, args.data, args.auth, args.op, args.path, args.value, args.query)
    if args.command == "namespace":
        from .namespace import run_namespace

        return run_namespace(_settings({"data_dir": args.data_dir}), args.namespace_command, args.name,
                             full=getattr(args, "full", False))
    if args.command == "migrate":
        from .transfer import run_migrate

        return run_migrate(_settings({"data_dir": args.data_dir}))
    from .transfer import run_export, run_import

    settings = _settings({"data_dir": args.data_dir, "namespace": args.namespace})
    if args.command == "import":
        return run_import(settings, args.file, args.path, args.progress_every)
    return run_export(settings, args.path, args.format, args.progress_every)


if __name__ == "__main__":
    sys.exit(main())
