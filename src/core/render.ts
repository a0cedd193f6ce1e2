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
  return fn(data);
}
