// YAML as Ansible reads it: PyYAML's YAML 1.1 resolvers (yes/no/on/off booleans, 0644 octal, 1:20 base 60,
// dates), merge keys (<<), and Ansible's own tags: !vault (an encrypted value, kept as a Vaulted until the
// loader decrypts it) and !unsafe (a plain string). Any other local tag is reported, not guessed.
import { LineCounter, parseDocument, type Document, type ScalarTag, type Tags } from 'yaml';

/** An `!vault |` value: Ansible vault ciphertext, decrypted by the loader or refused there. */
export class Vaulted {
  constructor(readonly ciphertext: string) {}
}

const t = (tag: string, test: RegExp, resolve: (s: string) => unknown): ScalarTag => ({
  identify: () => false, // reading only: these never choose how a value is written
  default: true,
  tag: `tag:yaml.org,2002:${tag}`,
  test,
  resolve: resolve as ScalarTag['resolve'],
});

const base60 = (s: string) => s.split(':').reduce((n, part) => n * 60 + Number(part), 0);
const signed = (s: string, f: (body: string) => number) => (s[0] === '-' ? -f(s.slice(1)) : f(s.replace(/^\+/, '')));

// PyYAML's resolver regexps (yaml/resolver.py) and constructors (yaml/constructor.py)
const NULL = t('null', /^(?:~|null|Null|NULL|)$/, () => null);
const BOOL = t('bool', /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/, (s) =>
  /^(?:yes|true|on)$/i.test(s),
);
const INT = t(
  'int',
  /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/,
  (s) =>
    signed(s.replace(/_/g, ''), (v) => {
      if (v === '0') return 0;
      if (v.startsWith('0b')) return Number.parseInt(v.slice(2), 2);
      if (v.startsWith('0x')) return Number.parseInt(v.slice(2), 16);
      if (v.startsWith('0')) return Number.parseInt(v, 8);
      if (v.includes(':')) return base60(v);
      return Number(v);
    }),
);
const FLOAT = t(
  'float',
  new RegExp(
    String.raw`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?` +
      String.raw`|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`,
  ),
  (s) =>
    signed(s.replace(/_/g, '').toLowerCase(), (v) => {
      if (v === '.inf') return Number.POSITIVE_INFINITY;
      if (v === '.nan') return Number.NaN;
      if (v.includes(':')) return base60(v.replace(/\..*$/, '')) + Number(`0${v.slice(v.indexOf('.'))}`);
      return Number(v);
    }),
);
// dates become the text Ansible prints for them (Python's isoformat)
const TIMESTAMP = t(
  'timestamp',
  new RegExp(
    String.raw`^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)` +
      String.raw`[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$`,
  ),
  isoformat,
);

function isoformat(s: string): string {
  const m = new RegExp(
    String.raw`^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:(?:[Tt]|[ \t]+)([0-9]{1,2}):([0-9]{2}):([0-9]{2})` +
      String.raw`(?:\.([0-9]*))?(?:[ \t]*(Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?$`,
  ).exec(s)!;
  const p2 = (x: string) => x.padStart(2, '0');
  const date = `${m[1]}-${p2(m[2])}-${p2(m[3])}`;
  if (m[4] === undefined) return date;
  const frac = (m[7] ?? '').slice(0, 6).padEnd(6, '0');
  let out = `${date}T${p2(m[4])}:${m[5]}:${m[6]}${/^0*$/.test(frac) ? '' : `.${frac}`}`;
  if (m[8] === 'Z') out += '+00:00';
  else if (m[8]) {
    const [h, min = '00'] = m[8].slice(1).split(':');
    out += `${m[8][0]}${p2(h)}:${min}`;
  }
  return out;
}

const VAULT: ScalarTag = {
  identify: (v) => v instanceof Vaulted,
  tag: '!vault',
  resolve: (s: string) => new Vaulted(s),
};
const UNSAFE: ScalarTag = { identify: () => false, tag: '!unsafe', resolve: (s: string) => s };

const REPLACED = new Set(['null', 'bool', 'int', 'float', 'timestamp'].map((x) => `tag:yaml.org,2002:${x}`));

function pyyamlTags(tags: Tags): Tags {
  const kept = tags.filter((x) => !REPLACED.has(typeof x === 'string' ? x : x.tag));
  return [...kept, NULL, BOOL, INT, FLOAT, TIMESTAMP, VAULT, UNSAFE];
}

/** Parses YAML text the way Ansible's loader does (merge keys on, unique keys checked by the caller). */
export function parseAnsibleYaml(text: string): { doc: Document; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    version: '1.1',
    merge: true,
    uniqueKeys: false,
    prettyErrors: false,
    customTags: pyyamlTags,
  });
  return { doc, lines };
}
