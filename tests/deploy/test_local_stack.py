"""The local stack end to end: up / status / kill -9 / up / down, on both dev brokers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from auditstream.deploy.local import LocalStack
from auditstream.deploy.procs import free_port, is_alive
from auditstream.settings import Settings

pytestmark = pytest.mark.integration


def _stack(tmp_path: Path, broker: str) -> LocalStack:
    # Own ports and prefix: never the defaults a developer's `auditstream up` may be using.
    return LocalStack(
        tmp_path / "state", broker, free_port(), free_port(), free_port(),  # type: ignore[arg-type]
        settings=Settings(),
    )  # fmt: skip


def _processes_mentioning(text: str) -> list[str]:
    # -ww: never truncate command lines (ps may cut them to a terminal width otherwise).
    out = subprocess.run(
        ["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True
    )
    return [line for line in out.stdout.splitlines() if text in line and "ps -ww" not in line]


def _kill9(pid: int | None) -> None:
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)  # reap if it was our child


def test_up_kill9_restart_down_noida_with_worker(tmp_path: Path, monkeypatch) -> None:
    # The core worker only: this is a lifecycle test, not one of the other areas' plugins.
    monkeypatch.setenv("AUDITSTREAM_STREAM_PLUGINS", "none")
    stack = _stack(tmp_path, "noida")
    try:
        st = stack.up(start_worker=True)
        assert st["broker"]["ready"] and st["clickhouse"]["ready"] and st["worker"]["running"]
        recorded = json.loads((stack.state_dir / "stack.json").read_text())
        assert recorded["pids"] == {
            "broker": st["broker"]["pid"], "clickhouse": st["clickhouse"]["pid"],
            "worker": st["worker"]["pid"],
        }  # fmt: skip
        assert len(_processes_mentioning(str(stack.state_dir))) == 2  # broker + ClickHouse
        env_text = (stack.state_dir / "stack.env").read_text()
        assert f"AUDITSTREAM_KAFKA_BOOTSTRAP=127.0.0.1:{stack.config.kafka_port}" in env_text

        from auditstream.stream.clickhouse import get_client

        client = get_client(stack.settings)
        client.command("CREATE TABLE IF NOT EXISTS marker (x UInt8) ENGINE = MergeTree ORDER BY x")
        client.insert("marker", [[1]], column_names=["x"])
        client.close()

        # kill -9 every part; the next `up` must notice the stale pid files and recover.
        old = (st["worker"]["pid"], st["broker"]["pid"], st["clickhouse"]["pid"])
        for pid in old:
            _kill9(pid)
        assert not stack.status()["clickhouse"]["ready"]
        st2 = stack.up(start_worker=True)
        assert st2["broker"]["ready"] and st2["clickhouse"]["ready"] and st2["worker"]["running"]
        assert {st2["broker"]["pid"], st2["clickhouse"]["pid"], st2["worker"]["pid"]}.isdisjoint(
            old
        )
        client = get_client(stack.settings)
        assert client.query("SELECT count() FROM marker").result_rows == [(1,)]  # data kept
        assert client.query("SELECT count() > 0 FROM schema_migrations").result_rows == [(1,)]
        client.close()
        new = (st2["worker"]["pid"], st2["broker"]["pid"], st2["clickhouse"]["pid"])
    finally:
        stack.down()
    assert not any(is_alive(pid) for pid in new)
    assert _processes_mentioning(str(stack.state_dir)) == []
    st3 = stack.status()
    assert not st3["broker"]["ready"] and not st3["clickhouse"]["ready"]
    assert not st3["worker"]["running"]


def test_cli_up_status_down_tansu(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ports = [str(free_port()) for _ in range(3)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITSTREAM_")}
    cli = [sys.executable, "-m", "auditstream.cli"]
    run = lambda *args: subprocess.run(  # noqa: E731
        [*cli, *args], env=env, capture_output=True, text=True, timeout=180
    )
    try:
        up = run("up", "--broker", "tansu", "--state-dir", str(state), "--kafka-port", ports[0],
                 "--http-port", ports[1], "--tcp-port", ports[2], "--no-worker")  # fmt: skip
        assert up.returncode == 0, up.stderr
        status = run("status", "--state-dir", str(state), "--json")
        assert status.returncode == 0, status.stderr
        st = json.loads(status.stdout)
        assert st["broker"]["kind"] == "tansu" and st["broker"]["ready"]
        assert st["clickhouse"]["ready"] and not st["worker"]["running"]
        # The stack's env file points `db migrate` at it: already migrated → up to date.
        stack_env = dict(
            line.removeprefix("export ").split("=", 1)
            for line in (state / "stack.env").read_text().splitlines()
            if line.startswith("export ")
        )
        migrate = subprocess.run(
            [*cli, "db", "migrate"], env={**env, **stack_env}, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert migrate.returncode == 0 and "up to date" in migrate.stdout, migrate.stderr
        listing = subprocess.run(
            [*cli, "query", "--list"], env={**env, **stack_env}, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert listing.returncode == 0, listing.stderr
        unknown = subprocess.run(
            [*cli, "query", "no_such_query"], env={**env, **stack_env}, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        assert unknown.returncode == 1 and "unknown query" in unknown.stderr
    finally:
        down = run("down", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    assert _processes_mentioning(str(state)) == []
    assert run("status", "--state-dir", str(state)).returncode == 1  # down → non-zero
