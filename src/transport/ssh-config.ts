// The connection OpenSSH would make: `ssh -G` with what the inventory set (as -o options, which win) prints
// the result of ~/.ssh/config and /etc/ssh/ssh_config — HostName, User, Port, IdentityFile (every default
// identity when none is set), ProxyJump, ProxyCommand, known_hosts files, keepalives. No network is used.
import { execFile } from 'node:child_process';
import { homedir, userInfo } from 'node:os';
import { HostError } from '../core/errors.ts';
import { quote } from '../core/sh.ts';
import type { Connection } from '../core/types.ts';
import { configIsGeneral } from './ssh-config-files.ts';

export interface SshConfig {
  hostname: string;
  user: string;
  port: number;
  identityFiles: string[];
  identitiesOnly: boolean;
  proxyJump?: string;
  proxyCommand?: string;
  userKnownHostsFiles: string[];
  globalKnownHostsFiles: string[];
  serverAliveIntervalS: number;
  serverAliveCountMax: number;
  connectTimeoutS?: number;
}

const expand = (p: string) => p.replace(/^~(?=\/|$)/, homedir());

/** Parses `ssh -G` output. */
export function parseSshG(out: string): SshConfig {
  const one = new Map<string, string>();
  const many = new Map<string, string[]>();
  for (const line of out.split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const k = m[1].toLowerCase();
    one.set(k, m[2]);
    many.set(k, [...(many.get(k) ?? []), m[2]]);
  }
  const none = (v?: string) => (v === undefined || v === 'none' ? undefined : v);
  return {
    hostname: one.get('hostname') ?? '',
    user: one.get('user') ?? userInfo().username,
    port: Number(one.get('port') ?? 22),
    identityFiles: (many.get('identityfile') ?? []).map(expand),
    identitiesOnly: one.get('identitiesonly') === 'yes',
    proxyJump: none(one.get('proxyjump')),
    proxyCommand: none(one.get('proxycommand')),
    userKnownHostsFiles: (one.get('userknownhostsfile') ?? '').split(/\s+/).filter(Boolean).map(expand),
    globalKnownHostsFiles: (one.get('globalknownhostsfile') ?? '').split(/\s+/).filter(Boolean).map(expand),
    serverAliveIntervalS: Number(one.get('serveraliveinterval') ?? 0),
    serverAliveCountMax: Number(one.get('serveralivecountmax') ?? 3),
    connectTimeoutS: none(one.get('connecttimeout')) === undefined ? undefined : Number(one.get('connecttimeout')),
  };
}

let sshMissing = false;

/** How `ssh -G` ended: 0, its exit code, or the spawn error's code (ENOENT: no ssh binary). */
type SshGResult = { code: number | string | null; stdout: string; stderr: string };

/** `ssh -G` run directly (no shell in between). */
function sshGOne(args: string[], resolve: (r: SshGResult) => void) {
  execFile('ssh', ['-G', ...args], { timeout: 10_000 }, (err, stdout, stderr) => {
    const code = err ? ((err as NodeJS.ErrnoException).code ?? 1) : 0;
    resolve({ code, stdout, stderr: stderr || (err && !stdout ? err.message : '') });
  });
}

const MARK = '__KVMFORGE_SSH_G__';
let batch: { args: string[]; resolve: (r: SshGResult) => void }[] = [];

/** `ssh -G` for each host; the requests of one turn of the event loop (a run connecting to its hosts) share one
 * shell that runs them in turn: a process started from kvmforge costs more CPU than the ssh -G it runs. */
function sshG(args: string[]): Promise<SshGResult> {
  return new Promise((resolve) => {
    batch.push({ args, resolve });
    if (batch.length === 1) setImmediate(flushSshG);
  });
}

function flushSshG() {
  const mine = batch;
  batch = [];
  if (mine.length === 1) {
    sshGOne(mine[0].args, mine[0].resolve);
    return;
  }
  const script = mine
    .map((b, i) => `ssh -G ${b.args.map((a) => quote(a)).join(' ')}; echo "${MARK}${i} $?"; echo ${MARK}${i} >&2`)
    .join('\n');
  execFile('sh', ['-c', script], { timeout: 60_000, maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
    const parts = (text: string) => {
      const out: { text: string; code?: number }[] = mine.map(() => ({ text: '' }));
      let i = 0;
      for (const line of text.split('\n')) {
        const m = line.startsWith(MARK) ? /^__KVMFORGE_SSH_G__(\d+)(?: (\d+))?$/.exec(line) : null;
        if (m) {
          out[Number(m[1])].code = m[2] === undefined ? undefined : Number(m[2]);
          i = Number(m[1]) + 1;
        } else if (i < out.length) out[i].text += `${line}\n`;
      }
      return out;
    };
    const outs = parts(stdout);
    const errs = parts(stderr);
    mine.forEach((b, i) => {
      const code = outs[i].code;
      // the shell did not get that far (killed, timed out): this host asks on its own
      if (code === undefined) {
        sshGOne(b.args, b.resolve);
        return;
      }
      b.resolve({
        code: code === 0 ? 0 : code === 127 ? 'ENOENT' : code,
        stdout: outs[i].text,
        stderr: errs[i].text || (err && code !== 0 ? err.message : ''),
      });
    });
  });
}

/** What ssh -G said for the same arguments in this run: a host that reconnects (a reboot, a bridge switch)
 * does not ask again. A failure is not kept. */
const seen = new Map<string, Promise<SshGResult>>();

/** A host name or address that ssh prints as it was given (it lowercases names), in no ssh token or pattern. */
const PLAIN = /^[a-z0-9._:-]+$/;

/** The first host asked for with each set of options, and ssh's answer for it. */
const firstOf = new Map<string, { address: string; answer: Promise<SshGResult> }>();

/** This host's answer from another host's `ssh -G` with the same options, where ssh's configuration and the
 * options say the same for every host (configIsGeneral, no `%` token); undefined where its own is needed. */
async function sharedAnswer(args: string[], conn: Connection): Promise<SshConfig | undefined> {
  const general = (a: string) => !a.includes('%') && !/^canonicalizehostname\s*[= ]\s*(?!no$)/i.test(a);
  if (!PLAIN.test(conn.address) || !args.every(general) || !configIsGeneral(conn.sshConfigFile)) return undefined;
  const key = JSON.stringify(args);
  const first = firstOf.get(key);
  if (!first) {
    const answer = sshG([...args, '--', conn.address]);
    firstOf.set(key, { address: conn.address, answer });
    seen.set(JSON.stringify([...args, conn.address]), answer);
    return undefined;
  }
  const r = await first.answer;
  if (r.code !== 0) return undefined;
  const cfg = parseSshG(r.stdout);
  // a HostName for every host (or an option naming one) is not this host's name: it asks on its own
  return cfg.hostname === first.address ? { ...cfg, hostname: conn.address } : undefined;
}

/** What `ssh -G` makes of this connection; without an ssh binary, the inventory's values and ssh's defaults. */
export async function sshConfig(conn: Connection): Promise<SshConfig> {
  // a connection made in code, not from an inventory, says everything itself
  const options = conn.sshOptions ?? [
    `Port=${conn.port}`,
    `User=${conn.user}`,
    ...(conn.keyFile ? [`IdentityFile=${conn.keyFile}`, 'IdentitiesOnly=yes'] : []),
  ];
  const args = [...(conn.sshConfigFile ? ['-F', conn.sshConfigFile] : []), ...options.flatMap((o) => ['-o', o])];
  if (!sshMissing) {
    const shared = await sharedAnswer(args, conn);
    if (shared) return shared;
    const key = JSON.stringify([...args, conn.address]);
    if (!seen.has(key)) seen.set(key, sshG([...args, '--', conn.address]));
    const r = await seen.get(key)!;
    if (r.code === 0) return parseSshG(r.stdout);
    if (r.code !== 'ENOENT') {
      seen.delete(key);
      throw new HostError(`ssh -G ${conn.address} failed: ${r.stderr.trim().split('\n')[0]}`);
    }
    sshMissing = true;
  }
  const opt = (k: string) =>
    options.filter((o) => o.toLowerCase().startsWith(`${k}=`)).map((o) => o.slice(k.length + 1));
  const home = homedir();
  return {
    hostname: conn.address,
    user: opt('user')[0] ?? userInfo().username,
    port: Number(opt('port')[0] ?? 22),
    identityFiles: opt('identityfile').length
      ? opt('identityfile').map(expand)
      : ['id_rsa', 'id_ecdsa', 'id_ed25519'].map((f) => `${home}/.ssh/${f}`),
    identitiesOnly: opt('identitiesonly')[0] === 'yes',
    proxyJump: opt('proxyjump')[0],
    proxyCommand: opt('proxycommand')[0],
    userKnownHostsFiles: opt('userknownhostsfile').length
      ? opt('userknownhostsfile').map(expand)
      : [`${home}/.ssh/known_hosts`, `${home}/.ssh/known_hosts2`],
    globalKnownHostsFiles: ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
    serverAliveIntervalS: Number(opt('serveraliveinterval')[0] ?? 0),
    serverAliveCountMax: Number(opt('serveralivecountmax')[0] ?? 3),
    connectTimeoutS: opt('connecttimeout')[0] ? Number(opt('connecttimeout')[0]) : undefined,
  };
}
