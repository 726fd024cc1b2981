"""Pure tests of the ClickHouse plumbing: URL parsing, statement splitting, migration files,
query parameters (no server)."""

from __future__ import annotations

import pytest

from auditstream.stream import clickhouse as ch


def test_parse_http_url_with_credentials_and_database() -> None:
    t = ch.parse_url("https://writer:p%40ss@ch.example.com:8443/audit_prod?async_insert=1")
    assert (t.kind, t.host, t.port, t.secure) == ("http", "ch.example.com", 8443, True)
    assert (t.username, t.password, t.database) == ("writer", "p@ss", "audit_prod")
    assert t.options == {"async_insert": "1"}


def test_parse_url_defaults() -> None:
    t = ch.parse_url("http://localhost")
    assert (t.port, t.username, t.password, t.database) == (8123, "default", "", "auditstream")
    assert ch.parse_url("https://h").port == 8443


def test_parse_chdb_url() -> None:
    t = ch.parse_url("chdb:///var/lib/audit?database=x1")
    assert (t.kind, t.path, t.database) == ("chdb", "/var/lib/audit", "x1")


@pytest.mark.parametrize(
    "url",
    ["clickhouse://h:9000/db", "http:///db", "http://h/bad-name", "http://h/x;DROP", "chdb://"],
)
def test_bad_urls_are_clear_errors(url: str) -> None:
    with pytest.raises(ch.ClickHouseConfigError):
        ch.parse_url(url)


def test_split_statements_respects_quotes_and_comments() -> None:
    sql = """
    -- leading comment; with a semicolon
    CREATE TABLE a (s String DEFAULT 'x;y') ENGINE = Memory;
    /* block; comment */
    INSERT INTO a VALUES ('it''s; fine'), ('back\\'slash;');
    SELECT "we;ird" FROM `t;1`
    ;
    -- trailing comment only
    """
    parts = ch.split_statements(sql)
    assert len(parts) == 3
    assert parts[0].endswith("ENGINE = Memory")
    assert "'it''s; fine'" in parts[1] and "('back\\'slash;')" in parts[1]
    assert parts[2].startswith("SELECT")


def test_split_statements_rejects_unterminated_quote() -> None:
    with pytest.raises(ch.ClickHouseConfigError, match="unterminated"):
        ch.split_statements("SELECT 'oops")


def test_render_substitutes_and_validates() -> None:
    text = (
        "CREATE TABLE {{database}}.t (d Date) ENGINE=MergeTree ORDER BY d "
        "TTL d + INTERVAL {{retention_days}} DAY"
    )
    out = ch.render(text, database="db_1", retention_days=30)
    assert "db_1.t" in out and "INTERVAL 30 DAY" in out and "{{" not in out
    with pytest.raises(ch.ClickHouseConfigError):
        ch.render(text, database="x`y", retention_days=30)
    with pytest.raises(ch.ClickHouseConfigError):
        ch.render(text, database="db", retention_days=0)


def test_load_migrations_orders_and_validates_names() -> None:
    ms = ch.load_migrations([("0010_b.sql", "SELECT 2"), ("0002_a.sql", "SELECT 1")])
    assert [m.version for m in ms] == [2, 10]
    assert ms[0].checksum != ms[1].checksum
    with pytest.raises(ch.ClickHouseConfigError, match="file name"):
        ch.load_migrations([("2_x.sql", "")])
    with pytest.raises(ch.ClickHouseConfigError, match="share version"):
        ch.load_migrations([("0001_a.sql", ""), ("0001_b.sql", "")])


def test_shipped_migrations_are_well_formed() -> None:
    ms = ch.load_migrations()
    assert ms and ms[0].version == 1
    for m in ms:
        sql = ch.render(m.text, database="db", retention_days=7)
        assert ch.split_statements(sql), m.filename
        assert "{{" not in sql, f"{m.filename}: unknown placeholder"


def test_query_parameters_and_binding() -> None:
    sql = (
        "-- Events of one agent.\n-- Second line.\n"
        "SELECT * FROM events WHERE agent_id = {agent:String} -- not {ignored:String}\n"
        "AND event_time > now() - INTERVAL {hours:UInt32} HOUR AND t < {until: DateTime64(3)}"
    )
    assert ch.query_parameters(sql) == {
        "agent": "String",
        "hours": "UInt32",
        "until": "DateTime64(3)",
    }
    assert ch.query_description(sql) == "Events of one agent. Second line."
    with pytest.raises(ch.QueryError, match=r"missing parameter.*hours"):
        ch.bind_parameters(sql, {"agent": "a", "until": "2026-01-01"})
    with pytest.raises(ch.QueryError, match=r"unknown parameter.*nope"):
        ch.bind_parameters(sql, {"agent": "a", "hours": "1", "until": "x", "nope": "1"})


def test_unknown_query_lists_known_ones() -> None:
    with pytest.raises(ch.QueryError, match="unknown query"):
        ch.load_query("does_not_exist")
    with pytest.raises(ch.QueryError, match="invalid"):
        ch.load_query("../etc/passwd")


def test_every_shipped_query_is_one_statement() -> None:
    for name in ch.list_queries():
        assert len(ch.split_statements(ch.load_query(name))) == 1, name
