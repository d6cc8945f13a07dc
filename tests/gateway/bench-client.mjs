// Reference load client (socket.io-client 4.8) for the /chat gateway.
//
//   node bench-client.mjs --url http://127.0.0.1:8080 --n 500 --concurrency 100 --hold-ms 3000
//   URL=... N=500 node bench-client.mjs
//
// Each session is its own Engine.IO connection (forceNew), authenticates with
// auth.token, acks every `heartbeat`, stays connected HOLD_MS after the
// namespace connect, then disconnects. At the end ONE JSON line goes to stdout:
//   {"n","ok","errors","elapsed_ms","handshakes_per_s","connect_p50_ms",
//    "connect_p99_ms","first_heartbeat_ms_p50", ...extra fields}
// Exit status 0 when every session was ok, 1 otherwise, 2 on bad arguments.
//
// Settings (--kebab-case argument or UPPER_SNAKE environment variable; the
// argument wins):
//   URL                 base URL of gateway or proxy (default http://127.0.0.1:3000);
//                       the namespace /chat is appended unless already there
//   N                   number of sessions (default 100)
//   CONCURRENCY         sessions in flight at once (default N)
//   HOLD_MS             how long each session stays connected (default 1000)
//   TOKEN               JWT sent as auth.token; otherwise each session gets
//   JWT_SECRET          an HS256 token minted with this secret (default sandbox-secret)
//   TRANSPORTS          comma list, default "websocket" (works through any proxy);
//                       "polling,websocket" needs stickiness behind a proxy
//   WITH_CREDENTIALS    on (default): engine.io-client keeps a per-session cookie
//                       jar in Node (AWSALB survives between polling requests)
//   COOKIE              extra Cookie header sent on every request (optional)
//   CONNECT_TIMEOUT_MS  per-session connect timeout (default 20000)
//   RECONNECT           off (default): a drop is an error. on: socket.io-client's default
//                       reconnection (reconnectionDelay 1000, reconnectionDelayMax 5000,
//                       randomizationFactor 0.5, attempts unlimited); a dropped session comes
//                       back and the JSON line adds drops, reconnected, lost, drop_reasons,
//                       reconnect_p50_ms/p99_ms/max_ms (drop to the namespace connect) and
//                       failed_attempts. The hold still counts from the first connect; a session
//                       not back at its end is lost (and an error).
import { io } from 'socket.io-client';
import { mintHs256, parseArgs } from './jwt.mjs';

const args = parseArgs(process.argv.slice(2));
const setting = (name, dflt) => args[name] ?? process.env[name] ?? dflt;

function intSetting(name, dflt) {
  const raw = setting(name, undefined);
  if (raw === undefined || raw === '') return dflt;
  if (!/^\d+$/.test(String(raw))) {
    process.stderr.write(`bench-client: ${name} must be a non-negative integer, got ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return Number(raw);
}

let url = String(setting('URL', 'http://127.0.0.1:3000')).replace(/\/+$/, '');
if (!url.endsWith('/chat')) url += '/chat';
const N = intSetting('N', 100);
const CONCURRENCY = Math.max(1, Math.min(intSetting('CONCURRENCY', N), Math.max(N, 1)));
const HOLD_MS = intSetting('HOLD_MS', 1000);
const CONNECT_TIMEOUT_MS = intSetting('CONNECT_TIMEOUT_MS', 20000);
const TOKEN = setting('TOKEN', '');
const JWT_SECRET = setting('JWT_SECRET', 'sandbox-secret');
const TRANSPORTS = String(setting('TRANSPORTS', 'websocket'))
  .split(',')
  .map((t) => t.trim())
  .filter(Boolean);
const WITH_CREDENTIALS = !/^(off|0|false|no)$/i.test(String(setting('WITH_CREDENTIALS', 'on')));
const COOKIE = setting('COOKIE', '');
const RECONNECT = /^(on|1|true|yes)$/i.test(String(setting('RECONNECT', 'off')));

for (const t of TRANSPORTS) {
  if (t !== 'polling' && t !== 'websocket' && t !== 'webtransport') {
    process.stderr.write(`bench-client: unknown transport ${JSON.stringify(t)}\n`);
    process.exit(2);
  }
}

const connectMs = [];
const firstHeartbeatMs = [];
const errorCounts = {};
let heartbeats = 0;
let ok = 0;
const transportAtEnd = {};
let lastConnectAt = 0;
let firstError = null;
// RECONNECT=on
let drops = 0;
let reconnected = 0;
let lost = 0;
let failedAttempts = 0;
const dropReasons = {};
const reconnectMs = [];

function recordError(msg) {
  errorCounts[msg] = (errorCounts[msg] ?? 0) + 1;
  if (firstError === null) firstError = msg;
}

function runSession(i) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let connectedAt = 0;
    let settled = false;
    let holdTimer = null;
    let gotHeartbeat = false;
    let droppedAt = null;
    const opts = {
      forceNew: true,
      reconnection: RECONNECT,
      timeout: CONNECT_TIMEOUT_MS,
      transports: TRANSPORTS,
      withCredentials: WITH_CREDENTIALS,
      auth: { token: TOKEN || mintHs256(JWT_SECRET, { sub: `bench-${i}` }) },
    };
    if (COOKIE) opts.extraHeaders = { cookie: COOKIE };
    const socket = io(url, opts);

    const finish = (err) => {
      if (settled) return;
      settled = true;
      if (holdTimer) clearTimeout(holdTimer);
      if (RECONNECT && droppedAt !== null && !err) {
        lost += 1;
        err = 'lost: dropped and not back at the end of the hold';
      }
      if (err) recordError(err);
      else {
        ok += 1;
        const t = socket.io.engine?.transport?.name ?? 'unknown';
        transportAtEnd[t] = (transportAtEnd[t] ?? 0) + 1;
      }
      socket.off();
      socket.io.off();
      socket.disconnect();
      resolve();
    };

    socket.on('heartbeat', (payload, ack) => {
      heartbeats += 1;
      if (connectedAt && !gotHeartbeat) {
        gotHeartbeat = true;
        firstHeartbeatMs.push(performance.now() - connectedAt);
      }
      if (typeof ack === 'function') ack({ seq: payload?.seq });
    });
    socket.on('connect', () => {
      if (connectedAt && droppedAt !== null) {
        // Back after a drop: time from the drop to the namespace connect.
        reconnectMs.push(performance.now() - droppedAt);
        reconnected += 1;
        droppedAt = null;
        return;
      }
      connectedAt = performance.now();
      lastConnectAt = connectedAt;
      connectMs.push(connectedAt - t0);
      holdTimer = setTimeout(() => finish(null), HOLD_MS);
    });
    socket.on('connect_error', (err) => {
      // With reconnection, a failed attempt after a drop is counted; the manager retries.
      if (RECONNECT && connectedAt) return;
      const reason = err?.data?.reason ? `: ${err.data.reason}` : '';
      finish(`connect_error ${err?.message ?? err}${reason}`);
    });
    socket.io.on('reconnect_error', () => {
      failedAttempts += 1;
    });
    socket.on('disconnect', (reason) => {
      if (RECONNECT && connectedAt && !settled && reason !== 'io client disconnect') {
        drops += 1;
        dropReasons[reason] = (dropReasons[reason] ?? 0) + 1;
        droppedAt = performance.now();
        // socket.io-client does not reconnect after the server disconnected the namespace.
        if (reason === 'io server disconnect') socket.connect();
        return;
      }
      finish(`disconnect ${reason}`);
    });
  });
}

function pct(values, p) {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return Math.round(s[idx] * 10) / 10;
}

const start = performance.now();
let next = 0;
async function worker() {
  while (next < N) {
    const i = next++;
    await runSession(i);
  }
}
await Promise.all(Array.from({ length: Math.min(CONCURRENCY, N) }, worker));
const elapsed = performance.now() - start;
const connectSpanS = (lastConnectAt - start) / 1000;

const result = {
  n: N,
  ok,
  errors: N - ok,
  elapsed_ms: Math.round(elapsed),
  handshakes_per_s: connectMs.length && connectSpanS > 0 ? Math.round((connectMs.length / connectSpanS) * 10) / 10 : null,
  connect_p50_ms: pct(connectMs, 50),
  connect_p99_ms: pct(connectMs, 99),
  first_heartbeat_ms_p50: pct(firstHeartbeatMs, 50),
  connected: connectMs.length,
  heartbeats,
  transport_at_end: transportAtEnd,
  transports: TRANSPORTS,
  concurrency: CONCURRENCY,
  hold_ms: HOLD_MS,
  first_error: firstError,
  error_counts: errorCounts,
};
if (RECONNECT) {
  Object.assign(result, {
    reconnect: true,
    drops,
    reconnected,
    lost,
    drop_reasons: dropReasons,
    reconnect_p50_ms: pct(reconnectMs, 50),
    reconnect_p99_ms: pct(reconnectMs, 99),
    reconnect_max_ms: reconnectMs.length ? Math.round(Math.max(...reconnectMs) * 10) / 10 : null,
    failed_attempts: failedAttempts,
  });
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(ok === N ? 0 : 1);
