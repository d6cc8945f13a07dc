#!/usr/bin/env bash
# Load-probe benchmark: `bosar-deploy verify --connections N` against the reference Node
# socket.io-client load client (tests/gateway/bench-client.mjs), same gateways, same proxy,
# same N, concurrency and hold, in one run.
#
#   bench/probe/run.sh [--runs N] [--sizes 1000,5000] [--hold-ms 5000] [--single-runs N]
#
# BOSAR_BIN  the tool binary (default target/release/bosar-deploy; not built here:
#            `cargo build --release` first).
# NODE       node (default: on PATH).
#
# Starts two gateway replicas (tests/gateway/server.mjs: heartbeat every 2 s, ping 25 s)
# behind the ALB-shaped sticky HAProxy (tests/support/haproxy/sticky.cfg.tmpl, MAXCONN 9900:
# HAProxy needs 2 x MAXCONN + ~20 descriptors and the open-file limit here is 20,000), runs
# bench/probe/bench.py, writes bench/results/probe.json, and stops everything it started on
# exit (also on Ctrl-C). Loopback only; every load run is bounded in count and time.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO="$(pwd)"

EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done

[[ -d tests/gateway/node_modules/socket.io-client ]] || { echo "run.sh: tests/gateway/node_modules missing; run scripts/setup.sh" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "run.sh: /usr/bin/time missing (Debian: apt-get install time)" >&2; exit 2; }

BENCH_NAME=probe
# shellcheck source=bench/peers.sh
source bench/peers.sh

# In the background + wait, so INT/TERM run the cleanup at once.
BENCH_JWT_SECRET="$SECRET" "$PY" bench/probe/bench.py --url "http://127.0.0.1:$FRONT" \
  --gateways "${GW_PORTS[0]},${GW_PORTS[1]}" --bin "$BOSAR_BIN" --node "$NODE" --tmp "$TMP" \
  --out bench/results/probe.json "${EXTRA[@]}" &
BENCH_PID=$!
wait "$BENCH_PID"
