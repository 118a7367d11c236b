#!/usr/bin/env bash
# Set up everything the hub needs on this machine: the virtualenv with the project and its
# dev tools, and RabbitMQ + PostgreSQL answering on loopback. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "setup: Python >= 3.11 is required" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip 2>/dev/null || true
.venv/bin/python -m pip install --quiet -e ".[dev]" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c 'import hub, faststream, asyncpg' >/dev/null

# A real Prometheus scrapes the hub in one test; Debian packages it.
if ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Prometheus (Debian package)"
    (apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 &&
        apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; }) ||
      echo "setup: could not install prometheus; the Prometheus scrape test will fail" >&2
  else
    echo "setup: prometheus is not installed (apt-get install prometheus); its test will fail" >&2
  fi
fi

scripts/services.sh
