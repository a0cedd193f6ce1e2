import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { junit, summaryTable, type Report } from '../../src/runner/report.ts';

const nasty = 'bad \x00 nul \x07 bell \x1b[31mred\x1b[0m ]]> <tag attr="x"> & \ud800 lone \u{1F600} ok \uffff';

function report(steps: string[]): Report {
  return {
    mode: 'apply',
    started: new Date(0).toISOString(),
    ms: 1234,
    hosts: [
      {
        host: 'h<1>',
        status: 'failed',
        error: nasty,
        ms: 1000,
        steps: steps.map((s, i) => ({
          step: s,
          status: i === 1 ? 'failed' : i === 0 ? 'changed' : 'ok',
          changes: i === 0 ? [{ summary: nasty }] : [],
          error: i === 1 ? nasty : undefined,
          ms: 10,
        })),
      },
      { host: 'h2', status: 'interrupted', steps: [], ms: 0 },
    ],
    interrupted: true,
  };
}

describe('reports', () => {
  it('says once per step and reason why a step was skipped, naming the hosts', () => {
    const host = (name: string, note: string) => ({
      host: name,
      status: 'ok' as const,
      ms: 5,
      steps: [
        { step: 'files', status: 'ok' as const, changes: [], ms: 1 },
        { step: 'sriov', status: 'skipped' as const, changes: [], note, ms: 0 },
      ],
    });
    const r: Report = {
      mode: 'plan',
      started: new Date(0).toISOString(),
      ms: 10,
      hosts: [
        host('a', 'no VFs asked for (sriov_vfs, sriov_max_vfs)'),
        host('b', 'no VFs asked for (sriov_vfs, sriov_max_vfs)'),
      ],
    };
    expect(summaryTable(r, ['files', 'sriov'])).toContain(
      'sriov skipped on every host: no VFs asked for (sriov_vfs, sriov_max_vfs)',
    );
    r.hosts.push(host('c', 'off (sriov_enabled: false)'));
    const lines = summaryTable(r, ['files', 'sriov']).split('\n');
    expect(lines).toContain('sriov skipped on a, b: no VFs asked for (sriov_vfs, sriov_max_vfs)');
    expect(lines).toContain('sriov skipped on c: off (sriov_enabled: false)');
  });

  it('JUnit XML stays valid whatever a message holds (checked with xmllint)', () => {
    const xml = junit(report(['files', 'bridge', 'kernel']));
    execFileSync('xmllint', ['--noout', '-'], { input: xml });
    expect(xml).toContain('\\x00 nul \\x07 bell red ]]&gt; &lt;tag');
    expect(xml).not.toContain('\x1b');
  });

  it('the summary fits 100 columns however many steps there are', () => {
    const many = ['files', 'kernel', 'qemu', 'libvirt', 'bridge', 'modules', 'hugepages', 'ksm', 'boot-args', 'sriov'];
    for (const steps of [many.slice(0, 3), many, [...many, ...many.map((s) => `${s}-extra`)]]) {
      const lines = summaryTable(report(steps), steps).split('\n');
      for (const l of lines) expect([...l].length, l).toBeLessThanOrEqual(100);
      expect(lines.join('\n')).toMatch(/h2: interrupted \(Ctrl-C\) before it began/);
    }
  });
});
