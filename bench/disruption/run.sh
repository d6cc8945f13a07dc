#!/usr/bin/env bash
# Disruption benchmark: one of two gateway replicas stopped (SIGTERM) mid-hold, measured by
# `bosar-deploy verify --connections N --reconnect` and by the reference socket.io-client with
# its default reconnection (tests/gateway/bench-client.mjs RECONNECT=on), both in one run,
# against the gateways' own counters as the ground truth.
#
#   bench/disruption/run.sh [--runs N] [--sizes 1000,5000] [--hold-ms 20000] [--stop-after-ms 3000]
#
# BOSAR_BIN  the tool binary (default target/release/bosar-deploy; not built here:
#            `cargo build --release` first).
# NODE       node (default: on PATH).
#
# Each run starts two fresh gateway replicas (tests/gateway/server.mjs: heartbeat 2 s, ping
# 25 s / 20 s) behind the ALB-shaped sticky HAProxy (tests/support/haproxy/sticky.cfg.tmpl,
# MAXCONN 9900), starts one tool (the probe with its default concurrency, bench-client with
# CONCURRENCY N), waits until the replicas hold all N sessions, waits
# --stop-after-ms, reads gw-1's connections (the sessions the stop drops) and stops it with
# SIGTERM, then waits for the tool; gw-2's connection counter says how many came back.
# Results: bench/results/disruption.json. Everything started is stopped on exit (also Ctrl-C).
# Loopback only; every run is bounded in count and time.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
[[ -x /usr/bin/time ]] || { echo "run.sh: /usr/bin/time missing (bash scripts/setup.sh --bench)" >&2; exit 2; }
PY="$(command -v python3)"

TMP="$(mktemp -d -t bosar-disruption-bench.XXXXXX)"
BENCH_PID=""
cleanup() {
  if [[ -n "$BENCH_PID" ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
    kill "$BENCH_PID" 2>/dev/null || true   # bench.py stops its gateways and HAProxy
    wait "$BENCH_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SECRET="$("$PY" -c 'import secrets; print(secrets.token_hex(24))')"
# In the background + wait, so INT/TERM run the cleanup at once.
BENCH_JWT_SECRET="$SECRET" "$PY" bench/disruption/bench.py --bin "$BOSAR_BIN" --node "$NODE" \
  --haproxy "$HAPROXY" --tmp "$TMP" --out bench/results/disruption.json "${EXTRA[@]}" &
BENCH_PID=$!
wait "$BENCH_PID"
