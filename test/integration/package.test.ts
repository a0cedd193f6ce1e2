// The published package: `npm pack` (compiled JavaScript, only what users need), installed into an empty
// directory from the npm registry's dependencies, runs `kvmforge --help`, `steps` and `render` without tsx.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'kvmforge-pack-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the npm package', () => {
  let files: string[] = [];
  it('packs compiled JavaScript and what users need, nothing else', () => {
    const out = JSON.parse(
      execFileSync('npm', ['pack', '--json', '--pack-destination', dir], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }),
    );
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

  it('installed in an empty directory, runs --help, steps and render (no TypeScript at run time)', () => {
    const tgz = join(
      dir,
      execFileSync('ls', [dir], { encoding: 'utf8' })
        .split('\n')
        .find((f) => f.endsWith('.tgz'))!,
    );
    const app = join(dir, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), '{"name":"try-kvmforge","private":true}\n');
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--omit=dev', tgz], {
      cwd: app,
      stdio: 'ignore',
      timeout: 170_000,
    });
    const bin = join(app, 'node_modules/.bin/kvmforge');
    expect(execFileSync(bin, ['--help'], { encoding: 'utf8' })).toMatch(
      /^Usage: kvmforge \[options\] \[command\]\n\nturn fresh Linux servers into tuned KVM virtualization hosts/,
    );
    expect(execFileSync(bin, ['steps'], { encoding: 'utf8' })).toMatch(/^files\s+Files with given content/);
    expect(() => execFileSync('ls', [join(app, 'node_modules/tsx')], { stdio: 'ignore' })).toThrow();
    writeFileSync(
      join(app, 'inv.yaml'),
      'all:\n  hosts:\n    kvm1:\n      domains_vms: [{ name: web, memory: 256, graphics: false, nics: [] }]\n',
    );
    const r = execFileSync(bin, ['render', '-i', 'inv.yaml', '--out', 'xml'], { cwd: app, encoding: 'utf8' });
    expect(r.trim()).toBe('xml/kvm1/web.xml');
    expect(readFileSync(join(app, 'xml/kvm1/web.xml'), 'utf8')).toMatch(/<name>web<\/name>/);
  }, 180_000);
});
