// Every step, in the order a run applies them.
import type { Step } from '../src/core/types.ts';
import files from './files.ts';

export const steps: Step<any>[] = [files];

export function stepByName(name: string): Step<any> | undefined {
  return steps.find((s) => s.name === name);
}
