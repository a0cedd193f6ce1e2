// The layers, read from the code's own imports (used by test/unit/layers.test.ts): bottom to top core → facts,
// transport, inventory → step
// libraries → steps → runner → cli, lab. No import points upward and there is no cycle.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

const LAYERS: [number, RegExp][] = [
  [0, /^src\/core\//],
  [1, /^src\/(facts|transport|inventory)\//],
  [2, /^src\/(artifacts|domains|bridge|insight)\//],
  [3, /^steps\//],
  [4, /^src\/runner\//],
  [5, /^src\/(cli|lab)\//],
];
const NAMES = ['core', 'facts/transport/inventory', 'step libraries', 'steps', 'runner', 'cli/lab'];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : /\.(ts|mjs)$/.test(f) ? [p] : [];
  });
}

export function importGraph(root = '.'): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of [...files(join(root, 'src')), ...files(join(root, 'steps'))]) {
    const text = readFileSync(f, 'utf8');
    const deps = [
      ...text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/gm),
    ]
      .map((m) => normalize(join(dirname(f), m[1] ?? m[2])))
      .map((p) => relative(root, p));
    graph.set(relative(root, f), [...new Set(deps)]);
  }
  return graph;
}

export const layerOf = (f: string) => LAYERS.find(([, re]) => re.test(f))?.[0];

export function upward(graph: Map<string, string[]>): string[] {
  const out: string[] = [];
  for (const [f, deps] of graph) {
    const lf = layerOf(f);
    for (const d of deps) {
      const ld = layerOf(d);
      if (lf === undefined || ld === undefined) continue;
      if (ld > lf) out.push(`${f} (${NAMES[lf]}) imports ${d} (${NAMES[ld]})`);
    }
  }
  return out;
}

/** Strongly connected components with more than one file (Tarjan). */
export function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}
