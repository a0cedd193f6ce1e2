// The published package: `npm pack` (compiled JavaScript, only what users need), installed into an empty
// directory from the npm registry's dependencies, runs `kvmforge --help`, `steps` and `render` without tsx.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

// awaited, never execFileSync: npm takes tens of seconds here, and a vitest worker held 60 s loses the run
const run = async (cmd: string, args: string[], cwd?: string) =>
  (await promisify(execFile)(cmd, args, { cwd, encoding: 'utf8', timeout: 170_000 })).stdout;

const dir = mkdtempSync(join(tmpdir(), 'kvmforge-pack-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the npm package', () => {
  let files: string[] = [];
  it('packs compiled JavaScript and what users need, nothing else', async () => {
    const out = JSON.parse(await run('npm', ['pack', '--json', '--pack-destination', dir]));
    files = out[0].files.map((f: { path: string }) => f.path).sort();
    expect(files).toContain('dist/src/cli/main.js');
    expect(files).toContain('bin/kvmforge.js');
    expect(files).toContain('templates/domain.xml.ejs');
    expect(files).toContain('inventories/schema.json');
    expect(files).toContain('src/lab/build-rootfs.sh');
    expect(files).toContain('src/lab/mirror-relay.mjs');
    expect(files).toContain('LICENSE');
    expect(files.filter((f) => /^(test|\.ci|\.vagrant|bench)\/|\.ts$/.test(f))).toEqual([]);
  }, 180_000);

  it('installed in an empty directory, runs --help, steps and render (no TypeScript at run time)', async () => {
    const tgz = join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!);
    const app = join(dir, 'app');
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'package.json'), '{"name":"try-kvmforge","private":true}\n');
    await run('npm', ['install', '--no-audit', '--no-fund', '--omit=dev', tgz], app);
    const bin = join(app, 'node_modules/.bin/kvmforge');
    expect(await run(bin, ['--help'])).toMatch(
      /^Usage: kvmforge \[options\] \[command\]\n\nturn fresh Linux servers into tuned KVM virtualization hosts/,
    );
    expect(await run(bin, ['steps'])).toMatch(/^files\s+Files with given content/);
    expect(existsSync(join(app, 'node_modules/tsx'))).toBe(false);
    writeFileSync(
      join(app, 'inv.yaml'),
      'all:\n  hosts:\n    kvm1:\n      domains_vms: [{ name: web, memory: 256, graphics: false, nics: [] }]\n',
    );
    const r = await run(bin, ['render', '-i', 'inv.yaml', '--out', 'xml'], app);
    expect(r.trim()).toBe('xml/kvm1/web.xml');
    expect(readFileSync(join(app, 'xml/kvm1/web.xml'), 'utf8')).toMatch(/<name>web<\/name>/);
  }, 180_000);
});
