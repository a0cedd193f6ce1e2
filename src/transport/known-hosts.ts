// known_hosts: parse, match (plain, wildcard, hashed entries), fingerprint. Pure apart from file reads.
import { createHash, createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { globRe } from '../core/glob.ts';

export interface KnownKey {
  type: string;
  key: string; // base64 blob
  file: string;
  line: number;
}

export type Verdict =
  | { kind: 'match' }
  | { kind: 'unknown'; authority?: KnownKey }
  | { kind: 'changed'; known: KnownKey };

export function hostPattern(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

export function fingerprint(blobBase64: string): string {
  return 'SHA256:' + createHash('sha256').update(Buffer.from(blobBase64, 'base64')).digest('base64').replace(/=+$/, '');
}

export function keyType(blob: Buffer): string {
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString();
}

const patterns = new Map<string, RegExp>();

/** A known_hosts pattern as a RegExp, made once per pattern (every host of a run reads the same lines). */
function globToRe(p: string): RegExp {
  let re = patterns.get(p);
  if (!re) {
    re = globRe(p, 'i');
    patterns.set(p, re);
  }
  return re;
}

function hostMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    const h = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return h === hash;
  }
  let ok = false;
  for (const pat of field.split(',')) {
    if (pat.startsWith('!')) {
      if (globToRe(pat.slice(1)).test(name)) return false;
    } else if (globToRe(pat).test(name)) ok = true;
  }
  return ok;
}

export function parseKnownHosts(
  text: string,
  file: string,
  name: string,
): { keys: KnownKey[]; revoked: string[]; authorities: KnownKey[] } {
  const keys: KnownKey[] = [];
  const revoked: string[] = [];
  const authorities: KnownKey[] = [];
  for (const { marker, hosts, type, key, line } of entriesOf(text, file)) {
    if (!hostMatches(hosts, name)) continue;
    if (marker === '@revoked') revoked.push(key);
    else if (marker === '@cert-authority') authorities.push({ type, key, file, line });
    else if (!marker) keys.push({ type, key, file, line });
  }
  return { keys, revoked, authorities };
}

type Entry = { marker: string; hosts: string; type: string; key: string; line: number };

/** The last text read of each file, split into entries: every host of a run checks the same files. */
const split = new Map<string, { text: string; entries: Entry[] }>();

function entriesOf(text: string, file: string): Entry[] {
  const known = split.get(file);
  if (known?.text === text) return known.entries;
  const entries: Entry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const parts = line.split(/\s+/);
    let marker = '';
    if (parts[0].startsWith('@')) marker = parts.shift()!;
    const [hosts, type, key] = parts;
    if (hosts && type && key) entries.push({ marker, hosts, type, key, line: i + 1 });
  });
  split.set(file, { text, entries });
  return entries;
}

export function check(files: string[], host: string, port: number, blob: Buffer): Verdict {
  const name = hostPattern(host, port);
  const b64 = blob.toString('base64');
  const type = keyType(blob);
  const known: KnownKey[] = [];
  const authorities: KnownKey[] = [];
  for (const f of files) {
    if (!existsSync(f)) continue;
    const { keys, revoked, authorities: cas } = parseKnownHosts(readFileSync(f, 'utf8'), f, name);
    if (revoked.includes(b64)) return { kind: 'changed', known: { type, key: '(revoked)', file: f, line: 0 } };
    known.push(...keys);
    authorities.push(...cas);
  }
  if (known.some((k) => k.key === b64)) return { kind: 'match' };
  if (!known.length) return { kind: 'unknown', authority: authorities[0] };
  return { kind: 'changed', known: known.find((k) => k.type === type) ?? known[0] };
}

export function record(file: string, host: string, port: number, blob: Buffer): void {
  mkdirSync(dirname(file), { recursive: true });
  appendFileSync(file, `${hostPattern(host, port)} ${keyType(blob)} ${blob.toString('base64')}\n`);
}
