import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, statSync, readdirSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileProbe, parseFileProbe, planFile, unifiedDiff, writeFileScript } from '../../src/core/file.ts';
import type { Change, Fact, StepContext } from '../../src/core/types.ts';
import type { LooseChange } from '../harness/fake-host.ts';
import { HOSTILE } from '../harness/hostile-values.ts';

const me = `${userInfo().username}:${execFileSync('id', ['-gn']).toString().trim()}`;
const runSh = (script: string) => execFileSync('sh', ['-s'], { input: `set -eu\n${script}\n` }).toString();
// facts read by a real shell on this machine
const ctx = {
  read: async (...fs: Fact<unknown>[]) => fs.map((f) => f.parse(runSh(f.command).replace(/\n$/, ''), 0, '')),
} as unknown as StepContext;
const fileOf = (c: Change | null) => (c as LooseChange).file!;

describe('file helper', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvf-file-'));

  it('plans a create, then nothing once written (real shell)', async () => {
    const path = join(dir, 'a.conf');
    const c = await planFile(ctx, { path, content: 'x=1\n', owner: me });
    expect(c?.summary).toBe(`create ${path}`);
    expect(c?.diff).toContain('+x=1');
    runSh(writeFileScript(fileOf(c)));
    expect(readFileSync(path, 'utf8')).toBe('x=1\n');
    expect(statSync(path).mode & 0o777).toBe(0o644);
    expect(await planFile(ctx, { path, content: 'x=1\n', owner: me })).toBeNull();
  });

  it('keeps the old content as .kvmforge.bak and shows a unified diff', async () => {
    const path = join(dir, 'b.conf');
    writeFileSync(path, 'old\nsame\n');
    const c = await planFile(ctx, { path, content: 'new\nsame\n', owner: me });
    expect(c?.diff).toBe(`--- ${path}\n+++ ${path}\n@@ -1,2 +1,2 @@\n-old\n+new\n same`);
    runSh(writeFileScript(fileOf(c)));
    expect(readFileSync(`${path}.kvmforge.bak`, 'utf8')).toBe('old\nsame\n');
    expect(readFileSync(path, 'utf8')).toBe('new\nsame\n');
    expect(readdirSync(dir).filter((f) => f.includes('kvmforge-'))).toEqual([]);
  });

  it('plans a mode change alone', async () => {
    const path = join(dir, 'c.conf');
    writeFileSync(path, 'z\n', { mode: 0o600 });
    const c = await planFile(ctx, { path, content: 'z\n', mode: '644', owner: me });
    expect(c?.diff).toBe('mode 600 → 644');
  });

  it('writes hostile content and names verbatim', async () => {
    for (const [i, v] of HOSTILE.entries()) {
      const path = join(dir, `h${i}-${v.replace(/[/\0]/g, '_')}`);
      const content = `${v}\n${v}`;
      runSh(writeFileScript({ path, content, owner: me }));
      expect(readFileSync(path, 'utf8')).toBe(content);
    }
    expect(existsSync('/tmp/kvmforge-pwned')).toBe(false);
  });

  it(
    'a write cut short leaves no temp file: TERM removes it, and a stale one (kill -9, reboot) goes with the next ' +
      'write',
    async () => {
      const sub = mkdtempSync(join(dir, 'cut-'));
      const path = join(sub, 'a [*] b.conf');
      // killed by TERM while its content is still arriving
      const slow = writeFileScript({ path, content: 'new\n', owner: me }).replace(
        "base64 -d <<'KVMFORGE_EOF'",
        "sleep 5; base64 -d <<'KVMFORGE_EOF'",
      );
      const { spawn } = await import('node:child_process');
      const child = spawn('sh', ['-c', slow], { detached: true });
      await new Promise((r) => setTimeout(r, 500));
      expect(readdirSync(sub).filter((f) => f.includes('.kvmforge-'))).toHaveLength(1);
      process.kill(-child.pid!, 'SIGTERM'); // the whole group, as a shutdown does
      await new Promise((r) => child.on('close', r));
      expect(readdirSync(sub)).toEqual([]);
      // a stale temp file of this target and one of another file: only this target's goes
      writeFileSync(join(sub, '.a [*] b.conf.kvmforge-AbC123'), 'half');
      writeFileSync(join(sub, '.other.conf.kvmforge-AbC123'), 'half');
      runSh(writeFileScript({ path, content: 'new\n', owner: me }));
      expect(readdirSync(sub).sort()).toEqual(['.other.conf.kvmforge-AbC123', 'a [*] b.conf']);
      expect(readFileSync(path, 'utf8')).toBe('new\n');
    },
  );

  it('parses the probe of a missing file', () => {
    expect(parseFileProbe(runSh(fileProbe(join(dir, 'nope'))))).toEqual({ exists: false });
  });

  it('diffs additions to an empty file', () => {
    expect(unifiedDiff('/x', '', 'a\n')).toBe('--- /x\n+++ /x\n@@ -0,0 +1,1 @@\n+a');
  });
});
