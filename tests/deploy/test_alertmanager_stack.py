"""The local stack's real Alertmanager: started, wired to the worker's outbox, stopped by PID."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from auditstream.alerts.delivery import load_config
from auditstream.deploy.alertmanager import alertmanager_binary
from auditstream.deploy.local import LocalStack
from auditstream.deploy.procs import free_port, is_alive
from auditstream.settings import Settings

pytestmark = pytest.mark.integration


def test_stack_runs_alertmanager_and_points_the_outbox_at_it(tmp_path: Path) -> None:
    assert alertmanager_binary(), "prometheus-alertmanager must be installed (make setup)"
    am_port = free_port()
    stack = LocalStack(
        tmp_path / "state", "noida", free_port(), free_port(), free_port(),
        alertmanager_port=am_port, settings=Settings(),
    )  # fmt: skip
    try:
        status = stack.up(start_worker=False)
        am = status["alertmanager"]
        assert am["ready"] and am["url"] == f"http://127.0.0.1:{am_port}"
        with urllib.request.urlopen(f"{am['url']}/api/v2/status", timeout=5) as resp:
            assert json.loads(resp.read())["cluster"]["status"] in ("ready", "disabled")

        receivers = load_config(stack.env_vars()["AUDITSTREAM_ALERT_RECEIVERS"]).receivers
        assert [(r.type, r.url) for r in receivers] == [("alertmanager", am["url"])]
        # `down` and `status` of a recorded stack find the Alertmanager again.
        again = LocalStack.from_state(tmp_path / "state", settings=Settings())
        assert again.status()["alertmanager"]["pid"] == am["pid"]
    finally:
        pid = stack.alertmanager.pid if stack.alertmanager else None
        stack.down()
    assert pid is not None and not is_alive(pid)
