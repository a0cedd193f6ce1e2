// A host's connection from its Ansible vars. What the inventory sets becomes OpenSSH options (Port, User,
// IdentityFile, ProxyJump, …) that `ssh -G` later completes from ~/.ssh/config, as ssh itself would when
// Ansible runs it. ansible_ssh_common_args / ansible_ssh_extra_args / ansible_ssh_args: each option is
// either honoured or refused with its file:line — never silently dropped.
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { Problem } from '../core/errors.ts';
import type { Connection, Position } from '../core/types.ts';
import { ansibleBool } from './check-vars.ts';
import { parseAddress } from './hostnames.ts';
import type { VarPositions, Vars } from './graph.ts';

/** ssh -o options kvmforge honours, by lower-case name; the value check returns a refusal or undefined. */
const HONOURED: Record<string, (v: string) => string | undefined> = {
  port: (v) => (/^[0-9]+$/.test(v) && Number(v) > 0 && Number(v) < 65536 ? undefined : 'expected a port number'),
  user: (v) => (v ? undefined : 'expected a user name'),
  identityfile: (v) => (v ? undefined : 'expected a key file'),
  identitiesonly: (v) => (/^(yes|no)$/i.test(v) ? undefined : 'expected yes or no'),
  proxyjump: (v) => (v ? undefined : 'expected [user@]host[:port]'),
  proxycommand: (v) => (v ? undefined : 'expected a command'),
  userknownhostsfile: (v) => (v ? undefined : 'expected a file'),
  stricthostkeychecking: (v) =>
    /^(yes|ask|true)$/i.test(v)
      ? undefined
      : 'kvmforge always checks host keys: record new keys once with --accept-new-host-keys instead',
  serveraliveinterval: (v) => (/^[0-9]+$/.test(v) ? undefined : 'expected seconds'),
  serveralivecountmax: (v) => (/^[0-9]+$/.test(v) ? undefined : 'expected a count'),
  connecttimeout: (v) => (/^[0-9]+$/.test(v) ? undefined : 'expected seconds'),
  // connection sharing: kvmforge keeps one connection per host for the whole run anyway
  controlmaster: () => undefined,
  controlpersist: () => undefined,
  controlpath: () => undefined,
};

const FLAG_OPTION: Record<string, string> = { '-p': 'Port', '-l': 'User', '-i': 'IdentityFile', '-J': 'ProxyJump' };

/** Splits an ssh argument string like a shell would (quotes, backslashes); undefined when unbalanced. */
function splitArgs(s: string): string[] | undefined {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let q: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) {
      if (c === q) q = undefined;
      else if (c === '\\' && q === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      q = c;
      has = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (q) return undefined;
  if (has) out.push(cur);
  return out;
}

/** ssh arguments → `Name=value` options, or a refusal naming the first option kvmforge can't honour. */
export function sshArgsToOptions(args: string): { options: string[]; configFile?: string } | { refused: string } {
  const words = splitArgs(args);
  if (!words) return { refused: 'unbalanced quotes' };
  const options: string[] = [];
  let configFile: string | undefined;
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    let opt: string | undefined;
    if (w === '-F' || (w.startsWith('-F') && w.length > 2)) {
      configFile = w === '-F' ? words[++i] : w.slice(2);
      if (!configFile) return { refused: '-F without a file' };
      continue;
    }
    if (w === '-o' || (w.startsWith('-o') && w.length > 2)) {
      opt = w === '-o' ? words[++i] : w.slice(2);
      if (opt === undefined) return { refused: '-o without an option' };
    } else if (FLAG_OPTION[w.slice(0, 2)]) {
      const val = w.length > 2 ? w.slice(2) : words[++i];
      if (val === undefined) return { refused: `${w} without a value` };
      opt = `${FLAG_OPTION[w.slice(0, 2)]}=${val}`;
    } else return { refused: `'${w}' (kvmforge honours -o options it knows, -p, -l, -i, -J and -F)` };
    const m = /^([A-Za-z]+)\s*[= ]\s*(.*)$/.exec(opt);
    if (!m) return { refused: `'-o ${opt}': expected Name=value` };
    const check = HONOURED[m[1].toLowerCase()];
    if (!check) return { refused: `'-o ${opt}': kvmforge does not implement the ssh option ${m[1]}` };
    const why = check(m[2]);
    if (why) return { refused: `'-o ${opt}': ${why}` };
    options.push(`${m[1]}=${m[2]}`);
  }
  return { options, configFile };
}

const NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/** The connection intent from a host's merged vars; problems are the host's own (they stop runs selecting it). */
export function connectionOf(name: string, v: Vars, pos: VarPositions, problems: Problem[]): Connection {
  const at = (k: string): Position | undefined => pos[k];
  // a relative path is relative to the file that set it (~ is the home directory)
  const path = (k: string) => {
    const p = String(v[k]).replace(/^~(?=\/|$)/, homedir());
    return resolve(pos[k]?.file && !pos[k].file.startsWith('(') ? dirname(pos[k].file) : '.', p);
  };
  const bad = (k: string, message: string) => problems.push({ ...at(k), key: `${name}.${k}`, message });
  for (const secret of ['ansible_become_password', 'ansible_become_pass', 'ansible_password', 'ansible_ssh_pass'])
    if (secret in v)
      bad(
        secret,
        secret.includes('become')
          ? 'a sudo password in plain text is refused: set kvmforge_become_password_env: VAR_NAME and export ' +
              'VAR_NAME, or pass --ask-become-pass'
          : 'password logins are refused: use an SSH key (ansible_ssh_private_key_file or ssh-agent)',
      );
  const hostVar = v.ansible_host !== undefined ? 'ansible_host' : 'ansible_ssh_host';
  const rawAddress = String(v[hostVar] ?? name);
  const address = rawAddress.replace(/^\[(.*)\]$/, '$1');
  if (!isIP(address) && !NAME.test(address) && !parseAddress(address).host)
    bad(hostVar, `'${rawAddress}' is neither an IP address nor a host name`);
  const connection = String(
    v.ansible_connection ?? (name === 'localhost' && v.ansible_host === undefined ? 'local' : 'ssh'),
  );
  if (!['ssh', 'smart', 'paramiko', 'local'].includes(connection))
    bad('ansible_connection', `'${connection}': kvmforge connects with ssh or local only`);
  const local = connection === 'local';

  const options: string[] = [];
  const portVar = v.ansible_port !== undefined ? 'ansible_port' : 'ansible_ssh_port';
  const portRaw = v[portVar];
  let port: number | undefined;
  if (portRaw !== undefined && portRaw !== null) {
    port = typeof portRaw === 'number' ? portRaw : /^\s*[0-9]+\s*$/.test(String(portRaw)) ? Number(portRaw) : NaN;
    if (!Number.isInteger(port) || port < 1 || port > 65535) bad(portVar, 'expected a port number from 1 to 65535');
    else options.push(`Port=${port}`);
  }
  const userVar = v.ansible_user !== undefined ? 'ansible_user' : 'ansible_ssh_user';
  const user = v[userVar] === undefined || v[userVar] === null ? undefined : String(v[userVar]);
  if (user !== undefined) {
    if (!/^[A-Za-z0-9._][A-Za-z0-9._-]*\$?$/.test(user)) bad(userVar, `'${user}' is not a user name`);
    options.push(`User=${user}`);
  }
  const keyVar =
    v.ansible_ssh_private_key_file !== undefined ? 'ansible_ssh_private_key_file' : 'ansible_private_key_file';
  const key = v[keyVar] === undefined || v[keyVar] === null || v[keyVar] === '' ? undefined : path(keyVar);
  if (key) options.push(`IdentityFile=${key}`, 'IdentitiesOnly=yes');

  let sshConfigFile: string | undefined;
  for (const k of ['ansible_ssh_args', 'ansible_ssh_common_args', 'ansible_ssh_extra_args']) {
    if (v[k] === undefined || v[k] === null || v[k] === '') continue;
    const r = sshArgsToOptions(String(v[k]));
    if ('refused' in r) bad(k, `refused: ${r.refused}`);
    else {
      options.push(...r.options);
      if (r.configFile) {
        const p = r.configFile.replace(/^~(?=\/|$)/, homedir());
        sshConfigFile = resolve(pos[k]?.file && !pos[k].file.startsWith('(') ? dirname(pos[k].file) : '.', p);
      }
    }
  }
  if (v.kvmforge_jump) options.push(`ProxyJump=${v.kvmforge_jump}`);
  const knownHostsFile = v.kvmforge_known_hosts_file ? path('kvmforge_known_hosts_file') : undefined;

  const method = v.ansible_become_method ?? 'sudo';
  if (method !== 'sudo') bad('ansible_become_method', `'${method}': kvmforge becomes root with sudo only`);
  const becomeUser = v.ansible_become_user ?? 'root';
  if (becomeUser !== 'root') bad('ansible_become_user', `'${becomeUser}': kvmforge becomes root only`);
  let become = true;
  if (v.ansible_become !== undefined) {
    const b = ansibleBool(v.ansible_become);
    if (b === undefined)
      bad('ansible_become', `expected a boolean (true/false, yes/no), got ${JSON.stringify(v.ansible_become)}`);
    else become = b;
  }
  return {
    address,
    port: port ?? 22,
    user: user ?? (local ? (process.env.USER ?? 'root') : 'root'),
    keyFile: key,
    local,
    become,
    becomePasswordEnv: v.kvmforge_become_password_env as string | undefined,
    jump: v.kvmforge_jump as string | undefined,
    knownHostsFile,
    sshOptions: options,
    sshConfigFile,
    userSet: user !== undefined,
  };
}
