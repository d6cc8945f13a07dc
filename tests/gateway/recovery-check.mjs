// The official socket.io-client with connection state recovery: joins /chat at URL with
// TOKEN, and at its second heartbeat (after the gateway's first `tick`, whose offset it keeps
// when recovery is on) cuts the transport as a network failure would (engine close, no
// DISCONNECT), lets the client reconnect on its own, and at the next heartbeat prints one JSON
// line: {"recovered": bool, "first": id, "then": id} (the instance ids before and after).
import { io } from 'socket.io-client';

const url = process.env.URL;
const token = process.env.TOKEN;
const s = io(`${url}/chat`, {
  transports: ['websocket'],
  auth: { token },
  reconnectionDelay: 100,
  reconnectionDelayMax: 200,
});
let first = null;
let beats = 0;
const done = (out) => {
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
};
s.on('heartbeat', (d, ack) => {
  if (ack) ack();
  beats += 1;
  if (beats === 2) {
    first = d.instanceId;
    s.io.engine.close();
  } else if (beats > 2) {
    done({ recovered: s.recovered === true, first, then: d.instanceId });
  }
});
s.on('connect_error', (e) => done({ error: e.message }));
setTimeout(() => done({ error: 'timeout' }), 10000);
