// Host entries as Ansible reads them in an inventory (parse_address and expand_hostname_range):
// `name`, `name:port`, `[v6::addr]:port`, and ranges `www[01:50]`, `www[01:50:2]`, `db-[a:f]`.

const NUM_RANGE = String.raw`\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]`;
const HEX_RANGE = String.raw`\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]`;
const ALNUM_RANGE = String.raw`\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]`;
const V6 = `(?:[0-9a-f]{1,4}|${HEX_RANGE})`;
const V4 = `(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|${NUM_RANGE})`;
// \w in Python 3 is Unicode-aware: letters and digits of any script, and _
const W = String.raw`[\p{L}\p{N}_]`;
const LABEL = `(?:${W}|${ALNUM_RANGE})(?:${W}|[-]|${ALNUM_RANGE})*(?<![_-])`;

const BRACKETED_HOSTPORT = /^\[(.+)\]:([0-9]+)$/;
const HOSTPORT = /^((?:[^:[\]]|\[[^\]]*\])*):([0-9]+)$/;
const IPV4 = new RegExp(`^(?:${V4}\\.){3}${V4}$`, 'i');
const IPV6 = new RegExp(
  '^(?:' +
    [
      `(?:${V6}:){7}${V6}`,
      `(?:${V6}:){1,6}:`,
      `(?:${V6}:)(?::${V6}){1,6}`,
      `(?:${V6}:){2}(?::${V6}){1,5}`,
      `(?:${V6}:){3}(?::${V6}){1,4}`,
      `(?:${V6}:){4}(?::${V6}){1,3}`,
      `(?:${V6}:){5}(?::${V6}){1,2}`,
      `(?:${V6}:){6}(?::${V6})`,
      `:(?::${V6}){1,6}`,
      `${V6}?::`,
      `(?:0:){6}(?:${V6}\\.){3}${V6}`,
      `::(?:ffff:)?(?:${V6}\\.){3}${V6}`,
      `(?:0:){5}ffff:(?:${V6}\\.){3}${V6}`,
    ].join('|') +
    ')$',
  'i',
);
const HOSTNAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`, 'iu');

/** Splits `host[:port]` as Ansible's parse_address does; undefined host when it is no host identifier. */
export function parseAddress(text: string): { host?: string; port?: number } {
  let address = text;
  let port: number | undefined;
  for (const re of [BRACKETED_HOSTPORT, HOSTPORT]) {
    const m = re.exec(address);
    if (m) {
      address = m[1];
      port = Number(m[2]);
    }
  }
  const ok = IPV4.test(address) || IPV6.test(address) || HOSTNAME.test(address);
  return ok ? { host: address, port } : {};
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** Expands the ranges in a host entry (`db[01:03]-[a:b]` → db01-a, db01-b, …). Throws with Ansible's reason. */
export function expandRanges(name: string): string[] {
  const open = name.indexOf('[');
  if (open < 0) return [name];
  const close = name.indexOf(']', open);
  if (close < 0) throw new Error(`'${name}': a range has no closing ']'`);
  const [head, range, tail] = [name.slice(0, open), name.slice(open + 1, close), name.slice(close + 1)];
  const bounds = range.split(':');
  if (bounds.length !== 2 && bounds.length !== 3)
    throw new Error(`host range [${range}] must be begin:end or begin:end:step`);
  const beg = bounds[0] || '0';
  const end = bounds[1];
  const step = bounds.length === 3 ? Number(bounds[2]) : 1;
  if (!end) throw new Error(`host range [${range}] must specify an end value`);
  if (!Number.isInteger(step) || step < 1)
    throw new Error(`host range [${range}]: the step must be a whole number ≥ 1`);
  let fill = (x: string | number) => String(x);
  if (beg[0] === '0' && beg.length > 1) {
    if (beg.length !== end.length)
      throw new Error(`host range [${range}] must have begin and end of equal length (zero padding)`);
    fill = (x) => String(x).padStart(beg.length, '0');
  }
  const seq: (string | number)[] = [];
  const [ib, ie] = [LETTERS.indexOf(beg), LETTERS.indexOf(end)];
  if (beg.length === 1 && end.length === 1 && ib >= 0 && ie >= 0) {
    if (ib > ie) throw new Error(`host range [${range}] must have begin <= end`);
    for (let i = ib; i <= ie; i += step) seq.push(LETTERS[i]);
  } else {
    const [b, e] = [Number(beg), Number(end)];
    if (!/^[0-9]+$/.test(beg) || !/^[0-9]+$/.test(end))
      throw new Error(`host range [${range}] is neither numeric nor a-z`);
    for (let i = b; i <= e; i += step) seq.push(i);
  }
  return seq.flatMap((x) => expandRanges(`${head}${fill(x)}${tail}`));
}

export interface HostEntry {
  names: string[];
  port?: number;
}

/** An inventory host entry: its names (ranges expanded) and port, or the reason it is not one. */
export function hostEntry(text: string): HostEntry | { error: string } {
  let { host, port } = parseAddress(text);
  if (!host) {
    // Ansible takes what is no address as the name itself; a name with blanks or control characters is a
    // mistake it copies (several hosts in one YAML string become one host "a b"): refused here
    if (/[\s\p{Cc}]/u.test(text))
      return {
        error:
          `'${text}' is not a host name (it has blanks: several hosts written as one string? give each host ` +
          'its own key or line)',
      };
    host = text;
    port = undefined;
  }
  if (text.trim().endsWith(':') && port === undefined) return { error: `'${text}' ends in ':' (reserved for a port)` };
  if (host.trim() === '---') return { error: "'---' is not a host name (is this a YAML file?)" };
  try {
    return { names: host.includes('[') ? expandRanges(host) : [host], port };
  } catch (e) {
    return { error: (e as Error).message };
  }
}
