#!/usr/bin/env bash
# Soak benchmark: `bosar-deploy monitor --sessions 20` held for 30 minutes on the test peers,
# beside the reference, socket.io-client 4.8 holding the same 20 sessions
# (tests/gateway/reconnect-clients.mjs, its default reconnection), both at once against the
# same gateways and proxy. Each one's resident memory sampled every minute (flat within a few
# MB is the bar) and its CPU time, reported per hour.
#
#   bench/soak/run.sh [--minutes 30] [--sessions 20] [--interval-s 60] [--sample-s 60]
#
# BOSAR_BIN  the tool binary (default target/release/bosar-deploy; not built here:
#            `cargo build --release` first; a debug binary works, and is said so in the result).
# BOSAR_BUILD  `debug` or `release`, for the result when the path does not say (a copy).
# NODE       node (default: on PATH).
#
# Starts two gateway replicas (tests/gateway/server.mjs: heartbeat every 2 s, ping 25 s/20 s)
# behind the ALB-shaped sticky HAProxy (tests/support/haproxy/sticky.cfg.tmpl), runs
# bench/soak/bench.py, writes bench/results/soak.json, and stops everything it started on
# exit (also on Ctrl-C). Loopback only; bounded by --minutes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO="$(pwd)"

EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done

NODE="${NODE:-node}"
BOSAR_BIN="${BOSAR_BIN:-target/release/bosar-deploy}"
command -v "$NODE" >/dev/null || { echo "run.sh: node not found; run scripts/setup.sh" >&2; exit 2; }
HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
[[ -x "$HAPROXY" ]] || { echo "run.sh: haproxy not found; run scripts/setup.sh" >&2; exit 2; }
[[ -d tests/gateway/node_modules/socket.io-client ]] || { echo "run.sh: tests/gateway/node_modules missing; run scripts/setup.sh" >&2; exit 2; }
[[ -x "$BOSAR_BIN" ]] || { echo "run.sh: $BOSAR_BIN missing; run cargo build --release" >&2; exit 2; }
PY="$(command -v python3)"

TMP="$(mktemp -d -t bosar-soak-bench.XXXXXX)"
PIDS=()
BENCH_PID=""
cleanup() {
  if [[ -n "$BENCH_PID" ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
    kill "$BENCH_PID" 2>/dev/null || true
    wait "$BENCH_PID" 2>/dev/null || true
  fi
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { # url what pid
  for i in $(seq 150); do
    if "$PY" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1).read()' "$1" 2>/dev/null; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then echo "run.sh: $2 exited" >&2; return 1; fi
    [[ $i -eq 150 ]] && { echo "run.sh: $2 not ready after 15 s ($1)" >&2; return 1; }
    sleep 0.1
  done
}

SECRET="$("$PY" -c 'import secrets; print(secrets.token_hex(24))')"
GW_PORTS=()
for i in 1 2; do
  p="$(free_port)"
  env PORT="$p" INSTANCE_ID="gw-$i" JWT_SECRET="$SECRET" WEBSOCKET_HEARTBEAT_INTERVAL=2000 \
      WEBSOCKET_PING_INTERVAL=25000 WEBSOCKET_PING_TIMEOUT=20000 \
      "$NODE" tests/gateway/server.mjs >"$TMP/gw$i.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$p/health/websocket" "gateway $i" "$!"
  GW_PORTS+=("$p")
done

FRONT="$(free_port)"
sed -e "s/{{FRONT_PORT}}/$FRONT/g" -e "s/{{BACKEND_1}}/127.0.0.1:${GW_PORTS[0]}/g" \
    -e "s/{{BACKEND_2}}/127.0.0.1:${GW_PORTS[1]}/g" -e "s/{{MAXCONN}}/9900/g" -e "s/{{NAME}}/soak-bench/g" \
    tests/support/haproxy/sticky.cfg.tmpl >"$TMP/haproxy.cfg"
"$HAPROXY" -f "$TMP/haproxy.cfg" -db >"$TMP/haproxy.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$FRONT/health/websocket" "haproxy" "$!"
echo "gateways on ${GW_PORTS[*]}, sticky HAProxy on $FRONT (pids ${PIDS[*]})" >&2

# In the background + wait, so INT/TERM run the cleanup at once.
BENCH_JWT_SECRET="$SECRET" "$PY" bench/soak/bench.py --url "http://127.0.0.1:$FRONT" \
  --gateways "${GW_PORTS[0]},${GW_PORTS[1]}" --bin "$BOSAR_BIN" --node "$NODE" --tmp "$TMP" \
  --out bench/results/soak.json "${EXTRA[@]}" &
BENCH_PID=$!
wait "$BENCH_PID"
