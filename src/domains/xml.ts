// Just enough XML for comparing a render with what libvirt reports: parse, and find what the render
// asks for that the defined domain lacks (libvirt adds uuid, addresses, controllers… — those are ignored).
import type * as Fxp from 'fast-xml-parser';
import { lazy } from '../core/lazy.ts';

const fxp = lazy<typeof Fxp>('fast-xml-parser');

export interface El {
  tag: string;
  attrs: Record<string, string>;
  text: string;
  children: El[];
}

let parser: Fxp.XMLParser | undefined;
const xmlParser = () =>
  (parser ??= new (fxp().XMLParser)({
    preserveOrder: true,
    ignoreAttributes: false,
    attributeNamePrefix: '',
    parseAttributeValue: false,
    parseTagValue: false,
    trimValues: true,
    commentPropName: '#comment',
  }));

type Raw = Record<string, unknown>;

function convert(node: Raw): El | undefined {
  const tag = Object.keys(node).find((k) => k !== ':@' && k !== '#text' && k !== '#comment');
  if (!tag || tag.startsWith('?')) return undefined;
  const kids = (node[tag] as Raw[]) ?? [];
  const attrs = (node[':@'] as Record<string, string> | undefined) ?? {};
  return {
    tag,
    attrs: Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, String(v)])),
    text: kids
      .filter((k) => '#text' in k)
      .map((k) => String(k['#text']))
      .join('')
      .trim(),
    children: kids.map(convert).filter((c): c is El => !!c),
  };
}

export function parseXml(xml: string): El {
  const top = (xmlParser().parse(xml) as Raw[]).map(convert).filter((c): c is El => !!c);
  if (top.length !== 1) throw new Error(`expected one root element, found ${top.length}`);
  return top[0];
}

// What libvirt adds to a definition by itself: not drift when the render doesn't mention it.
const ADDED_ELEMENTS = new Set([
  'uuid',
  'resource',
  'clock',
  'on_poweroff',
  'on_reboot',
  'on_crash',
  'pm',
  'cpu',
  'seclabel',
  'sysinfo',
  'genid',
  'metadata',
  'description',
  'title',
  'controller',
  'input',
  'memballoon',
  'video',
  'audio',
  'emulator',
  'address',
  'alias',
  'mac',
  'listen',
  'target',
  'model',
  'driver',
  'vcpu',
  'currentMemory',
  'features',
  'apic',
  'pae',
  'vmport',
  'console',
  'serial',
  'channel',
]);
const ADDED_ATTRS = new Set([
  'placement',
  'unit',
  'autoport',
  'name',
  'type',
  'listen',
  'arch',
  'machine',
  'vcpus',
  'port',
  'index',
  'bus',
  'model',
  'mode',
  'check',
  'fallback',
  'managed',
  'sharePolicy',
  'keymap',
]);

/** 'pc' and 'q35' are aliases libvirt resolves to a versioned machine ('pc-i440fx-7.2'). */
function sameAttr(tag: string, k: string, want: string, have: string | undefined): boolean {
  if (have === want) return true;
  if (tag === 'type' && k === 'machine' && have)
    return have.startsWith(want === 'pc' ? 'pc-i440fx-' : want === 'q35' ? 'pc-q35-' : '\0');
  return false;
}

/** True when everything `want` says is in `have` (attributes, text, and each child matched to its own child). */
export function covers(want: El, have: El): boolean {
  if (want.tag !== have.tag || want.text !== have.text) return false;
  for (const [k, v] of Object.entries(want.attrs)) if (!sameAttr(want.tag, k, v, have.attrs[k])) return false;
  const used = new Set<El>();
  for (const w of want.children) {
    const h = have.children.find((c) => !used.has(c) && covers(w, c));
    if (!h) return false;
    used.add(h);
  }
  return true;
}

/** What `have` holds beyond `want` that libvirt would not have added itself (a removed tuning, say). */
export function extras(want: El, have: El, path = ''): string[] {
  const here = `${path}/${have.tag}`;
  const out: string[] = [];
  for (const k of Object.keys(have.attrs))
    if (!(k in want.attrs) && !ADDED_ATTRS.has(k)) out.push(`${here}/@${k}: '${have.attrs[k]}' → (none)`);
  const used = new Set<El>();
  for (const w of want.children) {
    const h = have.children.find((c) => !used.has(c) && covers(w, c));
    if (h) {
      used.add(h);
      out.push(...extras(w, h, here));
    }
  }
  for (const h of have.children)
    if (!used.has(h) && !ADDED_ELEMENTS.has(h.tag)) out.push(`${here}: remove ${serialize(h)}`);
  return out;
}

/** The render and the definition agree: nothing to define. */
export function matches(want: El, have: El): boolean {
  return covers(want, have) && extras(want, have).length === 0;
}

export function serialize(e: El): string {
  const attrs = Object.entries(e.attrs)
    .map(([k, v]) => ` ${k}='${v}'`)
    .join('');
  if (!e.children.length && !e.text) return `<${e.tag}${attrs}/>`;
  return `<${e.tag}${attrs}>${e.text}${e.children.map(serialize).join('')}</${e.tag}>`;
}

/** What the render asks for that the defined domain lacks, one line per top-level difference, for people. */
export function differences(want: El, have: El, path = ''): string[] {
  const here = `${path}/${want.tag}`;
  if (want.tag !== have.tag) return [`${here}: want ${serialize(want)}`];
  const out: string[] = [];
  if (want.text !== have.text) out.push(`${here}: '${have.text}' → '${want.text}'`);
  for (const [k, v] of Object.entries(want.attrs))
    if (have.attrs[k] !== v)
      out.push(`${here}/@${k}: ${have.attrs[k] === undefined ? '(none)' : `'${have.attrs[k]}'`} → '${v}'`);
  const used = new Set<El>();
  for (const w of want.children) {
    const exact = have.children.find((c) => !used.has(c) && covers(w, c));
    if (exact) {
      used.add(exact);
      continue;
    }
    const same = have.children.filter((c) => !used.has(c) && c.tag === w.tag);
    // a lone element of that name: show the attribute-level change; several: show the element wanted
    if (same.length === 1 && want.children.filter((c) => c.tag === w.tag).length === 1) {
      used.add(same[0]);
      out.push(...differences(w, same[0], here));
    } else out.push(`${here}: add ${serialize(w)}`);
  }
  return out;
}
