#!/usr/bin/env bash
# Three rtdb nodes on one machine behind nginx, sharing one PostgreSQL database and one Redis.
#
#   examples/cluster/run-local.sh [DATABASE_URL] [REDIS_URL]
#
# Defaults: postgresql://root@127.0.0.1:5432/test and redis://127.0.0.1:6379. Nodes listen on
# 127.0.0.1:9101-9103, nginx on 127.0.0.1:9100 (BASE_PORT=9200 moves them all). Ctrl-C stops
# everything this script started, by PID. Needs `rtdb` (pip install 'rtdb[postgres,redis]') and nginx.
set -euo pipefail

DATABASE_URL=${1:-${RTDB_DATABASE_URL:-postgresql://root@127.0.0.1:5432/test}}
REDIS_URL=${2:-${RTDB_REDIS_URL:-redis://127.0.0.1:6379}}
BASE_PORT=${BASE_PORT:-9100}
RTDB=${RTDB:-rtdb}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
HERE=$(cd "$(dirname "$0")" && pwd)
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rtdb-cluster.XXXXXX")
chmod 755 "$RUN_DIR"   # nginx's workers run as nobody when started by root

pids=()
stop() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    echo "stopped; logs kept in $RUN_DIR"
}
trap stop INT TERM EXIT

servers=""
for i in 1 2 3; do
    port=$((BASE_PORT + i))
    "$RTDB" serve --emulator --host 127.0.0.1 --port "$port" --data-dir "$RUN_DIR/n$i" \
        --database-url "$DATABASE_URL" --redis-url "$REDIS_URL" --node-id "n$i" \
        >"$RUN_DIR/n$i.log" 2>&1 &
    pids+=($!)
    servers="${servers}server 127.0.0.1:$port max_fails=2 fail_timeout=5s; "
done

for i in 1 2 3; do
    port=$((BASE_PORT + i))
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { echo "node n$i did not start:"; cat "$RUN_DIR/n$i.log"; exit 1; }
done

sed -e "s|__RUN_DIR__|$RUN_DIR|g" -e "s|__LISTEN__|127.0.0.1:$BASE_PORT|g" -e "s|__SERVERS__|$servers|g" \
    "$HERE/nginx.conf" >"$RUN_DIR/nginx.conf"
"$NGINX" -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf" -e "$RUN_DIR/error.log" -g 'daemon off;' &
pids+=($!)

echo "rtdb cluster: http://127.0.0.1:$BASE_PORT (nodes on ports $((BASE_PORT + 1))-$((BASE_PORT + 3)); logs in $RUN_DIR)"
echo "  try: curl -X PUT -d '\"hi\"' 'http://127.0.0.1:$BASE_PORT/hello.json?ns=demo'"
echo "Ctrl-C stops it."
wait
