// `kvmforge top --host NAME`: live (refresh every --interval s, keys c / m / q), or --once / --json.
import { ConfigError } from '../core/errors.ts';
import type { Inventory } from '../inventory/load.ts';
import { selectHosts } from '../inventory/patterns.ts';
import { HostSession, type SessionOptions } from '../runner/session.ts';
import { parseTop, sortRows, topScript, topTable, type SortKey, type TopRow } from '../insight/top.ts';

export async function topCommand(
  inv: Inventory,
  f: { host?: string; interval?: string; once?: boolean; json?: boolean; sort?: string },
  session: SessionOptions,
): Promise<number> {
  if (!f.host) throw ConfigError.one('top: give --host NAME (one host of the inventory)');
  const host = selectHosts(inv, f.host).find((h) => h.name === f.host);
  if (!host) throw ConfigError.one(`top: no host '${f.host}' in ${inv.file}`);
  const interval = f.interval === undefined ? 2 : Number(f.interval);
  if (!(interval >= 1 && interval <= 3)) throw ConfigError.one(`--interval '${f.interval}': expected 1 to 3 seconds`);
  let key: SortKey = f.sort === 'mem' ? 'mem' : 'cpu';
  if (f.sort !== undefined && f.sort !== 'cpu' && f.sort !== 'mem')
    throw ConfigError.one(`--sort '${f.sort}': expected cpu or mem`);
  // one host, live: the session of the shared host loop, without it (no forks to share)
  const s = new HostSession(host, session);
  try {
    await s.start(false);
  } catch (e) {
    s.log(`failed: ${(e as Error).message}`);
    process.stdout.write(`${host.name}: FAILED: ${(e as Error).message}\n`);
    return 1;
  }
  const t = s.transport;
  const sample = async (): Promise<TopRow[]> => {
    const r = await t.exec(topScript(interval), { sudo: true, timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(r.stderr.trim().split('\n').pop() || `exit ${r.code}`);
    return parseTop(r.stdout);
  };
  try {
    if (f.once || f.json || !process.stdout.isTTY || !process.stdin.isTTY) {
      const rows = await sample();
      process.stdout.write(
        f.json
          ? JSON.stringify({ host: host.name, interval, rows: sortRows(rows, key) }, null, 2) + '\n'
          : `${rows.length ? topTable(rows, key) : 'no running QEMU processes'}\n`,
      );
      return 0;
    }
    return await live(
      host.name,
      interval,
      sample,
      () => key,
      (k) => (key = k),
    );
  } catch (e) {
    process.stdout.write(`${host.name}: FAILED: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await s.close();
  }
}

async function live(
  name: string,
  interval: number,
  sample: () => Promise<TopRow[]>,
  key: () => SortKey,
  setKey: (k: SortKey) => void,
): Promise<number> {
  let rows: TopRow[] = [];
  let quit = false;
  let wake: () => void = () => undefined;
  const draw = () => {
    const height = process.stdout.rows || 24;
    const head =
      `kvmforge top — ${name} — ${new Set(rows.map((r) => r.pid)).size} VM process(es), ${rows.length} ` +
      `threads — sorted by ${key() === 'cpu' ? 'CPU' : 'memory'} — every ${interval} s — keys: c CPU, m memory, q quit`;
    const table = rows.length ? topTable(rows, key(), Math.max(1, height - 4)) : 'no running QEMU processes';
    process.stdout.write(`\x1b[H\x1b[2J${head}\n\n${table}\n`);
  };
  process.stdin.setRawMode(true);
  process.stdin.resume();
  const onKey = (d: Buffer) => {
    const k = d.toString();
    if (k === 'q' || k === '\u0003') quit = true;
    else if (k === 'c' || k === 'm') setKey(k === 'c' ? 'cpu' : 'mem');
    draw();
    wake();
  };
  process.stdin.on('data', onKey);
  try {
    draw();
    while (!quit) {
      const next = sample();
      next.catch(() => undefined); // quitting mid-sample closes the connection under it
      rows = await Promise.race([next, new Promise<TopRow[]>((r) => (wake = () => quit && r(rows)))]);
      if (!quit) draw();
    }
  } finally {
    process.stdin.off('data', onKey);
    process.stdin.setRawMode(false);
    process.stdin.pause();
    process.stdout.write('\n');
  }
  return 0;
}
