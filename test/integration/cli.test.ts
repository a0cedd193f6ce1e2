// The CLI refuses what it does not understand: every command parses only its own options. Each one given
// an option of another command is exit 2 with one line and that command's usage; --help works for each.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PROJECT } from '../../src/core/paths.ts';

const run = async (args: string[], env: Record<string, string> = {}) => {
  try {
    const bin = join(PROJECT, 'bin/kvmforge.js');
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, ...args], {
      env: { ...process.env, NO_COLOR: '1', KVMFORGE_INVENTORY: 'test/fixtures/inventories/nested.yaml', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
};

/** Every command, and an option that belongs to another one. */
const FOREIGN: [string[], string][] = [
  [['plan'], '--verify'],
  [['check'], '--plan'],
  [['apply'], '--plan'],
  [['build'], '--diff'],
  [['facts'], '--diff'],
  [['inventory'], '--forks'],
  [['steps'], '--limit'],
  [['render'], '--json'],
  [['artifacts'], '--limit'],
  [['exits'], '--steps'],
  [['tune'], '--diff'],
  [['top'], '--plan'], // with --host given: the required option is there, the foreign one is not
  [['bench'], '--verify'],
  [['lab', 'up'], '--diff'],
  [['lab', 'status'], '--hosts'],
  [['lab', 'reset'], '--memory'],
  [['lab', 'down'], '--limit'],
  [['completion'], '--json'],
];

describe('the CLI', () => {
  it.each(FOREIGN)('%j with %s: exit 2, one line and its usage', async (cmd, opt) => {
    const r = await run([...cmd, ...(cmd[0] === 'top' ? ['--host', 'node1'] : []), opt, 'x']);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    const name = cmd.join(' ').replace('check', '(check|plan)');
    expect(lines[0]).toMatch(new RegExp(`^kvmforge ${name}: unknown option '${opt}'`));
    expect(lines[1]).toMatch(/^Usage: kvmforge /);
    expect(lines).toHaveLength(2);
  });

  it('--help for every command, and --version', async () => {
    for (const cmd of [...FOREIGN.map(([c]) => c), []]) {
      const r = await run([...cmd, '--help']);
      expect(r.code, cmd.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/^Usage: kvmforge/);
    }
    const v = await run(['--version']);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('-e sets vars over every other (k=v, YAML/JSON, @file); the inventory shows them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvf-cli-'));
    writeFileSync(join(dir, 'vars.yml'), 'level: from_file\n');
    const host = async (...e: string[]) =>
      JSON.parse((await run(['inventory', '--host', 'node2', ...e.flatMap((x) => ['-e', x])])).stdout);
    expect((await host()).level).toBe('host');
    expect((await host('level=cli')).level).toBe('cli');
    expect((await host('{"level": [1, 2]}')).level).toEqual([1, 2]);
    expect((await host(`@${join(dir, 'vars.yml')}`, 'other=1')).level).toBe('from_file');
    const bad = await run(['inventory', '--host', 'node2', '-e', 'novalue']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--extra-vars: 'novalue': expected key=value/);
  });

  it('apply -C plans like Ansible --check; --list-hosts only lists', async () => {
    const r = await run(['apply', '-C', '-l', 'rack1:&gpu', '--list-hosts']);
    expect(r).toMatchObject({ code: 0, stdout: '  hosts (1):\n    node1\n' });
  });

  it('an unknown or misplaced word is refused the same way', async () => {
    const r = await run(['plan', 'extra-word']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/too many arguments|unknown/);
  });

  it('-v shows each command run on a host on stderr, -vv its output too; stdout keeps the report', async () => {
    const journal = mkdtempSync(join(tmpdir(), 'kvf-j-'));
    const base = ['facts', '-i', 'localhost,', '--json', '--journal', journal]; // this machine, read-only
    const quiet = await run(base);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).not.toMatch(/exit 0 in/);
    const v = await run([...base, '-v']);
    expect(v.stderr).toMatch(/^localhost .*: exit 0 in \d+ ms: /m);
    expect(v.stderr).not.toMatch(/--- stdout/);
    expect(JSON.parse(v.stdout).localhost.kernel).toMatch(/^\d/);
    expect((await run([...base, '-vv'])).stderr).toMatch(/--- stdout\n[\s\S]*@@/);
  });

  it('a missing system package is one line: the packages and the command that installs them', async () => {
    // a PATH with node and nothing else: every tool is missing
    const dir = mkdtempSync(join(tmpdir(), 'kvf-deps-'));
    mkdirSync(join(dir, 'bin'));
    symlinkSync(process.execPath, join(dir, 'bin', 'node'));
    const bare = { PATH: join(dir, 'bin') };
    writeFileSync(join(dir, 'inv.yaml'), 'all:\n  hosts:\n    h:\n      domains_vms: [{ name: a, memory: 256 }]\n');
    const r = await run(['render', '-i', join(dir, 'inv.yaml'), '--out', join(dir, 'out')], bare);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      new RegExp(
        String.raw`missing virt-xml-validate, virsh, xmllint .*: run ` +
          String.raw`\`kvmforge install-deps render\` \(apt-get install libvirt-clients libxml2-utils\)`,
      ),
    );
    const deps = await run(['install-deps', 'lab'], bare);
    expect(deps.code).toBe(2);
    expect(deps.stderr).toMatch(
      /no apt-get or dnf on this machine; install these yourself .*qemu-system-x86 qemu-utils/,
    );
    expect((await run(['install-deps', 'lab'])).stderr).toMatch(/already installed/); // this machine has them
    expect((await run(['install-deps', 'nothing'])).code).toBe(2);
  });

  it('bench: the options of one mode are refused in the other; --tiers needs a host with tiered VMs', async () => {
    const cases: [string[], RegExp][] = [
      [['--vm', 'node1', '--seconds', '5'], /^kvmforge: error: --seconds: only with --tiers HOST/],
      [['--tiers', 'node1', '--runs', '3'], /^kvmforge: error: --runs: not with --tiers/],
      [['--tiers', 'nosuch'], /^kvmforge: error: --tiers 'nosuch': expected a host of the inventory \(solo, node1, /],
      [['--tiers', 'node1', '--vm', 'node2'], /leave out --vm/],
      [['--tiers', 'node1', '--save'], /--save keeps the device comparison/],
      [['--tiers', 'node1', '--seconds', '0'], /--seconds '0': expected a whole number from 1 to 600/],
      [['--tiers', 'node1'], /--tiers node1: no VM of its domains_vms names a tier/],
    ];
    for (const [args, want] of cases) {
      const r = await run(['bench', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr, args.join(' ')).toMatch(want);
    }
  });

  it('shell completion for bash and zsh, made from the commands themselves', async () => {
    const b = await run(['completion', 'bash']);
    expect(b.code).toBe(0);
    const words = await promisify(execFile)('bash', [
      '-c',
      `${b.stdout}\nCOMP_WORDS=(kvmforge apply --li); COMP_CWORD=2; _kvmforge; echo "\${COMPREPLY[@]}"`,
    ]);
    expect(words.stdout.trim().split(' ').sort()).toEqual(['--limit', '--list-hosts']);
    expect((await run(['completion', 'zsh'])).stdout).toMatch(/^#compdef kvmforge/);
    expect((await run(['completion', 'fish'])).code).toBe(2);
  });
});
