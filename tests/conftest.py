"""Shared test fixtures: real servers, isolated per test.

Session-scoped, started once per test run in a temporary directory on free loopback ports:

- ``clickhouse_server`` — a real ClickHouse server (chdb-core, HTTP + native TCP);
- ``noida_broker`` — the noida-db Kafka-protocol dev broker;
- ``tansu_broker`` — the tansu dev broker, started lazily only when a test asks for it.

Per test: ``make_env(broker="noida") -> Env`` gives an isolated :class:`Settings` (a unique topic
prefix with all topics created, a unique ClickHouse database with migrations applied), plus
``env.ch()`` clients, ``env.env_vars()`` for subprocess workers and ``env.spawn(...)`` for
processes that must die with the test. Everything is torn down by PID, also when tests fail.

``AUDITSTREAM_TEST_BACKEND=testcontainers`` (hosts with Docker only; this project's dev machines
and CI have no Docker engine, so that path is not exercised here) swaps the servers for real
Apache Kafka and clickhouse-server containers; both broker fixtures then point at that Kafka.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from auditstream.settings import Settings, Topics

BACKEND = os.environ.get("AUDITSTREAM_TEST_BACKEND", "local").strip().lower()
if BACKEND not in ("local", "testcontainers"):
    raise pytest.UsageError(
        f"AUDITSTREAM_TEST_BACKEND={BACKEND!r}: expected 'local' (default) or 'testcontainers'"
    )

# Last line of defence against orphans (e.g. the run is interrupted during a fixture's set-up):
# every server fixture registers its stop() here too; stop() is idempotent.
_STOPPERS: list[Callable[[], None]] = []


@atexit.register
def _stop_everything() -> None:
    while _STOPPERS:
        with contextlib.suppress(Exception):
            _STOPPERS.pop()()


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # A CI runner or a developer stopping the run with SIGTERM gets the same clean teardown as
    # Ctrl-C (session fixtures stop their servers), instead of orphaned servers.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


@dataclass(frozen=True)
class ClickHouseEndpoint:
    http_host: str
    http_port: int
    tcp_port: int
    username: str = "default"
    password: str = ""
    data_dir: Path | None = None  # local backend only
    server: Any = None  # the ClickHouseServer (local backend), for kill/restart tests

    def url(self, database: str = "default") -> str:
        return (
            f"http://{self.username}:{self.password}@{self.http_host}:{self.http_port}/{database}"
        )


@dataclass(frozen=True)
class BrokerEndpoint:
    kind: str  # "noida", "tansu" or "kafka" (testcontainers)
    bootstrap: str
    broker: Any = None  # the DevBroker (local backend)


# --------------------------------------------------------------------------------------------
# Session servers


def _register(stop: Callable[[], None]) -> Callable[[], None]:
    _STOPPERS.append(stop)
    return stop


def _unregister(stop: Callable[[], None]) -> None:
    with contextlib.suppress(ValueError):
        _STOPPERS.remove(stop)


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseEndpoint]:
    if BACKEND == "testcontainers":
        yield from _clickhouse_container()
        return
    from auditstream.deploy.clickhouse_server import ClickHouseServer
    from auditstream.deploy.procs import free_port

    server = ClickHouseServer(
        tmp_path_factory.mktemp("clickhouse"), free_port(), free_port(), max_memory=4 << 30
    )
    stop = _register(server.stop)
    try:
        server.start()
        yield ClickHouseEndpoint(
            "127.0.0.1", server.http_port, server.tcp_port, data_dir=server.data_dir, server=server
        )
    finally:
        server.stop()
        _unregister(stop)


def _local_broker(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerEndpoint]:
    from auditstream.deploy.broker import DevBroker
    from auditstream.deploy.procs import free_port

    broker = DevBroker(kind, free_port(), tmp_path_factory.mktemp(kind))  # type: ignore[arg-type]
    stop = _register(broker.stop)
    try:
        broker.start()
        yield BrokerEndpoint(kind, broker.bootstrap, broker)
    finally:
        broker.stop()
        _unregister(stop)


@pytest.fixture(scope="session")
def noida_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerEndpoint]:
    if BACKEND == "testcontainers":
        yield _kafka_container_endpoint(tmp_path_factory)
        return
    yield from _local_broker("noida", tmp_path_factory)


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerEndpoint]:
    """Started only by tests that request it (directly or via ``make_env(broker="tansu")``)."""
    if BACKEND == "testcontainers":
        yield _kafka_container_endpoint(tmp_path_factory)
        return
    yield from _local_broker("tansu", tmp_path_factory)


# --------------------------------------------------------------------------------------------
# testcontainers backend (Docker hosts only): real Apache Kafka (KRaft) and clickhouse-server.

KAFKA_IMAGE = os.environ.get("AUDITSTREAM_TEST_KAFKA_IMAGE", "confluentinc/cp-kafka:7.9.0")
CLICKHOUSE_IMAGE = os.environ.get(
    "AUDITSTREAM_TEST_CLICKHOUSE_IMAGE", "clickhouse/clickhouse-server:25.8"
)
_kafka_container: Any = None


def _start_container(build: Callable[[], Any]) -> Any:
    """Build and start a container; without Docker, stop the run with one clear message."""
    try:
        container = build()
        container.start()
        return container
    except Exception as exc:
        if type(exc).__name__ == "DockerException":
            pytest.exit(
                "AUDITSTREAM_TEST_BACKEND=testcontainers needs a reachable Docker engine "
                f"(DOCKER_HOST or /var/run/docker.sock): {exc}",
                returncode=3,
            )
        raise


def _kafka_container_endpoint(tmp_path_factory: pytest.TempPathFactory) -> BrokerEndpoint:
    global _kafka_container
    if _kafka_container is None:
        from testcontainers.community.kafka import KafkaContainer

        # Confluent's image is Apache Kafka; KRaft mode, single node, like deploy/docker-compose.
        container = _start_container(lambda: KafkaContainer(KAFKA_IMAGE).with_kraft())
        _register(container.stop)
        _kafka_container = container
    return BrokerEndpoint("kafka", _kafka_container.get_bootstrap_server())


def _clickhouse_container() -> Iterator[ClickHouseEndpoint]:
    from testcontainers.community.clickhouse import ClickHouseContainer

    # access management on, so migrations really create the analyst role there.
    container = _start_container(
        lambda: ClickHouseContainer(CLICKHOUSE_IMAGE).with_env(
            "CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT", "1"
        )
    )
    stop = _register(container.stop)
    try:
        yield ClickHouseEndpoint(
            container.get_container_host_ip(),
            int(container.get_exposed_port(8123)),
            int(container.get_exposed_port(9000)),
            username=container.username,
            password=container.password,
        )
    finally:
        container.stop()
        _unregister(stop)


# --------------------------------------------------------------------------------------------
# Per-test isolation


@dataclass
class Env:
    """One test's private slice of the shared servers."""

    settings: Settings
    broker: BrokerEndpoint
    clickhouse: ClickHouseEndpoint
    database: str
    state_dir: Path
    _clients: list[Any] = field(default_factory=list)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap

    def ch(self, database: str | None = None) -> Any:
        """A clickhouse-connect client on this test's database (closed at teardown)."""
        from auditstream.stream.clickhouse import get_client

        client = get_client(self.settings, database=database)
        self._clients.append(client)
        return client

    def env_vars(self, **overrides: str) -> dict[str, str]:
        """os.environ + this test's AUDITSTREAM_* settings, for subprocess workers and CLIs."""
        from auditstream.deploy.local import settings_env

        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITSTREAM_")}
        env.update(settings_env(self.settings))
        env.update(overrides)
        return env

    def spawn(
        self, args: list[str], *, log_name: str = "proc", **popen: Any
    ) -> subprocess.Popen[bytes]:
        """Start a process that is killed (SIGTERM, then SIGKILL) by PID at teardown.

        stdout/stderr go to ``state_dir/<log_name>.log`` unless given; ``env`` defaults to
        :meth:`env_vars`.
        """
        popen.setdefault("env", self.env_vars())
        popen.setdefault("stdin", subprocess.DEVNULL)
        if "stdout" not in popen:
            log = (self.state_dir / f"{log_name}.log").open("ab")
            popen["stdout"] = log
            popen.setdefault("stderr", subprocess.STDOUT)
        proc = subprocess.Popen(args, start_new_session=True, **popen)
        self._procs.append(proc)
        return proc

    def spawn_worker(self, *extra: str, log_name: str = "worker") -> subprocess.Popen[bytes]:
        """``auditstream worker`` for this test's settings (the stream area's command)."""
        return self.spawn(
            [sys.executable, "-m", "auditstream.cli", "worker", *extra], log_name=log_name
        )

    def close(self) -> None:
        from auditstream.deploy.procs import stop_pid

        for proc in self._procs:
            if proc.poll() is None:
                stop_pid(proc.pid, timeout=10, sig=signal.SIGTERM)
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_env(
    request: pytest.FixtureRequest,
    clickhouse_server: ClickHouseEndpoint,
    tmp_path: Path,
) -> Iterator[Callable[..., Env]]:
    """``make_env(broker="noida", partitions=6, migrate=True, **settings) -> Env``.

    Each call: a fresh topic prefix (all topics created up front) and a fresh ClickHouse
    database (migrations applied). Databases and topics are dropped at teardown.
    """
    from auditstream.deploy.topics import ensure_topics
    from auditstream.stream.clickhouse import ensure_database, get_client, migrate

    envs: list[Env] = []

    def factory(
        broker: str = "noida", *, partitions: int = 6, migrate_db: bool = True, **overrides: Any
    ) -> Env:
        if broker not in ("noida", "tansu"):
            raise ValueError(f"unknown broker {broker!r}: 'noida' or 'tansu'")
        endpoint: BrokerEndpoint = request.getfixturevalue(f"{broker}_broker")
        name = unique_name()
        state_dir = tmp_path / f"{name}_state"
        state_dir.mkdir()
        settings = replace(
            Settings(),
            kafka_bootstrap=endpoint.bootstrap,
            topics=Topics(name),
            partitions=partitions,
            clickhouse_url=clickhouse_server.url(name),
            state_dir=str(state_dir),
            **overrides,
        )
        ensure_topics(settings)
        ensure_database(settings)
        env = Env(settings, endpoint, clickhouse_server, name, state_dir)
        envs.append(env)
        if migrate_db:
            client = get_client(settings)
            try:
                migrate(client, settings)
            finally:
                client.close()
        return env

    try:
        yield factory
    finally:
        for env in envs:
            env.close()
            _drop(env)


def _drop(env: Env) -> None:
    """Best effort: keep the shared servers small (noida's snapshot grows with every topic)."""
    from auditstream.stream.clickhouse import get_client

    with contextlib.suppress(Exception):
        admin = get_client(env.settings, database="default")
        admin.command(f"DROP DATABASE IF EXISTS {env.database} SYNC")
        admin.close()
    with contextlib.suppress(Exception):
        from confluent_kafka.admin import AdminClient

        admin_k = AdminClient(env.settings.kafka_config())
        prefix = env.settings.topics.prefix + "."
        names = [t for t in admin_k.list_topics(timeout=5).topics if t.startswith(prefix)]
        if names:
            for fut in admin_k.delete_topics(names, operation_timeout=10).values():
                with contextlib.suppress(Exception):
                    fut.result()
