// kvmforge report: the platform as it is now on each host (its facts, packages and domains), whether each
// step is converged (a plan, which changes nothing), and the last runs from the journal — one HTML file
// or Markdown. Bad input (no journal, another inventory's journal, --out not writable) is exit 2 before
// any connection; the file is written whole (temp file, then rename) or not at all.
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../core/errors.ts';
import { factsObject, HOST_FACTS } from '../facts/host.ts';
import {
  type DomainInfo,
  hostPlatform,
  libvirtDomains,
  platformPackages,
  type PlatformReport,
  type RunLine,
  type SavedBench,
  type SavedExits,
} from '../insight/platform.ts';
import { renderHtml, renderMarkdown } from '../insight/platform-render.ts';
import { newestInsight } from '../insight/saved.ts';
import { Journal, Secrets } from '../runner/journal.ts';
import type { Report } from '../runner/report.ts';
import { run } from '../runner/run.ts';
import { hostLoop } from '../runner/session.ts';
import { steps as allSteps } from '../../steps/index.ts';
import { connectOptions, inventoryOf, selectHosts } from './commands.ts';
import type { Flags } from './flags.ts';

/** Every run under root/runs with a report, oldest first. */
function journalRuns(root: string): { run: string; report: Report }[] {
  const runs = join(root, 'runs');
  if (!existsSync(runs))
    throw ConfigError.one(
      `report: no run journal at ${root} (it has no runs/): give --journal DIR, where kvmforge plan/apply ` +
        'kept it (.kvmforge by default)',
    );
  return readdirSync(runs)
    .sort()
    .filter((d) => existsSync(join(runs, d, 'report.json')))
    .map((d) => ({ run: d, report: JSON.parse(readFileSync(join(runs, d, 'report.json'), 'utf8')) as Report }));
}

function runLines(host: string, runs: { run: string; report: Report }[]): RunLine[] {
  return runs.flatMap(({ run: id, report }) => {
    const h = report.hosts.find((x) => x.host === host);
    if (!h) return [];
    const bad = h.steps.find((s) => s.status === 'failed');
    return [
      {
        run: id,
        mode: report.mode,
        status: h.status,
        changes: h.steps.reduce((n, s) => n + (s.status === 'changed' ? s.changes.length : 0), 0),
        ms: h.ms,
        error: h.error ? (bad ? `${bad.step}: ${h.error}` : h.error) : undefined,
      },
    ];
  });
}

/** The output directory, made and proven writable before anything connects. */
function outDir(dir: string): string {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw ConfigError.one(`--out ${dir}: cannot write there (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  return dir;
}

export async function reportCommand(f: Flags): Promise<number> {
  const format = f.format ?? 'html';
  if (format !== 'html' && format !== 'md') throw ConfigError.one(`--format '${format}': expected html or md`);
  const inv = inventoryOf(f);
  const hosts = selectHosts(inv, f.limit);
  const root = f.journal ?? '.kvmforge';
  const runs = journalRuns(root);
  if (runs.length && !runs.some(({ report }) => report.hosts.some((h) => hosts.some((x) => x.name === h.host))))
    throw ConfigError.one(
      `report: the journal ${root} has ${runs.length} run(s), none on these hosts ` +
        `(${hosts.map((h) => h.name).join(', ')}): another inventory's journal? Give --journal DIR`,
    );
  const dir = outDir(f.out ?? join(root, 'report'));
  const forks = f.forks === undefined ? 10 : Number(f.forks);
  if (!Number.isInteger(forks) || forks < 1) throw ConfigError.one(`--forks '${f.forks}': expected a whole number ≥ 1`);
  // read only: neither the facts nor the plan leave a run in the journal the report is about
  const quiet = new Journal(root, new Secrets(), false);
  const connect = connectOptions(f);
  const read = await hostLoop(forks, { connect, journal: quiet })(hosts, async (s) => {
    // one round trip: the host facts, the packages and the domains together
    const v = await s.read(...HOST_FACTS, platformPackages, libvirtDomains);
    const [pkgs, domains] = v.slice(HOST_FACTS.length) as [Record<string, string>, DomainInfo[]];
    return hostPlatform(s.host.name, factsObject(v.slice(0, HOST_FACTS.length) as never), pkgs, domains);
  });
  const plan = await run(hosts, {
    mode: 'plan',
    steps: allSteps,
    forks,
    verify: false,
    connect,
    journal: quiet,
    inventory: inv.hosts,
  });
  const report: PlatformReport = {
    generated: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    inventory: (f.inventory ?? []).join(', ') || process.env.KVMFORGE_INVENTORY || 'inventories/lab.yaml',
    journal: resolve(root),
    exits: newestInsight<SavedExits>(root, 'exits'),
    bench: newestInsight<SavedBench>(root, 'bench'),
    hosts: hosts.map((h) => {
      const r = read.find((x) => x.host === h.name)!;
      const p = plan.hosts.find((x) => x.host === h.name);
      const steps = (p?.steps ?? []).map((s) => ({
        step: s.step,
        status: s.status,
        detail: s.error ?? s.note ?? (s.changes.length ? s.changes.map((c) => c.summary).join('; ') : undefined),
      }));
      const runsOf = runLines(h.name, runs);
      return r.ok
        ? { ...r.value, steps, runs: runsOf }
        : { host: h.name, error: r.error, bridges: [], modules: [], domains: [], steps, runs: runsOf };
    }),
  };
  const file = join(dir, format === 'html' ? 'index.html' : 'report.md');
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, format === 'html' ? renderHtml(report) : renderMarkdown(report));
  renameSync(tmp, file);
  const unread = report.hosts.filter((h) => h.error);
  process.stdout.write(
    `report: ${file} (${hosts.length} host(s)` +
      `${unread.length ? `; not read: ${unread.map((h) => h.host).join(', ')}` : ''})\n`,
  );
  return unread.length ? 1 : 0;
}
