// What `ssh -G` makes of each host, asked for many hosts at once (a run connecting to its hosts): one shell runs
// them in turn, and each host gets exactly what its own `ssh -G` prints (the oracle, run here one by one).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSshG, sshConfig } from '../../src/transport/ssh-config.ts';
import type { Connection } from '../../src/core/types.ts';

const dir = mkdtempSync(join(tmpdir(), 'kvmforge-sshg-'));
const cfgFile = join(dir, 'config');
writeFileSync(
  cfgFile,
  'Host web*\n  User deploy\n  Port 2200\n  IdentityFile ~/.ssh/web_key\nHost db1\n  HostName 10.9.8.7\n' +
    '  ProxyJump bastion.example.org\nHost *\n  ServerAliveInterval 7\n',
);
const conn = (address: string, sshOptions: string[] = []): Connection => ({
  address,
  port: 22,
  user: 'root',
  local: false,
  become: false,
  sshOptions,
  sshConfigFile: cfgFile,
});

describe('ssh -G for many hosts at once', () => {
  it('each host gets what its own ssh -G says; a bad one fails alone', async () => {
    // options with spaces and quotes reach ssh as one argument each (the shell in between quotes them)
    const hosts = [
      conn('web1'),
      conn('web2'),
      conn('db1'),
      conn('other'),
      conn('proxied', ["ProxyCommand=nc -X 5 '%h' %p", 'User=ops']),
    ];
    const bad = conn('web3', ['NoSuchOption=1']);
    const results = await Promise.allSettled([...hosts, bad].map((c) => sshConfig(c)));
    hosts.forEach((c, i) => {
      const opts = (c.sshOptions ?? []).flatMap((o) => ['-o', o]);
      const oracle = execFileSync('ssh', ['-G', '-F', cfgFile, ...opts, '--', c.address], { encoding: 'utf8' });
      expect(results[i], c.address).toEqual({ status: 'fulfilled', value: parseSshG(oracle) });
    });
    expect(results[0]).toMatchObject({ value: { user: 'deploy', port: 2200, serverAliveIntervalS: 7 } });
    expect(results[2]).toMatchObject({ value: { hostname: '10.9.8.7', proxyJump: 'bastion.example.org' } });
    expect(results[4]).toMatchObject({ value: { proxyCommand: "nc -X 5 '%h' %p", user: 'ops' } });
    const own = spawnSync('ssh', ['-G', '-F', cfgFile, '-o', 'NoSuchOption=1', '--', 'web3'], { encoding: 'utf8' });
    expect(own.status).not.toBe(0);
    expect(results[5]).toEqual({
      status: 'rejected',
      reason: expect.objectContaining({ message: `ssh -G web3 failed: ${own.stderr.trim().split('\n')[0]}` }),
    });
  });
});

describe('one ssh -G for every host, where the configuration is the same for every host', () => {
  // a wrapper in PATH counts the ssh -G runs and hands each to the real ssh
  const bin = join(dir, 'bin');
  const log = join(dir, 'ssh.log');
  mkdirSync(bin);
  writeFileSync(join(bin, 'ssh'), `#!/bin/sh\necho "$*" >> ${log}\nexec /usr/bin/ssh "$@"\n`);
  chmodSync(join(bin, 'ssh'), 0o755);
  mkdirSync(join(dir, 'conf.d'));
  writeFileSync(join(dir, 'conf.d/a.conf'), 'Port 2222\nUser ops\nSendEnv LANG LC_*\n');
  writeFileSync(join(dir, 'conf.d/b.conf'), 'Host db*\n  Port 5432\n');
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const general = file('general', `Include ${dir}/conf.d/a.conf\nHost *\n  ServerAliveInterval 9\n`);
  const specific = file('specific', `Include "${dir}/conf.d/*.conf"\nHost *\n  ServerAliveInterval 9\n`);
  const oneName = file('one-name', 'Host=*\n  HostName jump.example.org\n');
  const token = file('token', 'Host *\n  UserKnownHostsFile ~/.ssh/known_hosts_%h\n');
  const names = ['web1', 'web2', 'db1', '10.0.0.7', '2001:db8::5', 'Mixed.Case', 'db2'];

  const runs = async (cfg: string, options: string[] = []) => {
    writeFileSync(log, '');
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      const hosts = names.map((n) => ({ ...conn(n, options), sshConfigFile: cfg }));
      const got = await Promise.all(hosts.map((c) => sshConfig(c)));
      hosts.forEach((c, i) => {
        const opts = options.flatMap((o) => ['-o', o]);
        const oracle = execFileSync('/usr/bin/ssh', ['-G', '-F', cfg, ...opts, '--', c.address], { encoding: 'utf8' });
        expect(got[i], c.address).toEqual(parseSshG(oracle));
      });
      return readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).length;
    } finally {
      process.env.PATH = path;
    }
  };

  it('no Match, no Host but Host *, no % token: one ssh -G answers for every plain name', async () => {
    // Mixed.Case asks on its own: ssh prints names lowercased, and this reader does not guess how
    expect(await runs(general)).toBe(2);
    expect(await runs(general, ['ConnectTimeout=4'])).toBe(2);
  });

  it('a Host block (in an Included file), a HostName for all, a % token, canonicalizing: each asks', async () => {
    expect(await runs(specific)).toBe(names.length);
    expect(await runs(oneName)).toBe(names.length);
    expect(await runs(token)).toBe(names.length);
    expect(await runs(general, ['CanonicalizeHostname=yes'])).toBe(names.length);
    expect(await runs(general, ['ProxyCommand=nc %h %p'])).toBe(names.length);
  });
});
