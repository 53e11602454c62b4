#!/usr/bin/env bash
# The whole test suite: set-up, lint and types, unit and integration tests (real Kafka broker,
# real Redis, real SQLite files), then the browser tests in Chromium. Everything the tests start
# lives under one run directory and is stopped on the way out, whatever happens.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh test

run_dir="$(mktemp -d "${TMPDIR:-/tmp}/inventory-test.XXXXXX")"
cleanup() {
  # Brokers started by the test fixtures keep their pid files under the run directory.
  while IFS= read -r pid_file; do
    KAFKA_DATA_DIR="$(dirname "$pid_file")" KAFKA_PORT=1 bash kafka/broker.sh stop >/dev/null 2>&1 \
      || kill -9 "$(cat "$pid_file")" 2>/dev/null || true
  done < <(find "$run_dir" -name broker.pid 2>/dev/null)
  pkill -f "redis-server.*--dir $run_dir" 2>/dev/null || true
  rm -rf "$run_dir"
}
trap cleanup EXIT

echo "== lint, types and layers"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The import contracts of docs/architecture.md ([tool.importlinter] in pyproject.toml).
.venv/bin/lint-imports --no-cache

echo "== unit and integration tests"
.venv/bin/python -m pytest tests --basetemp="$run_dir/tests" -p no:cacheprovider "$@"

if [[ -d e2e ]] && compgen -G "e2e/test_*.py" >/dev/null; then
  echo "== browser tests"
  .venv/bin/python -m pytest e2e --basetemp="$run_dir/e2e" -p no:cacheprovider
fi
