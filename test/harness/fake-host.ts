// A fake host for step fixtures: facts are data. The basic facts come from a captured batch (parsed) or a
// Facts object; any other fact is answered by its name from the fixture's captured outputs (`name`, or
// `prefix:*` for a fact with arguments), files from `files`. A fact the fixture lacks fails the test.
import { readFileSync } from 'node:fs';
import { fileProbe } from '../../src/core/file.ts';
import type { Change, Fact, FactValues, FileSpec, Host, StepContext } from '../../src/core/types.ts';
import { parseFacts, type Facts } from '../../src/facts/host.ts';
import { parseInventory } from '../../src/inventory/load.ts';
import { catalog } from '../../steps/index.ts';

export const debianFacts = (): Facts => parseFacts(readFileSync('test/fixtures/facts/debian12-lab.txt', 'utf8'));
export const rockyFacts = (): Facts => parseFacts(readFileSync('test/fixtures/facts/rocky9-synthetic.txt', 'utf8'));

/** An inventory read as the CLI reads it (with every step's vars). */
export const parseInv = (text: string, file = 'inv.yaml') => parseInventory(text, file, catalog);

export function host(vars: string[] = []): Host {
  const text = ['all:', '  hosts:', '    h1:', ...vars.map((v) => `      ${v}`)].join('\n') + '\n';
  return parseInv(text).hosts[0];
}

export interface Fake {
  files?: Record<string, string | { content: string; mode?: string; owner?: string } | null>;
  /** Captured outputs by fact name (`prefix:*` matches any argument). */
  outputs?: Record<string, string>;
}

/** The basic facts by their names, from a Facts object (tests change it freely). */
function basicValues(f: Facts): Record<string, unknown> {
  return {
    hostname: f.hostname,
    os: f.os,
    kernel: f.kernel,
    arch: f.arch,
    boot_id: f.bootId,
    cpu: f.cpu,
    meminfo: f.memory,
    modules: f.modules,
    builtin: f.builtinModules,
    cmdline: f.cmdline,
    sysctl: f.sysctl,
    ksm: f.ksm,
    addr: f.interfaces,
    route: f.defaultRoute,
    init: f.init,
    pkg: f.packageManager,
    boot: f.bootLoader,
    mounts: f.mounts,
    qemu: f.versions.qemu,
    libvirt: f.versions.libvirt,
    user: f.user,
  };
}

export function fakeCtx(
  facts: Facts,
  fake: Fake = {},
  h = host(),
): StepContext & { probed: string[]; asked: string[] } {
  const probed: string[] = [];
  const asked: string[] = [];
  const values = basicValues(facts);
  const fileAnswer = (path: string) => {
    const f = fake.files?.[path];
    if (f === undefined || f === null) return 'MISSING';
    const spec = typeof f === 'string' ? { content: f } : f;
    return `${spec.mode ?? '644'} ${spec.owner ?? 'root:root'}\n${Buffer.from(spec.content).toString('base64')}`;
  };
  const answer = (f: Fact<unknown>): unknown => {
    asked.push(f.name);
    if (f.name in values) return values[f.name];
    probed.push(f.command);
    const file = /^(file|text):(.*)$/s.exec(f.name);
    if (file && f.command === fileProbe(file[2])) return f.parse(fileAnswer(file[2]), 0, '');
    const out =
      fake.outputs?.[f.name] ??
      Object.entries(fake.outputs ?? {}).find(([k]) => k.endsWith(':*') && f.name.startsWith(k.slice(0, -1)))?.[1];
    if (out === undefined)
      throw new Error(`the fixture has no fact '${f.name}' (add its captured output to the fixture)`);
    return f.parse(out.replace(/\n$/, ''), 0, '');
  };
  return {
    host: h,
    probed,
    asked,
    read: async <F extends readonly Fact<unknown>[]>(...fs: F) => fs.map(answer) as FactValues<F>,
  };
}

/** A change with every kind's fields readable (tests look into them without narrowing). */
export type LooseChange = Change & {
  script?: string;
  file?: FileSpec;
  verify?: string;
  commit?: string;
  rollback?: string;
  rolledBack?: string;
  timeoutS?: number;
  check?: { verify: string; commit: string };
  packages?: string[];
  before?: string;
  after?: string;
};
export const loose = (cs: Change[]) => cs as LooseChange[];
