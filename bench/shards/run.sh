#!/usr/bin/env bash
# Shards benchmark: the same N held by one `verify --connections N` process and by 4 shard
# processes (`--shard I/4 --start-at T`) merged with `report merge`, side by side in one run
# against the same gateways behind the same sticky HAProxy; then the merge's time for 100
# shard reports.
#
#   bench/shards/run.sh [--n 4000] [--hold-ms 5000] [--merge-runs 5]
#
# BOSAR_BIN  the tool binary (default target/release/bosar-deploy; `cargo build --release`).
#
# Starts two gateway replicas (heartbeat every 2 s) behind the sticky HAProxy (MAXCONN 9900),
# runs bench/shards/bench.py, writes bench/results/shards.json, and stops everything it
# started on exit. Loopback only; bounded in count and time.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO="$(pwd)"

EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done

[[ -x /usr/bin/time ]] || { echo "run.sh: /usr/bin/time missing (Debian: apt-get install time)" >&2; exit 2; }

BENCH_NAME=shards
# shellcheck source=bench/peers.sh
source bench/peers.sh

BENCH_JWT_SECRET="$SECRET" "$PY" bench/shards/bench.py --url "http://127.0.0.1:$FRONT" \
  --gateways "${GW_PORTS[0]},${GW_PORTS[1]}" --bin "$BOSAR_BIN" --tmp "$TMP" \
  --out bench/results/shards.json "${EXTRA[@]}" &
BENCH_PID=$!
wait "$BENCH_PID"
