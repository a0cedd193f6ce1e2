// The layers, read from the code's own imports: bottom to top core → facts, transport, inventory → step
// libraries → steps → runner → cli, lab. No import points upward and there is no cycle.
import { describe, expect, it } from 'vitest';
import { cycles, importGraph, layerOf, upward } from '../harness/layers.ts';

describe('layers', () => {
  const graph = importGraph();
  it('every source file belongs to a layer', () => {
    expect([...graph.keys()].filter((f) => layerOf(f) === undefined)).toEqual([]);
  });
  it('no import points upward', () => {
    expect(upward(graph)).toEqual([]);
  });
  it('there is no cycle', () => {
    expect(cycles(graph)).toEqual([]);
  });
});
