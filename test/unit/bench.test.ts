// kvmforge bench's pure parts: the guest script (run here for real with sh: dd, sha256sum), its
// parser, the side-by-side table; the guests themselves are in test/lab/bench.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchScript, benchTable, median, parseBench, thesisComparison, WORKLOADS } from '../../src/insight/bench.ts';
import { exposed } from '../harness/shell-lexer.ts';

const sh = (script: string) => spawnSync('sh', ['-c', `set -eu\n${script}`], { encoding: 'utf8' });

describe('bench', () => {
  it('the guest script really writes, reads and hashes SIZE MiB, names the drivers, and leaves no file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvf-bench-'));
    const r = sh(benchScript({ dir, sizeMiB: 4, blockKiB: 64 }, ['disk-write', 'disk-read', 'cpu']));
    const p = parseBench(r.stdout);
    expect(r.status, r.stderr).toBe(0);
    expect(p.errors).toEqual([]);
    for (const w of ['disk-write', 'disk-read', 'cpu'] as const) expect(p.mbps[w]).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/^result disk-write 4194304 \d+$/m);
    expect(p.disk).toMatch(/^\S+$/);
    expect(p.nic).toMatch(/^\S+$/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a missing directory is one clear line, exit 3', () => {
    const r = sh(benchScript({ dir: '/nonexistent/kvmforge', sizeMiB: 1, blockKiB: 4 }, ['cpu']));
    expect(r.status).toBe(3);
    expect(r.stderr.trim()).toBe('bench directory /nonexistent/kvmforge is missing or not writable');
  });

  it('a failing workload is reported by name with dd’s reason (and a hint for O_DIRECT), the others still run', () => {
    // a dd that fails as it does on a full disk, and as it does on a tmpfs without O_DIRECT (kernels < 6.6)
    const dir = mkdtempSync(join(tmpdir(), 'kvf-bench-'));
    for (const [why, expected] of [
      [
        "dd: error writing '$f': No space left on device",
        /^disk-write: dd: error writing '.*\.kvmforge-bench\.\d+': No space left on device$/,
      ],
      [
        "dd: failed to open '$f': Invalid argument",
        /Invalid argument \(no O_DIRECT here: is it a tmpfs\? choose a directory on the disk to measure with --dir\)$/,
      ],
    ] as const) {
      const bin = mkdtempSync(join(tmpdir(), 'kvf-fakedd-'));
      writeFileSync(
        join(bin, 'dd'),
        `#!/bin/sh\nfor a; do case $a in of=*) f=\${a#of=};; esac; done\necho "${why}" >&2\nexit 1\n`,
        { mode: 0o755 },
      );
      const r = sh(`PATH=${bin}:$PATH\n${benchScript({ dir, sizeMiB: 1, blockKiB: 4 }, ['disk-write', 'cpu'])}`);
      const p = parseBench(r.stdout);
      expect(p.errors).toEqual([expect.stringMatching(expected)]);
      expect(p.mbps.cpu).toBeGreaterThan(0);
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a hostile --dir is data, never code', () => {
    for (const v of [
      `/tmp/x'; touch kvmforge-pwned; '`,
      '/tmp/$(touch kvmforge-pwned)',
      '/tmp/`touch kvmforge-pwned`',
    ]) {
      const s = benchScript({ dir: v, sizeMiB: 1, blockKiB: 4 }, [...WORKLOADS]);
      expect(exposed(s, 'touch kvmforge-pwned'), v).toEqual([]);
      expect(spawnSync('sh', ['-n', '-c', s]).status).toBe(0);
    }
  });

  it('parses results as MB/s and medians the runs', () => {
    const p = parseBench(
      'disk virtio_blk\nnic e1000\nresult disk-write 104857600 2000000000\nresult cpu 1000000 1000000\nnoise\n',
    );
    expect(p).toEqual({
      disk: 'virtio_blk',
      nic: 'e1000',
      mbps: { 'disk-write': 104857600 / 1e6 / 2, cpu: 1000 },
      errors: [],
    });
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it('the table: workloads down, guests across, the ratio to the first, a failed guest as one line', () => {
    const t = benchTable(
      [
        { host: 'fast', disk: 'virtio_blk', nic: 'virtio_net', results: { 'disk-write': 200, cpu: 50 } },
        { host: 'slow', disk: 'ata_piix', nic: 'e1000', results: { 'disk-write': 20, cpu: 49 } },
        { host: 'gone', results: {}, error: 'connect ECONNREFUSED' },
      ],
      ['disk-write', 'cpu'],
      { dir: '/var/tmp', sizeMiB: 64, blockKiB: 4 },
      3,
    ).split('\n');
    expect(t[0]).toBe('64 MiB per workload, median of 3 runs; higher is better');
    expect(t[1]).toMatch(/^MB\/s +fast +slow +slow ÷ fast$/);
    expect(t[2]).toMatch(/^disk driver +virtio_blk +ata_piix$/);
    expect(t[4]).toMatch(/^disk write \(dd bs=4k, O_DIRECT\) +200 +20\.0 +0\.10×$/);
    expect(t[5]).toMatch(/^cpu \(sha256\) +50\.0 +49\.0 +0\.98×$/);
    expect(t[6]).toBe('gone: FAILED: connect ECONNREFUSED');
  });

  it('--thesis: the unoptimized ÷ optimized ratios beside the thesis’s own, and whether the direction holds', () => {
    // the figures of README's lab example (virtio lab1, IDE + e1000 lab2, under TCG)
    const vms = [
      { host: 'lab1', results: { 'disk-write': 128, 'disk-read': 362, network: 6.0, cpu: 26.3 } },
      { host: 'lab2', results: { 'disk-write': 98.5, 'disk-read': 246, network: 7.1, cpu: 25.4 } },
    ];
    const t = thesisComparison(vms, ['disk-write', 'disk-read', 'network', 'cpu']);
    expect(t[0]).toBe("the thesis's chapter 7, lab1 as its optimized VM and lab2 as the unoptimized twin:");
    expect(t[1]).toMatch(/^workload +lab2 ÷ lab1 +thesis unoptimized ÷ optimized +optimized ahead$/);
    expect(t[2]).toMatch(
      /^disk write +0\.77× +0\.69× \(27\.8 \/ 40\.3 MB\/s, cp loop of a 7 GB file ×6, table 7-3\) +yes/,
    );
    expect(t[3]).toMatch(/^disk read +0\.68× +0\.69× .* +yes, as in the thesis$/);
    expect(t[4]).toMatch(/^network +1\.18× +0\.53× \(26\.6 \/ 49\.9 MB\/s, scp of a 7 GB file to the host\) +NO$/);
    expect(t[5]).toMatch(/^cpu +0\.97× +- \(it compared tiers: super-pi 40\.86 s ordinary vs 39\.83 s fifo99\) +-$/);
    expect(t.at(-1)).toMatch(/^Absolute figures differ .*the direction, the optimized guest ahead\.$/);
    expect(thesisComparison([vms[0], { host: 'lab2', results: {}, error: 'refused' }], ['cpu'])).toEqual([
      'thesis comparison: needs both guests’ results',
    ]);
  });
});
