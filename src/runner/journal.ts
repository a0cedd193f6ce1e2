// Run journal: .kvmforge/runs/<time>/<host>.log (every command, exit code, output) + report.json.
import { appendFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Report } from './report.ts';

const MASK = '********';

export class Secrets {
  private values = new Set<string>();
  add(v: unknown) {
    if (typeof v === 'string' && v.length >= 3) this.values.add(v);
  }
  mask(text: string): string {
    let out = text;
    for (const v of this.values) out = out.split(v).join(MASK);
    return out;
  }
}

export class Journal {
  readonly dir: string;
  /** -v echoes each command to stderr, -vv its script and output too */
  constructor(
    root: string,
    readonly secrets: Secrets,
    readonly enabled = true,
    readonly verbosity = 0,
  ) {
    const stamp = new Date()
      .toISOString()
      .replace(/[:]/g, '-')
      .replace(/\.\d+Z$/, 'Z');
    let dir = join(root, 'runs', stamp);
    for (let i = 1; existsSync(dir); i++) dir = join(root, 'runs', `${stamp}-${i}`);
    this.dir = dir;
    if (enabled) mkdirSync(this.dir, { recursive: true });
  }

  log(host: string, text: string) {
    if (!this.enabled) return;
    appendFileSync(join(this.dir, `${host}.log`), this.secrets.mask(`[${new Date().toISOString()}] ${text}\n`));
  }

  command(
    host: string,
    step: string,
    script: string,
    r: { code: number | null; stdout: string; stderr: string },
    ms: number,
  ) {
    if (this.verbosity >= 1) {
      const first = script.trim().split('\n')[0].slice(0, 160);
      const detail =
        this.verbosity >= 2
          ? `\n--- script\n${script.trimEnd()}\n--- stdout\n${r.stdout.trimEnd()}\n` +
            `--- stderr\n${r.stderr.trimEnd()}\n---`
          : '';
      process.stderr.write(this.secrets.mask(`${host} ${step}: exit ${r.code} in ${ms} ms: ${first}${detail}\n`));
    }
    this.log(
      host,
      `${step}: exit ${r.code} in ${ms} ms\n--- script\n${script.trimEnd()}\n--- ` +
        `stdout\n${r.stdout.trimEnd()}\n--- stderr\n${r.stderr.trimEnd()}\n---`,
    );
  }

  /** A named log file in the run directory, appended as chunks arrive (secrets masked). */
  file(name: string): { append(chunk: string): void; path: string } {
    const path = join(this.dir, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.log`);
    return { path, append: (chunk) => this.enabled && appendFileSync(path, this.secrets.mask(chunk)) };
  }

  writeReport(report: Report) {
    if (!this.enabled) return;
    writeFileSync(join(this.dir, 'report.json'), this.secrets.mask(JSON.stringify(report, null, 2)));
  }
}

/** The report of the newest run under root that has one, for --retry-failed. */
export function lastReport(root: string): Report | undefined {
  const runs = join(root, 'runs');
  if (!existsSync(runs)) return undefined;
  for (const d of readdirSync(runs).sort().reverse()) {
    const f = join(runs, d, 'report.json');
    if (existsSync(f)) return JSON.parse(readFileSync(f, 'utf8')) as Report;
  }
  return undefined;
}
