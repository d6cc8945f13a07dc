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

[[ -d tests/gateway/node_modules/socket.io-client ]] || { echo "run.sh: tests/gateway/node_modules missing; run scripts/setup.sh" >&2; exit 2; }

BENCH_NAME=soak
# shellcheck source=bench/peers.sh
source bench/peers.sh

# In the background + wait, so INT/TERM run the cleanup at once.
BENCH_JWT_SECRET="$SECRET" "$PY" bench/soak/bench.py --url "http://127.0.0.1:$FRONT" \
  --gateways "${GW_PORTS[0]},${GW_PORTS[1]}" --bin "$BOSAR_BIN" --node "$NODE" --tmp "$TMP" \
  --out bench/results/soak.json "${EXTRA[@]}" &
BENCH_PID=$!
wait "$BENCH_PID"
