// Two kinds of error the user sees; anything else is a bug and keeps its stack.

export interface Problem {
  file?: string;
  line?: number;
  col?: number;
  key?: string;
  message: string;
}

export function formatProblem(p: Problem): string {
  const where = p.file ? `${p.file}${p.line ? `:${p.line}:${p.col ?? 1}` : ''}: ` : '';
  const key = p.key ? `${p.key}: ` : '';
  return `${where}${key}${p.message}`;
}

/** Bad input (inventory, vars, flags): reported before any host is touched; exit code 2. */
export class ConfigError extends Error {
  constructor(readonly problems: Problem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
  static one(message: string, where: Omit<Problem, 'message'> = {}): ConfigError {
    return new ConfigError([{ ...where, message }]);
  }
}

/** A command on a host failed. The message is one line; details stay on the object. */
export class CommandError extends Error {
  constructor(
    readonly host: string,
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    reason?: string,
  ) {
    super(reason ?? `${describeExit(exitCode)}${tail(stderr) ? `: ${tail(stderr)}` : ''}`);
    this.name = 'CommandError';
  }
}

/** A host could not be reached or used (connection, auth, host key, sudo, timeout). */
export class HostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HostError';
  }
}

/** A host's key is unknown or has changed: never retried, never accepted behind the user's back. */
export class HostKeyError extends HostError {
  constructor(message: string) {
    super(message);
    this.name = 'HostKeyError';
  }
}

export function describeExit(code: number | null): string {
  if (code === null) return 'killed (no exit code)';
  if (code === 124) return 'timed out (exit 124)';
  if (code === 126) return 'not executable (exit 126)';
  if (code === 127) return 'command not found (exit 127)';
  if (code > 128) return `killed by signal ${code - 128} (exit ${code})`;
  return `exit ${code}`;
}

function tail(s: string): string {
  const lines = s.trim().split('\n').filter(Boolean);
  return lines.slice(-3).join(' | ').slice(0, 400);
}

export function isUserError(e: unknown): e is ConfigError | CommandError | HostError {
  return e instanceof ConfigError || e instanceof CommandError || e instanceof HostError;
}
