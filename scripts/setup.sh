#!/usr/bin/env bash
# Set up this machine for the product (`setup.sh run`) or for its tests (`setup.sh test`).
# Idempotent: a second run only checks. Needs Python 3.11+; the test set-up also needs Java 17
# and Maven (for the Kafka broker) and installs redis-server and chromium with apt if missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode="${1:-run}"
say() { printf 'setup: %s\n' "$*" >&2; }

python_bin="${PYTHON:-python3}"
"$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { say "Python 3.11 or newer is needed ($python_bin is $("$python_bin" -V 2>&1))"; exit 1; }

if [[ "$mode" == test ]]; then
  missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v chromium >/dev/null || missing+=(chromium)
  if ((${#missing[@]})); then
    say "installing ${missing[*]} (apt)"
    sudo_cmd=()
    [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  command -v java >/dev/null || { say "Java 17+ is needed for the Kafka broker"; exit 1; }
  command -v mvn >/dev/null || { say "Maven is needed to fetch the Kafka broker"; exit 1; }
fi

extras=""
[[ "$mode" == test ]] && extras="[test]"
stamp=".venv/.installed-$mode"
# The test set-up includes everything the product needs.
[[ "$mode" == run && -f .venv/.installed-test && ! pyproject.toml -nt .venv/.installed-test ]] && stamp=.venv/.installed-test
if [[ ! -x .venv/bin/python ]]; then
  say "creating .venv"
  "$python_bin" -m venv .venv
fi
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  say "installing the package$extras into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".$extras"
  touch "$stamp"
fi

if [[ "$mode" == test ]]; then
  bash kafka/broker.sh fetch >/dev/null
fi
say "ready ($mode)"
