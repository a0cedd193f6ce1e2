// The local transport (ansible_connection: local) runs scripts with the same contract as SSH.
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalTransport } from '../../src/transport/local.ts';

describe('local transport', () => {
  const t = new LocalTransport();
  const dir = mkdtempSync(join(tmpdir(), 'kvf-local-'));

  it('runs a script on sh -s with set -eu, returning code and output', async () => {
    expect(await t.exec('echo out; echo err >&2; false; echo never')).toEqual({
      code: 1,
      stdout: 'out\n',
      stderr: 'err\n',
    });
    const r = await t.exec('echo "$UNSET_VAR_KVF"');
    expect(r.code).not.toBe(0);
  });

  it('times a command out with exit 124', async () => {
    const t0 = Date.now();
    const r = await t.exec('sleep 30', { timeoutMs: 1000 });
    expect(r.code).toBe(124);
    expect(Date.now() - t0).toBeLessThan(8000);
  });

  it('streams output as it comes', async () => {
    const chunks: string[] = [];
    await t.exec('echo a; sleep 0.2; echo b', { onOutput: (c) => chunks.push(c) });
    expect(chunks.join('')).toBe('a\nb\n');
    expect(chunks.length).toBeGreaterThan(1);
  });

  it('puts and gets files with their mode', async () => {
    const p = join(dir, "it's a file");
    await t.put(p, Buffer.from([0, 1, 2, 255]), 0o600);
    expect((await t.get(p)).equals(Buffer.from([0, 1, 2, 255]))).toBe(true);
    expect(statSync(p).mode & 0o777).toBe(0o600);
    expect(readFileSync(p).length).toBe(4);
  });
});
