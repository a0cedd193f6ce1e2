// Bad input that only the host can reveal (a NIC it lacks) fails that host as bad input: the report
// says so (the CLI exits 2) and nothing is applied. Runs against this machine through the local
// transport, which only reads (facts).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { badVar } from '../../src/core/vars.ts';
import { parseInventory } from '../../src/inventory/load.ts';
import { Journal, Secrets } from '../../src/runner/journal.ts';
import { run } from '../../src/runner/run.ts';
import type { Step } from '../../src/core/types.ts';
import { interfaces } from '../../src/facts/host.ts';

describe('runner: bad input found on a host', () => {
  it('marks the host badInput with the var’s file:line and applies nothing', async () => {
    const inv = parseInventory(
      'all:\n  hosts:\n    here:\n      ansible_connection: local\n      wanted_nic: eth9\n',
      'inv.yaml',
    );
    let applied = false;
    const step: Step<string> = {
      name: 'nic-check',
      description: 'fails on a NIC the host lacks',
      doc: '',
      vars: {},
      params: (h) => String(h.vars.wanted_nic),
      async plan(ctx, nic) {
        const [ifs] = await ctx.read(interfaces);
        if (!ifs.some((i) => i.name === nic))
          throw badVar(ctx.host, 'wanted_nic', `NIC '${nic}' does not exist on ${ctx.host.name}`);
        return [{ kind: 'script', summary: 'never', script: 'true' }];
      },
    };
    const journal = new Journal(mkdtempSync(join(tmpdir(), 'kvmforge-j-')), new Secrets());
    const report = await run(inv.hosts, {
      mode: 'apply',
      steps: [step],
      forks: 1,
      verify: false,
      connect: { knownHosts: '/dev/null', acceptNewHostKeys: false },
      journal,
      connectFn: async (h, o) => {
        const t = await (await import('../../src/transport/index.ts')).connect(h, o);
        return {
          ...t,
          exec: (s, eo) => {
            if (s === 'true') applied = true;
            return t.exec(s, eo);
          },
          put: t.put.bind(t),
          get: t.get.bind(t),
          close: t.close.bind(t),
        };
      },
    });
    expect(report.hosts[0]).toMatchObject({ status: 'failed', badInput: true });
    expect(report.hosts[0].error).toMatch(/inv\.yaml:5:19: here\.wanted_nic: NIC 'eth9' does not exist on here/);
    expect(applied).toBe(false);
  });
});
