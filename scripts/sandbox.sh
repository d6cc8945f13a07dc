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
#
# --strategy blue_green|canary|linear: the service is seeded as an ECS-native one (two target
#   groups, production and test listener rules) and the runner plays ECS's stages
#   (sandbox/strategies.py); the config gains [ecs.deployment] with that strategy and
#   gate = "verify" and [gateway] test_url (the runner's test listener), so `full` pauses
#   at its hook, verifies green through the test listener, and continues or rolls back.
#   Bake times are scaled: BOSAR_SANDBOX_SECONDS_PER_MINUTE (default 5 here) seconds a minute.
# --broken-green (with --strategy): the new revision's gateways get another JWT secret, so
#   they refuse the sandbox's tokens: the gate fails, ROLLBACK is sent, `full` exits 1.
# Without --strategy: today's rolling deploy, unchanged.
set -euo pipefail
STRATEGY=""
FAULT=none
FULL_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --strategy) STRATEGY="${2:?--strategy needs blue_green, canary or linear}"; shift 2 ;;
    --strategy=*) STRATEGY="${1#*=}"; shift ;;
    --broken-green) FAULT=jwt; shift ;;
    *) FULL_ARGS+=("$1"); shift ;;
  esac
done
case "$STRATEGY" in
  "" | blue_green | canary | linear) ;;
  *) echo "sandbox: --strategy $STRATEGY: use blue_green, canary or linear" >&2; exit 2 ;;
esac
if [[ "$FAULT" != none && -z "$STRATEGY" ]]; then
  echo "sandbox: --broken-green needs --strategy (a rolling deploy has no gate)" >&2; exit 2
fi
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

# --- the config: sandbox/deploy.toml, or a copy with the strategy and its gate -------------
CONFIG=sandbox/deploy.toml
RUNNER_ARGS=()
if [[ -n "$STRATEGY" ]]; then
  export BOSAR_SANDBOX_SECONDS_PER_MINUTE="${BOSAR_SANDBOX_SECONDS_PER_MINUTE:-5}"
  TEST_PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  CONFIG="$WORK/deploy.toml"
  # deploy.toml ends in its [gateway] table: test_url lands there, then [ecs.deployment].
  { cat sandbox/deploy.toml
    echo "test_url = \"http://127.0.0.1:$TEST_PORT\"   # the runner's test listener"
    echo
    echo "[ecs.deployment]"
    echo "strategy = \"$STRATEGY\""
    echo "bake_time = \"2m\"        # ${BOSAR_SANDBOX_SECONDS_PER_MINUTE} s a minute in the sandbox"
    case "$STRATEGY" in
      canary) echo "canary_percent = 20"; echo "canary_bake_time = \"1m\"" ;;
      linear) echo "step_percent = 50"; echo "step_bake_time = \"1m\"" ;;
    esac
    echo "gate = \"verify\""
    echo "gate_timeout = \"30m\""
  } >"$CONFIG"
  RUNNER_ARGS=(--strategy "$STRATEGY" --test-port "$TEST_PORT" --green-fault "$FAULT")
fi

# --- moto, seeded, running the service's tasks behind HAProxy ---------------------------
export BOSAR_SANDBOX_JWT_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
"$PY" sandbox/runner.py --config "$CONFIG" --state before --workdir "$WORK/runner" "${RUNNER_ARGS[@]}" \
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
if [[ -n "$STRATEGY" ]]; then
  echo "sandbox: strategy $STRATEGY (ECS's stages played by sandbox/strategies.py), test listener at $(ready test_url)$([[ $FAULT == jwt ]] && echo ", green broken: another JWT secret")"
fi
echo

# --- the pipeline -----------------------------------------------------------------------
echo "sandbox: \$ bosar-deploy --config $CONFIG plan"
"$BIN" --config "$CONFIG" plan
echo
LOAD=()
if [[ "${UNDER_LOAD:-200}" != "0" ]]; then LOAD=(--under-load "${UNDER_LOAD:-200}"); fi
echo "sandbox: \$ bosar-deploy --config $CONFIG full --url $URL --junit $WORK/junit.xml ${LOAD[*]} ${FULL_ARGS[*]}"
set +e
"$BIN" --config "$CONFIG" full --url "$URL" --junit "$WORK/junit.xml" "${LOAD[@]}" "${FULL_ARGS[@]}"
rc=$?
set -e
# Ctrl-C reaches bosar-deploy too; it exits 130 on its own, which bash does not treat as
# an interrupt of the script.
if [[ $rc -eq 130 ]]; then echo "sandbox: interrupted"; exit 130; fi
echo
echo "sandbox: gateways started: $(instances task_running)"
echo "sandbox: gateways stopped: $(instances task_stopped)"
echo
echo "sandbox: \$ bosar-deploy --config $CONFIG alb-update --dry-run   (a rerun: in sync)"
"$BIN" --config "$CONFIG" -q alb-update --dry-run || true
echo
echo "sandbox: full exited $rc; stopping the task runner (moto, gateways, HAProxy)"
exit "$rc"
