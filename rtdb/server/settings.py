"""The one settings table: it drives `rtdb serve` flags, `RTDB_*` variables and the README."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rtdb.core.indexspec import check_child, is_wildcard


def _setting(default: Any, help: str, *, kind: str = "str", metavar: str = "") -> Any:
    return field(default=default, metadata={"help": help, "kind": kind, "metavar": metavar})


@dataclass(frozen=True)
class Settings:
    host: str = _setting("127.0.0.1", "Interface to listen on.", metavar="HOST")
    port: int = _setting(9000, "TCP port to listen on (9000 is the Firebase emulator's).", kind="int", metavar="PORT")
    data_dir: Path = _setting(Path("rtdb-data"), "Directory of the SQLite files, one per namespace.", kind="path",
                              metavar="DIR")
    database_url: str | None = _setting(None, "PostgreSQL connection URL (`postgresql://user@host:5432/db`; "
                                              "the libpq option `-csearch_path=SCHEMA`, URL-encoded in "
                                              "`?options=`, picks a schema, else it is "
                                              "`rtdb`, created if missing): every namespace "
                                              "lives in that database instead of SQLite files in `--data-dir` (which "
                                              "still holds the server's lock). Needs `pip install rtdb[postgres]`; "
                                              "not with `--write-process`.", metavar="URL")
    redis_url: str | None = _setting(None, "Redis URL (`redis://host:6379`): this server is one node of a cluster; "
                                           "committed changes travel between the nodes over Redis Pub/Sub (what "
                                           "it loses is read back from the change log in PostgreSQL). Needs "
                                           "`--database-url` (the nodes share it) and `pip install rtdb[redis]`.",
                                     metavar="URL")
    redis_prefix: str | None = _setting(None, "Prefix of the cluster's Redis channels. Default: `rtdb:` and the "
                                              "cluster's identity, kept in the database, so clusters sharing a "
                                              "Redis never hear each other.", metavar="PREFIX")
    node_id: str | None = _setting(None, "This node's name in the cluster (logs, `/healthz`, its Redis "
                                         "messages). Default: random at each start; with `--workers`, each "
                                         "worker is a node named `NODE-wN`.", metavar="NAME")
    head_poll_s: float = _setting(1.0, "Seconds between a node's looks at the last commit of its open "
                                       "namespaces in PostgreSQL: a change Redis lost (or all of them, while "
                                       "Redis is down) arrives at most about this late.", kind="float",
                                  metavar="SECONDS")
    node_lease_s: float = _setting(10.0, "Seconds a cluster node's lease lasts (with `--database-url`): a node "
                                         "that could not renew it for that long is fenced (it closes its "
                                         "connections and refuses writes until it has joined again), and the "
                                         "other nodes then run its sessions' onDisconnect operations and end its "
                                         "database connections. Renewed every fifth of it.", kind="float",
                                   metavar="SECONDS")
    namespace: str = _setting("default", "Namespace of requests that name none (no `?ns=`).", metavar="NS")
    rules: Path | None = _setting(None, "Security rules file (JSON with comments), hot-reloaded.", kind="path",
                                  metavar="FILE")
    secret: str | None = _setting(None, "Database secret: admin as `?auth=`, and the HS256 key of user tokens.",
                                  metavar="SECRET")
    admin_token: str | None = _setting(None, "Bearer token that is admin in any mode.", metavar="TOKEN")
    jwt_public_key: Path | None = _setting(None, "PEM public key that verifies RS256/ES256 user tokens.",
                                           kind="path", metavar="FILE")
    jwks: Path | None = _setting(None, "JWKS file whose keys verify RS256/ES256 user tokens (by `kid`).",
                                 kind="path", metavar="FILE")
    jwt_audience: str | None = _setting(None, "Required `aud` of user tokens (e.g. your project id).",
                                        metavar="AUD")
    jwt_issuer: str | None = _setting(None, "Required `iss` of user tokens.", metavar="ISS")
    emulator: bool = _setting(False, "Emulator mode: `Bearer owner` is admin and, with no rules file, rules "
                                     "are open. For local development and tests only.", kind="bool")
    log_level: str = _setting("info", "Log level: debug, info, warning or error.", metavar="LEVEL")
    log_format: str = _setting("text", "Log line format: `text`, or `json` (one object per line, for log "
                                       "shippers).", metavar="FORMAT")
    access_log: bool = _setting(False, "Log one line per REST request (method, path, ns, status, bytes, "
                                       "ms) to the `rtdb.access` logger.", kind="bool")
    log_denials: bool = _setting(False, "Log every denied read and write (method, path, ns, uid and the rule "
                                        "that decided; at most 10 lines a second). Always on in emulator "
                                        "mode. The console's log shows denials either way.", kind="bool")
    metrics_public: bool = _setting(False, "Serve `GET /metrics` to anyone (for a Prometheus on a private "
                                           "network); without it `/metrics` needs admin credentials.",
                                    kind="bool")
    index: tuple[str, ...] = _setting((), "Declare an index, `PATH:CHILD` (`$name` segments match any key; "
                                          "CHILD `.value` orders by value). Repeatable; `;`-separated in the "
                                          "environment.", kind="list", metavar="PATH:CHILD")
    require_indexes: bool = _setting(False, "Refuse queries on unindexed children everywhere: WebSocket "
                                            "listens and emulator mode too (without it, production mode refuses "
                                            "them over REST only, as Firebase does).", kind="bool")
    synchronous: str = _setting("full", "SQLite `synchronous` level: `full` survives power loss, `normal` "
                                        "survives a process crash.", metavar="LEVEL")
    sse_keepalive_s: int = _setting(30, "Seconds between SSE `keep-alive` events on an idle stream.",
                                    kind="int", metavar="SECONDS")
    sse_max_lifetime_s: int = _setting(3600, "Seconds after which an SSE stream is closed (clients reconnect "
                                             "and get a fresh `put`).", kind="int", metavar="SECONDS")
    workers: int = _setting(1, "Worker processes sharing the port and the data files; more than 1 spreads "
                               "connections and fan-out over the cores (commits stay in one order); 0: one "
                               "per core.", kind="int", metavar="N")
    write_process: bool = _setting(False, "Run writes (rules, SQLite) in a child process of their own, so one "
                                          "busy connection uses two cores; one worker only.", kind="bool")
    max_body_bytes: int = _setting(256 * 1024 * 1024, "Largest accepted REST request body, in bytes.",
                                   kind="int", metavar="BYTES")
    header_timeout_s: int = _setting(10, "Seconds a client has to send a whole request head (a WebSocket "
                                         "handshake included), from connecting or from the first byte of a "
                                         "later request on the connection; then it gets `408` and is closed.",
                                     kind="int", metavar="SECONDS")
    lp_idle_timeout_s: int = _setting(60, "Seconds a long-polling session (`/.lp`) may go without a request "
                                          "before it ends and its onDisconnect writes run (browsers cannot be "
                                          "relied on to say they left).", kind="int", metavar="SECONDS")
    vacuum_free_percent: int = _setting(10, "Once this percentage of a namespace's file (and at least 4 MiB) is "
                                            "free pages, its writer gives them back to the file system, in small "
                                            "steps between writes; 0: only on demand (`POST /.compact.json`).",
                                        kind="int", metavar="PERCENT")
    wal_truncate_mb: int = _setting(64, "A namespace's WAL larger than this many MiB is checkpointed and "
                                        "truncated between writes (and SQLite's `journal_size_limit`).",
                                    kind="int", metavar="MIB")

    @staticmethod
    def env_name(name: str) -> str:
        return "RTDB_" + name.upper()

    @staticmethod
    def flag_name(name: str) -> str:
        return "--" + name.replace("_", "-")

    @classmethod
    def table(cls) -> list[dict[str, Any]]:
        return [
            {"name": f.name, "flag": cls.flag_name(f.name), "env": cls.env_name(f.name), "default": f.default,
             **f.metadata}
            for f in fields(cls)
        ]

    @classmethod
    def from_sources(cls, flags: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
        """Defaults, overridden by ``RTDB_*`` variables, overridden by flags that were given."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for row in cls.table():
            name = row["name"]
            raw: Any = None
            if flags.get(name) not in (None, False, ()):
                raw = flags[name]
            elif cls.env_name(name) in env:
                raw = env[cls.env_name(name)]
                if row["kind"] == "list":
                    raw = [x for x in raw.split(";") if x]
            if raw is not None:
                values[name] = _convert(row["kind"], raw, name)
        return replace(cls(), **values)

    def namespace_of(self, params: Mapping[str, str], host: str | None) -> str:
        """The namespace a request names: ``?ns=``, else ``<ns>.localhost`` in the Host
        header, else the configured default."""
        ns = params.get("ns")
        if ns:
            return ns
        if host:
            labels = host.split(":")[0].split(".")
            if len(labels) > 1 and labels[1] == "localhost" and labels[0]:
                return labels[0]
        return self.namespace

    def index_map(self) -> dict[tuple[str, ...], tuple[tuple[str, ...], ...]]:
        out: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for spec in self.index:
            where, _, child = spec.rpartition(":")
            if not where or not child:
                raise ValueError(f"--index {spec!r}: expected PATH:CHILD")
            pattern = tuple(s for s in where.split("/") if s)
            out.setdefault(pattern, []).append(check_child(child))
        return {k: tuple(v) for k, v in out.items()}


def _convert(kind: str, raw: Any, name: str) -> Any:
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "path":
            return Path(raw)
        if kind == "bool":
            return raw is True or str(raw).lower() in ("1", "true", "yes", "on")
        if kind == "list":
            return tuple(raw)
        return str(raw)
    except ValueError:
        expected = "a number" if kind == "float" else "a whole number"
        raise ValueError(f"{Settings.flag_name(name)} {raw!r}: expected {expected}") from None


def markdown_table() -> str:
    lines = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for row in Settings.table():
        default = row["default"]
        shown = "—" if default in (None, (), False) else f"`{default}`"
        lines.append(f"| `{row['flag']}` | `{row['env']}` | {shown} | {row['help']} |")
    return "\n".join(lines)


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
SYNCHRONOUS_LEVELS = ("full", "normal")


def check_database_url(settings: Settings) -> None:
    url = settings.database_url or ""
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("--database-url: expected a PostgreSQL URL, postgresql://USER@HOST:PORT/DATABASE")
    if not settings.node_lease_s > 0:
        raise ValueError(f"--node-lease-s {settings.node_lease_s}: expected more than 0")
    if settings.write_process:
        raise ValueError("--write-process does not work with --database-url (the writer process drives SQLite "
                         "files); PostgreSQL writes run in the server's own writer threads")
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        raise ValueError("--database-url needs the PostgreSQL driver: pip install 'rtdb[postgres]'") from None


def check_redis_url(settings: Settings) -> None:
    url = settings.redis_url or ""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("--redis-url: expected a Redis URL, redis://HOST:PORT")
    if settings.database_url is None:
        raise ValueError("--redis-url needs --database-url: the nodes of a cluster share one PostgreSQL "
                         "database (SQLite files cannot be shared between hosts)")
    if not settings.head_poll_s > 0:
        raise ValueError(f"--head-poll-s {settings.head_poll_s}: expected more than 0")
    try:
        import hiredis  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        raise ValueError("--redis-url needs the Redis client: pip install 'rtdb[redis]'") from None


def check_settings(settings: Settings) -> None:
    """Raise ``ValueError`` naming the flag of the first setting that cannot work."""
    from rtdb.core.errors import RtdbError
    from rtdb.core.path import is_valid_key
    from rtdb.engine.engine import check_namespace

    if not 0 <= settings.port <= 65535:
        raise ValueError(f"--port {settings.port}: expected a TCP port, 0 to 65535")
    if settings.log_format not in LOG_FORMATS:
        raise ValueError(f"--log-format {settings.log_format!r}: expected one of {', '.join(LOG_FORMATS)}")
    if settings.log_level.lower() not in LOG_LEVELS:
        raise ValueError(f"--log-level {settings.log_level!r}: expected one of {', '.join(LOG_LEVELS)}")
    if settings.synchronous.lower() not in SYNCHRONOUS_LEVELS:
        raise ValueError(f"--synchronous {settings.synchronous!r}: expected one of {', '.join(SYNCHRONOUS_LEVELS)}")
    for name in ("sse_keepalive_s", "sse_max_lifetime_s", "max_body_bytes", "header_timeout_s",
                 "lp_idle_timeout_s"):
        if getattr(settings, name, 1) <= 0:
            raise ValueError(f"{Settings.flag_name(name)} {getattr(settings, name)}: expected more than 0")
    if not 0 <= settings.vacuum_free_percent <= 100:
        raise ValueError(f"--vacuum-free-percent {settings.vacuum_free_percent}: expected 0 to 100")
    if settings.wal_truncate_mb <= 0:
        raise ValueError(f"--wal-truncate-mb {settings.wal_truncate_mb}: expected more than 0")
    if settings.workers < 0:
        raise ValueError(f"--workers {settings.workers}: expected 0 (one per core) or more")
    if settings.database_url is not None:
        check_database_url(settings)
    if settings.redis_url is not None:
        check_redis_url(settings)
    elif settings.redis_prefix is not None:
        raise ValueError("--redis-prefix names the channels of --redis-url: give both")
    try:
        check_namespace(settings.namespace)
    except RtdbError as exc:
        raise ValueError(f"--namespace: {exc.message}") from None
    for spec in settings.index:
        where = spec.rpartition(":")[0]
        bad = [s for s in where.split("/") if s and not is_valid_key(s[1:] if is_wildcard(s) else s)]
        if bad:
            raise ValueError(f"--index {spec!r}: invalid key {bad[0]!r} in PATH")
        try:
            replace(settings, index=(spec,)).index_map()
        except RtdbError as exc:
            raise ValueError(f"--index {spec!r}: {exc.message}") from None
