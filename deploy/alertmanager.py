"""A real Prometheus Alertmanager (Debian's ``prometheus-alertmanager``) for the local stack.

The local stack starts one on loopback when the binary is installed (``make setup`` installs it),
and points the worker's delivery outbox at it through a receivers file, so the demo's alerts land
in a real Alertmanager: ``curl http://127.0.0.1:19093/api/v2/alerts``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from auditstream.deploy.procs import (
    is_alive,
    port_open,
    read_pid,
    remove_pid,
    stop_pid,
    tail,
    write_pid,
)

BINARY_NAME = "prometheus-alertmanager"
# Routes everything to a receiver with no integrations: the stack only needs Alertmanager's API
# and UI. Production routes its own receivers (PagerDuty, e-mail, ...) in its own config.
CONFIG = """\
route:
  receiver: local
  group_by: [alertname, group_key]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: local
"""


class AlertmanagerError(RuntimeError):
    """Alertmanager did not start; the message carries its log tail."""


def alertmanager_binary() -> str | None:
    return shutil.which(BINARY_NAME) or (
        f"/usr/bin/{BINARY_NAME}" if Path(f"/usr/bin/{BINARY_NAME}").exists() else None
    )


class AlertmanagerServer:
    """One Alertmanager process, managed by PID like the other parts of the stack."""

    def __init__(
        self, data_dir: str | os.PathLike[str], port: int = 19093, *, start_timeout: float = 30.0
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.start_timeout = start_timeout

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "alertmanager.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "alertmanager.log"

    @property
    def receivers_file(self) -> Path:
        """The worker's receivers YAML (``AUDITSTREAM_ALERT_RECEIVERS``) aimed at this server."""
        return self.data_dir / "receivers.yaml"

    @property
    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid is not None and is_alive(pid) else None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def start(self) -> AlertmanagerServer:
        binary = alertmanager_binary()
        if binary is None:
            raise AlertmanagerError(f"{BINARY_NAME} is not installed (make setup installs it)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.receivers_file.write_text(
            "receivers:\n"
            "  - {name: local-alertmanager, type: alertmanager, resend_s: 30, "
            f"url: '{self.url}'}}\n"
        )
        if self.pid is not None:
            if self.ready():
                return self
            stop_pid(self.pid, timeout=5)
        remove_pid(self.pid_file)
        if port_open(self.port):
            raise AlertmanagerError(
                f"port {self.port} is already in use by a process this stack did not start; "
                "pick another with --alertmanager-port"
            )
        config = self.data_dir / "alertmanager.yml"
        config.write_text(CONFIG)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.path={self.data_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",  # single instance: no gossip port
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        write_pid(self.pid_file, proc.pid)
        deadline = time.monotonic() + self.start_timeout
        while not self.ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AlertmanagerError(
                    f"alertmanager did not answer on {self.url}; log {self.log_file}:\n"
                    f"{tail(self.log_file)}"
                )
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        pid = read_pid(self.pid_file)
        if pid is not None:
            stop_pid(pid, timeout=10)
        remove_pid(self.pid_file)
