// Shared by lab test files (not by globalSetup, which may not import vitest).
import { expect } from 'vitest';
import { kvmforge } from './lab.ts';

/** The Ansible-style integration shape: apply (with --verify) succeeds, then a plan has no changes. `steps`
 * undefined: every step, as a plain `kvmforge apply` runs them. */
export async function applyThenPlanIsEmpty(inv: string, steps?: string): Promise<{ stdout: string; stderr: string }> {
  const only = steps ? ['--steps', steps] : [];
  const r = await kvmforge(['apply', '-i', inv, ...only, '--verify']);
  expect(r.stdout + r.stderr).not.toMatch(/FAILED/);
  expect(r.code).toBe(0);
  const again = await kvmforge(['plan', '-i', inv, ...only, '--json']);
  expect(again.code).toBe(0);
  expect(JSON.parse(again.stdout).hosts[0].steps.flatMap((s: { changes: unknown[] }) => s.changes)).toEqual([]);
  return r;
}
