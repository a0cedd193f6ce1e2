// The VM tools beside plan/apply (exits, tune, top, bench): the inventory and host loop they share.
import { inventoryOf, selectHosts, sideLoop } from './commands.ts';
import type { Flags } from './flags.ts';

export async function exits(f: Flags): Promise<number> {
  const hosts = selectHosts(inventoryOf(f), f.limit);
  return (await import('./exits.ts')).exitsCommand(hosts, f, sideLoop(f, hosts).loop);
}

export async function tune(f: Flags): Promise<number> {
  const inv = inventoryOf(f);
  const hosts = selectHosts(inv, f.limit);
  return (await import('./tune.ts')).tuneCommand(hosts, inv.file, f, sideLoop(f, hosts).loop);
}

export async function top(f: Flags): Promise<number> {
  const inv = inventoryOf(f);
  return (await import('./top.ts')).topCommand(inv, f, sideLoop(f, inv.hosts).session);
}

export async function bench(f: Flags): Promise<number> {
  const inv = inventoryOf(f);
  return (await import('./bench.ts')).benchCommand(inv, f, sideLoop(f, inv.hosts).loop);
}
