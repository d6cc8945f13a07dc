#!/usr/bin/env bash
# The local sandbox: the whole `bosar-deploy full` pipeline on this machine, no AWS account.
#   moto (AWS emulator) seeded from sandbox/deploy.toml in its "before" state,
#   two NestJS Socket.IO gateway replicas behind an ALB-shaped sticky HAProxy,
#   then `bosar-deploy plan` and `bosar-deploy full` against all of it.
# Everything started here is stopped on exit, failure or Ctrl-C. Loopback only.
# Extra arguments go to `bosar-deploy full` (e.g. --output json, --image repo/app:2).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
bash scripts/setup.sh
echo "sandbox: building bosar-deploy"
cargo build --quiet --locked
BIN="$REPO/target/debug/bosar-deploy"

WORK="$(mktemp -d -t bosar-sandbox.XXXXXX)"
PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "sandbox: interrupted"; exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # url, what
  for _ in $(seq 1 100); do
    if python3 - "$1" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=1).read()
PY
    sleep 0.1
  done
  echo "sandbox: $2 did not come up ($1)" >&2; exit 1
}
toml() { # key -> value from sandbox/deploy.toml's [ecs.environment] / [gateway]
  .venv/bin/python -c 'import sys,tomllib; c=tomllib.load(open("sandbox/deploy.toml","rb")); print(eval("c"+sys.argv[1]))' "$1"
}

# --- moto, seeded ---------------------------------------------------------------------
MOTO_PORT="$(free_port)"
MOTO_ECS_SERVICE_RUNNING=2 MOTO_RECORDER_FILEPATH="$WORK/moto-recording" \
  .venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$MOTO_PORT/moto-api/" "moto"
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN
.venv/bin/python sandbox/seed.py --endpoint "$AWS_ENDPOINT_URL" --config sandbox/deploy.toml --state before >/dev/null
echo "sandbox: moto on 127.0.0.1:$MOTO_PORT, seeded (target group, load balancer, cluster, service)"

# --- gateway replicas, as the new task definition would run them ------------------------
export BOSAR_SANDBOX_JWT_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
GW_ENV=(
  JWT_SECRET="$BOSAR_SANDBOX_JWT_SECRET"
  WEBSOCKET_PING_INTERVAL="$(toml '["ecs"]["environment"]["WEBSOCKET_PING_INTERVAL"]')"
  WEBSOCKET_PING_TIMEOUT="$(toml '["ecs"]["environment"]["WEBSOCKET_PING_TIMEOUT"]')"
  WEBSOCKET_HEARTBEAT_INTERVAL="$(toml '["ecs"]["environment"]["WEBSOCKET_HEARTBEAT_INTERVAL"]')"
)
BACKENDS=()
for i in 1 2; do
  p="$(free_port)"
  env "${GW_ENV[@]}" PORT="$p" INSTANCE_ID="gateway-$i" node tests/gateway/server.mjs >"$WORK/gw$i.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$p/health/websocket" "gateway $i"
  BACKENDS+=("127.0.0.1:$p")
done

# --- the ALB stand-in -----------------------------------------------------------------
FRONT="$(free_port)"
sed -e "s/{{FRONT_PORT}}/$FRONT/g" -e "s/{{BACKEND_1}}/${BACKENDS[0]}/g" -e "s/{{BACKEND_2}}/${BACKENDS[1]}/g" \
    -e "s/{{MAXCONN}}/2000/g" -e "s/{{NAME}}/sandbox/g" tests/support/haproxy/sticky.cfg.tmpl >"$WORK/haproxy.cfg"
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$FRONT/health/websocket" "haproxy"
URL="http://127.0.0.1:$FRONT"
echo "sandbox: gateways ${BACKENDS[*]} behind sticky HAProxy at $URL"
echo

# --- the pipeline -----------------------------------------------------------------------
echo "sandbox: \$ bosar-deploy --config sandbox/deploy.toml plan"
"$BIN" --config sandbox/deploy.toml plan
echo
echo "sandbox: \$ bosar-deploy --config sandbox/deploy.toml full --url $URL --junit $WORK/junit.xml $*"
set +e
"$BIN" --config sandbox/deploy.toml full --url "$URL" --junit "$WORK/junit.xml" "$@"
rc=$?
set -e
echo
echo "sandbox: \$ bosar-deploy --config sandbox/deploy.toml alb-update --dry-run   (a rerun: in sync)"
"$BIN" --config sandbox/deploy.toml -q alb-update --dry-run || true
echo
echo "sandbox: full exited $rc; stopping moto, gateways and HAProxy"
exit "$rc"
