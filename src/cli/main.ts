// kvmforge CLI: commands, flags, exit codes (0 ok, 1 a host or step failed, 2 bad input). This module
// loads nothing else until a command needs it: `kvmforge --help` costs little more than starting Node.
import { parseArgs } from 'node:util';
import { ConfigError, formatProblem } from '../core/errors.ts';
import { options, type Flags } from './flags.ts';

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
      lab up [--hosts N] [--memory MiB] [--cpus N] [--cold-boot]
             [--emulated labN]… [--plain labN]… [--second-nic labN]…
                        (--emulated: IDE disk, e1000 NIC; --plain: an image without Debian's libvirt/QEMU;
                        --second-nic: eth1 too)
  render [--out DIR]    write each host's domain XML for review (validated by libvirt)
  artifacts [--json]    packages built from source in the local cache ($KVMFORGE_CACHE or ~/.cache/kvmforge)
  exits [--interval S] [--vm NAME]... [--json] [--plot F.svg] [--reasons]   KVM exit counters per running VM:
                        totals, rates, share handled in the kernel, I/O share and the thesis's verdict (no kernel
                        patch); --reasons: then, for another interval, exits by reason with perf
  tune [--plan] [--json]   apply each VM's tier (domains_vms: tier) to its running vCPU threads
  top --host NAME [--interval S] [--sort cpu|mem] [--once] [--json]   a host's VM processes and threads, live
  bench --vm A --vm B [--size MiB] [--block-size 4k|1M] [--runs N]
        [--workloads disk-write,disk-read,network,cpu] [--dir D]
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

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<
    typeof parseArgs<{ args: string[]; options: typeof options; allowPositionals: true; strict: true }>
  >;
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
    if (cmd === 'steps') return await (await import('./steps-command.ts')).stepsCommand(f);
    const c = await import('./commands.ts');
    switch (cmd) {
      case 'plan':
      case 'check':
        return await c.runCommand('plan', f);
      case 'apply':
        return await c.runCommand('apply', f);
      case 'build':
        return await c.runCommand('build', f);
      case 'facts':
        return await c.factsCommand(f);
      case 'inventory':
        return await c.inventoryCommand(rest[0], f);
      case 'render':
        return await c.renderCommand(f);
      case 'artifacts':
        return await c.artifactsCommand(f);
      case 'exits': {
        const hosts = c.selectHosts(c.inventoryOf(f), f.limit);
        return await (await import('./exits.ts')).exitsCommand(hosts, f, c.sideLoop(f, hosts).loop);
      }
      case 'top': {
        const inv = c.inventoryOf(f);
        return await (await import('./top.ts')).topCommand(inv, f, c.sideLoop(f, inv.hosts).session);
      }
      case 'tune': {
        const inv = c.inventoryOf(f);
        const hosts = c.selectHosts(inv, f.limit);
        return await (await import('./tune.ts')).tuneCommand(hosts, inv.file, f, c.sideLoop(f, hosts).loop);
      }
      case 'bench': {
        const inv = c.inventoryOf(f);
        return await (await import('./bench.ts')).benchCommand(inv, f, c.sideLoop(f, inv.hosts).loop);
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
