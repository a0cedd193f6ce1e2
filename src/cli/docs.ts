// README's step table, made from the steps themselves (what each does, its vars and their defaults, written
// once in the step): `kvmforge steps --markdown` prints it, and a test fails when README's copy is stale.
import type { Step } from '../core/types.ts';

const code = (s: string) => (s.startsWith('`') ? s : `\`${s}\``);

function defaultOf(v: Step['vars'][string]): string | undefined {
  if (v.defaultText !== undefined) return v.defaultText;
  if (v.default === undefined) return undefined;
  if (Array.isArray(v.default) || (typeof v.default === 'object' && v.default !== null))
    return JSON.stringify(v.default).replace(/"/g, '');
  return String(v.default);
}

export function stepTable(steps: Step<unknown>[]): string {
  const rows = steps.map((s) => {
    const vars = Object.entries(s.vars).map(([k, v]) => {
      const d = defaultOf(v);
      return `${code(k)}${d === undefined || d === '' ? '' : ` (${d})`}`;
    });
    // a step that is off on a host without vars says so, with its reason
    const bare = s.wanted?.({
      name: 'x',
      groups: [],
      vars: {},
      varPos: {},
      pos: { file: '', line: 0, col: 0 },
      conn: { address: '', port: 22, user: 'root', local: false, become: false },
    });
    const off = typeof bare === 'string' ? `off with ${bare}; ` : '';
    return `| ${s.name} | ${s.doc} | ${off}${vars.join(', ')} |`;
  });
  return ['| step | what it does | vars (defaults) |', '|---|---|---|', ...rows].join('\n');
}
