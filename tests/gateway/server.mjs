// Test peer for bosar-deploy: a real NestJS Socket.IO gateway, in plain ESM
// JavaScript (no TypeScript build; decorators applied with Reflect.decorate).
//
//   PORT=4001 node tests/gateway/server.mjs        ->  prints "listening 4001"
//
// Environment (see README.md):
//   PORT (required; 0 = pick a free port, the chosen one is printed)
//   HOST (127.0.0.1)  INSTANCE_ID (gw-<port>)  JWT_SECRET (sandbox-secret)
//   GATEWAY_AUTH=off  GATEWAY_HEARTBEAT=off  HEALTH_STATUS (200; e.g. 503 for a sick task)
//   WEBSOCKET_PING_INTERVAL (25000)  WEBSOCKET_PING_TIMEOUT (60000)
//   WEBSOCKET_HEARTBEAT_INTERVAL (30000)  HTTP_KEEPALIVE_TIMEOUT (65000)
//   HTTP_BACKLOG (4096, listen backlog; Node's default 511 drops SYNs under load)
//   GATEWAY_CORS (credentials): `credentials` answers every Origin exactly with
//     Access-Control-Allow-Credentials: true (what browsers with withCredentials need);
//     `wildcard` answers `*` without credentials (browsers then drop the cookies).
//   ALLOW_EIO3 (off): `on` serves Engine.IO v3 (socket.io 2.x) clients (allowEIO3).
//   GATEWAY_RECOVERY (off): `on` enables connection state recovery (socket.io 4.6+,
//     in-memory adapter: a session recovers only on the same process) and, beside each
//     heartbeat, broadcasts a `tick` event to the socket's own room, so it carries the
//     offset a recovering client sends back.
//   GATEWAY_ON_SIGTERM (close): what SIGTERM does first. `close` closes the server
//     (io.close(), through app.close()): clients see "transport close" and reconnect.
//     `disconnect-sockets` first calls disconnectSockets() on /chat (a namespace
//     DISCONNECT, "io server disconnect": socket.io-client does not reconnect), then
//     closes the server 500 ms later.
//   GATEWAY_ADMIN (off): `on` serves POST /admin/disconnect-sockets, which calls
//     disconnectSockets() on /chat and stays up (tests: "io server disconnect" on demand).
import 'reflect-metadata';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Controller, Get, HttpCode, Injectable, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  ConnectedSocket,
  MessageBody,
  SubscribeMessage,
  WebSocketGateway,
} from '@nestjs/websockets';
import { IoAdapter } from '@nestjs/platform-socket.io';

// ---------------------------------------------------------------- config ---

function fail(msg) {
  process.stderr.write(`gateway: ${msg}\n`);
  process.exit(2);
}

function intEnv(name, dflt, min = 0) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  if (!/^\d+$/.test(raw.trim())) fail(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  const v = Number(raw.trim());
  if (v < min) fail(`${name} must be >= ${min}, got ${v}`);
  return v;
}

function offEnv(name) {
  const v = (process.env[name] ?? '').trim().toLowerCase();
  return v === 'off' || v === '0' || v === 'false' || v === 'no';
}

if (process.env.PORT === undefined || process.env.PORT === '') fail('PORT is required');
const PORT = intEnv('PORT', 0);
if (PORT > 65535) fail(`PORT out of range: ${PORT}`);
const HOST = process.env.HOST || '127.0.0.1';
const JWT_SECRET = process.env.JWT_SECRET ?? 'sandbox-secret';
const AUTH_ENABLED = !offEnv('GATEWAY_AUTH');
const HEARTBEAT_ENABLED = !offEnv('GATEWAY_HEARTBEAT');
const PING_INTERVAL = intEnv('WEBSOCKET_PING_INTERVAL', 25000, 1);
const PING_TIMEOUT = intEnv('WEBSOCKET_PING_TIMEOUT', 60000, 1);
const HEARTBEAT_INTERVAL = intEnv('WEBSOCKET_HEARTBEAT_INTERVAL', 30000, 1);
const KEEPALIVE_TIMEOUT = intEnv('HTTP_KEEPALIVE_TIMEOUT', 65000, 1);
const BACKLOG = intEnv('HTTP_BACKLOG', 4096, 1);
const HEALTH_STATUS = intEnv('HEALTH_STATUS', 200, 200);
const CORS_MODE = (process.env.GATEWAY_CORS || 'credentials').trim();
if (!['credentials', 'wildcard'].includes(CORS_MODE)) {
  fail(`GATEWAY_CORS must be credentials or wildcard, got ${JSON.stringify(CORS_MODE)}`);
}
const CORS = CORS_MODE === 'credentials' ? { origin: true, credentials: true } : { origin: '*' };
const ALLOW_EIO3 = /^(on|1|true|yes)$/i.test((process.env.ALLOW_EIO3 ?? '').trim());
const RECOVERY = /^(on|1|true|yes)$/i.test((process.env.GATEWAY_RECOVERY ?? '').trim());
const ADMIN = /^(on|1|true|yes)$/i.test((process.env.GATEWAY_ADMIN ?? '').trim());
const ON_SIGTERM = (process.env.GATEWAY_ON_SIGTERM || 'close').trim();
if (!['close', 'disconnect-sockets'].includes(ON_SIGTERM)) {
  fail(`GATEWAY_ON_SIGTERM must be close or disconnect-sockets, got ${JSON.stringify(ON_SIGTERM)}`);
}
if (HEALTH_STATUS > 599) fail(`HEALTH_STATUS out of range: ${HEALTH_STATUS}`);

// ------------------------------------------------------------------- JWT ---

function b64urlDecode(s) {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error('bad base64url');
  return Buffer.from(s, 'base64url');
}

/** Verifies an HS256 JWT. Returns {ok:true, claims} or {ok:false, reason}. */
export function verifyJwt(token, secret, nowMs = Date.now()) {
  if (typeof token !== 'string' || token.length === 0) return { ok: false, reason: 'missing token' };
  if (token.startsWith('Bearer ')) token = token.slice(7);
  const parts = token.split('.');
  if (parts.length !== 3) return { ok: false, reason: 'malformed token' };
  let header;
  let claims;
  let sig;
  try {
    header = JSON.parse(b64urlDecode(parts[0]).toString('utf8'));
    claims = JSON.parse(b64urlDecode(parts[1]).toString('utf8'));
    sig = b64urlDecode(parts[2]);
  } catch {
    return { ok: false, reason: 'malformed token' };
  }
  if (header === null || typeof header !== 'object' || header.alg !== 'HS256') {
    return { ok: false, reason: 'unsupported alg' };
  }
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
    return { ok: false, reason: 'malformed token' };
  }
  const expected = createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
  if (sig.length !== expected.length || !timingSafeEqual(sig, expected)) {
    return { ok: false, reason: 'bad signature' };
  }
  if (claims.exp !== undefined) {
    if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) return { ok: false, reason: 'malformed exp' };
    if (nowMs >= claims.exp * 1000) return { ok: false, reason: 'token expired' };
  }
  if (claims.nbf !== undefined && typeof claims.nbf === 'number' && nowMs < claims.nbf * 1000) {
    return { ok: false, reason: 'token not yet valid' };
  }
  return { ok: true, claims };
}

// ----------------------------------------------------------------- state ---

class GatewayState {
  constructor() {
    this.instanceId = process.env.INSTANCE_ID || `gw-${PORT}`;
    this.namespace = null; // socket.io Namespace for /chat, set in afterInit
    this.totalConnections = 0;
    this.authRejected = 0;
    this.heartbeatsSent = 0;
    this.heartbeatAcks = 0;
    this.heartbeatAckTimeouts = 0;
    this.recovered = 0;
  }
  get connections() {
    return this.namespace ? this.namespace.sockets.size : 0;
  }
}
Reflect.decorate([Injectable()], GatewayState);

// --------------------------------------------------------------- gateway ---

class ChatGateway {
  constructor(state) {
    this.state = state;
    this.timers = new Map(); // socket.id -> interval handle
  }

  afterInit(nsp) {
    this.state.namespace = nsp;
    if (AUTH_ENABLED) {
      nsp.use((socket, next) => {
        const res = verifyJwt(socket.handshake.auth?.token, JWT_SECRET);
        if (res.ok) {
          socket.data.claims = res.claims;
          return next();
        }
        this.state.authRejected += 1;
        const err = new Error('unauthorized');
        err.data = { reason: res.reason };
        return next(err);
      });
    }
  }

  handleConnection(socket) {
    this.state.totalConnections += 1;
    if (socket.recovered) this.state.recovered += 1;
    if (!HEARTBEAT_ENABLED) return;
    let seq = 0;
    const state = this.state;
    const timer = setInterval(() => {
      if (!socket.connected) return;
      seq += 1;
      state.heartbeatsSent += 1;
      socket
        .timeout(HEARTBEAT_INTERVAL)
        .emit('heartbeat', { instanceId: state.instanceId, seq, ts: Date.now() }, (err) => {
          if (err) state.heartbeatAckTimeouts += 1;
          else state.heartbeatAcks += 1;
        });
      // Broadcast packets (no ack) are the ones recovery buffers and numbers with an offset.
      if (RECOVERY) state.namespace.to(socket.id).emit('tick', { instanceId: state.instanceId, seq });
    }, HEARTBEAT_INTERVAL);
    this.timers.set(socket.id, timer);
  }

  handleDisconnect(socket) {
    const timer = this.timers.get(socket.id);
    if (timer) {
      clearInterval(timer);
      this.timers.delete(socket.id);
    }
  }

  // "echo": acknowledged with the same payload; handy for round-trip checks.
  echo(data) {
    return data;
  }

  // "whoami": acknowledged with the instance id and the socket id.
  whoami(_data, socket) {
    return { instanceId: this.state.instanceId, sid: socket?.id };
  }
}

function decorateMethod(cls, name, decorators) {
  const desc = Object.getOwnPropertyDescriptor(cls.prototype, name);
  const out = Reflect.decorate(decorators, cls.prototype, name, desc);
  Object.defineProperty(cls.prototype, name, out ?? desc);
}

Reflect.decorate(
  [
    WebSocketGateway({
      namespace: '/chat',
      transports: ['polling', 'websocket'],
      cors: CORS,
      cookie: false,
      pingInterval: PING_INTERVAL,
      pingTimeout: PING_TIMEOUT,
      allowEIO3: ALLOW_EIO3,
      ...(RECOVERY
        ? { connectionStateRecovery: { maxDisconnectionDuration: 120000, skipMiddlewares: true } }
        : {}),
    }),
    Reflect.metadata('design:paramtypes', [GatewayState]),
  ],
  ChatGateway,
);
decorateMethod(ChatGateway, 'echo', [SubscribeMessage('echo')]);
decorateMethod(ChatGateway, 'whoami', [SubscribeMessage('whoami')]);
// Un-annotated Nest message handlers are called as (socket, data); declare the
// parameters the way TypeScript's @MessageBody() / @ConnectedSocket() would.
MessageBody()(ChatGateway.prototype, 'echo', 0);
MessageBody()(ChatGateway.prototype, 'whoami', 0);
ConnectedSocket()(ChatGateway.prototype, 'whoami', 1);

// ------------------------------------------------------------ controller ---

class HealthController {
  constructor(state) {
    this.state = state;
  }

  websocket() {
    const status = HEALTH_STATUS === 200 ? 'ok' : 'error';
    return { status, instanceId: this.state.instanceId, connections: this.state.connections };
  }

  stats() {
    const s = this.state;
    return {
      instanceId: s.instanceId,
      connections: s.connections,
      engineClients: s.namespace ? s.namespace.server.engine.clientsCount : 0,
      totalConnections: s.totalConnections,
      authRejected: s.authRejected,
      heartbeatsSent: s.heartbeatsSent,
      heartbeatAcks: s.heartbeatAcks,
      heartbeatAckTimeouts: s.heartbeatAckTimeouts,
      recovered: s.recovered,
      // The settings this process runs with (the task runner's tests read them).
      pingInterval: PING_INTERVAL,
      pingTimeout: PING_TIMEOUT,
      heartbeatInterval: HEARTBEAT_INTERVAL,
    };
  }
}
Reflect.decorate(
  [Controller('health'), Reflect.metadata('design:paramtypes', [GatewayState])],
  HealthController,
);
decorateMethod(HealthController, 'websocket', [Get('websocket'), HttpCode(HEALTH_STATUS)]);
decorateMethod(HealthController, 'stats', [Get('stats')]);

// Test-only controls, served with GATEWAY_ADMIN=on.
class AdminController {
  constructor(state) {
    this.state = state;
  }

  // A namespace DISCONNECT to every /chat socket ("io server disconnect"); the server stays up.
  disconnectSockets() {
    const nsp = this.state.namespace;
    const disconnected = nsp ? nsp.sockets.size : 0;
    if (nsp) nsp.disconnectSockets();
    return { instanceId: this.state.instanceId, disconnected };
  }
}
Reflect.decorate(
  [Controller('admin'), Reflect.metadata('design:paramtypes', [GatewayState])],
  AdminController,
);
decorateMethod(AdminController, 'disconnectSockets', [Post('disconnect-sockets'), HttpCode(200)]);

const controllers = ADMIN ? [HealthController, AdminController] : [HealthController];
class AppModule {}
Reflect.decorate(
  [Module({ controllers, providers: [GatewayState, ChatGateway] })],
  AppModule,
);

// ------------------------------------------------------------------ main ---

const app = await NestFactory.create(AppModule, { logger: ['error'], abortOnError: false });
app.useWebSocketAdapter(new IoAdapter(app));
app.enableCors(CORS);

const httpServer = app.getHttpServer();
httpServer.keepAliveTimeout = KEEPALIVE_TIMEOUT;
httpServer.headersTimeout = KEEPALIVE_TIMEOUT + 5000;

try {
  await app.listen(PORT, HOST, BACKLOG);
} catch (err) {
  process.stderr.write(`gateway: cannot listen on ${HOST}:${PORT}: ${err.code ?? err.message}\n`);
  process.exit(1);
}
const boundPort = httpServer.address().port;
const state = app.get(GatewayState);
if (!process.env.INSTANCE_ID) state.instanceId = `gw-${boundPort}`;
process.stdout.write(`listening ${boundPort}\n`);

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  const close = () => {
    setTimeout(() => process.exit(0), 1500).unref();
    app.close().then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  if (ON_SIGTERM === 'disconnect-sockets' && state.namespace) {
    // What a gateway does in a shutdown hook that "says goodbye" to its clients.
    state.namespace.disconnectSockets();
    setTimeout(close, 500);
  } else {
    close();
  }
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
