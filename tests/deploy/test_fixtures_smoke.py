"""The shared fixtures give each test its own topics and database on real servers."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_make_env_isolates_topics_and_database(make_env) -> None:
    from confluent_kafka.admin import AdminClient

    a, b = make_env(), make_env()
    assert a.settings.topics.prefix != b.settings.topics.prefix
    assert a.database != b.database
    topics = AdminClient({"bootstrap.servers": a.bootstrap}).list_topics(timeout=10).topics
    assert len(topics[a.settings.topics.events].partitions) == a.settings.partitions
    assert a.ch().query("SELECT count() FROM schema_migrations").result_rows[0][0] >= 1
    assert a.ch().database == a.database
    assert a.env_vars()["AUDITSTREAM_CLICKHOUSE_URL"].endswith("/" + a.database)
