#!/usr/bin/env bash
# alb-update benchmark: AWS CLI script vs bosar-deploy, against a private moto.
#
#   bench/alb-update/run.sh [--runs N]        (or RUNS=N; default 10)
#
# BOSAR_BIN   the tool binary (default target/release/bosar-deploy; not built
#             here: `cargo build --release` first). Missing -> only the AWS CLI
#             side runs and the tool variants are reported as skipped.
# BOSAR_ALB_ARGS  extra args for `alb-update --config sandbox/deploy.toml`.
# AWS_CLI     the AWS CLI to time (default .venv/bin/aws, else `aws` on PATH;
#             `scripts/setup.sh --bench` installs it into .venv).
#
# Starts moto on a free loopback port (MOTO_ECS_SERVICE_RUNNING=2, recorder
# file in a temp dir), seeds it from sandbox/deploy.toml, runs
# bench/alb-update/bench.py, writes bench/results/alb-update.json, and stops
# moto on exit (also on Ctrl-C).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO="$(pwd)"

RUNS="${RUNS:-10}"
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --runs=*) RUNS="${1#--runs=}"; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done

PY="$REPO/.venv/bin/python"
MOTO="$REPO/.venv/bin/moto_server"
[[ -x "$MOTO" ]] || { echo "run.sh: $MOTO missing; run scripts/setup.sh" >&2; exit 2; }
BOSAR_BIN="${BOSAR_BIN:-target/release/bosar-deploy}"

if [[ -z "${AWS_CLI:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/aws" ]]; then AWS_CLI="$REPO/.venv/bin/aws"
  elif command -v aws >/dev/null 2>&1 && aws --version >/dev/null 2>&1; then AWS_CLI="$(command -v aws)"
  else echo "run.sh: no working AWS CLI; run scripts/setup.sh --bench" >&2; exit 2
  fi
fi
export AWS_CLI

# Dummy credentials, explicit region, no metadata probing: never real AWS.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN

TMP="$(mktemp -d -t bosar-bench.XXXXXX)"
MOTO_PID=""
BENCH_PID=""
cleanup() {
  if [[ -n "$BENCH_PID" ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
    kill "$BENCH_PID" 2>/dev/null || true
    wait "$BENCH_PID" 2>/dev/null || true
  fi
  if [[ -n "$MOTO_PID" ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
    kill "$MOTO_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$MOTO_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
ENDPOINT="http://127.0.0.1:$PORT"
export AWS_ENDPOINT_URL="$ENDPOINT"

# moto runs from the temp dir and records there, never into the repo.
(cd "$TMP" && exec env MOTO_ECS_SERVICE_RUNNING=2 MOTO_RECORDER_FILEPATH="$TMP/moto_recording" \
   "$MOTO" -H 127.0.0.1 -p "$PORT" >"$TMP/moto.log" 2>&1) &
MOTO_PID=$!

for i in $(seq 150); do
  if "$PY" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1]+"/moto-api/", timeout=1)' "$ENDPOINT" 2>/dev/null; then break; fi
  if ! kill -0 "$MOTO_PID" 2>/dev/null; then echo "run.sh: moto exited:" >&2; tail -n 20 "$TMP/moto.log" >&2; exit 1; fi
  [[ $i -eq 150 ]] && { echo "run.sh: moto not ready after 15 s" >&2; exit 1; }
  sleep 0.1
done

t0=$(date +%s.%N)
"$PY" sandbox/seed.py --endpoint "$ENDPOINT" --config sandbox/deploy.toml --state before >"$TMP/seed.json"
t1=$(date +%s.%N)
echo "moto at $ENDPOINT (pid $MOTO_PID), seeded in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s; AWS CLI: $AWS_CLI" >&2

# In the background + wait, so INT/TERM run the cleanup at once.
BOSAR_BIN="$BOSAR_BIN" "$PY" bench/alb-update/bench.py --endpoint "$ENDPOINT" --runs "$RUNS" \
  --bin "$BOSAR_BIN" --config sandbox/deploy.toml --out bench/results/alb-update.json "${EXTRA[@]}" &
BENCH_PID=$!
wait "$BENCH_PID"
