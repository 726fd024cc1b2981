"""Migrations runner and named queries against the real ClickHouse server."""

from __future__ import annotations

import pytest

from auditstream.stream import clickhouse as ch

pytestmark = pytest.mark.integration


def test_shipped_migrations_apply_once(make_env) -> None:
    env = make_env(migrate_db=False)
    client = env.ch()
    shipped = ch.load_migrations()
    first = ch.migrate(client, env.settings)
    assert [m.version for m in first] == [m.version for m in shipped]
    assert ch.migrate(client, env.settings) == []  # idempotent
    rows = client.query(
        "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
    ).result_rows
    assert rows == [(m.version, m.name, m.checksum) for m in shipped]
    # The chdb-core server has no writable access storage: the analyst role is reported skipped.
    assert any("auditstream_analyst" in s for s in first[0].skipped)


def test_changed_applied_migration_is_a_loud_error(make_env) -> None:
    env = make_env(migrate_db=False)
    client = env.ch()
    v1 = ch.load_migrations(
        [("0001_t.sql", "CREATE TABLE IF NOT EXISTS {{database}}.t (a UInt8) ENGINE = Memory;")]
    )
    assert len(ch.migrate(client, env.settings, migrations=v1)) == 1
    edited = ch.load_migrations(
        [
            ("0001_t.sql", "CREATE TABLE IF NOT EXISTS {{database}}.t (a UInt16) ENGINE = Memory;"),
            ("0002_u.sql", "CREATE TABLE {{database}}.u (a UInt8) ENGINE = Memory;"),
        ]
    )
    with pytest.raises(ch.MigrationError, match=r"0001_t\.sql was changed"):
        ch.migrate(client, env.settings, migrations=edited)
    # Nothing after the tampered migration was applied.
    assert client.query("EXISTS TABLE u").result_rows == [(0,)]


def test_substitution_split_and_failure_not_recorded(make_env) -> None:
    env = make_env(migrate_db=False, retention_days=12)
    client = env.ch()
    ms = ch.load_migrations(
        [
            (
                "0001_multi.sql",
                "CREATE TABLE IF NOT EXISTS {{database}}.e (t DateTime, s String DEFAULT 'a;b')\n"
                "ENGINE = MergeTree ORDER BY t TTL t + INTERVAL {{retention_days}} DAY;\n"
                "-- a comment; with a semicolon\n"
                "INSERT INTO {{database}}.e (t) VALUES (now());\n",
            ),
            ("0002_bad.sql", "SELECT * FROM {{database}}.no_such_table;"),
        ]
    )
    with pytest.raises(ch.MigrationError, match=r"0002_bad\.sql failed"):
        ch.migrate(client, env.settings, migrations=ms)
    ddl = client.query("SHOW CREATE TABLE e").result_rows[0][0]
    assert f"{env.database}.e" in ddl and "toIntervalDay(12)" in ddl
    assert client.query("SELECT s FROM e").result_rows == [("a;b",)]
    applied = client.query("SELECT version FROM schema_migrations").result_rows
    assert applied == [(1,)]  # the failed one is not recorded, so it is retried next time


def test_run_query_with_parameters(make_env, monkeypatch) -> None:
    env = make_env()
    client = env.ch()
    client.command("CREATE TABLE q (agent String, n UInt32) ENGINE = MergeTree ORDER BY agent")
    client.insert("q", [["a", 1], ["a", 2], ["b", 5]], column_names=["agent", "n"])
    sql = "-- Sum per agent.\nSELECT sum(n) AS total FROM q WHERE agent = {agent:String}\n"
    monkeypatch.setattr(ch, "load_query", lambda name: sql)
    result = ch.run_query(client, "sum_per_agent", {"agent": "a"})
    assert result.column_names == ("total",) and result.result_rows == [(3,)]
    # A quote in a parameter is data, never SQL.
    assert ch.run_query(client, "x", {"agent": "a' OR '1'='1"}).result_rows == [(0,)]
    with pytest.raises(ch.QueryError):
        ch.run_query(client, "x", {})


def test_every_shipped_query_runs_on_a_migrated_database(make_env) -> None:
    """Each sql/queries/NAME.sql parses and runs on the real schema (empty tables)."""
    names = ch.list_queries()
    if not names:
        pytest.skip("no named queries shipped yet")
    env = make_env()
    client = env.ch()
    samples = {"String": "x", "UInt32": "1", "UInt64": "1", "Int32": "1", "Float64": "1"}
    failures = {}
    for name in names:
        params = ch.query_parameters(ch.load_query(name))
        values = {k: samples.get(t, "2026-01-01 00:00:00") for k, t in params.items()}
        try:
            ch.run_query(client, name, values)
        except Exception as exc:
            failures[name] = str(exc).split("server response: ")[-1][:300]
    assert not failures, "named queries that do not run on the migrated schema:\n" + "\n".join(
        f"{k}: {v}" for k, v in failures.items()
    )
