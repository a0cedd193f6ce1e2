// A host's first round trip reads what the run's steps say their plans read first: a `files` plan is one command
// on the host (its boot id and the files' state), not the host's modules, addresses and versions as well; a step
// that says nothing still gets every basic fact there. Runs against this machine through the local transport,
// which only reads (facts).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Step, strictFact } from '../../src/core/types.ts';
import { bootId, interfaces } from '../../src/facts/host.ts';
import { FactReader } from '../../src/facts/reader.ts';
import { LocalTransport } from '../../src/transport/local.ts';
import { parseInventory } from '../../src/inventory/load.ts';
import { Journal, Secrets } from '../../src/runner/journal.ts';
import { run } from '../../src/runner/run.ts';
import { connect } from '../../src/transport/index.ts';
import { catalog, stepByName } from '../../steps/index.ts';

async function planScripts(steps: Step<any>[], vars: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'kvmforge-first-'));
  const inv = parseInventory(
    ['all:', '  hosts:', '    here:', '      ansible_connection: local', ...vars.map((v) => `      ${v}`)].join('\n'),
    'inv.yaml',
    catalog,
  );
  const scripts: string[] = [];
  const report = await run(inv.hosts, {
    mode: 'plan',
    steps,
    forks: 1,
    verify: false,
    connect: { knownHosts: '/dev/null', acceptNewHostKeys: false },
    journal: new Journal(join(dir, 'journal'), new Secrets()),
    connectFn: async (h, o) => {
      const t = await connect(h, o);
      return {
        ...t,
        exec: (s, eo) => {
          scripts.push(s);
          return t.exec(s, eo);
        },
        put: t.put.bind(t),
        get: t.get.bind(t),
        close: t.close.bind(t),
      };
    },
  });
  return { dir, scripts, report };
}

const files = stepByName('files')!;

describe('the first round trip on a host', () => {
  it('of a files plan reads the boot id and the files only: one command, and the plan is right', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmforge-files-'));
    writeFileSync(join(dir, 'a.conf'), 'a\n');
    const { scripts, report } = await planScripts(
      [files],
      [
        'files:',
        `  - { path: ${join(dir, 'a.conf')}, content: "a\\n" }`, // as root (the tests are), a.conf is as wanted
        `  - { path: ${join(dir, 'b.conf')}, content: "b\\n" }`,
      ],
    );
    expect(report.hosts[0].error ?? '').toBe('');
    expect(scripts).toHaveLength(1);
    expect(scripts[0]).toContain('/proc/sys/kernel/random/boot_id');
    expect(scripts[0]).toContain(join(dir, 'a.conf'));
    expect(scripts[0]).toContain(join(dir, 'b.conf'));
    expect(scripts[0]).not.toContain('ip -j -d addr show');
    expect(scripts[0]).not.toContain('/proc/modules');
    expect(report.hosts[0].steps[0].changes.map((c) => c.summary)).toEqual([`create ${join(dir, 'b.conf')}`]);
  });

  it('of a step that does not say what it reads holds every basic fact (its read costs nothing more)', async () => {
    const step: Step<null> = {
      name: 'nic-read',
      description: 'reads the interfaces',
      doc: '',
      vars: {},
      params: () => null,
      async plan(ctx) {
        await ctx.read(interfaces);
        return [];
      },
    };
    const { scripts, report } = await planScripts([step], []);
    expect(report.hosts[0].error ?? '').toBe('');
    expect(scripts).toHaveLength(1);
    expect(scripts[0]).toContain('ip -j -d addr show');
    expect(scripts[0]).toContain('/proc/modules');
  });
});

describe('a fact read ahead', () => {
  it('that fails, fails only the read that asks for it (as if it had been read alone)', async () => {
    const bad = strictFact('broken', 'echo nope >&2; exit 3', (out) => out);
    const inv = parseInventory('all:\n  hosts:\n    here:\n      ansible_connection: local\n', 'inv.yaml', catalog);
    const t = new LocalTransport();
    let execs = 0;
    const reader = new FactReader(inv.hosts[0], () => ({
      ...t,
      exec: (s, o) => {
        execs++;
        return t.exec(s, o);
      },
      put: t.put.bind(t),
      get: t.get.bind(t),
      close: t.close.bind(t),
    }));
    reader.readAhead([bad]);
    const [boot] = await reader.read(bootId);
    expect(boot).toMatch(/^[0-9a-f-]{36}$/);
    await expect(reader.read(bad)).rejects.toThrow('reading broken failed (exit 3): nope');
    expect(await reader.read(bootId)).toEqual([boot]);
    expect(execs).toBe(1);
  });
});
