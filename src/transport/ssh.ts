// SSH transport: one ssh2 connection per host for the whole run, scripts to `sh -s` on stdin.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { Duplex } from 'node:stream';
import ssh2, { Client, type ConnectConfig, type ClientChannel, type SFTPWrapper } from 'ssh2';
import { HostError, HostKeyError } from '../core/errors.ts';
import { quote, wholeScript, withTimeoutReason } from '../core/sh.ts';
import type { Connection, ExecOptions, ExecResult, Transport } from '../core/types.ts';
import { check, fingerprint, hostPattern, record } from './known-hosts.ts';
import { sshConfig, type SshConfig } from './ssh-config.ts';
import { zx } from '../core/lazy.ts';

export interface SshOptions {
  knownHostsFiles: string[];
  /** Where accepted new keys are recorded; null refuses unknown keys. */
  acceptNewInto: string | null;
  becomePassword?: string;
  connectTimeoutMs?: number;
  defaultTimeoutMs?: number;
}

const MAX_CHANNELS = 8;
const MARK = '__KVMFORGE_SCRIPT__';

function parseJump(spec: string): { user?: string; address: string; port?: number } {
  const m = /^(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(spec);
  if (!m) throw new HostError(`bad jump host '${spec}': expected [user@]host[:port]`);
  return { user: m[1], address: m[2].replace(/^\[|\]$/g, ''), port: m[3] ? Number(m[3]) : undefined };
}

/** The keys to offer, as OpenSSH does: the agent's (unless IdentitiesOnly), then each identity file that exists. */
function authOf(cfg: SshConfig): ConnectConfig['authHandler'] {
  const methods: Record<string, unknown>[] = [];
  if (process.env.SSH_AUTH_SOCK && !cfg.identitiesOnly)
    methods.push({ type: 'agent', username: cfg.user, agent: process.env.SSH_AUTH_SOCK });
  for (const f of cfg.identityFiles) {
    if (!existsSync(f)) continue;
    try {
      methods.push({ type: 'publickey', username: cfg.user, key: identity(f) });
    } catch {
      throw new HostError(`cannot read key file ${f}`);
    }
  }
  return (() => methods.shift() ?? false) as unknown as ConnectConfig['authHandler'];
}

const identities = new Map<string, ReturnType<typeof ssh2.utils.parseKey> | Buffer>();
/** An identity file, parsed once per run (per path, size and mtime) instead of once per connection; a key ssh2 can't
 * parse without a passphrase stays the file's bytes, for ssh2 to skip as before. */
function identity(f: string) {
  const st = statSync(f);
  const id = `${f}:${st.size}:${st.mtimeMs}`;
  let key = identities.get(id);
  if (!key) {
    const bytes = readFileSync(f);
    const parsed: unknown = ssh2.utils.parseKey(bytes);
    const one = Array.isArray(parsed) ? (parsed.length === 1 ? parsed[0] : undefined) : parsed;
    key = one === undefined || one instanceof Error ? bytes : (one as ReturnType<typeof ssh2.utils.parseKey>);
    identities.set(id, key);
  }
  return key;
}

const stoppedReading = (e: Error) => new Error(`ProxyCommand stopped reading (${e.message})`);

/** A ProxyCommand's stdin/stdout as the socket ssh2 speaks over (%h %p %r as in ssh_config). */
function proxySocket(command: string, cfg: SshConfig): Duplex {
  const cmd = command.replace(/%h/g, cfg.hostname).replace(/%p/g, String(cfg.port)).replace(/%r/g, cfg.user);
  const p = zx().$({ quiet: true, nothrow: true })`sh -c ${cmd}`;
  const sock = new Duplex({
    read() {},
    write(chunk, _enc, cb) {
      p.stdin.write(chunk, (e) => cb(e ? stoppedReading(e) : e));
    },
    final(cb) {
      p.stdin.end();
      cb();
    },
    destroy(err, cb) {
      p.kill();
      cb(err);
    },
  });
  // A proxy that stops reading (it exited, or closed its stdin) makes the next write fail with
  // EPIPE; unhandled, that would be an uncaught exception and end the run for every host.
  p.stdin.on('error', (e: Error) => sock.destroy(stoppedReading(e)));
  p.stdout.on('data', (d: Buffer) => sock.push(d));
  p.stdout.on('end', () => sock.push(null));
  void p.then(() => sock.push(null));
  return sock;
}

/** ssh2's SFTP error, or what it means when the first bytes were text: the login shell printed something (a
 * ~/.bashrc that echoes for non-interactive shells) before the SFTP server spoke, and the client read those
 * bytes as a packet length — OpenSSH's sftp says "Received message too long" for the same. */
function sftpWhy(e: Error): string {
  const n = /Packet length (\d+) exceeds/.exec(e.message)?.[1];
  if (!n) return e.message;
  const b = Buffer.alloc(4);
  b.writeUInt32BE(Number(n) >>> 0);
  const text = b.toString('latin1');
  if (!/^[\x20-\x7e\t\r\n]{4}$/.test(text)) return e.message;
  return (
    `the login shell printed text (${JSON.stringify(`${text}…`)}) before the SFTP server started; a shell startup ` +
    'file (~/.bashrc, /etc/bash.bashrc, ~/.profile) prints for non-interactive shells: make it print only when ' +
    `interactive (${e.message})`
  );
}

function explain(e: Error & { level?: string; code?: string }, target: string): string {
  if (e.level === 'client-authentication') return `authentication failed for ${target} (key refused)`;
  if (e.code === 'ECONNREFUSED') return `connection refused by ${target} (is sshd running?)`;
  if (e.code === 'EHOSTUNREACH' || e.code === 'ENETUNREACH') return `${target} is unreachable (${e.code})`;
  if (e.code === 'ETIMEDOUT' || /Timed out/.test(e.message)) return `timed out connecting to ${target}`;
  if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') return `cannot resolve ${target}`;
  return `ssh to ${target} failed: ${e.message}`;
}

function openClient(cfg: SshConfig, opts: SshOptions, sock?: NodeJS.ReadableStream): Promise<Client> {
  const conn = { address: cfg.hostname, port: cfg.port, user: cfg.user };
  const target = `${conn.user}@${hostPattern(conn.address, conn.port)}`;
  const knownHostsFiles = [...cfg.userKnownHostsFiles, ...cfg.globalKnownHostsFiles, ...opts.knownHostsFiles];
  return new Promise((resolve, reject) => {
    const client = new Client();
    let hostKeyProblem: string | undefined;
    client.on('ready', () => resolve(client));
    client.on('error', (e) =>
      reject(hostKeyProblem ? new HostKeyError(hostKeyProblem) : new HostError(explain(e, target))),
    );
    // A port that accepts and then closes (a rebooting VM behind a forwarded port, an sshd going
    // down) ends with 'close' and no 'error': without this the promise would never settle.
    client.on('close', () =>
      reject(
        hostKeyProblem
          ? new HostKeyError(hostKeyProblem)
          : new HostError(`${target} closed the connection before the SSH handshake finished`),
      ),
    );
    client.connect({
      host: conn.address,
      port: conn.port,
      username: conn.user,
      sock: sock as ConnectConfig['sock'],
      readyTimeout: cfg.connectTimeoutS ? cfg.connectTimeoutS * 1000 : (opts.connectTimeoutMs ?? 20_000),
      keepaliveInterval: cfg.serverAliveIntervalS ? cfg.serverAliveIntervalS * 1000 : 5_000,
      keepaliveCountMax: cfg.serverAliveCountMax || 3,
      authHandler: authOf(cfg),
      hostVerifier: (blob: Buffer) => {
        const v = check(knownHostsFiles, conn.address, conn.port, blob);
        const fp = fingerprint(blob.toString('base64'));
        if (v.kind === 'match') return true;
        if (v.kind === 'changed') {
          hostKeyProblem =
            `host key for ${hostPattern(conn.address, conn.port)} has CHANGED (now ${fp}; known key ` +
            `at ${v.known.file}:${v.known.line}): refused. If the change is expected, remove that line.`;
          return false;
        }
        if (opts.acceptNewInto) {
          record(opts.acceptNewInto, conn.address, conn.port, blob);
          return true;
        }
        hostKeyProblem =
          `host key for ${hostPattern(conn.address, conn.port)} is unknown (${fp}): refused. ` +
          (v.authority
            ? `${v.authority.file}:${v.authority.line} names a @cert-authority for it, but kvmforge verifies ` +
              'plain host keys only (not certificates): record the key (ssh-keyscan, or --accept-new-host-keys).'
            : 'Check it, then run with --accept-new-host-keys to record it.');
        return false;
      },
    });
  });
}

export class SshTransport implements Transport {
  private active = 0;
  private waiting: (() => void)[] = [];
  private closed = false;
  private dropped?: string;

  private constructor(
    private client: Client,
    private jumpClient: Client | undefined,
    private conn: Connection,
    private opts: SshOptions,
  ) {
    const onDrop = (why: string) => {
      this.dropped ??= why;
    };
    client.on('close', () => onDrop('connection closed'));
    client.on('error', (e) => onDrop(e.message));
  }

  static async connect(conn: Connection, opts: SshOptions): Promise<SshTransport> {
    const cfg = await sshConfig(conn);
    let jumpClient: Client | undefined;
    let sock: NodeJS.ReadableStream | undefined;
    if (cfg.proxyJump) {
      if (cfg.proxyJump.includes(','))
        throw new HostError(`ProxyJump ${cfg.proxyJump}: kvmforge follows one jump host, not a chain`);
      const j = parseJump(cfg.proxyJump);
      const jcfg = await sshConfig({
        ...conn,
        address: j.address,
        sshOptions: [...(j.user ? [`User=${j.user}`] : []), ...(j.port ? [`Port=${j.port}`] : [])],
      });
      // the target's keys are offered to the jump host too, after its own (one key for both is common)
      jcfg.identityFiles = [...new Set([...jcfg.identityFiles, ...cfg.identityFiles])];
      jumpClient = await openClient(jcfg, opts);
      sock = await new Promise((res, rej) =>
        jumpClient!.forwardOut('127.0.0.1', 0, cfg.hostname, cfg.port, (err, ch) =>
          err
            ? rej(
                new HostError(`jump host ${cfg.proxyJump} could not reach ${cfg.hostname}:${cfg.port}: ${err.message}`),
              )
            : res(ch),
        ),
      );
    } else if (cfg.proxyCommand) sock = proxySocket(cfg.proxyCommand, cfg);
    const client = await openClient(cfg, opts, sock).catch((e) => {
      jumpClient?.end();
      throw e;
    });
    const effective: Connection = { ...conn, address: cfg.hostname, port: cfg.port, user: cfg.user };
    const t = new SshTransport(client, jumpClient, effective, opts);
    if (conn.become && cfg.user !== 'root') {
      try {
        await t.checkSudo();
      } catch (e) {
        await t.close();
        throw e;
      }
    }
    return t;
  }

  private async checkSudo() {
    const r = await this.exec('true', { sudo: true, timeoutMs: 30_000 });
    if (r.code !== 0) {
      const why =
        this.opts.becomePassword === undefined
          ? 'sudo needs a password (set kvmforge_become_password_env or use --ask-become-pass)'
          : 'sudo refused the password';
      throw new HostError(
        `sudo failed for ${this.conn.user}: ${/incorrect|Sorry/.test(r.stderr) ? 'wrong password' : why}`,
      );
    }
  }

  private async slot(): Promise<void> {
    if (this.active < MAX_CHANNELS) {
      this.active++;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
  }

  private release() {
    this.active--;
    this.waiting.shift()?.();
  }

  async exec(script: string, o: ExecOptions = {}): Promise<ExecResult> {
    if (this.dropped) throw new HostError(`lost connection to ${this.conn.address}: ${this.dropped}`);
    const timeoutMs = o.timeoutMs ?? this.opts.defaultTimeoutMs ?? 600_000;
    const secs = Math.ceil(timeoutMs / 1000);
    const limit = `timeout -k 5 ${secs}`;
    const sudo = o.sudo && this.conn.user !== 'root';
    let command = `${limit} sh -s`;
    let input = wholeScript(script);
    if (sudo && this.opts.becomePassword !== undefined) {
      // password on stdin (never argv); the marker line separates it from the script
      command =
        `${limit} sudo -S -k -p '' -- sh -c ` +
        `${quote(`while IFS= read -r l; do [ "$l" = ${MARK} ] && exec sh -s; done; exit 97`)}`;
      input = `${this.opts.becomePassword}\n${MARK}\n${input}`;
    } else if (sudo) command = `${limit} sudo -n -- sh -s`;
    await this.slot();
    try {
      return await new Promise<ExecResult>((resolve, reject) => {
        let stdout = '';
        let stderr = '';
        let channel: ClientChannel | undefined;
        const timer = setTimeout(() => {
          channel?.close();
          reject(new HostError(`command timed out after ${secs}s on ${this.conn.address} (and did not stop)`));
        }, timeoutMs + 15_000);
        const onClose = () => {
          clearTimeout(timer);
          reject(
            new HostError(`lost connection to ${this.conn.address} during a command: ${this.dropped ?? 'closed'}`),
          );
        };
        this.client.once('close', onClose);
        this.client.exec(command, (err, ch) => {
          if (err) {
            clearTimeout(timer);
            this.client.off('close', onClose);
            return reject(new HostError(`cannot open a channel on ${this.conn.address}: ${err.message}`));
          }
          channel = ch;
          ch.on('data', (d: Buffer) => {
            if (!o.discardStdout) stdout += d;
            o.onOutput?.(d.toString(), 'stdout');
          });
          ch.stderr.on('data', (d: Buffer) => {
            stderr += d;
            o.onOutput?.(d.toString(), 'stderr');
          });
          ch.on('close', (code: number | null, signal?: string) => {
            clearTimeout(timer);
            this.client.off('close', onClose);
            resolve(withTimeoutReason({ code: code ?? (signal ? 128 + 9 : null), stdout, stderr }, secs));
          });
          ch.end(input);
        });
      });
    } finally {
      this.release();
    }
  }

  private sftpSession?: Promise<SFTPWrapper>;
  private sftp(): Promise<SFTPWrapper> {
    this.sftpSession ??= new Promise((resolve, reject) =>
      this.client.sftp((err, s) =>
        err
          ? reject(new HostError(`SFTP unavailable on ${this.conn.address}: ${sftpWhy(err)}`))
          : // a protocol error later fails the pending requests (their callbacks) and emits 'error': unheard,
            // that would end the run for every host; the next transfer opens a new session
            resolve(s.on('error', () => (this.sftpSession = undefined))),
      ),
    );
    return this.sftpSession;
  }

  /** Uploads over SFTP to a temp path, then moves it into place (through sudo for a non-root user). */
  async put(path: string, content: Buffer | string, mode = 0o644): Promise<void> {
    await this.upload(path, mode, (sftp, tmp, done) => sftp.writeFile(tmp, content, { mode: 0o600 }, done));
  }

  async putFile(localPath: string, path: string, mode = 0o644): Promise<void> {
    await this.upload(path, mode, (sftp, tmp, done) => sftp.fastPut(localPath, tmp, { mode: 0o600 }, done));
  }

  private async upload(
    path: string,
    mode: number,
    send: (sftp: SFTPWrapper, tmp: string, done: (err?: Error | null) => void) => void,
  ): Promise<void> {
    const root = this.conn.user === 'root';
    const tmp = root
      ? `${path}.kvmforge-${randomBytes(4).toString('hex')}`
      : `/tmp/kvmforge-upload-${randomBytes(8).toString('hex')}`;
    const sftp = await this.sftp();
    await new Promise<void>((resolve, reject) =>
      send(sftp, tmp, (err) => (err ? reject(new HostError(`cannot upload ${path}: ${err.message}`)) : resolve())),
    );
    const r = await this.exec(
      `chmod ${mode.toString(8)} ${quote(tmp)} && chown root:root ${quote(tmp)} && mv -f ${quote(tmp)} ` +
        `${quote(path)} || { rm -f ${quote(tmp)}; exit 1; }`,
      { sudo: true },
    );
    if (r.code !== 0) throw new HostError(`cannot install ${path}: ${r.stderr.trim()}`);
  }

  async getFile(path: string, localPath: string): Promise<void> {
    let from = path;
    if (this.conn.user !== 'root') {
      from = `/tmp/kvmforge-download-${randomBytes(8).toString('hex')}`;
      const r = await this.exec(`cp ${quote(path)} ${quote(from)} && chown ${quote(this.conn.user)} ${quote(from)}`, {
        sudo: true,
      });
      if (r.code !== 0) throw new HostError(`cannot read ${path}: ${r.stderr.trim()}`);
    }
    const sftp = await this.sftp();
    try {
      await new Promise<void>((resolve, reject) =>
        sftp.fastGet(from, localPath, (err) =>
          err ? reject(new HostError(`cannot read ${path}: ${err.message}`)) : resolve(),
        ),
      );
    } finally {
      if (from !== path) await this.exec(`rm -f ${quote(from)}`);
    }
  }

  async get(path: string): Promise<Buffer> {
    if (this.conn.user === 'root') {
      const sftp = await this.sftp();
      return new Promise((resolve, reject) =>
        sftp.readFile(path, (err, data) =>
          err ? reject(new HostError(`cannot read ${path}: ${err.message}`)) : resolve(data),
        ),
      );
    }
    const r = await this.exec(`base64 < ${quote(path)}`, { sudo: true });
    if (r.code !== 0) throw new HostError(`cannot read ${path}: ${r.stderr.trim()}`);
    return Buffer.from(r.stdout, 'base64');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.end();
    this.jumpClient?.end();
  }
}
