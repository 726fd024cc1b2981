"""A real ClickHouse server (HTTP + native TCP) run from the chdb-core wheel, as its own process.

Why this works: chdb-core is the whole ClickHouse engine; its ``chdb_query_cmdline`` entry point
(Python: the private ``chdb._chdb.query``) runs the clickhouse-local code path, which reads
``config.xml`` from the current directory and, since 26.x, can open listeners with
``SYSTEM START LISTEN HTTP/TCP``. The listeners live as long as the query that opened them, so
the process keeps one never-ending query running and stops by killing exactly that query (found
by a unique marker, killed by its ``query_id``) — never a broad ``KILL QUERY``.

Run it: ``python -m auditstream.deploy.clickhouse_server --data-dir D --http-port P --tcp-port Q``.
From Python: :class:`ClickHouseServer` spawns that process and waits for ``GET /ping``.
The private chdb name is pinned through ``chdb-core==26.9.0``; start-up fails loudly (with the
log tail) when the server does not answer, so a chdb upgrade that breaks this is caught at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from xml.sax.saxutils import escape

from auditstream.deploy.procs import (
    is_alive,
    port_open,
    read_pid,
    remove_pid,
    stop_pid,
    tail,
    write_pid,
)

PID_FILE = "server.pid"
OUT_FILE = "server.out"
LOG_FILE = "clickhouse.log"
ERR_FILE = "clickhouse.err.log"


class ClickHouseServerError(RuntimeError):
    """The server did not start or did not answer; the message carries the log tail."""


def render_config(
    data_dir: Path, http_port: int, tcp_port: int, max_memory: int | None = None
) -> str:
    """config.xml for clickhouse-local-as-server: loopback only, our ports, logs to files."""
    memory = (
        f"    <max_server_memory_usage>{int(max_memory)}</max_server_memory_usage>\n"
        if max_memory
        else ""
    )
    d = escape(str(data_dir))
    return (
        "<clickhouse>\n"
        "    <listen_host>127.0.0.1</listen_host>\n"
        f"    <http_port>{int(http_port)}</http_port>\n"
        f"    <tcp_port>{int(tcp_port)}</tcp_port>\n"
        f"{memory}"
        "    <logger>\n"
        "        <level>information</level>\n"
        f"        <log>{d}/{LOG_FILE}</log>\n"
        f"        <errorlog>{d}/{ERR_FILE}</errorlog>\n"
        "        <size>100M</size>\n"
        "        <count>3</count>\n"
        "        <console>0</console>\n"
        "    </logger>\n"
        # SQL-driven access control (CREATE ROLE/USER) would need a writable local_directory;
        # chdb-core 26.9's clickhouse-local path ignores it (system.user_directories lists only
        # users_xml), so CREATE ROLE fails with ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND here.
        # Kept so that a chdb release that honours it works unchanged.
        "    <user_directories>\n"
        f"        <users_xml><path>{d}/users.xml</path></users_xml>\n"
        f"        <local_directory><path>{d}/access/</path></local_directory>\n"
        "    </user_directories>\n"
        "</clickhouse>\n"
    )


# The bootstrap admin: passwordless, loopback only (the server never listens elsewhere). It has
# access_management so that CREATE ROLE/USER get as far as the storage check; on chdb-core 26.9
# they then fail (no writable access storage, see render_config) and migrations skip them.
USERS_XML = """<clickhouse>
    <profiles><default/></profiles>
    <quotas><default/></quotas>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
            <access_management>1</access_management>
            <named_collection_control>1</named_collection_control>
        </default>
    </users>
</clickhouse>
"""


# --------------------------------------------------------------------------------------------
# The server process itself.


def _http(url: str, sql: str | None = None, timeout: float = 5.0) -> str:
    data = sql.encode() if sql is not None else None
    with urllib.request.urlopen(url, data=data, timeout=timeout) as resp:  # loopback only
        return resp.read().decode()


def serve(data_dir: Path, http_port: int, tcp_port: int, max_memory: int | None = None) -> int:
    """Run the server in this process until SIGTERM/SIGINT; returns the exit code."""
    import chdb._chdb as chdb_native  # private, pinned via chdb-core==26.9.0 (see module doc)

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "config.xml").write_text(render_config(data_dir, http_port, tcp_port, max_memory))
    (data_dir / "users.xml").write_text(USERS_XML)
    os.chdir(data_dir)  # clickhouse-local reads ./config.xml

    marker = f"auditstream_listener_{uuid.uuid4().hex}"
    # One row per second forever; max_block_size=1 keeps each sleep inside the per-block cap.
    hold = (
        f"SELECT '{marker}' FROM system.numbers WHERE sleepEachRow(1) = 0 "
        "SETTINGS max_block_size = 1 FORMAT Null"
    )
    script = f"SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; {hold}"
    result: dict[str, BaseException | None] = {"error": None}

    def run() -> None:
        try:
            chdb_native.query(script, "TabSeparated", path=str(data_dir))
        except BaseException as exc:  # reported by the main thread
            result["error"] = exc

    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    worker = threading.Thread(target=run, name="clickhouse-listener", daemon=True)
    worker.start()
    base = f"http://127.0.0.1:{http_port}/"
    while worker.is_alive() and not stopping.wait(0.2):
        pass

    if not worker.is_alive():
        err = result["error"]
        print(f"clickhouse listener query ended unexpectedly: {err!r}", file=sys.stderr)
        return 1

    # Kill exactly our holding query: look its query_id up by the marker, then kill by id.
    # The lookup query holds the marker only as concat() parts, so it never matches itself.
    a, b = marker[:10], marker[10:]
    try:
        ids = _http(
            base,
            "SELECT query_id FROM system.processes "
            f"WHERE position(query, concat('{a}', '{b}')) > 0 AND query_id != queryID() "
            "FORMAT TSV",
        ).split()
        for qid in ids:
            _http(base, f"KILL QUERY WHERE query_id = '{qid}' SYNC")
    except (urllib.error.URLError, OSError) as exc:
        print(f"could not stop the listener query cleanly: {exc}", file=sys.stderr)
        return 1
    worker.join(timeout=15)
    return 0 if not worker.is_alive() else 1


# --------------------------------------------------------------------------------------------
# Python API used by the local stack and the test fixtures.


class ClickHouseServer:
    """A chdb-core ClickHouse server in a child process, managed by PID.

    ``start()`` is idempotent for a server this directory already runs (pid file + /ping), and
    recovers from a stale pid file left by ``kill -9``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        http_port: int = 18123,
        tcp_port: int = 19000,
        *,
        max_memory: int | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.http_port = http_port
        self.tcp_port = tcp_port
        self.max_memory = max_memory
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def url(self, database: str = "default") -> str:
        """An AUDITSTREAM_CLICKHOUSE_URL for this server."""
        return f"http://default:@127.0.0.1:{self.http_port}/{database}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / PID_FILE

    @property
    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid is not None and is_alive(pid) else None

    def ping(self, timeout: float = 1.0) -> bool:
        try:
            return _http(f"{self.http_url}/ping", timeout=timeout).strip() == "Ok."
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for name in (OUT_FILE, ERR_FILE):
            text = tail(self.data_dir / name, lines)
            if text:
                parts.append(f"--- {name} ---\n{text}")
        return "\n".join(parts) or "(no log output)"

    def start(self) -> ClickHouseServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.pid is not None:
            if self.ping():
                return self
            stop_pid(self.pid, timeout=10)  # alive but deaf: restart it
        remove_pid(self.pid_file)
        out = open(self.data_dir / OUT_FILE, "ab")  # noqa: SIM115 (handed to the child)
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "auditstream.deploy.clickhouse_server",
                    "--data-dir",
                    str(self.data_dir),
                    "--http-port",
                    str(self.http_port),
                    "--tcp-port",
                    str(self.tcp_port),
                    *(["--max-memory", str(self.max_memory)] if self.max_memory else []),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the caller's terminal is not its stop
            )
        finally:
            out.close()
        write_pid(self.pid_file, self._proc.pid)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                remove_pid(self.pid_file)
                raise ClickHouseServerError(
                    f"ClickHouse server exited with {self._proc.returncode} during start-up "
                    f"({self.data_dir}):\n{self.log_tail()}"
                )
            # HTTP is opened first, then TCP: ready means both answer.
            if self.ping(timeout=0.5) and port_open(self.tcp_port):
                return self
            time.sleep(0.1)
        self.stop()
        raise ClickHouseServerError(
            f"ClickHouse server did not answer GET /ping on {self.http_url} within "
            f"{self.start_timeout:.0f}s ({self.data_dir}):\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (the process kills its listener query and exits), SIGKILL after timeout."""
        pid = read_pid(self.pid_file)
        if pid is not None:
            stop_pid(pid, timeout=timeout)
        if self._proc is not None:
            self._proc.poll()  # reap our child, if it was ours
            self._proc = None
        remove_pid(self.pid_file)

    def __enter__(self) -> ClickHouseServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--http-port", type=int, default=18123)
    parser.add_argument("--tcp-port", type=int, default=19000)
    parser.add_argument("--max-memory", type=int, default=None, help="bytes")
    args = parser.parse_args(argv)
    return serve(args.data_dir, args.http_port, args.tcp_port, args.max_memory)


if __name__ == "__main__":
    sys.exit(main())
