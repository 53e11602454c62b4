#!/usr/bin/env bash
# Run the product on this machine: every role in one process on http://127.0.0.1:8000, with
# the embedded event log and an in-process cache (no Kafka or Redis needed). Data goes to
# ./data unless INVENTORY_DATA_DIR says otherwise. Extra arguments go to `inventory serve`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh run
exec .venv/bin/inventory serve --role all "$@"
