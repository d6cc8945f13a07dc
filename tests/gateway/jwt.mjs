// HS256 JWT minting for the reference clients (node:crypto only).
import { createHmac } from 'node:crypto';

/** Returns an HS256 JWT for `claims`; adds exp = now + ttlSeconds unless ttlSeconds is null. */
export function mintHs256(secret, claims = {}, ttlSeconds = 3600) {
  const body = { sub: 'bench', iat: Math.floor(Date.now() / 1000), ...claims };
  if (ttlSeconds !== null && body.exp === undefined) body.exp = body.iat + ttlSeconds;
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const signingInput = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc(body)}`;
  const sig = createHmac('sha256', secret).update(signingInput).digest('base64url');
  return `${signingInput}.${sig}`;
}

/** Parses `--key=value` / `--key value` arguments into an object with UPPER_SNAKE keys. */
export function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    let key = a.slice(2);
    let val;
    const eq = key.indexOf('=');
    if (eq >= 0) {
      val = key.slice(eq + 1);
      key = key.slice(0, eq);
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      val = argv[++i];
    } else {
      val = 'true';
    }
    out[key.replace(/-/g, '_').toUpperCase()] = val;
  }
  return out;
}
