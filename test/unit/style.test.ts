// Lines stay within 120 characters in every tracked file people write (code, shell, templates, inventories).
// Generated files are exempt: the JSON Schema (from the steps' vars), package-lock.json, captured fixtures; so
// is Markdown prose. Biome formats the TypeScript to the same width; this covers what Biome does not read.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const EXEMPT = [/^test\/fixtures\//, /\.md$/, /(^|\/)schema\.json$/, /^package-lock\.json$/, /^LICENSE$/];

describe('style', () => {
  it('no line over 120 characters outside generated files', () => {
    const files = execFileSync('git', ['ls-files'], { encoding: 'utf8' })
      .split('\n')
      .filter((f) => f && !EXEMPT.some((re) => re.test(f)));
    const long: string[] = [];
    for (const f of files) {
      let text: string;
      try {
        text = readFileSync(f, 'utf8');
      } catch {
        continue; // deleted in the working tree
      }
      text.split('\n').forEach((l, i) => {
        if ([...l].length > 120) long.push(`${f}:${i + 1} (${[...l].length})`);
      });
    }
    expect(files.length).toBeGreaterThan(100);
    expect(long).toEqual([]);
  });

  // vitest's worker must answer its runner within 60 s: a test that sleeps synchronously while it polls (a VM
  // rebooting) ended CI's run with the lab files unrun ("Timeout calling onTaskUpdate"). Waits use await.
  it('no test sleeps synchronously (Atomics.wait): waits are awaited', () => {
    const files = execFileSync('git', ['ls-files', 'test', 'bench'], { encoding: 'utf8' })
      .split('\n')
      .filter((f) => f.endsWith('.ts') && f !== 'test/unit/style.test.ts');
    expect(files.length).toBeGreaterThan(50);
    expect(files.filter((f) => readFileSync(f, 'utf8').includes('Atomics.wait'))).toEqual([]);
  });
});
