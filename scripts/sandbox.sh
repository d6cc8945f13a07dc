#!/usr/bin/env bash
# The local sandbox: the whole `bosar-deploy full` pipeline on this machine, no AWS account.
#   sandbox/runner.py: moto (AWS emulator) seeded from sandbox/deploy.toml in its "before"
#   state, whose ECS service really runs its tasks: NestJS Socket.IO gateway processes behind
#   an ALB-shaped HAProxy. A deploy replaces them as ECS would (start, health, register,
#   drain, deregister, stop), so `full` below really swaps the gateways for ones with the new
#   WEBSOCKET_* settings. Then `bosar-deploy plan`, `full --under-load 200` (200 Socket.IO
#   sessions held through the rollout: the summary's under-load step shows the sessions the
#   rollout dropped and how fast they came back) and an in-sync `alb-update --dry-run`.
# Everything started here is stopped on exit, failure or Ctrl-C. Loopback only.
# Extra arguments go to `bosar-deploy full` (e.g. --output json, --image repo/app:2);
# UNDER_LOAD=N changes the number of sessions (UNDER_LOAD=0: none).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
bash scripts/setup.sh
echo "sandbox: building bosar-deploy"
cargo build --quiet --locked
BIN="$REPO/target/debug/bosar-deploy"
PY="$REPO/.venv/bin/python"

WORK="$(mktemp -d -t bosar-sandbox.XXXXXX)"
RUNNER_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$RUNNER_PID" ]]; then
    # The runner stops its gateways and HAProxy on SIGTERM (bounded: about 5 s at most).
    kill -TERM "$RUNNER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$RUNNER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$RUNNER_PID" 2>/dev/null || true
    wait "$RUNNER_PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -s "$WORK/runner.log" ]]; then
    echo "sandbox: last lines of the runner's log:" >&2
    tail -n 20 "$WORK/runner.log" >&2
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "sandbox: interrupted"; exit 130' INT TERM

# One field of the runner's ready line.
ready() { "$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$WORK/ready.json" "$1"; }
# Instance ids of the runner's tasks for the given JSON-lines event.
instances() { "$PY" -c 'import json,sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(" ".join(e["instance_id"] for e in ev if e["event"] == sys.argv[2]))' "$WORK/runner.jsonl" "$1"; }

# --- moto, seeded, running the service's tasks behind HAProxy ---------------------------
export BOSAR_SANDBOX_JWT_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
"$PY" sandbox/runner.py --config sandbox/deploy.toml --state before --workdir "$WORK/runner" \
  >"$WORK/runner.jsonl" 2>"$WORK/runner.log" &
RUNNER_PID=$!
for _ in $(seq 1 600); do # up to 60 s
  if grep -m1 '"event":"ready"' "$WORK/runner.jsonl" >"$WORK/ready.json" 2>/dev/null; then break; fi
  kill -0 "$RUNNER_PID" 2>/dev/null || { echo "sandbox: the task runner exited" >&2; exit 1; }
  sleep 0.1
done
[[ -s "$WORK/ready.json" ]] || { echo "sandbox: the task runner was not ready within 60 s" >&2; exit 1; }
export AWS_ENDPOINT_URL="$(ready moto)" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN
URL="$(ready url)"
echo "sandbox: moto on $AWS_ENDPOINT_URL, seeded (target group, load balancer, cluster, service)"
echo "sandbox: service tasks running as gateways $(instances task_running) behind HAProxy at $URL"
echo

# --- the pipeline -----------------------------------------------------------------------
echo "sandbox: \$ bosar-deploy --config sandbox/deploy.toml plan"
"$BIN" --config sandbox/deploy.toml plan
echo
LOAD=()
if [[ "${UNDER_LOAD:-200}" != "0" ]]; then LOAD=(--under-load "${UNDER_LOAD:-200}"); fi
echo "sandbox: \$ bosar-deploy --config sandbox/deploy.toml full --url $URL --junit $WORK/junit.xml ${LOAD[*]} $*"
set +e
"$BIN" --config sandbox/deploy.toml full --url "$URL" --junit "$WORK/junit.xml" "${LOAD[@]}" "$@"
rc=$?
set -e
# Ctrl-C reaches bosar-deploy too; it exits 130 on its own, which bash does not treat as
# an interrupt of the script.
if [[ $rc -eq 130 ]]; then echo "sandbox: interrupted"; exit 130; fi
echo
echo "sandbox: gateways started: $(instances task_running)"
echo "sandbox: gateways stopped: $(instances task_stopped)"
echo
echo "sandbox: \$ bosar-deploy --config sandbox/deploy.toml alb-update --dry-run   (a rerun: in sync)"
"$BIN" --config sandbox/deploy.toml -q alb-update --dry-run || true
echo
echo "sandbox: full exited $rc; stopping the task runner (moto, gateways, HAProxy)"
exit "$rc"
