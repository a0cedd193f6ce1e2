// `kvmforge steps [--markdown]`: the steps in the order they run (loads the steps and nothing else).
import { steps } from '../../steps/index.ts';

export async function stepsCommand(f: { markdown?: boolean }): Promise<number> {
  if (f.markdown) process.stdout.write(`${(await import('./docs.ts')).stepTable(steps)}\n`);
  else for (const s of steps) process.stdout.write(`${s.name.padEnd(16)} ${s.description}\n`);
  return 0;
}
