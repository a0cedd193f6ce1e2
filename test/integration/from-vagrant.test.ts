// `inventory from-vagrant`: vagrant ssh-config text → inventory + pinned host keys, then a normal run.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSshConfig } from '../../src/lab/vagrant.ts';
import { NsLab } from '../harness/nshosts.ts';

const lab = new NsLab(2);
beforeAll(() => lab.up(), 300_000);
afterAll(() => lab.down());

const sshConfig = () =>
  lab.hosts
    .map((h) =>
      [
        `Host ${h.name}`,
        `  HostName ${h.address}`,
        '  User kvmforge',
        '  Port 22',
        '  UserKnownHostsFile /dev/null',
        '  StrictHostKeyChecking no',
        '  PasswordAuthentication no',
        `  IdentityFile ${lab.key}`,
        '  IdentitiesOnly yes',
        '  LogLevel FATAL',
        '',
      ].join('\n'),
    )
    .join('\n');

describe('inventory from-vagrant', () => {
  it('parses vagrant ssh-config output', () => {
    expect(parseSshConfig(sshConfig())[1]).toEqual({
      name: 'h2',
      hostName: '10.77.0.12',
      user: 'kvmforge',
      port: 22,
      identityFile: lab.key,
    });
    expect(
      parseSshConfig(
        'Host default\n  HostName 127.0.0.1\n  Port 2200\n  IdentityFile "/home/u/my vms/.vagrant/private_key"\n',
      )[0],
    ).toMatchObject({
      name: 'default',
      port: 2200,
      user: 'vagrant',
      identityFile: '/home/u/my vms/.vagrant/private_key',
    });
  });

  it('writes an inventory that runs, with each host key pinned (no accept-new needed afterwards)', async () => {
    writeFileSync(join(lab.dir, 'ssh-config'), sshConfig());
    const r = await lab.cli(['inventory', 'from-vagrant', '--from', 'ssh-config', '--out', 'inventories/vagrant.yaml']);
    expect(r.stderr).toContain('h1: host key recorded');
    expect(r.code).toBe(0);
    const kh = readFileSync(join(lab.dir, 'inventories/vagrant-known_hosts'), 'utf8');
    for (const h of lab.hosts) expect(kh).toContain(`${h.address} ${h.hostKeyPub}`);
    const facts = await lab.cli(['facts', '-i', 'inventories/vagrant.yaml', '--json']);
    expect(facts.code).toBe(0);
    expect(JSON.parse(facts.stdout).h2.hostname).toBe('h2');
    expect(readFileSync(join(lab.dir, 'inventories/vagrant.yaml'), 'utf8')).not.toMatch(/StrictHostKeyChecking/);
  });
});
