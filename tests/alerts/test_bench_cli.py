"""The alert benchmark command (small workload) and the CLI registration."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from auditstream.alerts.bench import make_workload
from auditstream.cli import app


def test_bench_alerts_json_line() -> None:
    result = CliRunner().invoke(
        app, ["bench", "alerts", "--seed", "3", "--agents", "8", "--hours", "4", "--json"]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert set(figures) == {"error_spike", "complaint_burst", "agent_silent"}
    for kind in figures.values():
        assert set(kind) == {"recall", "precision", "median_delay_s", "false_per_agent_day"}
        assert kind["false_per_agent_day"] >= 0
    assert "agent-days" in result.output


def test_seed_changes_the_workload() -> None:
    a, b = make_workload(1, agents=5, hours=3), make_workload(2, agents=5, hours=3)
    assert [i.start for i in a.injections] != [i.start for i in b.injections]
    assert len(a.observations) != len(b.observations)
    again = make_workload(1, agents=5, hours=3)
    assert [(o.t, o.kind) for o in again.observations[:500]] == [
        (o.t, o.kind) for o in a.observations[:500]
    ]


def test_on_call_commands_are_registered() -> None:
    runner = CliRunner()
    for args in (["alerts", "--help"], ["incidents", "--help"], ["incidents", "ack", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert "--by" in runner.invoke(app, ["incidents", "resolve", "--help"]).output


def test_bench_alert_latency_reaches_a_real_alertmanager() -> None:
    # Runs the real path (temporary stack, worker, Alertmanager); asserts the alert arrived for
    # every trial and the JSON shape, never a time: the machines are shared and noisy.
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "auditstream.cli", "bench", "alert-latency", "--trials", "2",
         "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["trials"] == 2 and figures["missed"] == 0
    assert 0 < figures["min_s"] <= figures["median_s"] <= figures["max_s"]
