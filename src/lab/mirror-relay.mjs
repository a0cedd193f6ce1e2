#!/usr/bin/env node
// Package access for lab VMs without opening their network: QEMU's user network starts this for each
// TCP connection a guest makes to its apt proxy (guestfwd=…-cmd:), with the connection on stdin/stdout.
// It reads HTTP proxy requests, serves GET/HEAD requests for the allowed mirror prefixes given as
// arguments (e.g. http://deb.debian.org/debian/) by fetching them from there, and answers everything
// else with 403. Nothing else leaves the machine. Plain JavaScript: it starts with a bare `node`.
import http from 'node:http';

const allowed = process.argv.slice(2).map((u) => new URL(u));
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let buf = Buffer.alloc(0);
let queue = Promise.resolve();
let ended = false;

const write = (chunk) =>
  new Promise((resolve) => (process.stdout.write(chunk) ? resolve() : process.stdout.once('drain', resolve)));

function refuse(status, why) {
  const body = `kvmforge lab relay: ${why}\n`;
  return write(
    `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

function permitted(method, target) {
  if (method !== 'GET' && method !== 'HEAD') return `method ${method} is not served`;
  let url;
  try {
    url = new URL(target);
  } catch {
    return `not an absolute http URL: ${target}`;
  }
  if (url.protocol !== 'http:') return `only http mirrors are relayed: ${target}`;
  if (url.username || url.password) return 'no credentials';
  const ok = allowed.some(
    (a) => a.host === url.host && url.pathname.startsWith(a.pathname) && !url.pathname.includes('/../'),
  );
  return ok ? null : `only ${allowed.map((a) => a.href).join(', ')} is served, not ${url.href}`;
}

function serve(method, target, headers) {
  const why = permitted(method, target);
  if (why) return refuse('403 Forbidden', why);
  const url = new URL(target);
  const keep = {};
  for (const h of ['range', 'if-modified-since', 'if-none-match', 'if-range', 'cache-control', 'user-agent', 'accept'])
    if (headers[h]) keep[h] = headers[h];
  return new Promise((resolve) => {
    const req = http.request(
      { host: url.hostname, port: url.port || 80, path: url.pathname + url.search, method, headers: keep, agent },
      (res) => {
        const out = [];
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', async () => {
          const body = Buffer.concat(chunks);
          for (let i = 0; i < res.rawHeaders.length; i += 2) {
            const k = res.rawHeaders[i];
            if (/^(connection|keep-alive|transfer-encoding|content-length)$/i.test(k)) continue;
            out.push(`${k}: ${res.rawHeaders[i + 1]}`);
          }
          const length = method === 'HEAD' ? (res.headers['content-length'] ?? '0') : String(body.length);
          const head = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage}`, ...out, `Content-Length: ${length}`];
          await write(`${head.join('\r\n')}\r\n\r\n`);
          if (method !== 'HEAD') await write(body);
          resolve();
        });
        res.on('error', () => refuse('502 Bad Gateway', 'the mirror broke off').then(resolve));
      },
    );
    req.on('error', (e) => refuse('502 Bad Gateway', `the mirror is unreachable: ${e.message}`).then(resolve));
    req.end();
  });
}

/** Takes whole requests (line + headers; GET/HEAD carry no body) off the buffer, in order. */
function parse() {
  for (;;) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = buf.subarray(0, end).toString('latin1').split('\r\n');
    buf = buf.subarray(end + 4);
    const [method = '', target = ''] = (head.shift() ?? '').split(' ');
    const headers = {};
    for (const line of head) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    if (headers['content-length'] || headers['transfer-encoding']) {
      queue = queue
        .then(() => refuse('403 Forbidden', 'requests with a body are not served'))
        .then(() => process.exit(0));
      return;
    }
    queue = queue.then(() => serve(method, target, headers));
  }
}

process.stdin.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  parse();
});
process.stdin.on('end', () => {
  ended = true;
  queue.then(() => process.exit(0));
});
process.stdin.on('error', () => process.exit(0));
process.stdout.on('error', () => process.exit(0));
setInterval(() => ended && process.exit(0), 60_000).unref();
