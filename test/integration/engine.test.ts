// The engine against real sshd servers in network namespaces (no mocked SSH).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NsLab, SUDO_PASSWORD } from '../harness/nshosts.ts';
import type { Report } from '../../src/runner/report.ts';

const HEALTHY = 'h1,h2,h3,h4,h5';
const lab = new NsLab(8);
let inv = '';
const accepted = (h: string) =>
  (readFileSync(join(lab.host(h).dir, 'sshd.log'), 'utf8').match(/Accepted publickey/g) ?? []).length;
const json = (stdout: string) => JSON.parse(stdout) as Report;
const hostile = 'a\'b "c" $(touch /tmp/kvf-pwned) `id` ; rm -rf / \n-x <&>';

beforeAll(async () => {
  await lab.up();
  const badKey = join(lab.dir, 'not-authorized');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', badKey]);
  const files = (h: string) => [
    'files:',
    `  - path: /etc/kvmforge-test/${h}.conf`,
    `    content: ${JSON.stringify(`host ${h}\n${hostile}\n`)}`,
    `  - path: "/etc/kvmforge-test/odd name 'q' $(x)"`,
    '    content: "x\\n"',
    '    mode: "600"',
  ];
  inv = lab.inventory(join(lab.dir, 'inv.yaml'), {
    h1: files('h1'),
    h2: files('h2'),
    h3: files('h3'),
    h4: ['ansible_user: kvmforge', 'ansible_become: true', ...files('h4')],
    h5: ['ansible_user: ops', 'ansible_become: true', 'kvmforge_become_password_env: KVF_SUDO_PW', ...files('h5')],
    h6: files('h6'),
    h7: files('h7'),
    h8: [`ansible_ssh_private_key_file: ${badKey}`, ...files('h8')],
  });
  lab.stopHost('h6');
  // h7 presents a key other than the one we know
  const known = readFileSync(lab.knownHosts, 'utf8').replace(lab.host('h7').hostKeyPub, lab.host('h1').hostKeyPub);
  writeFileSync(lab.knownHosts, known);
}, 300_000);

afterAll(() => lab.down());

const env = { KVF_SUDO_PW: SUDO_PASSWORD };

describe('engine on namespace hosts', async () => {
  it('plan shows the changes and changes nothing', async () => {
    const r = await lab.cli(['plan', '-i', inv, '--limit', HEALTHY, '--diff'], env);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    for (const h of HEALTHY.split(',')) {
      expect(r.stdout).toContain(`${h} files: create /etc/kvmforge-test/${h}.conf`);
      expect(existsSync(lab.hostPath(h, 'etc/kvmforge-test'))).toBe(false);
    }
    expect(r.stdout).toMatch(/10 change\(s\) would be made; 0 host\(s\) failed/);
    expect(r.stdout).toContain('+host h1');
  });

  it('apply makes them over one connection per host, as root through sudo where needed', async () => {
    const before = accepted('h4');
    const r = await lab.cli(['apply', '-i', inv, '--limit', HEALTHY, '--verify', '--json'], env);
    expect(r.code).toBe(0);
    const rep = json(r.stdout);
    expect(rep.hosts.map((h) => h.status)).toEqual(['changed', 'changed', 'changed', 'changed', 'changed']);
    expect(accepted('h4') - before).toBe(1);
    for (const h of HEALTHY.split(',')) {
      const p = lab.hostPath(h, `etc/kvmforge-test/${h}.conf`);
      expect(readFileSync(p, 'utf8')).toBe(`host ${h}\n${hostile}\n`);
      expect(statSync(p).uid).toBe(0);
      const odd = lab.hostPath(h, "etc/kvmforge-test/odd name 'q' $(x)");
      expect(statSync(odd).mode & 0o777).toBe(0o600);
    }
    expect(existsSync('/tmp/kvf-pwned')).toBe(false);
    expect(lab.inHost('h1', 'ls /tmp/kvf-pwned 2>/dev/null || echo absent').trim()).toBe('absent');
  });

  it('a second apply reports zero changes', async () => {
    const r = await lab.cli(['apply', '-i', inv, '--limit', HEALTHY, '--json'], env);
    expect(r.code).toBe(0);
    const rep = json(r.stdout);
    expect(rep.hosts.every((h) => h.status === 'ok')).toBe(true);
    expect(rep.hosts.flatMap((h) => h.steps).every((s) => s.changes.length === 0)).toBe(true);
  });

  it('a changed file is put back, and its previous content kept', async () => {
    lab.inHost('h2', 'echo tampered > /etc/kvmforge-test/h2.conf');
    const r = await lab.cli(['apply', '-i', inv, '--limit', 'h2', '--diff'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('-tampered');
    expect(readFileSync(lab.hostPath('h2', 'etc/kvmforge-test/h2.conf.kvmforge.bak'), 'utf8')).toBe('tampered\n');
  });

  it('unreachable, changed-key and refused-auth hosts fail alone; the others finish', async () => {
    const junitFile = join(lab.dir, 'junit.xml');
    const r = await lab.cli(['apply', '-i', inv, '--junit', junitFile], env);
    expect(r.code).toBe(1);
    // the summary fits 100 columns: long lines are wrapped with an indent
    expect(r.stdout.split('\n').every((l) => [...l].length <= 100)).toBe(true);
    const table = r.stdout.replace(/\n {4}/g, ' ');
    expect(table).toMatch(/h6: FAILED: connection refused by root@10\.77\.0\.16/);
    expect(table).toMatch(
      new RegExp(
        String.raw`h7: FAILED: host key for 10\.77\.0\.17 has CHANGED \(now SHA256:[A-Za-z0-9+/]{43}; known key at` +
          String.raw` .*known_hosts:7\): refused`,
      ),
    );
    expect(table).toMatch(/h8: FAILED: authentication failed for root@10\.77\.0\.18/);
    expect(table).toMatch(/^h1 — ok, /m); // one block per host: eleven steps don't fit 100 columns
    expect(table).not.toMatch(/❯|✔/); // the live view went to stderr
    expect(table).toMatch(/3 host\(s\) failed/);
    const junit = readFileSync(junitFile, 'utf8');
    expect(junit).toMatch(/failures="3"/);
    expect(junit).toContain('classname="h7"');
    // --retry-failed runs only those three
    const again = await lab.cli(['plan', '-i', inv, '--retry-failed', '--json'], env);
    expect(json(again.stdout).hosts.map((h) => h.host)).toEqual(['h6', 'h7', 'h8']);
  });

  it('refuses an unknown host key unless told to accept it, then pins it', async () => {
    const inv2 = join(lab.dir, 'inv-unknown.yaml');
    writeFileSync(
      inv2,
      `all:\n  hosts:\n    h3:\n      ansible_host: ${lab.host('h3').address}\n      ansible_ssh_private_key_file: ` +
        `${lab.key}\n`,
    );
    const r1 = await lab.cli(['facts', '-i', inv2, '--known-hosts', 'kh-project']);
    expect(r1.code).toBe(1);
    expect(r1.stdout).toMatch(/host key for 10\.77\.0\.13 is unknown \(SHA256:.{43}\): refused/);
    const r2 = await lab.cli(['facts', '-i', inv2, '--known-hosts', 'kh-project', '--accept-new-host-keys']);
    expect(r2.code).toBe(0);
    expect(readFileSync(join(lab.dir, 'kh-project'), 'utf8')).toContain(`10.77.0.13 ${lab.host('h3').hostKeyPub}`);
    const r3 = await lab.cli(['facts', '-i', inv2, '--known-hosts', 'kh-project']);
    expect(r3.code).toBe(0);
  });

  it('fails a host whose sudo password is wrong, in one line, and never logs the password', async () => {
    const r = await lab.cli(['apply', '-i', inv, '--limit', 'h5', '--junit', 'j5.xml'], {
      KVF_SUDO_PW: 'wrong-password-123',
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/h5: FAILED: sudo failed for ops: wrong password/);
    const ok = await lab.cli(['plan', '-i', inv, '--limit', 'h5', '--json'], env);
    expect(ok.code).toBe(0);
    const everything = [r.stdout, r.stderr, ok.stdout, ok.stderr, readFileSync(join(lab.dir, 'j5.xml'), 'utf8')];
    const runs = join(lab.dir, '.kvmforge', 'runs');
    for (const d of readdirSync(runs))
      for (const f of readdirSync(join(runs, d))) everything.push(readFileSync(join(runs, d, f), 'utf8'));
    for (const text of everything) {
      expect(text).not.toContain(SUDO_PASSWORD);
      expect(text).not.toContain('wrong-password-123');
    }
  });

  it('gathers facts in one round trip per host', async () => {
    const r = await lab.cli(['facts', '-i', inv, '--limit', 'h1,h4', '--json'], env);
    expect(r.code).toBe(0);
    const f = JSON.parse(r.stdout);
    expect(f.h1.os).toMatchObject({ id: 'debian', versionId: '12', family: 'debian' });
    expect(f.h1.interfaces.find((i: any) => i.name === 'eth0').addresses[0].address).toBe('10.77.0.11');
    expect(f.h1.defaultRoute).toEqual({ dev: 'eth0', gateway: '10.77.0.1' });
    expect(f.h4.hostname).toBe('h4');
    expect(f.h4.user.uid).toBe(0); // facts read through sudo
  });

  it('rejects bad input with exit 2 before any connection', async () => {
    const before = accepted('h1');
    const bad = (name: string, text: string) => {
      const p = join(lab.dir, name);
      writeFileSync(p, text);
      return p;
    };
    const cases: [string[], RegExp][] = [
      [['plan', '-i', join(lab.dir, 'missing.yaml')], /missing\.yaml: cannot read inventory: no such file/],
      [['plan', '-i', bad('syntax.yaml', 'all:\n  hosts:\n    h1: [\n')], /syntax\.yaml:\d+:\d+: YAML syntax/],
      [['plan', '-i', inv, '--steps', 'files,nosuchstep'], /unknown step 'nosuchstep'/],
      [['plan', '-i', inv, '--limit', 'zz*'], /--limit 'zz\*' selects no host/],
      [
        [
          'plan',
          '-i',
          bad('type.yaml', `all:\n  hosts:\n    h1:\n      ansible_host: 10.77.0.11\n      files: "/etc/x"\n`),
        ],
        /type\.yaml:5:14: h1\.files: expected array/,
      ],
      [['plan', '-i', inv, '--forks', '0'], /--forks '0'/],
      [['frobnicate'], /unknown command 'frobnicate'/],
    ];
    for (const [args, re] of cases) {
      const r = await lab.cli(args, env);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(re);
    }
    expect(accepted('h1')).toBe(before);
  });
});
