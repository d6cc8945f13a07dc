// N official socket.io-client 4.8 sessions with its DEFAULT reconnection behaviour
// (nothing calls connect() again after "io server disconnect" or a connect_error):
// the reference for what real users' clients end with when a deploy drops them.
//
//   URL=http://127.0.0.1:8080 N=20 node reconnect-clients.mjs
//
// Each session: its own Engine.IO connection (forceNew), websocket transport (the
// Node client keeps no cookie jar, so polling through a proxy would not stick),
// auth.token minted with JWT_SECRET, acks every `heartbeat`. Once every session is
// connected and has seen its first heartbeat, prints one line
//   ready {"by_instance":{"gw-a":n,..}}
// Then it holds until stdin gets a line (or ends), and prints one JSON line:
//   {"n","opened","dropped","reconnected","lost","lost_by":{"server_disconnect":k,
//    "connect_error":k,"still_trying":k},"drop_reasons":{reason:k},
//    "by_first_instance":{"gw-a":{"sessions","dropped","reconnected","lost"}},
//    "ended_on":{"gw-c":k},"recovered":k}
// `recovered`: reconnects after which socket.recovered was true (connection state recovery
// resumed the session).
// A dropped session is "reconnected" when it is connected at the end, otherwise "lost":
// server_disconnect when its last drop was "io server disconnect" (socket.active is
// false: nothing will reconnect it), connect_error when a namespace CONNECT_ERROR
// ended its reconnection (socket.active false otherwise), still_trying when
// socket.active. A session can drop more than once (drop_reasons counts every drop).
//
// Settings (env): URL, N (20), JWT_SECRET (sandbox-secret), RECONNECT_DELAY_MS (1000),
// RECONNECT_DELAY_MAX_MS (5000), randomizationFactor stays the default 0.5.
import { io } from 'socket.io-client';
import { mintHs256 } from './jwt.mjs';
import { createInterface } from 'node:readline';

let url = String(process.env.URL || 'http://127.0.0.1:3000').replace(/\/+$/, '');
if (!url.endsWith('/chat')) url += '/chat';
const N = Number(process.env.N || 20);
const SECRET = process.env.JWT_SECRET || 'sandbox-secret';
const DELAY = Number(process.env.RECONNECT_DELAY_MS || 1000);
const DELAY_MAX = Number(process.env.RECONNECT_DELAY_MAX_MS || 5000);

const sessions = [];
let readyPrinted = false;

function checkReady() {
  if (readyPrinted) return;
  if (sessions.length < N || !sessions.every((s) => s.first !== null)) return;
  readyPrinted = true;
  const byInstance = {};
  for (const s of sessions) byInstance[s.first] = (byInstance[s.first] ?? 0) + 1;
  process.stdout.write(`ready ${JSON.stringify({ by_instance: byInstance })}\n`);
}

for (let i = 0; i < N; i += 1) {
  const socket = io(url, {
    forceNew: true,
    transports: ['websocket'],
    reconnectionDelay: DELAY,
    reconnectionDelayMax: DELAY_MAX,
    auth: { token: mintHs256(SECRET, { sub: `official-${i}` }) },
  });
  const s = { socket, first: null, current: null, drops: [], recovered: 0 };
  sessions.push(s);
  socket.on('connect', () => {
    if (socket.recovered === true) s.recovered += 1;
  });
  socket.on('heartbeat', (payload, ack) => {
    if (s.first === null) s.first = payload?.instanceId ?? '(unknown)';
    s.current = payload?.instanceId ?? '(unknown)';
    if (typeof ack === 'function') ack({ seq: payload?.seq });
    checkReady();
  });
  socket.on('disconnect', (reason) => {
    s.drops.push(reason);
  });
}

function report() {
  const out = {
    n: N,
    opened: 0,
    dropped: 0,
    reconnected: 0,
    lost: 0,
    lost_by: {},
    drop_reasons: {},
    by_first_instance: {},
    ended_on: {},
    recovered: 0,
  };
  for (const s of sessions) {
    if (s.first === null) continue;
    out.opened += 1;
    out.recovered += s.recovered;
    const f = (out.by_first_instance[s.first] ??= { sessions: 0, dropped: 0, reconnected: 0, lost: 0 });
    f.sessions += 1;
    if (s.drops.length === 0) {
      out.ended_on[s.current] = (out.ended_on[s.current] ?? 0) + 1;
      continue;
    }
    out.dropped += 1;
    f.dropped += 1;
    for (const r of s.drops) out.drop_reasons[r] = (out.drop_reasons[r] ?? 0) + 1;
    if (s.socket.connected) {
      out.reconnected += 1;
      f.reconnected += 1;
      out.ended_on[s.current] = (out.ended_on[s.current] ?? 0) + 1;
      continue;
    }
    out.lost += 1;
    f.lost += 1;
    // Inactive: nothing will reconnect it. Told to leave when its last drop was the server's
    // namespace DISCONNECT; otherwise a reconnect ended in a namespace CONNECT_ERROR (the
    // only other way socket.io-client stops trying).
    let why = 'still_trying';
    if (!s.socket.active) {
      why = s.drops.at(-1) === 'io server disconnect' ? 'server_disconnect' : 'connect_error';
    }
    out.lost_by[why] = (out.lost_by[why] ?? 0) + 1;
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
  for (const s of sessions) s.socket.disconnect();
  setTimeout(() => process.exit(0), 100);
}

const rl = createInterface({ input: process.stdin });
let ended = false;
const end = () => {
  if (ended) return;
  ended = true;
  report();
};
rl.on('line', end);
rl.on('close', end);
