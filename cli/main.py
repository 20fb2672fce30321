"""The `rtdb` command: serve, import, export."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from rtdb.server.settings import Settings

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtdb",
                                     description="A realtime JSON database, wire-compatible with Firebase.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="Start the server.")
    _add_settings(serve)
    imp = sub.add_parser("import", help="Stream a JSON file into a namespace.")
    imp.add_argument("file", help="JSON file to import (- for standard input).")
    imp.add_argument("--path", default="/", help="Where to write the file's value (default: the root).")
    _add_store_args(imp)
    exp = sub.add_parser("export", help="Stream a namespace (or a path in it) as JSON to standard output.")
    exp.add_argument("--path", default="/", help="Path to export (default: the root).")
    exp.add_argument("--format", choices=["plain", "export"], default="plain",
                     help="`export` keeps priorities (as format=export does).")
    _add_store_args(exp)
    rules = sub.add_parser("rules", help="Check or simulate a security rules file.")
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    check = rsub.add_parser("check", help="Compile a rules file; exit 1 with located errors if it is invalid.")
    check.add_argument("file")
    sim = rsub.add_parser("simulate", help="Decide one operation against data, printing the decision and trace.")
    sim.add_argument("file")
    sim.add_argument("--data", help="JSON file with the database contents (default: empty).")
    sim.add_argument("--auth", default="null", help="The `auth` variable as JSON (default: null).")
    sim.add_argument("op", choices=["read", "write", "update"])
    sim.add_argument("path")
    sim.add_argument("value", nargs="?", default=None, help="JSON value for write/update.")
    return parser


def _add_store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", dest="data_dir", default=None, help="Data directory [env RTDB_DATA_DIR].")
    parser.add_argument("--namespace", dest="namespace", default=None, help="Namespace [env RTDB_NAMESPACE].")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from .serve import serve

        return serve(Settings.from_sources(vars(args)))
    if args.command == "rules":
        from .rules import run_check, run_simulate

        if args.rules_command == "check":
            return run_check(args.file)
        return run_simulate(args.file, args.data, args.auth, args.op, args.path, args.value)
    from .transfer import run_export, run_import

    settings = Settings.from_sources({"data_dir": args.data_dir, "namespace": args.namespace})
    if args.command == "import":
        return run_import(settings, args.file, args.path)
    return run_export(settings, args.path, args.format)


if __name__ == "__main__":
    sys.exit(main())
