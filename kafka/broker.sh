#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft) on 127.0.0.1 for development, tests and CI.
#
# Usage: kafka/broker.sh {fetch|start|wait|status|stop|restart|logs|clean}
#
#   fetch    copy the Kafka jars from Maven Central into the cache (once)
#   start    fetch and format if needed, start the broker in the background,
#            wait until it serves metadata, print the bootstrap address
#   wait     wait until the broker serves metadata
#   status   say whether the broker runs and answers (exit 0 only if both)
#   stop     SIGTERM the broker's pid, SIGKILL after KAFKA_STOP_TIMEOUT
#   restart  stop, then start (the data directory is kept)
#   logs     print the end of the broker's log files
#   clean    delete the data directory (the broker must be stopped)
#
# Progress goes to stderr; `start` and `wait` print only the bootstrap
# address on stdout, so `BOOTSTRAP=$(kafka/broker.sh start)` works.
#
# Environment (all optional):
#   KAFKA_PORT            client port, default 9092; the controller uses PORT+1
#   KAFKA_DATA_DIR        default ${TMPDIR:-/tmp}/inventory-kafka-<port>
#   INVENTORY_KAFKA_CACHE jar cache root, default ~/.cache/inventory-kafka
#   KAFKA_HEAP_OPTS       default "-Xmx512m -Xms512m"
#   KAFKA_JVM_OPTS        extra JVM options
#   KAFKA_OVERRIDES       extra broker settings, space-separated key=value
#   KAFKA_START_TIMEOUT   seconds to wait for readiness, default 120
#   KAFKA_STOP_TIMEOUT    seconds to wait after SIGTERM, default 30
#   KAFKA_CLUSTER_ID      cluster id used when formatting a new data directory
#   JAVA / JAVA_HOME, MVN, PYTHON   the tools to run (java 17+, mvn, python3)
set -euo pipefail

KAFKA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$KAFKA_DIR/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n 1)"
[[ -n "$KAFKA_VERSION" ]] || { echo "broker.sh: no <kafka.version> in $POM" >&2; exit 1; }

CACHE_DIR="${INVENTORY_KAFKA_CACHE:-${HOME:-/tmp}/.cache/inventory-kafka}/$KAFKA_VERSION"
LIB_DIR="$CACHE_DIR/lib"
FETCH_MARKER="$CACHE_DIR/.fetched"

PORT="${KAFKA_PORT:-9092}"
[[ "$PORT" =~ ^[0-9]+$ ]] && (( PORT > 0 && PORT < 65535 )) \
  || { echo "broker.sh: bad KAFKA_PORT '$PORT'" >&2; exit 1; }
CONTROLLER_PORT=$((PORT + 1))
BOOTSTRAP="127.0.0.1:$PORT"

DATA_DIR="${KAFKA_DATA_DIR:-${TMPDIR:-/tmp}/inventory-kafka-$PORT}"
[[ "$DATA_DIR" == /* ]] || DATA_DIR="$PWD/$DATA_DIR"   # the pid check matches this path
LOG_DIRS="$DATA_DIR/kraft"        # partitions and the __cluster_metadata log
APP_LOG_DIR="$DATA_DIR/logs"      # server.log (log4j) and broker.out (stdout/stderr)
PROPS="$DATA_DIR/server.properties"
PID_FILE="$DATA_DIR/broker.pid"

HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
MVN="${MVN:-mvn}"
PYTHON="${PYTHON:-python3}"
if [[ -n "${JAVA:-}" ]]; then :
elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java"
else JAVA=java
fi

log() { echo "broker.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------- helpers

sha256() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
  else shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

# Take an exclusive lock on a file for the rest of this script (fd $2).
lock() {
  mkdir -p "$(dirname "$1")"
  eval "exec $2>\"\$1\""
  if command -v flock >/dev/null; then flock "$2"; fi
}

# The full command line of a pid, empty if it is gone (or a zombie).
cmdline_of() {
  if [[ -r "/proc/$1/cmdline" ]]; then tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
  else ps -ww -o args= -p "$1" 2>/dev/null || true
  fi
}

# Print the broker's pid and succeed if the pid file names a live process
# that is this data directory's broker (guards against a recycled pid).
running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" ]] || return 1
  case "$(cmdline_of "$pid")" in
    *kafka.Kafka*"$PROPS"*) echo "$pid" ;;
    *) return 1 ;;
  esac
}

# Succeed while the pid exists and has not finished exiting. An exiting
# process loses its command line, and its main thread turns zombie, before
# its other threads are gone and its sockets closed: so look at every thread.
pid_alive() {
  if [[ -d "/proc/$1/task" ]]; then
    local stat
    for stat in /proc/"$1"/task/*/stat; do
      case "$(sed 's/.*) //' "$stat" 2>/dev/null | cut -c1)" in
        ''|Z|X) ;;
        *) return 0 ;;
      esac
    done
    return 1
  fi
  kill -0 "$1" 2>/dev/null || return 1
  case "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" in
    ''|Z|X) return 1 ;;
    *) return 0 ;;
  esac
}

port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# check_ready.py with the given timeout; extra args are passed through.
probe() {
  local timeout="$1"; shift
  "$PYTHON" "$KAFKA_DIR/check_ready.py" "$BOOTSTRAP" --timeout "$timeout" "$@"
}

classpath() { echo "$LIB_DIR/*"; }

run_tool() {
  # Run a Kafka main class in the foreground, logging to the data dir.
  "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.xml" \
    -Dkafka.logs.dir="$APP_LOG_DIR" -cp "$(classpath)" "$@"
}

check_java() {
  command -v "$JAVA" >/dev/null || die "java not found (need Java 17+; set JAVA or JAVA_HOME)"
  local v
  v="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)"
  [[ -z "$v" || "$v" -ge 17 ]] || die "Kafka $KAFKA_VERSION needs Java 17+, $JAVA is Java $v"
}

tail_logs() {
  local f
  for f in "$APP_LOG_DIR/broker.out" "$APP_LOG_DIR/server.log"; do
    [[ -s "$f" ]] || continue
    echo "----- ${1:-20} last lines of $f" >&2
    tail -n "${1:-20}" "$f" >&2
  done
}

# --------------------------------------------------------------- commands

cmd_fetch() {
  local want
  want="$(sha256 "$POM")"
  # The marker holds the hash of the pom the jars came from: editing the
  # pom (e.g. the Log4j version) triggers a fresh copy.
  if [[ -f "$FETCH_MARKER" && "$(cat "$FETCH_MARKER")" == "$want" ]]; then
    return 0
  fi
  lock "$CACHE_DIR/.lock" 8
  if [[ -f "$FETCH_MARKER" && "$(cat "$FETCH_MARKER")" == "$want" ]]; then
    exec 8>&-; return 0
  fi
  command -v "$MVN" >/dev/null || die "mvn not found (needed once to fetch Kafka $KAFKA_VERSION)"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIB_DIR"
  local tmp="$CACHE_DIR/lib.tmp.$$"
  rm -rf "$tmp"
  # -f points at kafka/pom.xml; packaging "pom" builds nothing, so this only
  # resolves the runtime dependency tree and copies the jars.
  # (Maven 3.8 prints stray colour codes even in batch mode: strip them.)
  local rc=0
  "$MVN" -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1 || rc=$?
  sed $'s/\x1b\\[[0-9;]*m//g' "$tmp.log" | grep -v '^$' >&2 || true
  rm -f "$tmp.log"
  (( rc == 0 )) || { rm -rf "$tmp"; die "mvn dependency:copy-dependencies failed (exit $rc)"; }
  ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 \
    || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"; }
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  echo "$want" >"$FETCH_MARKER"
  log "fetched $(ls "$LIB_DIR" | wc -l | tr -d ' ') jars"
  exec 8>&-
}

render_properties() {
  mkdir -p "$LOG_DIRS" "$APP_LOG_DIR"
  sed -e "s|@PORT@|$PORT|g" \
      -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
      -e "s|@LOG_DIRS@|$LOG_DIRS|g" \
      "$KAFKA_DIR/server.properties.template" >"$PROPS.tmp"
  mv "$PROPS.tmp" "$PROPS"
}

format_if_needed() {
  # Formatting writes meta.properties (cluster id, node id) and the bootstrap
  # metadata. Formatting an already formatted directory fails, so it is done
  # only once; later starts reuse the directory as it is.
  [[ -f "$LOG_DIRS/meta.properties" ]] && return 0
  local cluster_id="${KAFKA_CLUSTER_ID:-}"
  if [[ -z "$cluster_id" ]]; then
    cluster_id="$(run_tool kafka.tools.StorageTool random-uuid 2>>"$APP_LOG_DIR/format.out")"
  fi
  log "formatting $LOG_DIRS (cluster id $cluster_id)"
  run_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" >>"$APP_LOG_DIR/format.out" 2>&1 \
    || { tail -n 20 "$APP_LOG_DIR/format.out" >&2; die "formatting $LOG_DIRS failed"; }
}

cmd_start() {
  lock "$DATA_DIR/.lock" 9
  local pid
  if pid="$(running_pid)"; then
    if probe 5 --quiet --pid "$pid" 2>/dev/null; then
      log "already running (pid $pid) at $BOOTSTRAP"
      echo "$BOOTSTRAP"
      return 0
    fi
    log "pid $pid is running but not answering yet; waiting"
    wait_ready "$pid" "$(date +%s)"
    return
  fi
  rm -f "$PID_FILE"

  local p
  for p in "$PORT" "$CONTROLLER_PORT"; do
    port_open "$p" && die "127.0.0.1:$p is already in use by another process (set KAFKA_PORT)"
  done

  check_java
  cmd_fetch
  render_properties
  format_if_needed

  local overrides=() kv
  for kv in ${KAFKA_OVERRIDES:-}; do overrides+=(--override "$kv"); done

  local t0
  t0="$(date +%s)"
  log "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (data in $DATA_DIR)"
  # shellcheck disable=SC2086  # HEAP_OPTS / KAFKA_JVM_OPTS are word lists
  nohup "$JAVA" $HEAP_OPTS ${KAFKA_JVM_OPTS:-} \
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.xml" \
    -Dkafka.logs.dir="$APP_LOG_DIR" \
    -cp "$(classpath)" kafka.Kafka "$PROPS" ${overrides[@]+"${overrides[@]}"} \
    </dev/null >>"$APP_LOG_DIR/broker.out" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  wait_ready "$pid" "$t0"
}

# wait_ready PID T0: wait for metadata, print the bootstrap address.
wait_ready() {
  local pid="$1" t0="$2" rc=0
  probe "$START_TIMEOUT" --pid "$pid" --quiet || rc=$?
  if (( rc == 0 )); then
    log "Kafka $KAFKA_VERSION ready at $BOOTSTRAP (pid $pid, $(( $(date +%s) - t0 ))s)"
    echo "$BOOTSTRAP"
    return 0
  fi
  tail_logs 30
  if (( rc == 2 )); then
    rm -f "$PID_FILE"
    die "broker exited during startup; logs in $APP_LOG_DIR"
  fi
  die "broker (pid $pid) not ready after ${START_TIMEOUT}s; still running: 'wait' again or 'stop'"
}

cmd_wait() {
  local pid_args=() pid
  if pid="$(running_pid)"; then pid_args=(--pid "$pid"); fi
  probe "$START_TIMEOUT" --quiet ${pid_args[@]+"${pid_args[@]}"}
  echo "$BOOTSTRAP"
}

cmd_status() {
  local pid
  if ! pid="$(running_pid)"; then
    echo "stopped (port $PORT, data dir $DATA_DIR)"
    port_open "$PORT" && echo "note: 127.0.0.1:$PORT is answering, but not from this data dir's broker"
    return 3
  fi
  local summary
  if summary="$(probe 3 --pid "$pid" 2>/dev/null)"; then
    echo "running (pid $pid) at $BOOTSTRAP, $summary"
    return 0
  fi
  echo "running (pid $pid) but $BOOTSTRAP does not answer metadata requests"
  return 1
}

cmd_stop() {
  lock "$DATA_DIR/.lock" 9
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping pid $pid (SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$(( $(date +%s) + STOP_TIMEOUT ))
  while pid_alive "$pid" && (( $(date +%s) < deadline )); do sleep 0.5; done
  if pid_alive "$pid"; then
    log "pid $pid still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do sleep 0.2; done
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_logs() {
  tail_logs "${1:-50}" 2>&1
}

cmd_clean() {
  if pid="$(running_pid)"; then die "broker is running (pid $pid); stop it first"; fi
  [[ -n "$DATA_DIR" && "$DATA_DIR" != "/" ]] || die "refusing to delete '$DATA_DIR'"
  rm -rf "$DATA_DIR"
  log "deleted $DATA_DIR"
}

case "${1:-}" in
  fetch)   cmd_fetch; echo "$LIB_DIR" ;;
  start)   cmd_start ;;
  wait)    cmd_wait ;;
  status)  cmd_status ;;
  stop)    cmd_stop ;;
  restart) ( cmd_stop ); cmd_start ;;
  logs)    cmd_logs "${2:-50}" ;;
  clean)   cmd_clean ;;
  *)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
