// The thesis's derived columns and verdict from KVM's counters (fixtures: this machine's nested KVM
// never counts io_exits, so the I/O-bound side can only be shown with numbers here).
import { describe, expect, it } from 'vitest';
import { COUNTERS, derive, exitsScript, exitsTable, type Counters, type VmSample } from '../../src/insight/exits.ts';
import { spawnSync } from 'node:child_process';

const c = (o: Partial<Counters>): Counters => ({
  ...(Object.fromEntries(COUNTERS.map((k) => [k, 0])) as Counters),
  ...o,
});
const vm = (first: Partial<Counters>, second: Partial<Counters>, extra: Partial<VmSample> = {}): VmSample => ({
  pid: 42,
  name: 'win2003',
  via: 'libvirt',
  kvm: true,
  vcpus: 2,
  first: c(first),
  second: c(second),
  ...extra,
});

describe('exit statistics', () => {
  it('the thesis’s Windows 2003 guest: 55% I/O over the interval → I/O-bound, 45% handled in the kernel', () => {
    const r = derive(vm({ exits: 1000, io_exits: 100 }, { exits: 11_000, io_exits: 4000, mmio_exits: 1600 }), 5);
    expect(r.rate).toBe(2000);
    expect(r.ioRate).toBe(1100);
    expect(r.ioShare).toBeCloseTo(0.55);
    expect(r.inKernel).toBeCloseTo(0.45);
    expect(r.verdict).toMatch(/^I\/O-bound: use virtio/);
    expect(r.basis).toBe('interval');
  });
  it('an optimized VM: 7% I/O → compute-bound', () => {
    const r = derive(vm({ exits: 0 }, { exits: 10_000, io_exits: 500, mmio_exits: 200 }), 1);
    expect(r.ioShare).toBeCloseTo(0.07);
    expect(r.verdict).toBe('compute-bound');
  });
  it('exactly half is not yet I/O-bound (the thesis: above 50%)', () => {
    expect(derive(vm({}, { exits: 100, io_exits: 50 }), 1).verdict).toBe('compute-bound');
    expect(derive(vm({}, { exits: 100, io_exits: 51 }), 1).verdict).toMatch(/^I\/O-bound/);
  });
  it('nothing moved in the interval: shares since the VM started, and said so', () => {
    const r = derive(vm({ exits: 500, io_exits: 400 }, { exits: 500, io_exits: 400 }), 2);
    expect(r.rate).toBe(0);
    expect(r.basis).toBe('since start');
    expect(r.ioShare).toBeCloseTo(0.8);
    expect(exitsTable('h1', [r], 2)).toContain('(since start: nothing moved in the interval)');
  });
  it('a VM with no counters keeps its reason; no exits at all is idle', () => {
    expect(
      derive({ pid: 1, name: 'x', via: 'none', kvm: true, vcpus: 0, error: 'no QMP monitor to ask' }, 1).error,
    ).toBe('no QMP monitor to ask');
    expect(derive(vm({}, {}), 1).verdict).toBe('idle (no exits)');
  });
  it('the host script is valid Python and sh, and quotes the VM names it is given', () => {
    const s = exitsScript(2, ["it's; touch /tmp/x", '-rf']);
    expect(s.split('\n')[1]).toBe(`python3 - 2 'it'\\''s; touch /tmp/x' '-rf' <<'KVMFORGE_PY'`);
    expect(spawnSync('sh', ['-n'], { input: s }).status).toBe(0);
    const py = s.split('\n').slice(2, -1).join('\n');
    const r = spawnSync('python3', ['-c', 'import ast,sys; ast.parse(sys.stdin.read())'], { input: py });
    expect(r.status, r.stderr.toString()).toBe(0);
  });
});

describe('the exits plot', () => {
  it('is valid SVG with stacked bars in proportion, labels escaped', async () => {
    const { barChart } = await import('../../src/insight/plot.ts');
    const svg = barChart('t <1>', 'exits/s', [
      {
        label: 'a&b',
        parts: [
          { name: 'io', value: 30 },
          { name: 'other', value: 70 },
        ],
      },
      {
        label: 'c',
        parts: [
          { name: 'io', value: 0 },
          { name: 'other', value: 50 },
        ],
      },
    ]);
    expect(spawnSync('xmllint', ['--noout', '-'], { input: svg }).status).toBe(0);
    const h = [
      ...svg.matchAll(
        /data-label="([^"]+)" data-part="(\w+)" data-value="[^"]+" x="[^"]+" y="[^"]+" width="70" height="([\d.]+)"/g,
      ),
    ].map((m) => [m[1], m[2], Number(m[3])]);
    expect(h.map((x) => x.slice(0, 2))).toEqual([
      ['a&amp;b', 'io'],
      ['a&amp;b', 'other'],
      ['c', 'io'],
      ['c', 'other'],
    ]);
    expect((h[0][2] as number) + (h[1][2] as number)).toBeCloseTo(2 * (h[3][2] as number), 1); // 100 vs 50
    expect(svg).toContain('t &lt;1&gt;');
  });
});
