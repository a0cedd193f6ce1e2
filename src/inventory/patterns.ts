// Host patterns with Ansible's semantics (InventoryManager.get_hosts/subset): terms split at ',' (or ':'
// when the whole is no host address), `&x` intersects, `!x` excludes (applied after the plain terms; only
// & and ! terms mean all & …), globs and `~regex` match group and host names, `g[0]`, `g[-1]`, `g[1:3]`
// subscript a group's hosts, `@file` reads one pattern per line. A term that matches nothing is a warning,
// as in Ansible; a pattern that does not parse is bad input.
import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from '../core/errors.ts';
import type { Host } from '../core/types.ts';
import { parseAddress } from './hostnames.ts';
import type { Inventory } from './load.ts';

/** Ansible's split_host_pattern. */
export function splitPattern(pattern: string): string[] {
  let parts: string[];
  if (pattern.includes(',')) parts = pattern.split(',');
  else if (parseAddress(pattern).host) parts = [pattern];
  else parts = pattern.match(/(?:[^\s:[\]]|\[[^\]]*\])+/g) ?? [];
  return parts.map((p) => p.trim()).filter(Boolean);
}

/** Python's fnmatch.translate, anchored: * ? [seq] [!seq]. */
function globRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      let j = i + 1;
      if (glob[j] === '!') j++;
      if (glob[j] === ']') j++;
      while (j < glob.length && glob[j] !== ']') j++;
      if (j >= glob.length) re += '\\[';
      else {
        let body = glob.slice(i + 1, j).replace(/\\/g, '\\\\');
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        else if (body.startsWith('^')) body = `\\${body}`;
        re += `[${body}]`;
        i = j;
      }
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^(?:${re})$`, 's');
}

function matcher(expr: string): RegExp {
  if (!expr.startsWith('~')) return globRegExp(expr);
  try {
    // Python's re.match: anchored at the start only
    return new RegExp(`^(?:${expr.slice(1)})`, 'u');
  } catch (e) {
    throw ConfigError.one(`invalid host pattern '${expr}': ${(e as Error).message}`, { key: '--limit' });
  }
}

const SUBSCRIPT = /^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$/;

interface Matcher {
  inv: Inventory;
  warn: (msg: string) => void;
}

function enumerate(m: Matcher, expr: string): string[] {
  const { graph } = m.inv;
  const re = matcher(expr);
  const groups = [...graph.groups.keys()].filter((g) => re.test(g));
  const out: string[] = [];
  for (const g of groups) for (const h of graph.hostsOf(g)) if (!out.includes(h)) out.push(h);
  if (!groups.length || expr.startsWith('~') || /[.?*[]/.test(expr))
    for (const h of graph.hosts.keys()) if (re.test(h) && !out.includes(h)) out.push(h);
  if (!out.length && !groups.length && expr !== 'all')
    m.warn(`host pattern '${expr}' matches no host or group: ignored (as Ansible does)`);
  return out;
}

function matchOne(m: Matcher, term: string): string[] {
  const pattern = term[0] === '&' || term[0] === '!' ? term.slice(1) : term;
  if (!pattern) throw ConfigError.one(`invalid host pattern '${term}': nothing after ${term[0]}`, { key: '--limit' });
  const s = pattern[0] === '~' ? null : SUBSCRIPT.exec(pattern);
  if (!s) return enumerate(m, pattern);
  const hosts = enumerate(m, s[1]);
  if (!hosts.length) return hosts;
  if (s[2] !== undefined) {
    const i = Number(s[2]);
    const h = hosts[i < 0 ? hosts.length + i : i];
    if (h === undefined || i < -hosts.length)
      throw ConfigError.one(`host pattern '${pattern}': ${s[1]} has ${hosts.length} host(s), no index ${i}`, {
        key: '--limit',
      });
    return [h];
  }
  if (s[4] === '-') m.warn(`host pattern '${pattern}': use [x:y] (inclusive), [x-y] is deprecated in Ansible`);
  const start = Number(s[3]);
  // Ansible: an empty end means up to the last host; end 0 counts as no end and yields hosts[start] alone
  if (s[5] === '') return hosts.slice(start);
  const end = Number(s[5]);
  if (end === 0) {
    if (hosts[start] === undefined)
      throw ConfigError.one(`host pattern '${pattern}': ${s[1]} has ${hosts.length} host(s)`, { key: '--limit' });
    return [hosts[start]];
  }
  return hosts.slice(start, end + 1);
}

function evaluate(m: Matcher, terms: string[]): string[] {
  const plain = terms.filter((t) => t[0] !== '&' && t[0] !== '!');
  const ordered = [
    ...(plain.length ? plain : ['all']),
    ...terms.filter((t) => t[0] === '&'),
    ...terms.filter((t) => t[0] === '!'),
  ];
  let hosts: string[] = [];
  for (const t of ordered) {
    if (m.inv.graph.hosts.has(t)) {
      if (!hosts.includes(t)) hosts.push(t);
      continue;
    }
    const that = new Set(matchOne(m, t));
    if (t[0] === '!') hosts = hosts.filter((h) => !that.has(h));
    else if (t[0] === '&') hosts = hosts.filter((h) => that.has(h));
    else for (const h of that) if (!hosts.includes(h)) hosts.push(h);
  }
  return hosts;
}

/** The terms of a --limit: split, with @file read one pattern per line. */
export function limitTerms(limit: string): string[] {
  const out: string[] = [];
  for (const x of splitPattern(limit)) {
    if (x[0] !== '@') {
      out.push(x);
      continue;
    }
    const file = x.slice(1);
    let ok = false;
    try {
      ok = statSync(file).isFile();
    } catch {
      throw ConfigError.one(`--limit ${x}: no such file`, { key: '--limit' });
    }
    if (!ok) throw ConfigError.one(`--limit ${x}: a limit file must be a file, not a directory`, { key: '--limit' });
    out.push(
      ...readFileSync(file, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean),
    );
  }
  return out;
}

/**
 * The hosts a run selects: `pattern` (default all) narrowed by `limit`, in Ansible's order. Terms matching
 * nothing go to `warn`; no host at all is bad input.
 */
export function selectHosts(
  inv: Inventory,
  limit: string | undefined,
  warn: (msg: string) => void = (msg) => process.stderr.write(`kvmforge: warning: ${msg}\n`),
  pattern = 'all',
): Host[] {
  const m: Matcher = { inv, warn };
  let names = evaluate(m, splitPattern(pattern));
  if (limit !== undefined) {
    const subset = new Set(evaluate(m, limitTerms(limit)));
    names = names.filter((n) => subset.has(n));
  }
  const byName = new Map(inv.hosts.map((h) => [h.name, h]));
  const hosts = names.map((n) => byName.get(n)!);
  if (!hosts.length)
    throw ConfigError.one(
      limit !== undefined ? `--limit '${limit}' selects no host in ${inv.file}` : `'${pattern}' selects no host`,
      { key: '--limit' },
    );
  return hosts;
}
