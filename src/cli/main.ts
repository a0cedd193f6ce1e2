// kvmforge CLI: each command parses only its own options (commander); an option a command does not know
// is exit 2 with one line and that command's usage. Exit codes: 0 ok, 1 a host or step failed, 2 bad input,
// 130 interrupted. Commands load their modules when they run: `kvmforge --help` loads commander only.
import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, formatProblem } from '../core/errors.ts';
import { PROJECT } from '../core/paths.ts';
import type { Flags } from './flags.ts';

type Run = (f: Flags, args: string[]) => Promise<number>;

const collect = (v: string, prev: string[] = []) => [...prev, v];
const count = (_: string, prev: number) => prev + 1;

function inventoryOptions(c: Command): Command {
  return c
    .option(
      '-i, --inventory <source>',
      'inventory file, directory or host list; repeatable (default: $KVMFORGE_INVENTORY or inventories/lab.yaml)',
      collect,
    )
    .option('-l, --limit <pattern>', "hosts to act on: Ansible's host patterns (a:b, a:&b, a:!b, ~re, g[0], @file)")
    .option('-e, --extra-vars <vars>', 'vars over every other: k=v …, YAML/JSON, or @file; repeatable', collect)
    .option('--vault-password-file <file>', 'decrypt ansible-vault values and files; repeatable', collect)
    .option('--strict', 'warnings about the inventory (unknown vars under a kvmforge prefix) are errors')
    .option('-v, --verbose', '-v: the commands run on each host, -vv: and their output (to stderr)', count, 0);
}

function connectionOptions(c: Command): Command {
  return c
    .option('-f, --forks <n>', 'hosts at once (default 10)')
    .option('--accept-new-host-keys', 'record unknown host keys (a changed key is always refused)')
    .option('--known-hosts <file>', 'project known_hosts (default .kvmforge/known_hosts)')
    .option('-K, --ask-become-pass', 'read the sudo password from the terminal')
    .option('--journal <dir>', 'run journal root (default .kvmforge)');
}

function runOptions(c: Command): Command {
  return c
    .option('--steps <a,b>', 'run only these steps')
    .option('--skip <c,d>', 'leave these steps out')
    .option('--list-hosts', 'print the hosts the pattern and --limit select, and touch nothing')
    .option('--retry-failed', 'only the hosts that failed in the last run')
    .option('--json', 'print the report as JSON on stdout')
    .option('--junit <file>', 'write a JUnit XML report');
}

/** The flags of the command that runs, keyed by long option name. */
function flagsOf(cmd: Command): Flags {
  const opts = cmd.opts();
  const f: Record<string, unknown> = {};
  for (const o of cmd.options) {
    const v = opts[o.attributeName()];
    if (v !== undefined) f[(o.long ?? o.short ?? '').replace(/^-+/, '')] = v;
  }
  return f as Flags;
}

export function program(run: (name: string) => Promise<Run>): Command {
  const root = new Command('kvmforge')
    .description('turn fresh Linux servers into tuned KVM virtualization hosts, over SSH')
    .version(VERSION, '--version', 'print the version')
    .helpOption('-h, --help', 'this help')
    .addHelpCommand(false)
    .enablePositionalOptions()
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      '\nExit codes: 0 all ok, 1 a host or step failed, 2 bad input (nothing was touched), 130 interrupted.\n' +
        "Each command's own options: kvmforge COMMAND --help",
    );
  const cmd = (parent: Command, spec: string, description: string, name = spec.split(' ')[0]) => {
    const c = parent.command(spec).description(description).helpOption('-h, --help', 'this help');
    c.action(async (...args: unknown[]) => {
      const self = args.at(-1) as Command;
      const positional = self.processedArgs.flat().filter((x): x is string => typeof x === 'string');
      exitCode = await (await run(name))(flagsOf(self), positional);
    });
    return c;
  };

  runOptions(
    connectionOptions(inventoryOptions(cmd(root, 'plan', 'show what would change on each host (changes nothing)'))),
  )
    .option('--diff', 'print diffs of what would change')
    .option('--detailed-exitcode', 'exit 3 when something would change (drift), 0 when nothing would')
    .alias('check');
  runOptions(connectionOptions(inventoryOptions(cmd(root, 'apply', 'make the changes'))))
    .option('--diff', 'print diffs of what changes')
    .option('--verify', 'after apply, plan again and fail a step that did not converge')
    .option('-C, --check', 'plan only, as Ansible --check does (the same as kvmforge plan)')
    .option('--detailed-exitcode', 'with -C: exit 3 when something would change, 0 when nothing would')
    .option('--serial <n|p%|list>', 'rolling batches: 2, 10%, or 1,10%,50% (a canary first); also kvmforge_serial')
    .option('--max-fail-percentage <p>', 'with --serial: the share of a batch that may fail before it stops (0)');
  runOptions(
    connectionOptions(inventoryOptions(cmd(root, 'build', "build the source steps' packages into the local cache"))),
  );
  connectionOptions(inventoryOptions(cmd(root, 'facts', 'gather and print host facts'))).option('--json', 'as JSON');
  inventoryOptions(
    cmd(
      root,
      'inventory [action]',
      'the inventory as Ansible reads it: --list, --host H, --graph [G]; actions: schema, from-vagrant',
    ),
  )
    .option('--list', 'groups and every host’s merged vars (as ansible-inventory --list)')
    .option('--host <name>', 'one host’s merged vars')
    .option('--graph [group]', 'the group tree (as ansible-inventory --graph)')
    .option('--vars', 'with --graph: the vars too')
    .option('--from <file>', "from-vagrant: read this 'vagrant ssh-config' output instead of running it")
    .option('--out <file>', 'from-vagrant: write the inventory here');
  cmd(root, 'steps', 'list the steps in the order they run').option('--markdown', 'as the README table');
  inventoryOptions(cmd(root, 'render', "write each host's domain XML for review (validated by libvirt)")).option(
    '--out <dir>',
    'where (default .kvmforge/render)',
  );
  cmd(
    root,
    'artifacts [action] [dir]',
    'packages built from source in the local cache; `publish DIR`: as a signed apt (and rpm) repository',
  )
    .option('--json', 'as JSON')
    .option('--gpg-key <id>', "publish: sign with this gpg key (default: kvmforge's own repository key)");
  connectionOptions(inventoryOptions(cmd(root, 'exits', 'KVM exit counters per running VM, and the verdict')))
    .option('--interval <s>', 'seconds between the two readings')
    .option('--vm <name>', 'only this VM; repeatable', collect)
    .option('--json', 'as JSON')
    .option('--plot <file.svg>', 'a chart')
    .option('--save', 'keep the result for kvmforge report (JOURNAL/insight/)')
    .option('--reasons', 'then, for another interval, exits by reason (perf)');
  connectionOptions(inventoryOptions(cmd(root, 'tune', "apply each VM's tier to its running vCPU threads")))
    .option('--plan', 'show what would change')
    .option('--json', 'as JSON');
  connectionOptions(inventoryOptions(cmd(root, 'top', "a host's VM processes and threads, live")))
    .requiredOption('--host <name>', 'the host')
    .option('--interval <s>', 'seconds between readings')
    .addOption(new Option('--sort <key>', 'sort by').choices(['cpu', 'mem']))
    .option('--once', 'one reading, then exit')
    .option('--json', 'as JSON (with --once)');
  connectionOptions(inventoryOptions(cmd(root, 'bench', 'the same workloads inside each guest, side by side')))
    .option('--vm <host>', 'a guest (an inventory host); give two or more', collect)
    .option('--size <MiB>', 'data per disk workload')
    .addOption(new Option('--block-size <size>', 'disk block size').choices(['4k', '1M']))
    .option('--runs <n>', 'runs per workload (the median is kept)')
    .option('--workloads <list>', 'disk-write,disk-read,network,cpu')
    .option('--dir <dir>', 'directory in the guest for the disk workloads')
    .option('--json', 'as JSON')
    .option('--plot <file.svg>', 'a chart')
    .option('--save', 'keep the result for kvmforge report (JOURNAL/insight/)')
    .option('--thesis', 'beside the thesis’s chapter 7 figures: two --vm, the optimized guest first')
    .option('--tiers <host>', "instead: the host's VMs with a tier, alone and beside CPU hogs (table 7-2)")
    .option('--seconds <s>', 'with --tiers: length of each window (default 10)')
    .option('--hogs <n>', 'with --tiers: busy loops on the host (default one per CPU)');

  connectionOptions(
    inventoryOptions(
      cmd(root, 'report', 'a page for the fleet: each host’s platform now, its steps converged or not, its last runs'),
    ),
  )
    .option('--out <dir>', 'where (default JOURNAL/report: index.html or report.md)')
    .addOption(new Option('--format <format>', 'html (one file, no network) or md').choices(['html', 'md']));

  const lab = root
    .command('lab')
    .description('disposable Debian VMs to try things on')
    .addHelpCommand(false)
    .enablePositionalOptions();
  cmd(lab, 'up', 'start lab VMs (resumed from a saved boot when there is one)', 'lab up')
    .option('--hosts <n>', 'how many VMs (default 1)')
    .option('--memory <MiB>', 'memory per VM (default 2048)')
    .option('--cpus <n>', 'CPUs per VM (default 2)')
    .option('--cold-boot', 'boot through GRUB instead of resuming the saved state')
    .option('--emulated <labN>', 'an IDE disk and an e1000 NIC for this VM; repeatable', collect)
    .option('--plain <labN>', "this VM gets an image without Debian's libvirt/QEMU; repeatable", collect)
    .option('--second-nic <labN>', 'give this VM a second NIC (eth1); repeatable', collect)
    .option('--install-deps', 'first install the system packages the lab needs (apt-get/dnf; says what)')
    .option('--apply', 'then run kvmforge apply on the lab inventory');
  cmd(lab, 'status', 'the lab VMs', 'lab status');
  cmd(lab, 'ssh <name> [command...]', 'a shell (or a command) on a lab VM', 'lab ssh').passThroughOptions();
  cmd(lab, 'reset <name>', 'back to the saved pristine state', 'lab reset');
  cmd(lab, 'down', 'stop and remove the lab VMs', 'lab down');
  cmd(root, 'completion <shell>', 'print a shell completion script (bash or zsh)');
  cmd(
    root,
    'install-deps <what...>',
    "install the system packages for: lab, render, exits, tests, all (the system's package manager; says what)",
  );
  for (const c of [root, lab, ...root.commands, ...lab.commands]) {
    c.exitOverride();
    c.configureOutput({
      outputError: (str, write) =>
        write(`${['kvmforge', commandPath(c)].filter(Boolean).join(' ')}: ${str.replace(/^error: /, '')}`),
    });
  }
  return root;
}

function commandPath(c: Command): string {
  const names: string[] = [];
  for (let x: Command | null = c; x?.parent; x = x.parent) names.unshift(x.name());
  return names.join(' ') || '';
}

let exitCode = 0;
const VERSION = (JSON.parse(readFileSync(join(PROJECT, 'package.json'), 'utf8')) as { version: string }).version;

const commands: Record<string, () => Promise<Run>> = {
  plan: async () => (f) => import('./commands.ts').then((c) => c.runCommand('plan', f)),
  check: async () => commands.plan(),
  apply: async () => (f) => import('./commands.ts').then((c) => c.runCommand(f.check ? 'plan' : 'apply', f)),
  build: async () => (f) => import('./commands.ts').then((c) => c.runCommand('build', f)),
  facts: async () => (f) => import('./commands.ts').then((c) => c.factsCommand(f)),
  inventory: async () => (f, a) => import('./commands.ts').then((c) => c.inventoryCommand(a[0], f)),
  steps: async () => (f) => import('./steps-command.ts').then((c) => c.stepsCommand(f)),
  render: async () => (f) => import('./commands.ts').then((c) => c.renderCommand(f)),
  artifacts: async () => (f, a) => import('./commands.ts').then((c) => c.artifactsCommand(f, a)),
  exits: async () => (f) => import('./side-commands.ts').then((c) => c.exits(f)),
  tune: async () => (f) => import('./side-commands.ts').then((c) => c.tune(f)),
  top: async () => (f) => import('./side-commands.ts').then((c) => c.top(f)),
  bench: async () => (f) => import('./side-commands.ts').then((c) => c.bench(f)),
  report: async () => (f) => import('./report.ts').then((c) => c.reportCommand(f)),
  completion: async () => (_f, a) => import('./completion.ts').then((c) => c.completionCommand(a[0], program)),
};
commands['install-deps'] = async () => (_f, a) => import('./install-deps.ts').then((c) => c.installDeps(a));
for (const sub of ['status', 'ssh', 'reset', 'down'])
  commands[`lab ${sub}`] = async () => (f, a) => import('../lab/cli.ts').then((c) => c.labCommand([sub, ...a], f));
commands['lab up'] = async () => async (f, a) => {
  if (f['install-deps']) {
    const code = await (await import('./install-deps.ts')).installDeps(['lab']);
    if (code !== 0) return code;
  }
  const up = await (await import('../lab/cli.ts')).labCommand(['up', ...a], f);
  if (up !== 0 || !f.apply) return up;
  const invDir = process.env.KVMFORGE_INVENTORY_DIR ?? 'inventories';
  return (await import('./commands.ts')).runCommand('apply', { inventory: [join(invDir, 'lab.yaml')] });
};

export async function main(argv: string[]): Promise<number> {
  exitCode = 0;
  const root = program(async (name) => commands[name]());
  try {
    if (!argv.length) {
      process.stderr.write(root.helpInformation());
      return 2;
    }
    await root.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help')
        return 0;
      const c = commandOf(root, argv);
      const usage = c.helpInformation().split('\n')[0];
      const help = ['kvmforge', commandPath(c), '--help'].filter(Boolean).join(' ');
      process.stderr.write(`${usage} (${help} for more)\n`);
      return 2;
    }
    if (e instanceof ConfigError) {
      process.stderr.write(e.problems.map((p) => `kvmforge: error: ${formatProblem(p)}`).join('\n') + '\n');
      return 2;
    }
    throw e;
  }
}

/** The (sub)command argv names, for the usage line after an error. */
function commandOf(root: Command, argv: string[]): Command {
  let c = root;
  for (const a of argv) {
    const next = c.commands.find((x) => x.name() === a || x.aliases().includes(a));
    if (!next) break;
    c = next;
  }
  return c;
}
