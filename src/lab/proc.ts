// Local processes for the lab, through zx (as the local transport runs its scripts): a command and its
// words, run to the end, never through a shell of ours. zx's own throw is not used (it can escape a
// try/catch from its sync mode), the exit code is looked at instead.
import { zx } from '../core/lazy.ts';

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv to its end; `inherit` lets its output through to ours (long builds show their progress). */
/** `interactive`: our terminal is its terminal (stdin too). */
export function run(
  argv: string[],
  o: { inherit?: boolean; interactive?: boolean; input?: string; timeoutMs?: number } = {},
): Ran {
  const stdio = o.interactive ? 'inherit' : o.inherit ? ['ignore', 'inherit', 'inherit'] : ['pipe', 'pipe', 'pipe'];
  const p = zx().$({
    sync: true,
    nothrow: true,
    quiet: true,
    input: o.input,
    timeout: o.timeoutMs,
    stdio: stdio as never,
  })`${argv}`;
  return { code: p.exitCode ?? 1, stdout: p.stdout, stderr: p.stderr };
}

/** Runs argv; a failure is an Error with the command and the end of its stderr. */
export function must(argv: string[], o: { inherit?: boolean; input?: string } = {}): string {
  const r = run(argv, o);
  if (r.code !== 0)
    throw new Error(
      `${argv.join(' ')} failed (exit ` +
        `${r.code})${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`,
    );
  return r.stdout;
}

/** Is this command on the PATH? */
export const have = (tool: string) => run(['sh', '-c', 'command -v "$1"', 'sh', tool]).code === 0;
