#!/usr/bin/env bash
# The whole test suite from a fresh clone, on a machine with only Python 3.11 and pip:
# a virtualenv in .venv, the package with its test and PostgreSQL extras, lint, types, then
# pytest with a throwaway PostgreSQL 15 cluster (installed from Debian packages when missing,
# started on a free 127.0.0.1 port, stopped at the end). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,postgres]'

# tests/test_durability.py builds an LD_PRELOAD shim (fault injection, a power-cut trace) with gcc.
if ! command -v gcc >/dev/null 2>&1; then
  echo "== installing gcc (Debian) for the durability tests' I/O shim"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
fi

echo "== ruff"
.venv/bin/ruff check ckptdb tests scripts migrations
.venv/bin/ruff format --check ckptdb tests scripts migrations
echo "== mypy --strict"
.venv/bin/mypy --strict ckptdb
echo "== pytest (with a throwaway PostgreSQL server)"
if [ "${CKPTDB_SKIP_POSTGRES:-}" = "1" ]; then
  exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python scripts/pg_cluster.py run --fast -- .venv/bin/python -m pytest "$@"
