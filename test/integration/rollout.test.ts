// Rolling roll-outs on namespace hosts: batches (--serial), a failure budget (--max-fail-percentage) that
// stops the roll-out after the failing batch, a re-run that continues, and drift checks for schedulers.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../../src/runner/report.ts';
import { NsLab } from '../harness/nshosts.ts';

const lab = new NsLab(6);
const DIR = '/etc/kvmforge-rollout';
const files = (h: string, bad = false) => [
  'files:',
  `  - path: ${bad ? '/proc/kvmforge-cannot-write-here' : `${DIR}/${h}.conf`}`,
  `    content: "${h} v1\\n"`,
];

beforeAll(() => lab.up(), 300_000);
afterAll(() => lab.down());

describe('rolling batches and a failure budget', () => {
  it('a host failing in batch 2 stops the roll-out; batch 3 is never touched; --retry-failed continues', async () => {
    const hosts = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'];
    const inv = lab.inventory(
      join(lab.dir, 'rollout.yaml'),
      Object.fromEntries(hosts.map((h) => [h, files(h, h === 'h3')])),
    );
    const r = await lab.cli(['apply', '-i', inv, '--serial', '2', '--steps', 'files', '--json']);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.rollout?.batches).toEqual([
      ['h1', 'h2'],
      ['h3', 'h4'],
      ['h5', 'h6'],
    ]);
    expect(report.rollout?.stopped).toMatch(
      /1 of 2 host\(s\) failed in batch 2 of 3 \(more than --max-fail-percentage 0%\)/,
    );
    expect(Object.fromEntries(report.hosts.map((h) => [h.host, h.status]))).toEqual({
      h1: 'changed',
      h2: 'changed',
      h3: 'failed',
      h4: 'changed',
      h5: 'not run',
      h6: 'not run',
    });
    for (const h of ['h5', 'h6']) expect(existsSync(lab.hostPath(h, `${DIR}/${h}.conf`))).toBe(false);
    // the summary says which hosts were done, which failed, which were never touched
    const text = await lab.cli(['apply', '-i', inv, '--serial', '2', '--steps', 'files']);
    expect(text.stdout, text.stderr).toMatch(
      /roll-out stopped: .*\n {2}done: h1, h2, h4\n {2}failed: h3\n {2}never touched: h5, h6/,
    );
    // fixed, the roll-out continues where it stopped: h3, h5, h6 only
    lab.inventory(inv, Object.fromEntries(hosts.map((h) => [h, files(h)])));
    const again = await lab.cli(['apply', '-i', inv, '--serial', '2', '--steps', 'files', '--retry-failed', '--json']);
    expect(again.code).toBe(0);
    expect((JSON.parse(again.stdout) as Report).hosts.map((h) => h.host)).toEqual(['h3', 'h5', 'h6']);
    for (const h of hosts) expect(existsSync(lab.hostPath(h, `${DIR}/${h}.conf`))).toBe(true);
  }, 300_000);

  it('a failure within the budget does not stop it; serial as a list and as an inventory var', async () => {
    const hosts = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'];
    const inv = lab.inventory(
      join(lab.dir, 'budget.yaml'),
      Object.fromEntries(hosts.map((h) => [h, files(h, h === 'h2')])),
      ['kvmforge_serial: [1, "50%"]'],
    );
    const r = await lab.cli(['apply', '-i', inv, '--steps', 'files', '--max-fail-percentage', '50', '--json']);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.rollout?.batches).toEqual([['h1'], ['h2', 'h3', 'h4'], ['h5', 'h6']]);
    expect(report.rollout?.stopped).toBeUndefined();
    expect(report.hosts.filter((h) => h.status === 'not run')).toEqual([]);
    expect(r.code).toBe(1); // h2 failed all the same
  }, 300_000);

  it('bad serial values are exit 2 before any connection', async () => {
    const inv = lab.inventory(join(lab.dir, 'bad.yaml'));
    for (const [args, re] of [
      [['--serial', '0'], /--serial '0': a batch needs at least one host/],
      [['--serial', '150%'], /--serial '150%': a percentage must be over 0% and at most 100%/],
      [['--serial', 'x'], /--serial 'x': expected a number of hosts/],
      [['--serial', '2', '--max-fail-percentage', '101'], /--max-fail-percentage '101'/],
    ] as [string[], RegExp][]) {
      const r = await lab.cli(['apply', '-i', inv, '--steps', 'files', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(re);
    }
    writeFileSync(join(lab.dir, 'mixed.yaml'), '');
    const mixed = lab.inventory(join(lab.dir, 'mixed.yaml'), {
      h1: ['kvmforge_serial: 2'],
      h2: ['kvmforge_serial: 3'],
    });
    const m = await lab.cli(['apply', '-i', mixed, '--steps', 'files', '-l', 'h1,h2']);
    expect(m.code).toBe(2);
    expect(m.stderr).toMatch(/h2\.kvmforge_serial: differs from h1's \(2\)/);
  });
});

describe('drift checks', () => {
  it('plan --detailed-exitcode: 0 when converged, 3 with the drifted steps named when a host drifted', async () => {
    const inv = lab.inventory(join(lab.dir, 'drift.yaml'), { h1: files('h1'), h2: files('h2') });
    expect((await lab.cli(['apply', '-i', inv, '--steps', 'files', '-l', 'h1,h2'])).code).toBe(0);
    const clean = await lab.cli(['plan', '-i', inv, '--steps', 'files', '-l', 'h1,h2', '--detailed-exitcode']);
    expect(clean.code).toBe(0);
    lab.inHost('h2', `echo changed by hand > ${DIR}/h2.conf`);
    const r = await lab.cli(['plan', '-i', inv, '--steps', 'files', '-l', 'h1,h2', '--detailed-exitcode', '--json']);
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).drift).toEqual({ h2: ['files'] });
    const plain = await lab.cli(['plan', '-i', inv, '--steps', 'files', '-l', 'h1,h2']);
    expect(plain.code).toBe(0); // without the flag, pending changes are not a failure
  });
});
