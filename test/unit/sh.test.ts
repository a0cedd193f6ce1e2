import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { quote, raw, sh, wholeScript } from '../../src/core/sh.ts';

import { HOSTILE } from '../harness/hostile-values.ts';

describe('quote', () => {
  it('passes safe words unchanged', () => {
    expect(quote('vm.nr_hugepages')).toBe('vm.nr_hugepages');
    expect(quote('/etc/sysctl.d/80-kvmforge.conf')).toBe('/etc/sysctl.d/80-kvmforge.conf');
    expect(quote(1024)).toBe('1024');
  });

  it('quotes leading dashes and empty strings', () => {
    expect(quote('-rf')).toBe("'-rf'");
    expect(quote('')).toBe("''");
  });

  for (const shell of ['sh', 'dash', 'bash']) {
    it(`keeps hostile values as data in a real ${shell}`, () => {
      for (const v of HOSTILE) {
        const out = execFileSync(shell, ['-c', sh`printf '%s' ${v}`]).toString();
        expect(out).toBe(v);
      }
    });
  }

  it('spreads arrays as separate words and leaves raw() alone', () => {
    const cmd = sh`printf '<%s>' ${['a b', "c'd", '-e']} ${raw('| tr a A')}`;
    expect(execFileSync('sh', ['-c', cmd]).toString()).toBe("<A b><c'd><-e>");
  });

  it('a script cut short in transit runs nothing (it is parsed whole first)', () => {
    const script = "touch first\ncat > second <<'EOF'\nhello\nEOF\nrm -f first.tmp.old";
    const runCut = (input: string) => {
      const dir = mkdtempSync(join(tmpdir(), 'kvf-cut-'));
      try {
        execFileSync('sh', ['-s'], { input, cwd: dir, stdio: ['pipe', 'ignore', 'ignore'] });
      } catch {
        /* a cut script is a syntax error */
      }
      return readdirSync(dir).sort();
    };
    const full = wholeScript(script);
    expect(runCut(full)).toEqual(['first', 'second']);
    for (let n = 0; n < full.lastIndexOf('}'); n++) expect(runCut(full.slice(0, n)), `cut at ${n}`).toEqual([]);
    // without the brace group, a cut after the first line runs that line
    expect(runCut(`set -eu\n${script}`.slice(0, 20))).toEqual(['first']);
  });
});
