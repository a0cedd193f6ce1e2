// kvmforge's own vars checked where they are set (file:line), before any connection. Vars of other Ansible
// roles are the user's and pass untouched; a name under a step's prefix that the step does not declare is
// a warning naming the closest declared var (an error with --strict). Booleans and whole numbers given as
// text are read the way Ansible's modules read them ('yes', "5555").
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { Problem } from '../core/errors.ts';
import type { Position } from '../core/types.ts';
import { allVars, type VarCatalog } from './schema.ts';

const TRUE = new Set(['y', 'yes', 'on', '1', 'true', 't']);
const FALSE = new Set(['n', 'no', 'off', '0', 'false', 'f']);

/** Ansible's boolean(): true/false for its words and 1/0, undefined for anything else. */
export function ansibleBool(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (v === 1 || v === 0) return v === 1;
  if (typeof v !== 'string') return undefined;
  const s = v.trim().toLowerCase();
  return TRUE.has(s) ? true : FALSE.has(s) ? false : undefined;
}

/** A declared boolean or integer var given as text, read as that type (else unchanged). */
export function coerce(schema: { type?: unknown }, v: unknown): unknown {
  if (schema.type === 'boolean') return ansibleBool(v) ?? v;
  if (schema.type === 'integer' && typeof v === 'string' && /^\s*[-+]?[0-9]+\s*$/.test(v)) return Number(v);
  return v;
}

export interface VarSite {
  /** the group or host the var is set for */
  entity: string;
  key: string;
  value: unknown;
  pos: Position;
  /** positions inside the value ('domains_vms.0.memory'), where known */
  inner?: Record<string, Position>;
}

export class VarChecker {
  private readonly schemas: Record<string, object>;
  private readonly compiled = new Map<string, ValidateFunction>();
  private readonly ajv = new Ajv({ allErrors: true, strict: false, meta: false, validateSchema: false });
  private readonly prefix: RegExp;

  constructor(readonly catalog: VarCatalog) {
    this.schemas = allVars(catalog);
    this.prefix = new RegExp(`^(${catalog.namespaces.join('|')})_`);
  }

  schemaOf(key: string): { type?: unknown } | undefined {
    return this.schemas[key] as { type?: unknown } | undefined;
  }

  /** Problems (bad values of known vars) and warnings (unknown names under a kvmforge prefix) for one site. */
  check(site: VarSite, problems: Problem[], warnings: Problem[]): void {
    // Ansible's own vars (ansible_host, ansible_connection, …) are read per host, into its connection: a host
    // kvmforge can't reach its way stops only a run that selects it
    if (site.key.startsWith('ansible_')) return;
    const schema = this.schemaOf(site.key);
    const key = `${site.entity}.${site.key}`;
    if (!schema) {
      if (this.prefix.test(site.key)) {
        const near = closest(site.key, Object.keys(this.schemas));
        warnings.push({
          ...site.pos,
          key,
          message: `unknown var '${site.key}' under a kvmforge prefix${near ? ` — did you mean ${near}?` : ''}`,
        });
      }
      return;
    }
    let v = this.compiled.get(site.key);
    if (!v) {
      v = this.ajv.compile(schema);
      this.compiled.set(site.key, v);
    }
    if (v(coerce(schema, site.value))) return;
    // one problem per place in the value; where alternatives all failed (oneOf/anyOf), one line naming them
    const byPath = new Map<string, ErrorObject[]>();
    for (const e of v.errors ?? []) {
      const alt = /\/(oneOf|anyOf)(\/|$)/.exec(e.schemaPath);
      const path = alt ? e.instancePath : `${e.instancePath}#${e.schemaPath}`;
      byPath.set(path, [...(byPath.get(path) ?? []), e]);
    }
    for (const errs of byPath.values()) {
      const branches = errs.filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'anyOf');
      const message =
        branches.length > 1
          ? `expected ${[...new Set(branches.map(describe).map((m) => m.replace(/^expected /, '')))].join(', or ')}`
          : describe(branches[0] ?? errs[0]);
      const path = pathOf(errs[0]);
      let at = [site.key, ...path].join('.');
      while (!site.inner?.[at] && at.includes('.')) at = at.slice(0, at.lastIndexOf('.'));
      const got = path.reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], site.value);
      problems.push({
        ...(site.inner?.[at] ?? site.pos),
        key: [key, ...path].join('.'),
        message: `${message}, got ${JSON.stringify(got)}`,
      });
    }
  }
}

function pathOf(e: ErrorObject): string[] {
  const path = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const extra = (e.params as { additionalProperty?: string }).additionalProperty;
  return extra === undefined ? path : [...path, extra];
}

function describe(e: ErrorObject): string {
  switch (e.keyword) {
    case 'type':
      return `expected ${(e.params as { type: string | string[] }).type.toString().replace(',', ' or ')}`;
    case 'enum':
      return `expected one of ${(e.params as { allowedValues: unknown[] }).allowedValues
        .map((a) => JSON.stringify(a))
        .join(', ')}`;
    case 'additionalProperties':
      return `unknown key '${(e.params as { additionalProperty: string }).additionalProperty}'`;
    default:
      return `expected a value that ${e.message}`;
  }
}

/** The declared name nearest to `name` (edit distance), when it is near enough to be a typo. */
export function closest(name: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = distance(name, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= Math.max(2, Math.floor(name.length / 4)) ? best : undefined;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}
