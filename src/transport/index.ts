import { resolve } from 'node:path';
import type { Host, Transport } from '../core/types.ts';

export interface ConnectOptions {
  /** Project-local known_hosts (default .kvmforge/known_hosts). */
  knownHosts: string;
  acceptNewHostKeys: boolean;
  /** Sudo password from --ask-become-pass, for every host that has no env var of its own. */
  becomePassword?: string;
  commandTimeoutMs?: number;
  /** How long one connection attempt may take (default 20 s); reconnect loops use less. */
  connectTimeoutMs?: number;
}

export function becomePasswordFor(host: Host, opts: ConnectOptions): string | undefined {
  const env = host.conn.becomePasswordEnv;
  if (env && process.env[env] !== undefined) return process.env[env];
  return opts.becomePassword;
}

export async function connect(host: Host, opts: ConnectOptions): Promise<Transport> {
  // loaded on first use: a CLI call that connects nowhere doesn't pay for ssh2 or zx
  if (host.conn.local) return new (await import('./local.ts')).LocalTransport();
  const { SshTransport } = await import('./ssh.ts');
  const project = resolve(opts.knownHosts);
  // besides these, ssh's own: UserKnownHostsFile and GlobalKnownHostsFile as ~/.ssh/config says
  const files = [project];
  if (host.conn.knownHostsFile) files.push(host.conn.knownHostsFile);
  return SshTransport.connect(host.conn, {
    knownHostsFiles: files,
    acceptNewInto: opts.acceptNewHostKeys ? project : null,
    becomePassword: becomePasswordFor(host, opts),
    defaultTimeoutMs: opts.commandTimeoutMs ?? (Number(host.vars.kvmforge_command_timeout) || 600) * 1000,
    connectTimeoutMs: opts.connectTimeoutMs,
  });
}
