"""The chdb-core ClickHouse server: HTTP and native TCP, durability, loud failures."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from auditstream.deploy.clickhouse_server import ClickHouseServer, ClickHouseServerError
from auditstream.deploy.procs import free_port, is_alive, port_open

pytestmark = pytest.mark.integration


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str) -> bytes:
    raw = s.encode()
    return _varint(len(raw)) + raw


def native_hello(port: int) -> str:
    """Send a native-protocol ClientHello; return the server name from its ServerHello."""
    hello = (
        _varint(0)  # packet: Hello
        + _string("auditstream-test")
        + _varint(24) + _varint(1) + _varint(54460)  # client version, protocol revision
        + _string("default") + _string("default") + _string("")  # database, user, password
    )  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(hello)
        data = sock.recv(4096)
    assert data, "no answer on the native port"
    assert data[0] == 0, f"expected ServerHello (0), got packet {data[0]}: {data[:80]!r}"
    length = data[1]
    return data[2 : 2 + length].decode()


def test_http_and_native_tcp_answer(clickhouse_server, make_env) -> None:
    env = make_env(migrate_db=False)
    client = env.ch()
    assert client.query("SELECT version()").result_rows[0][0].startswith("26.")
    client.command("CREATE TABLE t (id UInt64, s String) ENGINE = MergeTree ORDER BY id")
    client.insert("t", [[i, f"s{i}"] for i in range(1000)], column_names=["id", "s"])
    assert client.query("SELECT count(), uniqExact(s) FROM t").result_rows == [(1000, 1000)]
    # Query parameters work server-side (the named queries rely on them).
    rows = client.query("SELECT s FROM t WHERE id = {id:UInt64}", parameters={"id": 7})
    assert rows.result_rows == [("s7",)]
    assert native_hello(clickhouse_server.tcp_port) == "ClickHouse"


def test_debian_clickhouse_client_over_tcp(clickhouse_server) -> None:
    # A real native-protocol client (Debian's, installed by `make setup`) talks to the server.
    assert shutil.which("clickhouse-client"), "clickhouse-client missing: run make setup"
    out = subprocess.run(
        ["clickhouse-client", "--host", "127.0.0.1", "--port", str(clickhouse_server.tcp_port),
         "--query", "SELECT 40 + 2"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "42"


def test_data_survives_kill_9_and_restart(tmp_path: Path) -> None:
    server = ClickHouseServer(tmp_path / "ch", free_port(), free_port())
    try:
        server.start()
        import clickhouse_connect

        c = clickhouse_connect.get_client(host="127.0.0.1", port=server.http_port)
        c.command("CREATE TABLE keep (id UInt64) ENGINE = MergeTree ORDER BY id")
        c.insert("keep", [[i] for i in range(5000)], column_names=["id"])
        c.close()
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        assert not is_alive(pid) and not server.ping()

        server.start()  # stale pid file: detected, replaced
        assert server.pid not in (None, pid)
        c = clickhouse_connect.get_client(host="127.0.0.1", port=server.http_port)
        assert c.query("SELECT count(), sum(id) FROM keep").result_rows == [
            (5000, 4999 * 5000 // 2)
        ]
        c.close()
    finally:
        server.stop()
    assert server.pid is None
    assert not port_open(server.http_port) and not port_open(server.tcp_port)


def test_graceful_stop_kills_only_its_own_query(tmp_path: Path) -> None:
    server = ClickHouseServer(tmp_path / "ch", free_port(), free_port()).start()
    pid = server.pid
    assert pid is not None
    server.stop()
    assert not is_alive(pid)
    # The stop path is SIGTERM → KILL QUERY by query_id → exit; no SIGKILL fallback was needed.
    out = (tmp_path / "ch" / "server.out").read_text()
    assert "could not stop" not in out and "ended unexpectedly" not in out


def test_start_fails_loudly_when_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = ClickHouseServer(tmp_path / "ch", port, free_port(), start_timeout=30)
        with pytest.raises(ClickHouseServerError) as err:
            server.start()
    assert "server.out" in str(err.value) or "clickhouse" in str(err.value).lower()
    assert server.pid is None
