"""The faust app wiring without a broker: config, credentials, plugins, the context seam."""

from __future__ import annotations

import sys
import types
from datetime import UTC, datetime
from typing import Any

import pytest

from auditstream.producers.contract import Prompt, encode_event, make_event
from auditstream.settings import Settings, Topics
from auditstream.stream.app import (
    PLUGINS,
    StreamContext,
    app_config,
    broker_credentials,
    broker_urls,
    create_app,
    load_plugins,
)
from auditstream.stream.enrich import AgentInfo, DictInventory, EnrichedEvent, KafkaCoords
from auditstream.stream.validate import DeadLetter


def test_broker_urls() -> None:
    assert broker_urls("a:1, b:2") == ["kafka://a:1", "kafka://b:2"]
    assert broker_urls("kafka://x:9") == ["kafka://x:9"]
    with pytest.raises(ValueError):
        broker_urls(" , ")


def test_app_config_from_settings_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITSTREAM_FAUST_SESSION_TIMEOUT", "6")
    monkeypatch.setenv("AUDITSTREAM_WORKER_INSTANCE_ID", "w-0")
    s = Settings(kafka_bootstrap="h:1", partitions=4, sink_batch_size=8000)
    conf = app_config(s)
    assert conf["broker"] == ["kafka://h:1"]
    assert conf["topic_partitions"] == 4
    assert conf["broker_session_timeout"] == 6.0
    assert conf["consumer_group_instance_id"] == "w-0"
    assert conf["stream_buffer_maxsize"] >= 8000
    assert conf["web_enabled"] is False
    assert "broker_credentials" not in conf


def test_sasl_ssl_credentials_pass_through() -> None:
    import faust

    creds = broker_credentials(
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "u",
            "sasl.password": "p",
        }
    )
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.username == "u" and creds.ssl_context is not None
    assert broker_credentials({}) is None


def test_missing_plugin_is_skipped_and_broken_one_raises(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    assert load_plugins(("auditstream.no_such_area.stream",)) == []
    broken = types.ModuleType("auditstream_test_broken_plugin")
    monkeypatch.setitem(sys.modules, broken.__name__, broken)
    with pytest.raises(TypeError, match="install"):
        load_plugins((broken.__name__,))
    # A plugin that exists but lacks one of *its* dependencies is broken, not missing.
    (tmp_path / "auditstream_test_plugin_dep.py").write_text(
        "import auditstream_surely_missing_dependency\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="surely_missing"):
        load_plugins(("auditstream_test_plugin_dep",))


def test_create_app_installs_plugins_with_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    plugin = types.ModuleType("auditstream_test_plugin")

    def install(app: Any, ctx: StreamContext) -> None:
        seen["app"], seen["ctx"] = app, ctx
        # Plugins may replace the inventory; the sink reads ctx.inventory at processing time.
        ctx.inventory = DictInventory({"agent-1": AgentInfo("agent-1", owner="alice")})

    plugin.install = install  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, plugin.__name__, plugin)
    settings = Settings(topics=Topics("unit"))
    app = create_app(settings, plugins=(plugin.__name__,), client_factory=lambda: None)
    ctx = seen["ctx"]
    assert seen["app"] is app and app.stream_context is ctx  # type: ignore[attr-defined]
    assert ctx.events_topic.get_topic_name() == "unit.events"
    assert ctx.deadletter_topic.get_topic_name() == "unit.deadletter"
    assert ctx.findings_topic.get_topic_name() == "unit.findings"
    assert ctx.alerts_topic.get_topic_name() == "unit.alerts"
    assert "sink" in {a.name.rsplit(".", 1)[-1] for a in app.agents.values()}
    raw = encode_event(make_event("prompt", "agent-1", Prompt(content="x"), time=datetime.now(UTC)))
    out = ctx.decode(raw, KafkaCoords("unit.events", 0, 0))
    assert isinstance(out, EnrichedEvent) and out.agent is not None and out.agent.owner == "alice"
    assert isinstance(ctx.decode(b"{", KafkaCoords("unit.events", 0, 1)), DeadLetter)


def test_default_plugins_are_the_agreed_names() -> None:
    assert PLUGINS == ("auditstream.alerts.stream", "auditstream.governance.stream")


def test_pii_hash_key_comes_from_settings() -> None:
    app = create_app(
        Settings(topics=Topics("unit2"), pii_hash_key="s3cret"), plugins=(), client_factory=list
    )
    assert app.stream_context.hash_key == b"s3cret"  # type: ignore[attr-defined]
    assert "s3cret" not in repr(Settings(pii_hash_key="s3cret"))


def test_cli_registers_worker_and_bench_pipeline() -> None:
    from typer.testing import CliRunner

    from auditstream.cli import app
    from auditstream.stream.cli import _plugins_from

    runner = CliRunner()
    assert "--plugins" in runner.invoke(app, ["worker", "--help"]).output
    assert "--events" in runner.invoke(app, ["bench", "pipeline", "--help"]).output
    assert _plugins_from(None) is None
    assert _plugins_from("none") == ()
    assert _plugins_from(" a.b , c ") == ("a.b", "c")
