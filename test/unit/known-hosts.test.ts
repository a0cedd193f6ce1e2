import { execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { check, fingerprint, keyType, record } from '../../src/transport/known-hosts.ts';

function blob(type: string, body: string): Buffer {
  const t = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(t.length);
  return Buffer.concat([len, t, Buffer.from(body)]);
}

describe('known_hosts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvf-kh-'));
  const k1 = blob('ssh-ed25519', 'key-one-bytes-xxxxxxxxxxxxxxxxx');
  const k2 = blob('ssh-ed25519', 'key-two-bytes-yyyyyyyyyyyyyyyyy');

  it('reads the key type from the blob and fingerprints like OpenSSH', () => {
    expect(keyType(k1)).toBe('ssh-ed25519');
    expect(fingerprint(k1.toString('base64'))).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it('matches plain, bracketed-port, wildcard and hashed entries', () => {
    const salt = randomBytes(20);
    const mac = createHmac('sha1', salt).update('[10.0.0.5]:2222').digest('base64');
    const hashed = `|1|${salt.toString('base64')}|${mac}`;
    const f = join(dir, 'kh1');
    writeFileSync(
      f,
      `# comment\nhost-a,10.0.0.1 ssh-ed25519 ${k1.toString('base64')}\n[10.0.0.2]:2200 ssh-ed25519 ` +
        `${k1.toString('base64')}\n*.lab ssh-ed25519 ${k1.toString('base64')}\n${hashed} ssh-ed25519 ` +
        `${k2.toString('base64')}\n`,
    );
    expect(check([f], '10.0.0.1', 22, k1).kind).toBe('match');
    expect(check([f], '10.0.0.2', 2200, k1).kind).toBe('match');
    expect(check([f], '10.0.0.2', 22, k1).kind).toBe('unknown');
    expect(check([f], 'x.lab', 22, k1).kind).toBe('match');
    expect(check([f], '10.0.0.5', 2222, k2).kind).toBe('match');
    expect(check([f], '10.0.0.5', 2222, k1).kind).toBe('changed');
  });

  it('calls a different key for a known host changed, naming file and line', () => {
    const f = join(dir, 'kh2');
    writeFileSync(f, `10.0.0.9 ssh-ed25519 ${k1.toString('base64')}\n`);
    const v = check([join(dir, 'missing'), f], '10.0.0.9', 22, k2);
    expect(v).toMatchObject({ kind: 'changed', known: { file: f, line: 1 } });
  });

  it('treats @revoked keys as refused', () => {
    const f = join(dir, 'kh3');
    writeFileSync(f, `@revoked * ssh-ed25519 ${k1.toString('base64')}\n`);
    expect(check([f], 'any', 22, k1).kind).toBe('changed');
  });

  it('records new keys in OpenSSH format', () => {
    const f = join(dir, 'sub', 'kh4');
    record(f, '10.0.0.7', 2222, k1);
    expect(readFileSync(f, 'utf8')).toBe(`[10.0.0.7]:2222 ssh-ed25519 ${k1.toString('base64')}\n`);
    expect(check([f], '10.0.0.7', 2222, k1).kind).toBe('match');
  });

  it('no code path turns host key checking off', () => {
    const files = execFileSync('git', ['ls-files', 'src', 'bin', 'steps', 'templates', 'bench', 'Vagrantfile'])
      .toString()
      .trim()
      .split('\n');
    const offenders: string[] = [];
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      const insecure = [
        String.raw`StrictHostKeyChecking[= ]*(no|off|accept-new)`,
        String.raw`UserKnownHostsFile[= ]*\/dev\/null`,
        String.raw`hostVerifier:\s*\(\)\s*=>\s*true`,
        'hostHash',
        'insecure',
      ];
      if (new RegExp(insecure.join('|'), 'i').test(text)) offenders.push(f);
    }
    expect(offenders).toEqual([]);
    // the one verifier there is consults known_hosts and refuses what it can't match
    const ssh = readFileSync('src/transport/ssh.ts', 'utf8');
    expect(ssh.match(/hostVerifier/g)).toHaveLength(1);
    expect(ssh).toMatch(/hostVerifier: \(blob: Buffer\) => \{\n\s+const v = check\(/);
  });
});
