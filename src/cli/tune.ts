// `kvmforge tune [--plan]`: every selected host at once; a failing host is one line, the others go on.
import { ConfigError } from '../core/errors.ts';
import { quote } from '../core/sh.ts';
import type { Host, Transport } from '../core/types.ts';
import type { HostLoop } from '../runner/session.ts';
import { applyScript, fmt, planTune, readRunning, wantedTiers, type ThreadChange, type Want } from '../insight/tune.ts';

interface HostTune {
  host: string;
  changes: ThreadChange[];
  /** VMs whose threads were already right. */
  inStep: string[];
  notes: string[];
  error?: string;
}

export async function tuneCommand(
  hosts: Host[],
  inventoryFile: string,
  f: { plan?: boolean; json?: boolean },
  loop: HostLoop,
): Promise<number> {
  const wants = new Map(hosts.map((h) => [h.name, wantedTiers(h)])); // bad domains_vms: exit 2, nothing touched
  if (![...wants.values()].some((w) => w.length))
    throw ConfigError.one(
      `tune: no VM in ${inventoryFile} names a tier (domains_vms: - { name: …, tier: rr90 }); tiers: ordinary, ` +
        `rr90, rr99, fifo99`,
    );
  const results = (
    await loop(
      hosts.filter((h) => wants.get(h.name)!.length),
      (s) => tuneHost(s.host.name, s.transport, wants.get(s.host.name)!, Boolean(f.plan)),
      { facts: false },
    )
  ).map((r): HostTune => (r.ok ? r.value : { host: r.host, changes: [], inStep: [], notes: [], error: r.error }));
  const n = results.reduce((k, r) => k + r.changes.length, 0);
  if (f.json) process.stdout.write(JSON.stringify({ mode: f.plan ? 'plan' : 'apply', hosts: results }, null, 2) + '\n');
  else {
    for (const r of results) {
      for (const c of r.changes)
        process.stdout.write(
          `${r.host}: ${c.vm} vCPU ${c.index} (thread ${c.tid}): ${fmt(c.before)} → ${fmt(c.after)}\n`,
        );
      for (const v of r.inStep) process.stdout.write(`${r.host}: ${v}: vCPU threads already as its tier wants\n`);
      for (const note of r.notes) process.stdout.write(`${r.host}: note: ${note}\n`);
      if (r.error) process.stdout.write(`${r.host}: FAILED: ${r.error}\n`);
    }
    process.stdout.write(`${n} change(s) ${f.plan ? 'would be made (plan: nothing changed)' : 'made'}\n`);
  }
  return results.some((r) => r.error) ? 1 : 0;
}

async function tuneHost(name: string, t: Transport, want: Want[], plan: boolean): Promise<HostTune> {
  const out: HostTune = { host: name, changes: [], inStep: [], notes: [] };
  try {
    {
      const read = () =>
        readRunning(
          t,
          want.map((w) => w.vm),
        );
      const before = await read();
      const problems = [...before.problems];
      out.changes = planTune(want, before.vms);
      out.inStep = want
        .filter((w) => before.vms.some((v) => v.name === w.vm && !v.error) && !out.changes.some((c) => c.vm === w.vm))
        .map((w) => w.vm);
      if (before.rtRuntimeUs === -1 && want.some((w) => w.sched.policy !== 'other'))
        out.notes.push(
          'RT throttling is off (kernel.sched_rt_runtime_us = -1): a busy real-time vCPU can starve this host',
        );
      for (const w of want) {
        const vm = before.vms.find((v) => v.name === w.vm);
        if (!vm || vm.error) continue;
        if (vm.via !== 'libvirt') out.notes.push(`${w.vm} is not libvirt's: its tier lasts until its QEMU restarts`);
        else {
          const x = await t.exec(`virsh -q dumpxml --domain ${quote(w.vm)}`, { sudo: true, timeoutMs: 60_000 });
          const sched = [...x.stdout.matchAll(/<vcpusched [^>]*scheduler='(\w+)'(?: priority='(\d+)')?/g)].map(
            (m) => `${m[1]} ${m[2] ?? 0}`,
          );
          const wanted = w.sched.policy === 'other' ? [] : [`${w.sched.policy} ${w.sched.rtprio}`];
          const inStep = sched.length ? sched.every((s) => wanted.includes(s)) : !wanted.length;
          if (!inStep)
            out.notes.push(
              `${w.vm}'s domain XML has ` +
                `${sched.length ? `<vcpusched> ${[...new Set(sched)].join(', ')}` : 'no <vcpusched>'}, its tier is ` +
                `${w.tier}: \`kvmforge apply --steps domains\` makes the tier survive a restart`,
            );
        }
      }
      if (!plan && out.changes.length) {
        const r = await t.exec(applyScript(out.changes), { sudo: true, timeoutMs: 60_000 });
        if (r.code !== 0) problems.push(r.stderr.trim().split('\n').pop() || `chrt/renice failed (exit ${r.code})`);
        else {
          const after = await read();
          const still = planTune(want, after.vms);
          if (still.length)
            problems.push(
              `not converged: ${still.map((c) => `${c.vm} vCPU ${c.index} is ${fmt(c.before)}`).join('; ')}`,
            );
        }
      }
      if (problems.length) out.error = problems.join('; ');
    }
  } catch (e) {
    out.error = (e as Error).message;
  }
  return out;
}
