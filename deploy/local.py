"""The local stack: dev Kafka broker + ClickHouse server + faust worker, managed by PID.

``LocalStack(state_dir).up()`` starts what is not already running (idempotent; stale pid files
from a ``kill -9`` are detected and replaced), creates the topics, applies the migrations and
starts the worker; it records everything in ``<state_dir>/stack.json`` and writes
``<state_dir>/stack.env`` (``source`` it to point any command at the stack). ``down()`` stops
exactly the PIDs it recorded: worker first (gracefully, so it commits its offsets), then the
broker, then ClickHouse.

Layout of the state directory::

    stack.json  stack.env
    broker/     noida data (or tansu log; tansu keeps data in memory) + pid file
    clickhouse/ ClickHouse data, config.xml, logs, pid file
    worker/     faust data dir, worker.log, worker.pid
    alertmanager/ a real Prometheus Alertmanager (when enabled), its config, receivers.yaml, log
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditstream.deploy.alertmanager import AlertmanagerServer, alertmanager_binary
from auditstream.deploy.broker import BROKER_KINDS, BrokerKind, DevBroker
from auditstream.deploy.clickhouse_server import ClickHouseServer
from auditstream.deploy.procs import is_alive, read_pid, remove_pid, stop_pid, tail, write_pid
from auditstream.settings import Settings

STACK_JSON = "stack.json"
STACK_ENV = "stack.env"
# How long the worker gets to finish its batch and commit offsets before SIGKILL.
WORKER_STOP_TIMEOUT = 30.0
# A worker that dies within this grace period is reported as a failed start (bad config etc.).
WORKER_START_GRACE = 3.0


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``AUDITSTREAM_*`` variables that make ``Settings.from_env()`` return ``settings``.

    Used to hand a stack's (or a test's) settings to subprocess workers and CLIs; includes the
    Kafka pass-through properties (``sasl.mechanism`` → ``AUDITSTREAM_KAFKA_SASL_MECHANISM``).
    """
    env = {
        "AUDITSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "AUDITSTREAM_KAFKA_TOPIC_PREFIX": settings.topics.prefix,
        "AUDITSTREAM_KAFKA_PARTITIONS": str(settings.partitions),
        "AUDITSTREAM_KAFKA_REPLICATION": str(settings.replication),
        "AUDITSTREAM_CLICKHOUSE_URL": settings.clickhouse_url,
        "AUDITSTREAM_RETENTION_DAYS": str(settings.retention_days),
        "AUDITSTREAM_SINK_BATCH_SIZE": str(settings.sink_batch_size),
        "AUDITSTREAM_SINK_BATCH_SECONDS": str(settings.sink_batch_seconds),
        "AUDITSTREAM_MAX_EVENT_BYTES": str(settings.max_event_bytes),
        "AUDITSTREAM_STATE_DIR": settings.state_dir,
    }
    for key, value in settings.kafka_extra.items():
        env["AUDITSTREAM_KAFKA_" + key.replace(".", "_").upper()] = str(value)
    pii = getattr(settings, "pii_hash_key", "")
    if pii:
        env["AUDITSTREAM_PII_HASH_KEY"] = pii
    return env


class StackError(RuntimeError):
    """A part of the local stack failed; the message says which and shows its log tail."""


@dataclass(frozen=True)
class StackConfig:
    broker: str
    kafka_port: int
    http_port: int
    tcp_port: int
    database: str
    topic_prefix: str
    alertmanager_port: int | None = None


class LocalStack:
    def __init__(
        self,
        state_dir: str | os.PathLike[str] = ".state",
        broker: BrokerKind = "noida",
        kafka_port: int = 19092,
        http_port: int = 18123,
        tcp_port: int = 19000,
        *,
        alertmanager_port: int | None = None,
        settings: Settings | None = None,
    ) -> None:
        """``alertmanager_port`` starts a real Alertmanager there and sends the alerts to it."""
        if broker not in BROKER_KINDS:
            raise StackError(f"unknown broker {broker!r}; expected one of {BROKER_KINDS}")
        self.state_dir = Path(state_dir).resolve()
        self.base_settings = settings or Settings.from_env()
        from auditstream.stream.clickhouse import parse_url

        self.config = StackConfig(
            broker=broker,
            kafka_port=kafka_port,
            http_port=http_port,
            tcp_port=tcp_port,
            database=parse_url(self.base_settings.clickhouse_url).database,
            topic_prefix=self.base_settings.topics.prefix,
            alertmanager_port=alertmanager_port,
        )

    # -- the parts -------------------------------------------------------------------------

    @classmethod
    def from_state(
        cls, state_dir: str | os.PathLike[str] = ".state", *, settings: Settings | None = None
    ) -> LocalStack:
        """The stack recorded in ``<state_dir>/stack.json`` (for ``down``/``status``)."""
        path = Path(state_dir).resolve() / STACK_JSON
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise StackError(
                f"no local stack recorded in {path.parent} (run `auditstream up`)"
            ) from None
        except ValueError as exc:
            raise StackError(f"{path} is not valid JSON: {exc}") from exc
        stack = cls(
            state_dir,
            broker=data["broker"],
            kafka_port=int(data["kafka_port"]),
            http_port=int(data["http_port"]),
            tcp_port=int(data["tcp_port"]),
            alertmanager_port=data.get("alertmanager_port"),
            settings=settings,
        )
        stack.config = replace(
            stack.config,
            database=data.get("database", stack.config.database),
            topic_prefix=data.get("topic_prefix", stack.config.topic_prefix),
        )
        return stack

    @property
    def broker(self) -> DevBroker:
        return DevBroker(self.config.broker, self.config.kafka_port, self.state_dir / "broker")  # type: ignore[arg-type]

    @property
    def clickhouse(self) -> ClickHouseServer:
        return ClickHouseServer(
            self.state_dir / "clickhouse", self.config.http_port, self.config.tcp_port
        )

    @property
    def alertmanager(self) -> AlertmanagerServer | None:
        # Without the Debian package the stack runs without it (alerts stay in ClickHouse + topic).
        if self.config.alertmanager_port is None or alertmanager_binary() is None:
            return None
        return AlertmanagerServer(self.state_dir / "alertmanager", self.config.alertmanager_port)

    @property
    def worker_dir(self) -> Path:
        return self.state_dir / "worker"

    @property
    def worker_pid_file(self) -> Path:
        return self.worker_dir / "worker.pid"

    @property
    def worker_log(self) -> Path:
        return self.worker_dir / "worker.log"

    @property
    def settings(self) -> Settings:
        """The stack's settings: the caller's, pointed at this stack's broker and ClickHouse."""
        return replace(
            self.base_settings,
            kafka_bootstrap=f"127.0.0.1:{self.config.kafka_port}",
            clickhouse_url=(
                f"http://default:@127.0.0.1:{self.config.http_port}/{self.config.database}"
            ),
            state_dir=str(self.worker_dir),
        )

    def env_vars(self) -> dict[str, str]:
        env = settings_env(self.settings)
        if self.alertmanager is not None:
            env["AUDITSTREAM_ALERT_RECEIVERS"] = str(self.alertmanager.receivers_file)
        return env

    def worker_pid(self) -> int | None:
        pid = read_pid(self.worker_pid_file)
        return pid if pid is not None and is_alive(pid) else None

    # -- lifecycle -------------------------------------------------------------------------

    def up(self, start_worker: bool = True) -> dict[str, Any]:
        """Start everything that is not running; returns :meth:`status`."""
        from auditstream.deploy.topics import ensure_topics
        from auditstream.stream.clickhouse import migrate_settings

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._check_recorded_broker()
        self.broker.start()
        self._record()  # record early: a failure below still leaves `down` able to clean up
        self.clickhouse.start()
        if self.alertmanager is not None:
            self.alertmanager.start()
        ensure_topics(self.settings)
        migrate_settings(self.settings)
        if start_worker:
            self.start_worker()
        self._record()
        return self.status()

    def _check_recorded_broker(self) -> None:
        path = self.state_dir / STACK_JSON
        if not path.exists():
            return
        try:
            old = json.loads(path.read_text())
        except ValueError:
            return
        old_kind, old_port = old.get("broker"), old.get("kafka_port")
        old_broker = DevBroker(old_kind, int(old_port), self.state_dir / "broker")
        if (old_kind, old_port) != (self.config.broker, self.config.kafka_port) and old_broker.pid:
            raise StackError(
                f"a stack with the {old_kind} broker on port {old_port} is running in "
                f"{self.state_dir}; run `auditstream down` first"
            )

    def start_worker(self) -> int:
        pid = self.worker_pid()
        if pid is not None:
            return pid
        remove_pid(self.worker_pid_file)
        self.worker_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env_vars()}
        log = self.worker_log.open("ab")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "auditstream.cli", "worker"],
                env=env,
                cwd=self.worker_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        write_pid(self.worker_pid_file, proc.pid)
        deadline = time.monotonic() + WORKER_START_GRACE
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                remove_pid(self.worker_pid_file)
                raise StackError(
                    f"the worker exited with {proc.returncode} right after start "
                    f"(`auditstream worker` missing or misconfigured?); log {self.worker_log}:\n"
                    f"{tail(self.worker_log)}\n(use --no-worker to run without it)"
                )
            time.sleep(0.1)
        return proc.pid

    def stop_worker(self) -> None:
        pid = read_pid(self.worker_pid_file)
        if pid is not None:
            stop_pid(pid, timeout=WORKER_STOP_TIMEOUT)
        remove_pid(self.worker_pid_file)

    def down(self) -> None:
        """Stop worker (graceful), broker, ClickHouse — each by its recorded PID."""
        errors: list[str] = []
        for name, stop in (
            ("worker", self.stop_worker),
            ("alertmanager", self.alertmanager.stop if self.alertmanager else lambda: None),
            ("broker", self.broker.stop),
            ("clickhouse", self.clickhouse.stop),
        ):
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                errors.append(f"{name}: {exc}")
        self._record(running=False)
        if errors:
            raise StackError("some parts did not stop cleanly: " + "; ".join(errors))

    def status(self) -> dict[str, Any]:
        broker, ch = self.broker, self.clickhouse
        broker_pid, ch_pid, worker_pid = broker.pid, ch.pid, self.worker_pid()
        am = self.alertmanager
        return {
            "state_dir": str(self.state_dir),
            "broker": {
                "kind": self.config.broker,
                "pid": broker_pid,
                "bootstrap": broker.bootstrap,
                "ready": bool(broker_pid) and broker.ready(timeout=1.0),
            },
            "clickhouse": {
                "pid": ch_pid,
                "http": ch.http_url,
                "tcp_port": self.config.tcp_port,
                "database": self.config.database,
                "ready": bool(ch_pid) and ch.ping(),
            },
            "worker": {"pid": worker_pid, "running": worker_pid is not None,
                       "log": str(self.worker_log)},
            "alertmanager": None if am is None else {
                "pid": am.pid, "url": am.url, "ready": bool(am.pid) and am.ready(),
            },
        }  # fmt: skip

    def _pids(self) -> dict[str, int | None]:
        """PIDs of this stack's processes; Alertmanager only when this stack runs one."""
        pids = {
            "broker": self.broker.pid,
            "clickhouse": self.clickhouse.pid,
            "worker": self.worker_pid(),
        }
        if self.alertmanager is not None:
            pids["alertmanager"] = self.alertmanager.pid
        return pids

    def _record(self, running: bool = True) -> None:
        data = {
            **asdict(self.config),
            "running": running,
            "updated_at": datetime.now(UTC).isoformat(),
            "pids": self._pids(),
            "bootstrap": self.settings.kafka_bootstrap,
            "clickhouse_http": self.clickhouse.http_url,
        }
        tmp = self.state_dir / (STACK_JSON + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.state_dir / STACK_JSON)
        public = ("BOOTSTRAP", "TOPIC_PREFIX", "PARTITIONS", "CLICKHOUSE_URL", "STATE_DIR",
                  "ALERT_RECEIVERS")  # fmt: skip
        lines = [
            f"export {k}={shlex.quote(v)}"
            for k, v in self.env_vars().items()
            if k.removeprefix("AUDITSTREAM_").removeprefix("KAFKA_") in public
        ]
        (self.state_dir / STACK_ENV).write_text(
            "# written by `auditstream up`; `source` it to point commands at the local stack\n"
            + "\n".join(lines)
            + "\n"
        )
