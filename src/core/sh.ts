// One quoting helper for every value that goes into a shell command (POSIX sh, dash included).

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quote one value for POSIX sh: safe words pass as they are, everything else is single-quoted. */
export function quote(value: string | number): string {
  const s = String(value);
  if (s !== '' && SAFE.test(s) && !s.startsWith('-')) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A trusted shell fragment that `sh` inserts as it is. */
export class Raw {
  constructor(readonly text: string) {}
}
export const raw = (text: string) => new Raw(text);

type Value = string | number | Raw | ReadonlyArray<string | number | Raw>;

/** Tagged template: sh`mkdir -p ${dir}` quotes every interpolated value; arrays spread as words. */
export function sh(strings: TemplateStringsArray, ...values: Value[]): string {
  let out = strings[0];
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1];
  });
  return out;
}

function render(v: Value): string {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return v.map((x) => render(x as Value)).join(' ');
  return quote(v as string | number);
}

/** What a transport feeds `sh -s`: the script inside one brace group, so the shell parses all of it
 * before running any of it. A script cut short in transit (the control machine killed, the
 * connection dropped) is then a syntax error that runs nothing — never its first half, nor a last
 * line cut in the middle (`rm -rf /var/lib/x` of `rm -rf /var/lib/x/old`). */
export function wholeScript(script: string): string {
  return `set -eu\n{\n${script}\n}\n`;
}

/** `timeout` ends a command that ran past its limit with 124 (137 if it had to kill it): say so in
 * its stderr, so the failure names the cause instead of a bare exit code. */
export function withTimeoutReason<R extends { code: number | null; stderr: string }>(r: R, secs: number): R {
  if (r.code !== 124 && r.code !== 137) return r;
  const sep = r.stderr.endsWith('\n') || !r.stderr ? '' : '\n';
  const why = `kvmforge: the command timed out after ${secs}s (kvmforge_command_timeout) and was stopped\n`;
  return { ...r, stderr: `${r.stderr}${sep}${why}` };
}
