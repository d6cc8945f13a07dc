// One session of the official socket.io-client 2.x (Engine.IO v3) against the /chat gateway:
// the reference the `eio3` check is compared with.
//
//   URL=http://127.0.0.1:4001 TOKEN=... node v2-client-check.mjs
//
// Connects as a 2.x client does (polling first, then the upgrade; the token in the
// namespace's query), waits for one heartbeat (acked) and the pong to its own ping, and
// prints one JSON line:
//   {"ok":true,"transport":"websocket","heartbeat":{..},"pong":true}
//   {"ok":false,"error":"connect_error ...","refused":true|false}
// `refused` is true when the namespace answered with an error (the token refused) and
// false for anything else (the handshake refused, a timeout). Exit 0 when ok.
// Settings (env): URL, TOKEN, TIMEOUT_MS (10000).
import io from 'socket.io-client-v2';

let url = String(process.env.URL || 'http://127.0.0.1:3000').replace(/\/+$/, '');
if (!url.endsWith('/chat')) url += '/chat';
const timeoutMs = Number(process.env.TIMEOUT_MS || 10000);

const socket = io(url, {
  forceNew: true,
  reconnection: false,
  query: { token: process.env.TOKEN || '' },
  transports: ['polling', 'websocket'],
});
let pong = false;
let heartbeat = null;
const finish = () => {
  // Let the ack leave, and the upgrade finish, before reporting.
  if (pong && heartbeat) setTimeout(() => done(true, { transport: socket.io.engine.transport.name, heartbeat, pong }), 300);
};
// 2.x clients ping the server every pingInterval; the server's answer is a `pong`.
socket.io.on('pong', () => {
  if (!pong) {
    pong = true;
    finish();
  }
});

function done(ok, extra) {
  process.stdout.write(`${JSON.stringify({ ok, ...extra })}\n`);
  socket.close();
  process.exit(ok ? 0 : 1);
}

setTimeout(() => done(false, { error: 'timeout', refused: false }), timeoutMs).unref();
// A namespace refusal arrives as an `error` event in 2.x (the middleware's err.data).
socket.on('error', (err) => done(false, { error: `error ${JSON.stringify(err)}`, refused: true }));
socket.on('connect_error', (err) => done(false, { error: `connect_error ${err?.message ?? err}`, refused: false }));
socket.on('heartbeat', (payload, ack) => {
  if (typeof ack === 'function') ack({ seq: payload?.seq });
  if (!heartbeat) {
    heartbeat = payload;
    finish();
  }
});
