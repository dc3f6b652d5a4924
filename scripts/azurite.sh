#!/usr/bin/env bash
# Starts or stops Azurite (the Azure Storage emulator, npm package `azurite`) on loopback for the LENS tests.
#   scripts/azurite.sh start   install into .azurite/ when missing, start on 127.0.0.1, wait until it listens (idempotent)
#   scripts/azurite.sh stop    stop the instance this script started
#   scripts/azurite.sh status  exit 0 when the table endpoint listens
# Ports: AZURITE_BLOB_PORT (10000), AZURITE_QUEUE_PORT (10001), AZURITE_TABLE_PORT (10002). The defaults are what
# `UseDevelopmentStorage=true` reaches; with other ports give the services a full connection string.
# Data live in memory only (--inMemoryPersistence): a stop forgets everything, which keeps test runs apart.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=.azurite
version=3.37.0
blob_port=${AZURITE_BLOB_PORT:-10000}
queue_port=${AZURITE_QUEUE_PORT:-10001}
table_port=${AZURITE_TABLE_PORT:-10002}
pidfile=$dir/azurite.pid
logfile=$dir/azurite.log
bin=$dir/node_modules/.bin/azurite

listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$table_port") 2>/dev/null
}

install() {
  if [ -x "$bin" ]; then
    return 0
  fi
  command -v npm >/dev/null || { echo "azurite.sh: npm is not installed (apt-get install nodejs npm)" >&2; return 1; }
  mkdir -p "$dir"
  echo "azurite.sh: installing azurite $version into $dir/"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "azurite@$version" >&2
}

start() {
  if listening; then
    echo "azurite.sh: already listening on 127.0.0.1:$table_port"
    return 0
  fi
  install
  mkdir -p "$dir"
  nohup "$bin" --silent --disableTelemetry --inMemoryPersistence --skipApiVersionCheck --loose \
    --blobHost 127.0.0.1 --blobPort "$blob_port" --queueHost 127.0.0.1 --queuePort "$queue_port" \
    --tableHost 127.0.0.1 --tablePort "$table_port" >"$logfile" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 150); do
    if listening; then
      echo "azurite.sh: listening on 127.0.0.1 (blob $blob_port, queue $queue_port, table $table_port), pid $(cat "$pidfile")"
      return 0
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "azurite.sh: azurite exited at start; its log:" >&2
      cat "$logfile" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "azurite.sh: azurite did not listen on 127.0.0.1:$table_port within 30 s; its log:" >&2
  cat "$logfile" >&2
  return 1
}

stop() {
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
    rm -f "$pidfile"
    echo "azurite.sh: stopped"
  else
    echo "azurite.sh: not started by this script"
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) listening ;;
  install) install ;;
  *) echo "usage: $0 start|stop|status|install" >&2; exit 2 ;;
esac
