// Maps YAML nodes and key paths to file:line:col.
import { isMap, isPair, isScalar, isSeq, type LineCounter, type Document, type Node } from 'yaml';
import type { Position } from '../core/types.ts';

export class SourceMap {
  constructor(
    readonly file: string,
    readonly doc: Document,
    readonly lines: LineCounter,
  ) {}

  at(offset: number | undefined): Position {
    if (offset === undefined) return { file: this.file, line: 1, col: 1 };
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, col };
  }

  /** Position of the value at `path`, or of the key when `key` is true; falls back to the nearest parent. */
  pos(path: (string | number)[], key = false): Position {
    let node: unknown = this.doc.contents;
    let best: number | undefined = (node as Node | null)?.range?.[0];
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        const last = i === path.length - 1;
        const k = pair.key as Node;
        if (last && key) return this.at(k.range?.[0]);
        node = pair.value;
        best = (node as Node | null)?.range?.[0] ?? k.range?.[0];
      } else if (isSeq(node)) {
        node = node.items[Number(seg)];
        best = (node as Node | null)?.range?.[0] ?? best;
      } else break;
    }
    return this.at(best);
  }
}
