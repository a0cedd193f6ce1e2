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
