# Sourced by the benches' run.sh (from the repository root, BENCH_NAME set): a temp folder, two
# test gateways behind the sticky HAProxy on free loopback ports, every process stopped on exit
# (also on INT/TERM). Sets TMP, SECRET, GW_PORTS, FRONT, PIDS and BENCH_PID (the bench's own
# process, for the cleanup).
# The tools every bench needs (NODE and BOSAR_BIN may be set by the caller).
NODE="${NODE:-node}"
BOSAR_BIN="${BOSAR_BIN:-target/release/bosar-deploy}"
command -v "$NODE" >/dev/null || { echo "run.sh: node not found; run scripts/setup.sh" >&2; exit 2; }
HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
[[ -x "$HAPROXY" ]] || { echo "run.sh: haproxy not found; run scripts/setup.sh" >&2; exit 2; }
[[ -x "$BOSAR_BIN" ]] || { echo "run.sh: $BOSAR_BIN missing; run cargo build --release" >&2; exit 2; }
PY="$(command -v python3)"

TMP="$(mktemp -d -t "bosar-$BENCH_NAME-bench.XXXXXX")"
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
    -e "s/{{BACKEND_2}}/127.0.0.1:${GW_PORTS[1]}/g" -e "s/{{MAXCONN}}/9900/g" -e "s/{{NAME}}/$BENCH_NAME-bench/g" \
    tests/support/haproxy/sticky.cfg.tmpl >"$TMP/haproxy.cfg"
"$HAPROXY" -f "$TMP/haproxy.cfg" -db >"$TMP/haproxy.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$FRONT/health/websocket" "haproxy" "$!"
echo "gateways on ${GW_PORTS[*]}, sticky HAProxy on $FRONT (pids ${PIDS[*]})" >&2
