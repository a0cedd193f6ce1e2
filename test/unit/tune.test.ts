// `kvmforge tune`'s planning (fixtures): which threads change, the commands, the tiers from the inventory.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  applyScript,
  fmt,
  parseRead,
  planTune,
  readScript,
  wantedTiers,
  type RunningVm,
} from '../../src/insight/tune.ts';
import { host } from '../harness/fake-host.ts';

const running: RunningVm[] = [
  {
    name: 'db',
    pid: 10,
    via: 'libvirt',
    vcpus: [
      { index: 0, tid: 11, policy: 'fifo', rtprio: 99, nice: 0 },
      { index: 1, tid: 12, policy: 'other', rtprio: 0, nice: 0 },
    ],
  },
  { name: 'web', pid: 20, via: 'qmp', vcpus: [{ index: 0, tid: 21, policy: 'other', rtprio: 0, nice: 0 }] },
];

describe('tune', () => {
  it('tiers come from domains_vms; VMs without one are left alone', () => {
    const h = host([
      'domains_vms:',
      '  - { name: db, tier: fifo99 }',
      '  - { name: web, tier: rr99 }',
      '  - { name: plain }',
    ]);
    expect(wantedTiers(h)).toEqual([
      { vm: 'db', tier: 'fifo99', sched: { policy: 'fifo', rtprio: 99, nice: 0 } },
      { vm: 'web', tier: 'rr99', sched: { policy: 'rr', rtprio: 99, nice: -10 } },
    ]);
  });
  it('plans only the threads that differ', () => {
    const want = wantedTiers(
      host([
        'domains_vms:',
        '  - { name: db, tier: fifo99 }',
        '  - { name: web, tier: ordinary }',
        '  - { name: gone, tier: rr90 }',
      ]),
    );
    const plan = planTune(want, running);
    expect(plan.map((c) => `${c.vm}/${c.index} ${fmt(c.before)} → ${fmt(c.after)}`)).toEqual([
      'db/1 other nice 0 → fifo 99 nice 0',
    ]);
  });
  it('applies with chrt and renice per thread, quoted, and stops at the first failure', () => {
    const s = applyScript([
      {
        vm: "it's",
        index: 0,
        tid: 11,
        before: { policy: 'other', rtprio: 0, nice: 0 },
        after: { policy: 'rr', rtprio: 90, nice: -5 },
      },
    ]);
    expect(s).toBe(
      `chrt '-r' -p 90 11 && renice -n '-5' -p 11 >/dev/null || { echo 'cannot set vCPU 0 of it'\\''s (thread 11)' ` +
        `>&2; exit 1; }`,
    );
    expect(spawnSync('sh', ['-n'], { input: s }).status).toBe(0);
    expect(spawnSync('sh', ['-n'], { input: readScript(['a b', '--x']) }).status).toBe(0);
  });
  it('reads kernel policy numbers as names', () => {
    const out = JSON.stringify({
      vms: [{ name: 'x', pid: 1, via: 'qmp', vcpus: [{ index: 0, tid: 2, policy: 1, rtprio: 99, nice: 0 }] }],
      missing: ['y'],
      rtRuntimeUs: 950000,
    });
    expect(parseRead(`noise\n${out}\n`)).toEqual({
      vms: [{ name: 'x', pid: 1, via: 'qmp', vcpus: [{ index: 0, tid: 2, policy: 'fifo', rtprio: 99, nice: 0 }] }],
      missing: ['y'],
      rtRuntimeUs: 950000,
    });
  });
});
