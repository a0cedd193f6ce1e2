// Local transport (zx): the same contract as SSH, for `localhost` / ansible_connection: local.
import { copyFile, readFile } from 'node:fs/promises';
import { HostError } from '../core/errors.ts';
import { quote, wholeScript, withTimeoutReason } from '../core/sh.ts';
import type { ExecOptions, ExecResult, Transport } from '../core/types.ts';
import { zx } from '../core/lazy.ts';

export class LocalTransport implements Transport {
  private readonly root = process.getuid?.() === 0;

  async exec(script: string, o: ExecOptions = {}): Promise<ExecResult> {
    const secs = Math.ceil((o.timeoutMs ?? 600_000) / 1000);
    const argv = ['timeout', '-k', '5', String(secs), 'sh', '-s'];
    if (o.sudo && !this.root) argv.unshift('sudo', '-n', '--');
    const p = zx().$({ input: wholeScript(script), nothrow: true, quiet: true })`${argv}`;
    if (o.onOutput) {
      p.stdout.on('data', (d: Buffer) => o.onOutput!(d.toString(), 'stdout'));
      p.stderr.on('data', (d: Buffer) => o.onOutput!(d.toString(), 'stderr'));
    }
    const r = await p;
    return withTimeoutReason({ code: r.exitCode, stdout: r.stdout, stderr: r.stderr }, secs);
  }

  async put(path: string, content: Buffer | string, mode = 0o644): Promise<void> {
    const tmp = `${path}.kvmforge-tmp`;
    const b64 = Buffer.from(content).toString('base64');
    const r = await this.exec(
      `base64 -d > ${quote(tmp)} <<'KVMFORGE_EOF'\n${b64}\nKVMFORGE_EOF\nchmod ${mode.toString(8)} ` +
        `${quote(tmp)}\nmv -f ${quote(tmp)} ${quote(path)}`,
      { sudo: true },
    );
    if (r.code !== 0) throw new HostError(`cannot write ${path}: ${r.stderr.trim()}`);
  }

  async get(path: string): Promise<Buffer> {
    return readFile(path);
  }

  async putFile(localPath: string, path: string, mode = 0o644): Promise<void> {
    const tmp = `${path}.kvmforge-tmp`;
    const r = await this.exec(
      `cp ${quote(localPath)} ${quote(tmp)} && chmod ${mode.toString(8)} ${quote(tmp)} && mv -f ${quote(tmp)} ` +
        `${quote(path)}`,
      { sudo: true },
    );
    if (r.code !== 0) throw new HostError(`cannot write ${path}: ${r.stderr.trim()}`);
  }

  async getFile(path: string, localPath: string): Promise<void> {
    await copyFile(path, localPath);
  }

  async close(): Promise<void> {}
}
