"""`auditstream demo` end to end: its own local stack (broker, ClickHouse, worker) in a temp dir."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # ~40 s: starts a whole stack


def test_demo_brings_up_the_stack_and_every_row_arrives(tmp_path: Path) -> None:
    from rich.console import Console

    from auditstream.deploy.local import LocalStack
    from auditstream.deploy.procs import free_port
    from auditstream.producers.demo import run_demo
    from auditstream.stream.clickhouse import get_client

    state = tmp_path / "stack"
    ports = (free_port(), free_port(), free_port())
    out = io.StringIO()
    try:
        code = run_demo(
            events=500,
            seed=3,
            malformed=10,
            wait=180,
            state_dir=state,
            ports=ports,
            alertmanager_port=free_port(),
            console=Console(file=out, width=200),
        )
        text = out.getvalue()
        assert code == 0, text
        run_id = re.search(r"run ([0-9a-f]{8}): 490 events", text)
        assert run_id, text
        assert "acknowledged by the broker" in text and "curl 'http://127.0.0.1:" in text

        stack = LocalStack.from_state(state)
        assert stack.config.kafka_port == ports[0]
        ch = get_client(stack.settings)
        try:
            rows = ch.query(
                "SELECT count(), uniqExact(event_id) FROM events FINAL "
                "WHERE startsWith(source, {p:String})",
                parameters={"p": f"urn:auditstream:run:{run_id.group(1)}:"},
            ).result_rows[0]
            dead = ch.query("SELECT count() FROM dead_letters FINAL").result_rows[0][0]
        finally:
            ch.close()
        assert tuple(rows) == (490, 490)
        assert dead == 10
    finally:
        if (state / "stack.json").exists():  # stop exactly what the demo started, by PID
            LocalStack.from_state(state).down()
