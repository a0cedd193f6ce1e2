import { ConfigError } from '../core/errors.ts';
import { labDown, labReset, labSsh, labStatus, labUp } from './lab.ts';

const log = (s: string) => process.stderr.write(`lab: ${s}\n`);

function int(v: string | boolean | undefined, name: string, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw ConfigError.one(`--${name} '${v}': expected a whole number ≥ ${min}`);
  return n;
}

export async function labCommand(args: string[], f: Record<string, string | boolean | undefined>): Promise<number> {
  const [sub, name, ...rest] = args;
  const invDir = process.env.KVMFORGE_INVENTORY_DIR ?? 'inventories';
  try {
    switch (sub) {
      case 'up': {
        const s = await labUp({ hosts: int(f.hosts, 'hosts', 1, 1), memory: int(f.memory, 'memory', 2048, 512), cpus: int(f.cpus, 'cpus', 2, 1), inventoryDir: invDir, golden: !f['cold-boot'] }, log);
        log(`inventory: ${invDir}/lab.yaml (${s.vms.length} host(s)); try: kvmforge plan -i ${invDir}/lab.yaml`);
        return 0;
      }
      case 'status':
        process.stdout.write(labStatus() + '\n');
        return 0;
      case 'ssh':
        if (!name) throw ConfigError.one('lab ssh NAME [command…]');
        return labSsh(name, invDir, rest);
      case 'reset':
        if (!name) throw ConfigError.one('lab reset NAME');
        await labReset(name, log);
        return 0;
      case 'down':
        labDown(log);
        return 0;
      default:
        throw ConfigError.one(`lab: unknown subcommand '${sub ?? ''}': expected up, status, ssh, reset or down`);
    }
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    process.stderr.write(`kvmforge lab: ${(e as Error).message}\n`);
    return 1;
  }
}
