// A fake host for step fixtures: facts in, probe answers from a table; an unexpected probe fails the test.
import { readFileSync } from 'node:fs';
import { parseFacts, type Facts } from '../../src/facts/gather.ts';
import { parseInventory } from '../../src/inventory/load.ts';
import type { Host, StepContext } from '../../src/core/types.ts';

export const debianFacts = (): Facts => parseFacts(readFileSync('test/fixtures/facts/debian12-lab.txt', 'utf8'));
export const rockyFacts = (): Facts => parseFacts(readFileSync('test/fixtures/facts/rocky9-synthetic.txt', 'utf8'));

export function host(vars: string[] = []): Host {
  const text = ['all:', '  hosts:', '    h1:', ...vars.map((v) => `      ${v}`)].join('\n') + '\n';
  return parseInventory(text, 'inv.yaml').hosts[0];
}

export interface Fake {
  files?: Record<string, string | { content: string; mode?: string; owner?: string } | null>;
  probes?: [RegExp, string][];
}

/** The path in a file probe's `[ -f PATH ]`, unquoted as sh would (any name, quotes and all). */
function probedPath(script: string): string {
  const word = /\[ -f ((?:'[^']*'|\\.|[^\s'\\])+) \]/.exec(script)![1];
  return [...word.matchAll(/'([^']*)'|\\(.)|([^'\\])/gs)].map((m) => m[1] ?? m[2] ?? m[3]).join('');
}

export function fakeCtx(facts: Facts, fake: Fake = {}, h = host()): StepContext & { probed: string[] } {
  const probed: string[] = [];
  const fileAnswer = (path: string) => {
    const f = fake.files?.[path];
    if (f === undefined || f === null) return 'MISSING\n';
    const spec = typeof f === 'string' ? { content: f } : f;
    return `${spec.mode ?? '644'} ${spec.owner ?? 'root:root'}\n${Buffer.from(spec.content).toString('base64')}\n`;
  };
  const probe = async (script: string) => {
    probed.push(script);
    if (script.includes("echo 'MISSING'") || script.includes('echo MISSING')) {
      const parts = script.split(/^(?=echo '@@file\d+')/m);
      if (parts.length > 1 || /^echo '@@file/.test(script)) {
        return parts
          .map((p) => {
            const tag = /^echo '(@@file\d+)'/.exec(p)?.[1];
            const path = probedPath(p);
            return `${tag}\n${fileAnswer(path)}`;
          })
          .join('');
      }
      return fileAnswer(probedPath(script));
    }
    for (const [re, out] of fake.probes ?? []) if (re.test(script)) return out;
    throw new Error(`unexpected probe (add it to the fixture): ${script}`);
  };
  return {
    host: h,
    facts,
    probed,
    probe,
    readFile: async (path) => {
      const f = fake.files?.[path];
      if (f === undefined || f === null) return null;
      return typeof f === 'string' ? f : f.content;
    },
  };
}
