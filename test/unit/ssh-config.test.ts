// What `ssh -G` makes of each host, asked for many hosts at once (a run connecting to its hosts): one shell runs
// them in turn, and each host gets exactly what its own `ssh -G` prints (the oracle, run here one by one).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
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
