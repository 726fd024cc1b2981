"""ClickHouse plumbing: client factory, the migrations runner and the analysts' named queries.

- :func:`get_client` turns ``AUDITSTREAM_CLICKHOUSE_URL`` into a clickhouse-connect client:
  ``http(s)://user:password@host:port/database`` for a server, ``chdb:///path`` for the embedded
  engine (same client API, so every caller is backend-agnostic).
- :func:`migrate` applies ``sql/migrations/NNNN_name.sql`` in order, once each, recording
  (version, name, checksum, applied_at) in ``schema_migrations``. Editing an applied migration is
  a loud error: write a new one instead.
- :func:`run_query` runs ``sql/queries/NAME.sql`` with ClickHouse query parameters
  (``{agent:String}``), so the same file works unchanged in any ClickHouse client.

Migration files: ``{{database}}`` and ``{{retention_days}}`` are substituted; statements are split
on ``;`` outside quotes and comments. Statements should be idempotent (``IF NOT EXISTS``) so a
migration interrupted half-way can simply be re-run. A statement preceded by the line
``-- @optional access_control`` is skipped (with a warning in the result) when the server has no
writable SQL access storage, as on the chdb-core local server.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from auditstream.settings import Settings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "schema_migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_QUERY_NAME = re.compile(r"^[a-z0-9_]+$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# {name:Type} query parameters (Type may contain parentheses, e.g. DateTime64(3)).
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):\s*([^{}]+?)\}")
OPTIONAL_ACCESS = "-- @optional access_control"
# Errors meaning "this server cannot store SQL users/roles", not "your SQL is wrong".
_ACCESS_UNSUPPORTED = ("ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND", "UNKNOWN_ROLE", "ACCESS_DENIED")


class ClickHouseConfigError(ValueError):
    """A malformed ClickHouse URL, database name, migration or query file."""


class MigrationError(RuntimeError):
    """A migration could not be applied, or an applied one was changed after the fact."""


class QueryError(ValueError):
    """Unknown named query, or missing/unknown parameters."""


# --------------------------------------------------------------------------------------------
# Client


@dataclass(frozen=True)
class ClickHouseTarget:
    """A parsed ``AUDITSTREAM_CLICKHOUSE_URL`` (pure; never log ``password``)."""

    kind: str  # "http" or "chdb"
    database: str
    host: str = ""
    port: int = 0
    username: str = "default"
    password: str = ""
    secure: bool = False
    path: str = ""
    options: dict[str, str] = field(default_factory=dict)


def parse_url(url: str) -> ClickHouseTarget:
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    if parts.scheme == "chdb":
        path = unquote(parts.netloc + parts.path)
        if not path:
            raise ClickHouseConfigError("chdb URL needs a data directory: chdb:///path/to/dir")
        return ClickHouseTarget(
            kind="chdb",
            database=check_identifier(options.pop("database", "auditstream")),
            path=path,
            options=options,
        )
    if parts.scheme not in ("http", "https"):
        raise ClickHouseConfigError(
            f"unsupported ClickHouse URL scheme {parts.scheme!r}: use http://, https:// or chdb://"
        )
    if not parts.hostname:
        raise ClickHouseConfigError("ClickHouse URL has no host")
    database = parts.path.strip("/") or "auditstream"
    secure = parts.scheme == "https"
    return ClickHouseTarget(
        kind="http",
        database=check_identifier(unquote(database)),
        host=parts.hostname,
        port=parts.port or (8443 if secure else 8123),
        username=unquote(parts.username or "default"),
        password=unquote(parts.password or ""),
        secure=secure,
        options=options,
    )


def check_identifier(name: str) -> str:
    """Database names go into DDL unquoted; allow only plain identifiers."""
    if not _IDENT.match(name):
        raise ClickHouseConfigError(f"invalid ClickHouse database name {name!r}")
    return name


def get_client(
    settings: Settings, database: str | None = None, *, url: str | None = None, **kwargs: Any
) -> Client:
    """A clickhouse-connect client for ``settings.clickhouse_url`` (or ``url``).

    ``database`` overrides the URL's database (``ensure_database`` uses ``"default"`` to create
    it). Sessions are off by default so one client can be shared by threads; pass
    ``autogenerate_session_id=True`` when you need session temporary tables.
    """
    import clickhouse_connect

    target = parse_url(url or settings.clickhouse_url)
    db = check_identifier(database) if database else target.database
    if target.kind == "chdb":
        kwargs.pop("autogenerate_session_id", None)  # meaningless in-process
        return clickhouse_connect.get_client(dsn=f"chdb://{target.path}", database=db, **kwargs)
    kwargs.setdefault("autogenerate_session_id", False)
    kwargs.setdefault("connect_timeout", 10)
    kwargs.setdefault("send_receive_timeout", 300)
    # Unknown URL query options become ClickHouse settings (e.g. ?async_insert=1).
    extra_settings = {**target.options, **kwargs.pop("settings", {})}
    return clickhouse_connect.get_client(
        host=target.host,
        port=target.port,
        username=target.username,
        password=target.password,
        database=db,
        secure=target.secure,
        settings=extra_settings or None,
        **kwargs,
    )


def ensure_database(settings: Settings, database: str | None = None) -> str:
    """Create the target database if missing; returns its name."""
    db = check_identifier(database or parse_url(settings.clickhouse_url).database)
    admin = get_client(settings, database="default")
    try:
        admin.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    finally:
        admin.close()
    return db


# --------------------------------------------------------------------------------------------
# Migrations


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    skipped: tuple[str, ...] = ()  # optional statements this server could not run


def load_migrations(files: Iterable[tuple[str, str]] | None = None) -> list[Migration]:
    """Migrations from ``auditstream.sql/migrations`` (or ``(filename, text)`` pairs), sorted."""
    if files is None:
        root = resources.files("auditstream.sql") / "migrations"
        files = [
            (entry.name, entry.read_text(encoding="utf-8"))
            for entry in root.iterdir()
            if entry.name.endswith(".sql")
        ]
    out: dict[int, Migration] = {}
    for filename, text in files:
        m = _MIGRATION_NAME.match(filename)
        if not m:
            raise ClickHouseConfigError(
                f"bad migration file name {filename!r}: expected NNNN_lower_snake.sql"
            )
        version = int(m.group(1))
        if version in out:
            raise ClickHouseConfigError(
                f"two migrations share version {version:04d}: {out[version].filename}, {filename}"
            )
        out[version] = Migration(version, m.group(2), text)
    return [out[v] for v in sorted(out)]


def render(text: str, *, database: str, retention_days: int) -> str:
    if int(retention_days) <= 0:
        raise ClickHouseConfigError(f"retention_days must be positive, got {retention_days}")
    return text.replace("{{database}}", check_identifier(database)).replace(
        "{{retention_days}}", str(int(retention_days))
    )


def split_statements(sql: str) -> list[str]:
    """Split on ``;`` outside '…', "…", `…` and -- / # / /* */ comments; drop empty parts.

    Comments are kept with the statement that follows them (the optional marker lives there).
    """
    statements: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = i + 1
            while j < n:
                if sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                raise ClickHouseConfigError(
                    f"unterminated {c} quote in SQL near {sql[i : i + 40]!r}"
                )
            buf.append(sql[i : j + 1])
            i = j + 1
        elif sql.startswith("--", i) or c == "#":
            j = sql.find("\n", i)
            j = n if j == -1 else j
            buf.append(sql[i:j])
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j == -1:
                raise ClickHouseConfigError("unterminated /* comment in SQL")
            buf.append(sql[i : j + 2])
            i = j + 2
        elif c == ";":
            statements.append("".join(buf))
            buf = []
            i += 1
        else:
            buf.append(c)
            i += 1
    statements.append("".join(buf))
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(stmt: str) -> bool:
    code = re.sub(r"/\*.*?\*/", "", stmt, flags=re.S)
    code = "\n".join(line.split("--", 1)[0] for line in code.splitlines())
    return bool(code.strip())


def _ensure_migrations_table(client: Client) -> None:
    client.command(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
        " version UInt32, name String, checksum String,"
        " applied_at DateTime64(3, 'UTC') DEFAULT now64(3)"
        ") ENGINE = MergeTree ORDER BY version"
    )


def applied_migrations(client: Client) -> dict[int, tuple[str, str]]:
    """version → (name, checksum) of what this database has recorded."""
    _ensure_migrations_table(client)
    rows = client.query(
        f"SELECT version, any(name), any(checksum) FROM {MIGRATIONS_TABLE} GROUP BY version"
    ).result_rows
    return {int(v): (str(n), str(c)) for v, n, c in rows}


def migrate(
    client: Client,
    settings: Settings,
    *,
    migrations: list[Migration] | None = None,
    database: str | None = None,
) -> list[AppliedMigration]:
    """Apply the pending migrations in order; returns those applied by this call.

    ``client`` must point at the target database (``get_client(settings)``). Already-applied
    migrations are verified by checksum: a mismatch raises :class:`MigrationError` before
    anything new is applied.
    """
    url_db = parse_url(settings.clickhouse_url).database
    db = check_identifier(database or client.database or url_db)
    pending_all = load_migrations() if migrations is None else migrations
    done = applied_migrations(client)
    for m in pending_all:
        if m.version in done and done[m.version][1] != m.checksum:
            raise MigrationError(
                f"migration {m.filename} was changed after it was applied to database {db!r} "
                f"(recorded checksum {done[m.version][1][:12]}…, file {m.checksum[:12]}…). "
                "Applied migrations are immutable: revert the edit and add a new migration."
            )
    applied: list[AppliedMigration] = []
    for m in pending_all:
        if m.version in done:
            continue
        sql = render(m.text, database=db, retention_days=settings.retention_days)
        skipped: list[str] = []
        for stmt in split_statements(sql):
            try:
                client.command(stmt)
            except Exception as exc:
                if _access_unsupported(stmt, exc):
                    first = _first_code_line(stmt)
                    log.warning("migration %s: skipped %r: no access storage", m.filename, first)
                    skipped.append(first)
                    continue
                raise MigrationError(
                    f"migration {m.filename} failed on statement:\n{_first_code_line(stmt)}\n{exc}"
                ) from exc
        client.insert(
            MIGRATIONS_TABLE,
            [[m.version, m.name, m.checksum, datetime.now(UTC)]],
            column_names=["version", "name", "checksum", "applied_at"],
        )
        applied.append(AppliedMigration(m.version, m.name, m.checksum, tuple(skipped)))
        log.info("applied migration %s", m.filename)
    return applied


def _access_unsupported(stmt: str, exc: Exception) -> bool:
    return OPTIONAL_ACCESS in stmt and any(code in str(exc) for code in _ACCESS_UNSUPPORTED)


def _first_code_line(stmt: str) -> str:
    for line in stmt.splitlines():
        if line.strip() and not line.strip().startswith("--"):
            return line.strip()[:160]
    return stmt[:160]


def migrate_settings(settings: Settings) -> list[AppliedMigration]:
    """``auditstream db migrate``: create the database, then apply pending migrations."""
    db = ensure_database(settings)
    client = get_client(settings, database=db)
    try:
        return migrate(client, settings, database=db)
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# Named queries


def list_queries() -> list[str]:
    root = resources.files("auditstream.sql") / "queries"
    return sorted(e.name[:-4] for e in root.iterdir() if e.name.endswith(".sql"))


def load_query(name: str) -> str:
    if not _QUERY_NAME.match(name):
        raise QueryError(f"invalid query name {name!r}")
    entry = resources.files("auditstream.sql") / "queries" / f"{name}.sql"
    if not entry.is_file():
        known = ", ".join(list_queries()) or "(none)"
        raise QueryError(f"unknown query {name!r}; known queries: {known}")
    return entry.read_text(encoding="utf-8")


def query_parameters(sql: str) -> dict[str, str]:
    """``{name:Type}`` placeholders of a query → {name: Type} (pure)."""
    stripped = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return {m.group(1): m.group(2).strip() for m in _PARAM.finditer(stripped)}


def query_description(sql: str) -> str:
    """The leading ``--`` comment block of a query file (its documentation)."""
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    return " ".join(x for x in lines if x)


def bind_parameters(sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check that ``params`` covers exactly the placeholders, with a clear error otherwise."""
    wanted = query_parameters(sql)
    missing = sorted(set(wanted) - set(params))
    unknown = sorted(set(params) - set(wanted))
    if missing or unknown:
        hint = ", ".join(f"{k}:{t}" for k, t in wanted.items()) or "none"
        problems = []
        if missing:
            problems.append(f"missing parameter(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown parameter(s) {', '.join(unknown)}")
        raise QueryError(f"{'; '.join(problems)} (this query takes: {hint})")
    return dict(params)


def run_query(client: Client, name: str, params: Mapping[str, Any] | None = None) -> Any:
    """Run ``sql/queries/NAME.sql`` with server-side query parameters; returns a QueryResult."""
    sql = load_query(name)
    bound = bind_parameters(sql, params or {})
    statements = split_statements(sql)
    if len(statements) != 1:
        raise QueryError(f"query {name!r} must hold exactly one statement")
    return client.query(statements[0], parameters=bound)
