// kvmforge CLI: commands, flags, exit codes (0 ok, 1 a host or step failed, 2 bad input).
import { writeFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, formatProblem } from '../core/errors.ts';
import { loadInventory, selectHosts, type Inventory } from '../inventory/load.ts';
import { Journal, lastReport, Secrets } from '../runner/journal.ts';
import { countChanges, failed, junit, summaryTable, type Report } from '../runner/report.ts';
import { resolveParams, run } from '../runner/run.ts';
import { hostLoop, type HostLoop, type SessionOptions } from '../runner/session.ts';
import type { ConnectOptions } from '../transport/index.ts';
import { steps as allSteps, catalog, stepByName } from '../../steps/index.ts';
import { buildSchema } from '../inventory/schema.ts';
import { factsObject, HOST_FACTS } from '../facts/host.ts';
import { columns } from '../core/table.ts';
import type { Host } from '../core/types.ts';

export const HELP = `kvmforge — turn fresh Linux servers into tuned KVM hosts, over SSH

Usage: kvmforge <command> [options]

Commands:
  plan                  show what would change on each host (check mode: changes nothing)
  apply                 make the changes
  build                 build the source-build steps' packages into the local cache, install nothing
  facts                 gather and print host facts
  inventory --list      resolved groups and merged host vars (like ansible-inventory --list)
  inventory --host H    merged vars of one host
  inventory schema      print the inventory JSON Schema
  inventory from-vagrant [--from FILE] [--out FILE]   inventory + host keys from 'vagrant ssh-config'
  steps                 list the steps in the order they run
  lab up|status|ssh|reset|down   disposable Debian VMs to try things on (see README)
      lab up [--hosts N] [--memory MiB] [--cpus N] [--cold-boot] [--emulated labN]… [--plain labN]… [--second-nic labN]…
                        (--emulated: IDE disk, e1000 NIC; --plain: an image without Debian's libvirt/QEMU; --second-nic: eth1 too)
  render [--out DIR]    write each host's domain XML for review (validated by libvirt)
  artifacts [--json]    packages built from source in the local cache ($KVMFORGE_CACHE or ~/.cache/kvmforge)
  exits [--interval S] [--vm NAME]... [--json] [--plot F.svg] [--reasons]   KVM exit counters per running VM:
                        totals, rates, share handled in the kernel, I/O share and the thesis's verdict (no kernel
                        patch); --reasons: then, for another interval, exits by reason with perf
  tune [--plan] [--json]   apply each VM's tier (domains_vms: tier) to its running vCPU threads
  top --host NAME [--interval S] [--sort cpu|mem] [--once] [--json]   a host's VM processes and threads, live
  bench --vm A --vm B [--size MiB] [--block-size 4k|1M] [--runs N] [--workloads disk-write,disk-read,network,cpu] [--dir D]
        [--json] [--plot F.svg]   the same workloads inside each guest (inventory hosts), side by side

Options:
  -i, --inventory FILE  inventory (default: $KVMFORGE_INVENTORY or inventories/lab.yaml)
  -l, --limit PATTERN   hosts, groups or globs, comma separated; !x excludes
      --steps a,b       run only these steps        --skip c,d   leave these out
  -f, --forks N         hosts at once (default 10)
      --diff            print diffs of what changes
      --verify          after apply, plan again and fail a step that did not converge
      --json            print the report as JSON on stdout
      --junit FILE      write a JUnit XML report
      --retry-failed    only the hosts that failed in the last run
      --accept-new-host-keys   record unknown host keys (a changed key is always refused)
      --known-hosts FILE       project known_hosts (default .kvmforge/known_hosts)
  -K, --ask-become-pass        read the sudo password from the terminal
      --journal DIR            run journal root (default .kvmforge)
  -h, --help            this text

Exit codes: 0 all ok, 1 a host or step failed, 2 bad input (nothing was touched).`;

const options = {
  inventory: { type: 'string', short: 'i' },
  limit: { type: 'string', short: 'l' },
  steps: { type: 'string' },
  skip: { type: 'string' },
  forks: { type: 'string', short: 'f' },
  diff: { type: 'boolean' },
  verify: { type: 'boolean' },
  json: { type: 'boolean' },
  junit: { type: 'string' },
  'retry-failed': { type: 'boolean' },
  'accept-new-host-keys': { type: 'boolean' },
  'known-hosts': { type: 'string' },
  'ask-become-pass': { type: 'boolean', short: 'K' },
  journal: { type: 'string' },
  list: { type: 'boolean' },
  host: { type: 'string' },
  hosts: { type: 'string' },
  from: { type: 'string' },
  out: { type: 'string' },
  memory: { type: 'string' },
  cpus: { type: 'string' },
  'cold-boot': { type: 'boolean' },
  emulated: { type: 'string', multiple: true },
  plain: { type: 'string', multiple: true },
  'second-nic': { type: 'string', multiple: true },
  size: { type: 'string' },
  'block-size': { type: 'string' },
  reasons: { type: 'boolean' },
  runs: { type: 'string' },
  workloads: { type: 'string' },
  dir: { type: 'string' },
  interval: { type: 'string' },
  plan: { type: 'boolean' },
  once: { type: 'boolean' },
  plot: { type: 'string' },
  sort: { type: 'string' },
  vm: { type: 'string', multiple: true },
  markdown: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} satisfies ParseArgsConfig['options'];

type Flags = { [K in keyof typeof options]?: (typeof options)[K] extends { multiple: true } ? string[] : (typeof options)[K]['type'] extends 'string' ? string : boolean };

function pickSteps(f: Flags) {
  const names = (s?: string) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : []);
  const unknown = [...names(f.steps), ...names(f.skip)].filter((n) => !stepByName(n));
  if (unknown.length) throw ConfigError.one(`unknown step ${unknown.map((u) => `'${u}'`).join(', ')}; steps are: ${allSteps.map((s) => s.name).join(', ')}`, { key: f.steps ? '--steps' : '--skip' });
  const only = names(f.steps);
  const skip = names(f.skip);
  return allSteps.filter((s) => (!only.length || only.includes(s.name)) && !skip.includes(s.name));
}

function inventoryOf(f: Flags): Inventory {
  return loadInventory(f.inventory ?? process.env.KVMFORGE_INVENTORY ?? 'inventories/lab.yaml', catalog);
}

async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) throw ConfigError.one('--ask-become-pass needs a terminal; use kvmforge_become_password_env instead');
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

function connectOptions(f: Flags, becomePassword?: string): ConnectOptions {
  return { knownHosts: f['known-hosts'] ?? '.kvmforge/known_hosts', acceptNewHostKeys: Boolean(f['accept-new-host-keys']), becomePassword };
}

function secretsOf(hosts: Host[], becomePassword?: string): Secrets {
  const s = new Secrets();
  s.add(becomePassword);
  for (const h of hosts) {
    const env = h.conn.becomePasswordEnv;
    if (env) s.add(process.env[env]);
    const marked = (h.vars.kvmforge_secrets as string[] | undefined) ?? [];
    for (const [k, v] of Object.entries(h.vars)) if (marked.includes(k) || /passw|secret|token|passphrase/i.test(k)) s.add(typeof v === 'string' ? v : undefined);
  }
  return s;
}

async function runCommand(mode: 'plan' | 'apply' | 'build', f: Flags): Promise<number> {
  const inv = inventoryOf(f);
  const steps = pickSteps(f);
  let hosts = selectHosts(inv, f.limit);
  const forks = f.forks === undefined ? 10 : Number(f.forks);
  if (!Number.isInteger(forks) || forks < 1) throw ConfigError.one(`--forks '${f.forks}': expected a whole number ≥ 1`);
  const root = f.journal ?? '.kvmforge';
  if (f['retry-failed']) {
    const last = lastReport(root);
    if (!last) throw ConfigError.one(`--retry-failed: no earlier run under ${root}/runs`);
    const failedHosts = new Set(last.hosts.filter((h) => h.status === 'failed').map((h) => h.host));
    hosts = hosts.filter((h) => failedHosts.has(h.name));
    if (!hosts.length) {
      process.stderr.write('--retry-failed: no host failed in the last run; nothing to do\n');
      return 0;
    }
  }
  resolveParams(hosts, steps, inv.hosts); // bad vars: exit 2 before a journal, a prompt or a connection
  const pw = f['ask-become-pass'] ? await readPassword() : undefined;
  const journal = new Journal(root, secretsOf(hosts, pw));
  const view = f.json ? undefined : (await import('../runner/view.ts')).liveView(hosts.map((h) => h.name), { stream: process.stderr, verb: mode === 'plan' ? 'planning' : mode === 'build' ? 'building' : 'applying' });
  const o = { steps, forks, connect: connectOptions(f, pw), journal, events: view?.events, inventory: inv.hosts };
  const report = mode === 'build' ? await (await import('./build.ts')).buildArtifacts(hosts, o) : await run(hosts, { ...o, mode, verify: Boolean(f.verify) });
  await view?.done;
  output(report, f, steps.map((s) => s.name), journal);
  return report.hosts.some((h) => h.badInput) ? 2 : failed(report) ? 1 : 0;
}

function output(report: Report, f: Flags, stepNames: string[], journal: Journal) {
  if (f.junit) writeFileSync(f.junit, journal.secrets.mask(junit(report)));
  if (f.json) {
    process.stdout.write(journal.secrets.mask(JSON.stringify(report, null, 2)) + '\n');
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
  out.push('', `${report.mode === 'plan' ? `${n} change(s) would be made` : report.mode === 'build' ? `${n} artifact(s) built or fetched` : `${n} change(s) made`}; ${report.hosts.filter((h) => h.status === 'failed').length} host(s) failed; ${(report.ms / 1000).toFixed(1)}s. Journal: ${report.journal}`);
  process.stdout.write(journal.secrets.mask(out.join('\n')) + '\n');
}

/** The shared host loop of the commands beside plan/apply: --forks, a journal, per-host failures. */
function sideLoop(f: Flags, hosts: Host[]): { loop: HostLoop; session: SessionOptions } {
  const forks = f.forks === undefined ? 10 : Number(f.forks);
  if (!Number.isInteger(forks) || forks < 1) throw ConfigError.one(`--forks '${f.forks}': expected a whole number ≥ 1`);
  const session: SessionOptions = { connect: connectOptions(f), journal: new Journal(f.journal ?? '.kvmforge', secretsOf(hosts)) };
  return { loop: hostLoop(forks, session), session };
}

async function factsCommand(f: Flags): Promise<number> {
  const inv = inventoryOf(f);
  const hosts = selectHosts(inv, f.limit);
  const results = await sideLoop(f, hosts).loop(hosts, async (s) => factsObject(await s.read(...HOST_FACTS)));
  const out: Record<string, unknown> = Object.fromEntries(results.map((r) => [r.host, r.ok ? r.value : { failed: r.error }]));
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
      const ifs = fx.interfaces.filter((i: any) => i.name !== 'lo').map((i: any) => `${i.name}${i.addresses.length ? ' ' + i.addresses.map((a: any) => `${a.address}/${a.prefix}`).join(',') : ''}`);
      process.stdout.write(
        [
          `${name}: ${fx.os.prettyName} (${fx.os.family}), kernel ${fx.kernel} ${fx.arch}, ${fx.cpu.count} CPU ${fx.cpu.virtFlags.join('/') || 'no vmx/svm'}`,
          `  memory ${(fx.memory.totalKiB / 1048576).toFixed(1)} GiB, hugepages ${fx.memory.hugePagesTotal} × ${fx.memory.hugePageSizeKiB} KiB (${fx.memory.hugePagesFree} free)`,
          `  ksm ${Object.entries(fx.ksm).map(([k, x]) => `${k}=${x}`).join(' ')}`,
          `  init ${fx.init}, packages ${fx.packageManager}, boot loader ${fx.bootLoader}, qemu ${fx.versions.qemu ?? '-'}, libvirt ${fx.versions.libvirt ?? '-'}`,
          `  net ${ifs.join('; ')}; default via ${fx.defaultRoute?.gateway ?? '-'} dev ${fx.defaultRoute?.dev ?? '-'}`,
          `  cmdline ${fx.cmdline}`,
          '',
        ].join('\n'),
      );
    }
  }
  return bad ? 1 : 0;
}

export function inventoryList(inv: Inventory): object {
  const out: Record<string, any> = { _meta: { hostvars: Object.fromEntries(inv.hosts.map((h) => [h.name, h.vars])) } };
  for (const g of inv.groups.values()) {
    const entry: Record<string, string[]> = {};
    const hosts = g.name === 'all' ? [] : g.hosts;
    if (hosts.length) entry.hosts = hosts;
    if (g.children.length) entry.children = g.children.filter((c) => c !== 'ungrouped' || inv.groups.get('ungrouped')!.hosts.length);
    if (Object.keys(entry).length) out[g.name] = entry;
  }
  return out;
}

async function inventoryCommand(sub: string | undefined, f: Flags): Promise<number> {
  if (sub === 'schema') {
    process.stdout.write(JSON.stringify(buildSchema(catalog), null, 2) + '\n');
    return 0;
  }
  if (sub === 'from-vagrant') {
    const { fromVagrant } = await import('../lab/vagrant.ts');
    return fromVagrant(f);
  }
  const inv = inventoryOf(f);
  if (f.host) {
    const h = inv.hosts.find((x) => x.name === f.host);
    if (!h) throw ConfigError.one(`no host '${f.host}' in ${inv.file}`);
    process.stdout.write(JSON.stringify(h.vars, null, 2) + '\n');
    return 0;
  }
  if (!f.list) throw ConfigError.one('inventory: give --list or --host NAME (or: schema, from-vagrant)');
  const list = inventoryList(inv);
  if (f.json || true) process.stdout.write(JSON.stringify(list, null, 2) + '\n');
  return 0;
}

/** Every host's domain XML, validated by libvirt, written to OUT/HOST/VM.xml for review. */
async function renderCommand(f: Flags): Promise<number> {
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
  process.stderr.write(`${n} domain(s) rendered and validated (virt-xml-validate, virsh -c test:///default define --validate)\n`);
  return 0;
}

async function artifactsCommand(f: Flags): Promise<number> {
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
    rows.push([a.component, a.version, a.key.slice(0, 12), `${a.distro.id} ${a.distro.versionId} ${a.distro.arch}`, `${a.builtOn} ${a.builtAt.slice(0, 16)}`, `${a.buildSeconds}s`, `${(artifactBytes(a) / 1048576).toFixed(1)} MiB`, a.files.map((x) => x.name).join(' ')]);
  }
  process.stdout.write(columns(rows).join('\n') + '\n');
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    process.stderr.write(`kvmforge: ${(e as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  const f = parsed.values as Flags;
  const [cmd, ...rest] = parsed.positionals;
  if (f.help || !cmd) {
    process.stdout.write(HELP + '\n');
    return cmd || f.help ? 0 : 2;
  }
  try {
    switch (cmd) {
      case 'plan':
      case 'check':
        return await runCommand('plan', f);
      case 'apply':
        return await runCommand('apply', f);
      case 'build':
        return await runCommand('build', f);
      case 'facts':
        return await factsCommand(f);
      case 'inventory':
        return await inventoryCommand(rest[0], f);
      case 'steps':
        if (f.markdown) process.stdout.write(`${(await import('./docs.ts')).stepTable(allSteps)}\n`);
        else for (const s of allSteps) process.stdout.write(`${s.name.padEnd(16)} ${s.description}\n`);
        return 0;
      case 'render':
        return await renderCommand(f);
      case 'artifacts':
        return await artifactsCommand(f);
      case 'exits': {
        const hosts = selectHosts(inventoryOf(f), f.limit);
        return await (await import('./exits.ts')).exitsCommand(hosts, f, sideLoop(f, hosts).loop);
      }
      case 'top': {
        const inv = inventoryOf(f);
        return await (await import('./top.ts')).topCommand(inv, f, sideLoop(f, inv.hosts).session);
      }
      case 'tune': {
        const inv = inventoryOf(f);
        const hosts = selectHosts(inv, f.limit);
        return await (await import('./tune.ts')).tuneCommand(hosts, inv.file, f, sideLoop(f, hosts).loop);
      }
      case 'bench': {
        const inv = inventoryOf(f);
        return await (await import('./bench.ts')).benchCommand(inv, f, sideLoop(f, inv.hosts).loop);
      }
      case 'lab': {
        const { labCommand } = await import('../lab/cli.ts');
        return await labCommand(rest, f);
      }
      default:
        throw ConfigError.one(`unknown command '${cmd}' (see kvmforge --help)`);
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(e.problems.map((p) => `kvmforge: error: ${formatProblem(p)}`).join('\n') + '\n');
      return 2;
    }
    throw e;
  }
}
