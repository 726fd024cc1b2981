"""Pure tests of the deploy helpers: topic specs, server config, pid bookkeeping, CLI params."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from auditstream.deploy import procs
from auditstream.deploy.broker import BrokerError, DevBroker, broker_command
from auditstream.deploy.cli import parse_params
from auditstream.deploy.clickhouse_server import render_config
from auditstream.deploy.local import settings_env
from auditstream.deploy.topics import TopicSpec, topic_specs
from auditstream.settings import Settings, Topics


def test_topic_specs_cover_all_topics_with_compaction() -> None:
    s = Settings(topics=Topics("p"), partitions=4)
    specs = {t.name: t for t in topic_specs(s)}
    assert set(specs) == {
        "p.events", "p.deadletter", "p.findings", "p.alerts", "p.registry", "p.control",
    }  # fmt: skip
    assert specs["p.events"].partitions == 4 and specs["p.findings"].partitions == 4
    assert specs["p.registry"].config == {"cleanup.policy": "compact"}
    assert specs["p.control"].config == {"cleanup.policy": "compact"}
    assert specs["p.events"].config == {}
    named = {t.name: t for t in topic_specs(s, extra=["p.more"])}
    assert named["p.more"].partitions == 4
    with pytest.raises(ValueError, match="duplicate"):
        topic_specs(s, extra=[TopicSpec("p.events", 1)])


def test_server_config_binds_loopback_only() -> None:
    root = ET.fromstring(render_config(Path("/d<&>"), 8124, 9001, 1 << 30))
    assert root.findtext("listen_host") == "127.0.0.1"
    assert (root.findtext("http_port"), root.findtext("tcp_port")) == ("8124", "9001")
    assert root.findtext("max_server_memory_usage") == str(1 << 30)
    assert root.findtext("logger/log") == "/d<&>/clickhouse.log"  # escaped, then parsed back


def test_broker_commands_bind_loopback() -> None:
    noida = broker_command("noida", 1234, Path("/x"))
    assert noida[noida.index("--host") + 1] == "127.0.0.1"
    tansu = broker_command("tansu", 1234, Path("/x"))
    assert tansu[tansu.index("--listener-url") + 1] == "tcp://127.0.0.1:1234"
    with pytest.raises(BrokerError):
        DevBroker("kafka", 1, "/tmp/x")  # type: ignore[arg-type]


def test_stale_pid_file_is_not_alive(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    pid_file = tmp_path / "x.pid"
    procs.write_pid(pid_file, proc.pid)
    assert procs.read_pid(pid_file) == proc.pid
    assert not procs.is_alive(proc.pid)
    pid_file.write_text("garbage")
    assert procs.read_pid(pid_file) is None


def test_stop_pid_escalates_to_sigkill(tmp_path: Path) -> None:
    # A child that ignores SIGTERM must still be gone after stop_pid.
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    assert procs.stop_pid(proc.pid, timeout=0.5) is False  # not graceful ...
    assert not procs.is_alive(proc.pid)  # ... but stopped (and reaped by stop_pid)
    proc.stdout.close()


def test_settings_env_round_trips_including_passthrough() -> None:
    s = Settings.from_env(
        {
            "AUDITSTREAM_KAFKA_BOOTSTRAP": "k:9093",
            "AUDITSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "AUDITSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "AUDITSTREAM_RETENTION_DAYS": "30",
            "AUDITSTREAM_CLICKHOUSE_URL": "https://u:p@h:8443/db",
        }
    )
    assert Settings.from_env(settings_env(s)) == s


def test_parse_params() -> None:
    assert parse_params(["agent=a=b", "hours=3"]) == {"agent": "a=b", "hours": "3"}
    with pytest.raises(ValueError, match="key=value"):
        parse_params(["oops"])


def test_query_output_formats(capsys: pytest.CaptureFixture[str]) -> None:
    import datetime as dt

    from auditstream.deploy.cli import _print_result

    rows = [("a", 2, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), b"\xff")]
    _print_result(["agent", "n", "t", "raw"], rows, "json")
    line = capsys.readouterr().out.strip()
    assert line == '{"agent": "a", "n": 2, "t": "2026-01-01T00:00:00+00:00", "raw": "\\ufffd"}'
    _print_result(["agent", "n"], [("a,b", 1)], "csv")
    assert capsys.readouterr().out.splitlines() == ["agent,n", '"a,b",1']
