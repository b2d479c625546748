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
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,postgres,web,webtest,langgraphtest]'

# tests/test_durability.py builds an LD_PRELOAD shim (fault injection, a power-cut trace) with gcc.
if ! command -v gcc >/dev/null 2>&1; then
  echo "== installing gcc (Debian) for the durability tests' I/O shim"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
fi

# tests/test_rust_agreement.py builds a small Rust program (tests/rust_verifier) offline from the
# crate sources echo 0.1.1 was built with, as Debian packages them; cargo may come from rustup too.
need_rust=""
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  need_rust="cargo"
fi
for crate in serde_json-1.0.87 chrono-0.4.23 serde-1.0.152 serde_derive-1.0.152; do
  if [ ! -d "/usr/share/cargo/registry/$crate" ]; then
    need_rust="$need_rust librust-serde-json-dev librust-chrono-dev librust-serde-dev librust-serde-derive-dev"
    break
  fi
done
if [ -n "$need_rust" ]; then
  echo "== apt-get install $need_rust (for the Rust verifier)"
  apt-get update -qq
  # shellcheck disable=SC2086  # a list of package names
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need_rust >/dev/null
fi

# tests/test_web_browser.py drives Debian's chromium through Playwright (never `playwright install`,
# which downloads a browser from outside); the CJK fonts make non-Latin graph names legible in it.
need_browser=""
if [ ! -x /usr/bin/chromium ]; then
  need_browser="chromium"
fi
if [ ! -d /usr/share/fonts/opentype/noto ] || ! ls /usr/share/fonts/opentype/noto/NotoSansCJK* >/dev/null 2>&1; then
  need_browser="$need_browser fonts-noto-cjk"
fi
if [ -n "$need_browser" ]; then
  echo "== apt-get install $need_browser (for the browser tests of ckptdb serve)"
  apt-get update -qq
  # shellcheck disable=SC2086  # a list of package names
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need_browser >/dev/null
fi

echo "== ruff"
.venv/bin/ruff check ckptdb tests scripts migrations
.venv/bin/ruff format --check ckptdb tests scripts migrations
echo "== mypy --strict"
.venv/bin/mypy --strict ckptdb
echo "== lint-imports (the layering contracts in pyproject.toml)"
.venv/bin/lint-imports
echo "== pytest (with a throwaway PostgreSQL server)"
if [ "${CKPTDB_SKIP_POSTGRES:-}" = "1" ]; then
  exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python scripts/pg_cluster.py run --fast -- .venv/bin/python -m pytest "$@"
