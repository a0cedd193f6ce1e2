// EJS templates under templates/: compiled once. XML templates escape every value (ejs's own escaping);
// config files (networkd, ifupdown, keyfiles) print values as they are — their vars are checked by
// patterns before they get here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type Ejs from 'ejs';
import { lazy } from './lazy.ts';
import { PROJECT } from './paths.ts';

const ejs = lazy<typeof Ejs>('ejs');

const compiled = new Map<string, Ejs.TemplateFunction>();

const XML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' };

/** XML attributes ` k='v'` in the order given, values escaped as ejs escapes them; undefined ones left out. */
export function attrs(values: Record<string, unknown>): string {
  return Object.entries(values)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}='${String(v).replace(/[&<>"']/g, (c) => XML_ESCAPES[c])}'`)
    .join('');
}

export function renderTemplate(name: string, data: Record<string, unknown>): string {
  let fn = compiled.get(name);
  if (!fn) {
    const file = join(PROJECT, 'templates', name);
    const xml = /\.xml\.ejs$/.test(name);
    fn = ejs().compile(readFileSync(file, 'utf8'), {
      filename: file,
      ...(xml ? {} : { escape: (s: unknown) => (s == null ? '' : String(s)) }),
    });
    compiled.set(name, fn);
  }
  return fn(/\.xml\.ejs$/.test(name) ? { attrs, ...data } : data);
}
