// -e/--extra-vars as Ansible reads them: `@file` (YAML or JSON), inline YAML/JSON when it starts with { or [,
// else key=value pairs split like a shell line (values are text). Highest precedence of all vars.
import { readFileSync } from 'node:fs';
import { isMap, type Node } from 'yaml';
import { ConfigError, type Problem } from '../core/errors.ts';
import type { ExtraVars } from '../inventory/load.ts';
import { shlexSplit } from '../inventory/pyvalue.ts';
import { entries, nestedPositions, plainValue, readYaml } from '../inventory/yaml-source.ts';

function fromYaml(text: string, file: string): ExtraVars {
  const problems: Problem[] = [];
  const y = readYaml(text, file);
  problems.push(...y.syntax, ...y.problems);
  const top = y.doc.contents as Node | null;
  const out: ExtraVars = { vars: {}, pos: {} };
  if (!problems.length && top !== null && !isMap(top))
    problems.push({
      ...y.at(top.range?.[0]),
      key: '--extra-vars',
      message: 'expected a mapping of var names to values',
    });
  if (problems.length) throw new ConfigError(problems);
  if (isMap(top))
    for (const e of entries(y, top)) {
      const k = String(e.key);
      out.vars[k] = plainValue(y, e.value, e.valuePos, problems);
      out.pos[k] = e.valuePos;
      Object.assign(out.pos, nestedPositions(y, e.value, k));
    }
  if (problems.length) throw new ConfigError(problems);
  return out;
}

export function parseExtraVars(arg: string, index: number): ExtraVars {
  const where = `-e #${index + 1}`;
  if (arg.startsWith('@')) {
    let text: string;
    try {
      text = readFileSync(arg.slice(1), 'utf8');
    } catch (e) {
      throw ConfigError.one(`cannot read ${arg.slice(1)}: ${(e as NodeJS.ErrnoException).code ?? e}`, {
        key: '--extra-vars',
      });
    }
    return fromYaml(text, arg.slice(1));
  }
  if (/^\s*[{[]/.test(arg)) return fromYaml(arg, where);
  const out: ExtraVars = { vars: {}, pos: {} };
  let tokens: string[];
  try {
    tokens = shlexSplit(arg);
  } catch (e) {
    throw ConfigError.one(`'${arg}': ${(e as Error).message}`, { key: '--extra-vars' });
  }
  for (const t of tokens) {
    const eq = t.indexOf('=');
    if (eq < 1) throw ConfigError.one(`'${t}': expected key=value, YAML/JSON or @file`, { key: '--extra-vars' });
    const k = t.slice(0, eq);
    out.vars[k] = t.slice(eq + 1);
    out.pos[k] = { file: where, line: 1, col: arg.indexOf(t) + 1 };
  }
  return out;
}
