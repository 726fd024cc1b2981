"""The shared fixtures leave no process behind, even when a test fails or the run is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CONFTEST_DIR = Path(__file__).resolve().parents[1]

INNER = """
import os, sys, time
from pathlib import Path

SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)", os.getcwd()]

def test_fails_with_a_child(make_env):
    env = make_env("noida", partitions=1)
    env.spawn(SLEEPER, log_name="sleeper")
    env.ch().command("CREATE TABLE x (a UInt8) ENGINE = Memory")
    assert False, "deliberate failure"

def test_hangs_until_stopped(make_env, tansu_broker):
    env = make_env("noida", partitions=1)
    env.spawn(SLEEPER, log_name="sleeper")
    Path("READY").touch()
    time.sleep(300)
"""


def _inner_pytest(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    (tmp_path / "inner").mkdir(exist_ok=True)
    (tmp_path / "inner" / "test_inner.py").write_text(INNER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITSTREAM_")}
    env["PYTHONPATH"] = str(CONFTEST_DIR)  # load the shared conftest as a plugin
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q",
         "--basetemp", str(tmp_path / "bt"), "--rootdir", str(tmp_path / "inner"),
         "-o", "addopts=", str(tmp_path / "inner" / "test_inner.py"), *args],
        cwd=tmp_path / "inner", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _leftovers(marker: str) -> list[str]:
    out = subprocess.run(
        ["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True
    )
    return [
        line for line in out.stdout.splitlines()
        if marker in line and "ps -ww" not in line and "-m pytest" not in line
    ]  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """If the outer test fails early, still stop the inner run (SIGTERM → its own teardown)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_failed_test_leaves_no_processes(tmp_path: Path) -> None:
    proc = _inner_pytest(tmp_path, "-k", "fails_with_a_child")
    try:
        output = proc.communicate(timeout=300)[0].decode(errors="replace")
    finally:
        _stop(proc)
    assert proc.returncode == 1, output  # the inner test failed, as intended
    assert "deliberate failure" in output
    # Server data dirs and the spawned child's argv all contain tmp_path.
    assert _leftovers(str(tmp_path)) == []


def test_sigterm_mid_test_leaves_no_processes(tmp_path: Path) -> None:
    proc = _inner_pytest(tmp_path, "-k", "hangs_until_stopped")
    try:
        _sigterm_when_ready(proc, tmp_path)
    finally:
        _stop(proc)


def _sigterm_when_ready(proc: subprocess.Popen[bytes], tmp_path: Path) -> None:
    ready = tmp_path / "inner" / "READY"
    deadline = time.monotonic() + 240
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
        assert time.monotonic() < deadline, "inner test never got going"
        time.sleep(0.2)
    # The inner run has (at least) its ClickHouse server and noida broker running by now.
    running = _leftovers(str(tmp_path))
    assert sum("clickhouse_server" in p or "noida-db" in p for p in running) == 2, running
    assert sum("time.sleep(300)" in p for p in running) == 1, running
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0].decode(errors="replace")
    assert proc.returncode != 0, output
    assert _leftovers(str(tmp_path)) == [], output
