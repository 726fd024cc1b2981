#!/usr/bin/env bash
# Installs everything auditstream needs on a fresh Debian/Ubuntu machine with Python 3.11:
# the virtualenv with pinned packages, and the Debian tools the tests talk to.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

# Debian peers used by integration tests (a real Alertmanager, a native ClickHouse client) and
# handy for operators (kcat).
want=()
command -v prometheus-alertmanager >/dev/null 2>&1 || want+=(prometheus-alertmanager)
command -v kcat >/dev/null 2>&1 || want+=(kcat)
# A native-protocol (TCP) client, used by a test of the ClickHouse server's TCP port.
command -v clickhouse-client >/dev/null 2>&1 || want+=(clickhouse-client)
if [ ${#want[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}"
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}"
  else
    echo "warning: cannot install ${want[*]} (not root); the Alertmanager integration tests need it" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
.venv/bin/python -m pip check
echo "setup done: try 'make demo' (local stack + synthetic workload) or 'make test'"
