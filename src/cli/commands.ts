// The commands behind kvmforge's CLI (loaded when one runs; see main.ts).
import { writeFileSync } from 'node:fs';
import { ConfigError, formatProblem } from '../core/errors.ts';
import { loadInventory, type Inventory } from '../inventory/load.ts';
import { hostVars, inventoryGraph, inventoryList } from '../inventory/list.ts';
import { selectHosts as select } from '../inventory/patterns.ts';
import { readVaultPasswordFile } from '../inventory/vault.ts';
import { parseExtraVars } from './extra-vars.ts';
import { serialFor } from './serial.ts';
import { Journal, lastReport, Secrets } from '../runner/journal.ts';
import { countChanges, drift, failed, junit, summaryTable, type Report } from '../runner/report.ts';
import { resolveParams, run } from '../runner/run.ts';
import { hostLoop, type HostLoop, type SessionOptions } from '../runner/session.ts';
import type { ConnectOptions } from '../transport/index.ts';
import { steps as allSteps, catalog, stepByName } from '../../steps/index.ts';
import { buildSchema } from '../inventory/schema.ts';
import { factsObject, HOST_FACTS } from '../facts/host.ts';
import { columns } from '../core/table.ts';
import type { Host } from '../core/types.ts';
import type { Flags } from './flags.ts';

function pickSteps(f: Flags) {
  const names = (s?: string) =>
    s
      ? s
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)
      : [];
  const unknown = [...names(f.steps), ...names(f.skip)].filter((n) => !stepByName(n));
  if (unknown.length)
    throw ConfigError.one(
      `unknown step ${unknown.map((u) => `'${u}'`).join(', ')}; steps are: ${allSteps.map((s) => s.name).join(', ')}`,
      { key: f.steps ? '--steps' : '--skip' },
    );
  const only = names(f.steps);
  const skip = names(f.skip);
  return allSteps.filter((s) => (!only.length || only.includes(s.name)) && !skip.includes(s.name));
}

export function inventoryOf(f: Flags): Inventory {
  const sources = f.inventory?.length ? f.inventory : [process.env.KVMFORGE_INVENTORY ?? 'inventories/lab.yaml'];
  const vaultPasswords = (f['vault-password-file'] ?? []).map((file) => {
    try {
      return readVaultPasswordFile(file);
    } catch (e) {
      throw ConfigError.one((e as Error).message, { key: '--vault-password-file' });
    }
  });
  const extraVars = (f['extra-vars'] ?? []).map(parseExtraVars);
  const inv = loadInventory(sources, catalog, { vaultPasswords, extraVars, strict: f.strict });
  for (const w of inv.warnings) process.stderr.write(`kvmforge: warning: ${formatProblem(w)}\n`);
  return inv;
}

/** The hosts -l selects; a selected host whose connection vars kvmforge can't follow is bad input. */
export function selectHosts(inv: Inventory, limit: string | undefined): Host[] {
  const hosts = select(inv, limit);
  const problems = hosts.flatMap((h) => inv.hostProblems.get(h.name) ?? []);
  if (problems.length) throw new ConfigError(problems);
  return hosts;
}

async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY)
    throw ConfigError.one('--ask-become-pass needs a terminal; use kvmforge_become_password_env instead');
  process.stderr.write('sudo password: ');
  process.stdin.setRawMode(true);
  return new Promise((resolve) => {
    let pw = '';
    const onData = (d: Buffer) => {
      for (const ch of d.toString()) {
        if (ch === '\r' || ch === '\n') {
          process.stdin.setRawMode(false);
          process.stdin.off('data', onData);
          process.stdin.pause();
          process.stderr.write('\n');
          return resolve(pw);
        }
        if (ch === '\u0003') process.exit(130);
        pw = ch === '\u007f' ? pw.slice(0, -1) : pw + ch;
      }
    };
    process.stdin.on('data', onData);
  });
}

export function connectOptions(f: Flags, becomePassword?: string): ConnectOptions {
  return {
    knownHosts: f['known-hosts'] ?? '.kvmforge/known_hosts',
    acceptNewHostKeys: Boolean(f['accept-new-host-keys']),
    becomePassword,
  };
}

function secretsOf(hosts: Host[], becomePassword?: string, inv?: Inventory): Secrets {
  const s = new Secrets();
  s.add(becomePassword);
  for (const v of inv?.secrets ?? []) s.add(v);
  for (const h of hosts) {
    const env = h.conn.becomePasswordEnv;
    if (env) s.add(process.env[env]);
    const marked = (h.vars.kvmforge_secrets as string[] | undefined) ?? [];
    for (const [k, v] of Object.entries(h.vars))
      if (marked.includes(k) || /passw|secret|token|passphrase/i.test(k)) s.add(typeof v === 'string' ? v : undefined);
  }
  return s;
}

export async function runCommand(mode: 'plan' | 'apply' | 'build', f: Flags): Promise<number> {
  const inv = inventoryOf(f);
  const steps = pickSteps(f);
  let hosts = selectHosts(inv, f.limit);
  if (f['list-hosts']) {
    process.stdout.write(`  hosts (${hosts.length}):\n${hosts.map((h) => `    ${h.name}\n`).join('')}`);
    return 0;
  }
  const forks = f.forks === undefined ? 10 : Number(f.forks);
  if (!Number.isInteger(forks) || forks < 1) throw ConfigError.one(`--forks '${f.forks}': expected a whole number ≥ 1`);
  const root = f.journal ?? '.kvmforge';
  if (f['retry-failed']) {
    const last = lastReport(root);
    if (!last) throw ConfigError.one(`--retry-failed: no earlier run under ${root}/runs`);
    // failed, and never touched (a stopped roll-out, Ctrl-C): the re-run continues from there
    const failedHosts = new Set(
      last.hosts.filter((h) => ['failed', 'not run', 'interrupted'].includes(h.status)).map((h) => h.host),
    );
    hosts = hosts.filter((h) => failedHosts.has(h.name));
    if (!hosts.length) {
      process.stderr.write('--retry-failed: no host failed in the last run; nothing to do\n');
      return 0;
    }
  }
  resolveParams(hosts, steps, inv.hosts); // bad vars: exit 2 before a journal, a prompt or a connection
  const batches = serialFor(hosts, f.serial);
  const maxFail = f['max-fail-percentage'] === undefined ? 0 : Number(f['max-fail-percentage']);
  if (!(maxFail >= 0 && maxFail <= 100) || !/^[0-9]+(\.[0-9]+)?$/.test(String(f['max-fail-percentage'] ?? 0)))
    throw ConfigError.one(`--max-fail-percentage '${f['max-fail-percentage']}': expected a number from 0 to 100`);
  const pw = f['ask-become-pass'] ? await readPassword() : undefined;
  const journal = new Journal(root, secretsOf(hosts, pw, inv), true, f.verbose);
  const view = f.json
    ? undefined
    : (await import('../runner/view.ts')).liveView(
        hosts.map((h) => h.name),
        { stream: process.stderr, verb: mode === 'plan' ? 'planning' : mode === 'build' ? 'building' : 'applying' },
      );
  const o = { steps, forks, connect: connectOptions(f, pw), journal, events: view?.events, inventory: inv.hosts };
  const stop = interruptible();
  try {
    const report =
      mode === 'build'
        ? await (await import('./build.ts')).buildArtifacts(hosts, o)
        : await run(hosts, {
            ...o,
            mode,
            verify: Boolean(f.verify),
            signal: stop.signal,
            batches,
            maxFailPercentage: maxFail,
          });
    await view?.done;
    output(
      report,
      f,
      steps.map((s) => s.name),
      journal,
    );
    if (report.interrupted) return 130;
    if (report.hosts.some((h) => h.badInput)) return 2;
    if (failed(report) || report.rollout?.stopped) return 1;
    // plan --detailed-exitcode: 3 when something would change (drift), as terraform's
    return f['detailed-exitcode'] && Object.keys(drift(report)).length ? 3 : 0;
  } finally {
    stop.release();
  }
}

/**
 * Ctrl-C (or SIGTERM) once: no new change or host is started, the running ones finish (or reach their
 * rollback), and the report and journal are written (exit 130). Twice: stop at once.
 */
function interruptible(): { signal: AbortSignal; release(): void } {
  const ctl = new AbortController();
  const on = () => {
    if (ctl.signal.aborted) {
      process.stderr.write('\nkvmforge: aborted (a second Ctrl-C); what runs on the hosts goes on there by itself\n');
      process.exit(130);
    }
    ctl.abort();
    process.stderr.write(
      '\nkvmforge: interrupted: no new change is started; waiting for the running ones (Ctrl-C again: stop now)\n',
    );
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return {
    signal: ctl.signal,
    release: () => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}

function output(report: Report, f: Flags, stepNames: string[], journal: Journal) {
  if (f.junit) writeFileSync(f.junit, journal.secrets.mask(junit(report)));
  if (f.json) {
    const out = f['detailed-exitcode'] ? { ...report, drift: drift(report) } : report;
    process.stdout.write(journal.secrets.mask(JSON.stringify(out, null, 2)) + '\n');
    return;
  }
  const out: string[] = [];
  for (const h of report.hosts) {
    for (const s of h.steps) {
      for (const c of s.changes) {
        out.push(`${h.host} ${s.step}: ${c.summary}`);
        if (c.warning) out.push(`  warning: ${c.warning}`);
        if (f.diff && c.diff) out.push(c.diff.replace(/^/gm, '    '));
      }
    }
  }
  out.push('', summaryTable(report, stepNames));
  const n = countChanges(report);
  const done =
    report.mode === 'plan'
      ? `${n} change(s) would be made`
      : report.mode === 'build'
        ? `${n} artifact(s) built or fetched`
        : `${n} change(s) made`;
  const failed = report.hosts.filter((h) => h.status === 'failed').length;
  out.push('', `${done}; ${failed} host(s) failed; ${(report.ms / 1000).toFixed(1)}s. Journal: ${report.journal}`);
  process.stdout.write(journal.secrets.mask(out.join('\n')) + '\n');
}

/** The shared host loop of the commands beside plan/apply: --forks, a journal, per-host failures. */
export function sideLoop(f: Flags, hosts: Host[]): { loop: HostLoop; session: SessionOptions } {
  const forks = f.forks === undefined ? 10 : Number(f.forks);
  if (!Number.isInteger(forks) || forks < 1) throw ConfigError.one(`--forks '${f.forks}': expected a whole number ≥ 1`);
  const session: SessionOptions = {
    connect: connectOptions(f),
    journal: new Journal(f.journal ?? '.kvmforge', secretsOf(hosts), true, f.verbose),
  };
  return { loop: hostLoop(forks, session), session };
}

export async function factsCommand(f: Flags): Promise<number> {
  const inv = inventoryOf(f);
  const hosts = selectHosts(inv, f.limit);
  const results = await sideLoop(f, hosts).loop(hosts, async (s) => factsObject(await s.read(...HOST_FACTS)));
  const out: Record<string, unknown> = Object.fromEntries(
    results.map((r) => [r.host, r.ok ? r.value : { failed: r.error }]),
  );
  const bad = results.filter((r) => !r.ok).length;
  const ordered = Object.fromEntries(hosts.map((h) => [h.name, out[h.name]]));
  if (f.json) process.stdout.write(JSON.stringify(ordered, null, 2) + '\n');
  else {
    for (const [name, v] of Object.entries(ordered)) {
      const fx = v as any;
      if (fx.failed) {
        process.stdout.write(`${name}: FAILED: ${fx.failed}\n`);
        continue;
      }
      const ifs = fx.interfaces
        .filter((i: any) => i.name !== 'lo')
        .map((i: any) => [i.name, i.addresses.map((a: any) => `${a.address}/${a.prefix}`).join(',')].join(' ').trim());
      process.stdout.write(
        [
          `${name}: ${fx.os.prettyName} (${fx.os.family}), kernel ${fx.kernel} ${fx.arch}, ${fx.cpu.count} CPU ` +
            `${fx.cpu.virtFlags.join('/') || 'no vmx/svm'}`,
          `  memory ${(fx.memory.totalKiB / 1048576).toFixed(1)} GiB, hugepages ${fx.memory.hugePagesTotal} × ` +
            `${fx.memory.hugePageSizeKiB} KiB (${fx.memory.hugePagesFree} free)`,
          `  ksm ${Object.entries(fx.ksm)
            .map(([k, x]) => `${k}=${x}`)
            .join(' ')}`,
          `  init ${fx.init}, packages ${fx.packageManager}, boot loader ${fx.bootLoader}, qemu ` +
            `${fx.versions.qemu ?? '-'}, libvirt ${fx.versions.libvirt ?? '-'}`,
          `  net ${ifs.join('; ')}; default via ${fx.defaultRoute?.gateway ?? '-'} dev ${fx.defaultRoute?.dev ?? '-'}`,
          `  cmdline ${fx.cmdline}`,
          '',
        ].join('\n'),
      );
    }
  }
  return bad ? 1 : 0;
}

export async function inventoryCommand(action: string | undefined, f: Flags): Promise<number> {
  if (action === 'schema') {
    process.stdout.write(JSON.stringify(buildSchema(catalog), null, 2) + '\n');
    return 0;
  }
  if (action === 'from-vagrant') {
    const { fromVagrant } = await import('../lab/vagrant.ts');
    return fromVagrant(f);
  }
  if (action !== undefined)
    throw ConfigError.one(`inventory: unknown action '${action}': expected schema or from-vagrant`);
  const modes = [f.list, f.host !== undefined, f.graph !== undefined].filter(Boolean).length;
  if (modes !== 1) throw ConfigError.one('inventory: give one of --list, --host NAME, --graph [GROUP]');
  const inv = inventoryOf(f);
  if (f.host !== undefined) {
    const v = hostVars(inv, f.host);
    if (!v) throw ConfigError.one(`no host '${f.host}' in ${inv.file}`, { key: '--host' });
    process.stdout.write(JSON.stringify(v, null, 4) + '\n');
    return 0;
  }
  if (f.graph !== undefined) {
    const group = typeof f.graph === 'string' ? f.graph : 'all';
    if (!inv.groups.has(group)) throw ConfigError.one(`no group '${group}' in ${inv.file}`, { key: '--graph' });
    process.stdout.write(inventoryGraph(inv, group, Boolean(f.vars)) + '\n');
    return 0;
  }
  const only = f.limit === undefined ? undefined : new Set(select(inv, f.limit).map((h) => h.name));
  process.stdout.write(JSON.stringify(inventoryList(inv, only), null, 4) + '\n'); // as ansible-inventory prints it
  return 0;
}

/** Every host's domain XML, validated by libvirt, written to OUT/HOST/VM.xml for review. */
export async function renderCommand(f: Flags): Promise<number> {
  const { default: domains } = await import('../../steps/domains.ts');
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const hosts = selectHosts(inventoryOf(f), f.limit);
  const out = f.out ?? '.kvmforge/render';
  const planned = hosts.map((h) => ({ h, vms: domains.params(h) ?? [] })); // all validated before one is written
  let n = 0;
  for (const { h, vms } of planned) {
    if (!vms.length) continue;
    mkdirSync(`${out}/${h.name}`, { recursive: true });
    for (const { vm, xml } of vms) {
      const file = `${out}/${h.name}/${vm.name.replace(/[^A-Za-z0-9._+-]/g, '_')}.xml`;
      writeFileSync(file, xml);
      process.stdout.write(`${file}\n`);
      n++;
    }
  }
  process.stderr.write(
    `${n} domain(s) rendered and validated (virt-xml-validate, virsh -c test:///default define --validate)\n`,
  );
  return 0;
}

export async function artifactsCommand(f: Flags, args: string[] = []): Promise<number> {
  if (args[0] === 'publish') {
    if (!args[1]) throw ConfigError.one('artifacts publish DIR: give the directory to write the repository to');
    const { publish } = await import('../artifacts/repo.ts');
    const r = await publish(args[1], { gpgKey: f['gpg-key'] });
    process.stdout.write(
      `published ${r.debs.length} .deb and ${r.rpms.length} .rpm package(s) in ${r.dir}\n` +
        r.notes.map((n) => `note: ${n}\n`).join('') +
        `hosts install from it with (their inventory):\n  artifacts_repo: file://${r.dir} (or the http URL it is ` +
        `served at)\n  artifacts_repo_key: ${r.keyFile}\n`,
    );
    return 0;
  }
  if (args.length) throw ConfigError.one(`artifacts: unknown action '${args[0]}': expected publish DIR`);
  const { listArtifacts, artifactBytes } = await import('../artifacts/artifacts.ts');
  const { cacheDir } = await import('../core/paths.ts');
  const list = listArtifacts();
  if (f.json) {
    process.stdout.write(JSON.stringify(list, null, 2) + '\n');
    return 0;
  }
  if (!list.length) {
    process.stdout.write(`no artifacts in ${cacheDir()}/artifacts\n`);
    return 0;
  }
  const rows = [['component', 'version', 'key', 'distro', 'built on', 'build', 'size', 'packages']];
  for (const a of list) {
    rows.push([
      a.component,
      a.sourcePackage ? `${a.version} (${a.sourcePackage})` : a.version,
      a.key.slice(0, 12),
      `${a.distro.id} ${a.distro.versionId} ${a.distro.arch}`,
      `${a.builtOn} ${a.builtAt.slice(0, 16)}`,
      `${a.buildSeconds}s`,
      `${(artifactBytes(a) / 1048576).toFixed(1)} MiB`,
      a.files.map((x) => x.name).join(' '),
    ]);
  }
  process.stdout.write(columns(rows).join('\n') + '\n');
  return 0;
}
