// One-session smoke check of the /chat gateway with socket.io-client 4.8.
//
//   node client-check.mjs --url http://127.0.0.1:4001 [--heartbeats 1] [--transports polling,websocket]
//   node client-check.mjs --url ... --jwt-secret wrong --expect unauthorized
//
// Connects (auth.token = TOKEN or an HS256 token minted with JWT_SECRET,
// default sandbox-secret; NO_TOKEN=1 sends none), asks `whoami`, waits for
// HEARTBEATS heartbeats (acking each), disconnects and prints one JSON line:
//   {"ok":true,"sid":..,"instanceId":..,"transport":..,"heartbeats":[{..},..],"connect_ms":..}
// With EXPECT=unauthorized it succeeds only if the connect is refused with
// message "unauthorized" (and prints the refusal's data).
// Exit status 0 on success, 1 otherwise. Settings as --kebab-case arguments
// or UPPER_SNAKE env: URL, TOKEN, JWT_SECRET, NO_TOKEN, TRANSPORTS
// (default polling,websocket), WITH_CREDENTIALS (on), COOKIE, HEARTBEATS (1),
// EXPECT (connect|unauthorized), TIMEOUT_MS (60000).
import { io } from 'socket.io-client';
import { mintHs256, parseArgs } from './jwt.mjs';

const args = parseArgs(process.argv.slice(2));
const setting = (name, dflt) => args[name] ?? process.env[name] ?? dflt;

let url = String(setting('URL', 'http://127.0.0.1:3000')).replace(/\/+$/, '');
if (!url.endsWith('/chat')) url += '/chat';
const transports = String(setting('TRANSPORTS', 'polling,websocket')).split(',').map((s) => s.trim()).filter(Boolean);
const wantHeartbeats = Number(setting('HEARTBEATS', '1'));
const expect = String(setting('EXPECT', 'connect'));
const timeoutMs = Number(setting('TIMEOUT_MS', '60000'));
const noToken = /^(1|on|true|yes)$/i.test(String(setting('NO_TOKEN', '')));
const token = setting('TOKEN', '') || mintHs256(setting('JWT_SECRET', 'sandbox-secret'), { sub: 'client-check' });
const cookie = setting('COOKIE', '');

const opts = {
  forceNew: true,
  reconnection: false,
  transports,
  withCredentials: !/^(off|0|false|no)$/i.test(String(setting('WITH_CREDENTIALS', 'on'))),
  auth: noToken ? {} : { token },
};
if (cookie) opts.extraHeaders = { cookie };

const t0 = performance.now();
const socket = io(url, opts);
const out = { ok: false, url, transports };
const heartbeats = [];

function done(ok, extra = {}) {
  Object.assign(out, extra, { ok });
  socket.off();
  socket.disconnect();
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(ok ? 0 : 1);
}

setTimeout(() => done(false, { error: 'timeout', heartbeats }), timeoutMs).unref();

socket.on('connect_error', (err) => {
  const refusal = { error: err.message, data: err.data ?? null };
  if (expect === 'unauthorized') done(err.message === 'unauthorized', refusal);
  else done(false, refusal);
});
socket.on('disconnect', (reason) => done(false, { error: `disconnect ${reason}`, heartbeats }));
socket.on('heartbeat', (payload, ack) => {
  heartbeats.push({ ...payload, ackable: typeof ack === 'function' });
  if (typeof ack === 'function') ack({ seq: payload?.seq });
  if (heartbeats.length >= wantHeartbeats) {
    // let the ack packet leave before disconnecting
    setTimeout(() => done(true, { heartbeats, transport: socket.io.engine.transport.name }), 50);
  }
});
socket.on('connect', async () => {
  out.connect_ms = Math.round((performance.now() - t0) * 10) / 10;
  out.sid = socket.id;
  if (expect === 'unauthorized') return done(false, { error: 'connected but expected a refusal' });
  try {
    const who = await socket.timeout(5000).emitWithAck('whoami', {});
    out.instanceId = who.instanceId;
  } catch (e) {
    return done(false, { error: `whoami: ${e.message}` });
  }
  if (wantHeartbeats <= 0) done(true, { transport: socket.io.engine.transport.name });
});
