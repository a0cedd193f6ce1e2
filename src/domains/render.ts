// Domain XML: rendered from templates/domain.xml.ejs, then checked by libvirt's own schema
// (virt-xml-validate) and libvirt's own parser (virsh -c test:///default define --validate) on this
// machine, before any host sees it.
import { requireTools } from '../core/deps.ts';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderTemplate } from '../core/render.ts';
import type { Vm } from './spec.ts';

export function renderDomain(vm: Vm): string {
  return renderTemplate('domain.xml.ejs', { vm });
}

const valid = new Set<string>();

/** Validates rendered domains; throws with libvirt's own message. Identical renders are checked once. */
export function validateDomains(xmls: { label: string; xml: string }[]): void {
  const todo = xmls.filter((x) => !valid.has(hash(x.xml)));
  if (!todo.length) return;
  requireTools('render');
  const dir = mkdtempSync(join(tmpdir(), 'kvmforge-xml-'));
  try {
    for (const [i, x] of todo.entries()) {
      const file = join(dir, `${i}.xml`);
      writeFileSync(file, x.xml);
      for (const cmd of [
        ['virt-xml-validate', file, 'domain'],
        ['virsh', '-q', '-c', 'test:///default', 'define', '--validate', file],
      ]) {
        try {
          execFileSync(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
        } catch (e) {
          const err = e as { stdout?: string; stderr?: string };
          const msg = `${err.stderr ?? ''}${err.stdout ?? ''}`.replaceAll(file, x.label).trim();
          throw new Error(`${x.label}: libvirt rejects the rendered XML (${cmd[0]}): ${msg}`);
        }
      }
      valid.add(hash(x.xml));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex');
