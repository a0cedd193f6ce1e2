import { ConfigError } from '../core/errors.ts';
import { wholeFlag } from '../cli/flags.ts';
import { labDown, labReset, labSsh, labStatus, labUp } from './lab.ts';

const log = (s: string) => process.stderr.write(`lab: ${s}\n`);

export async function labCommand(
  args: string[],
  f: {
    hosts?: string;
    memory?: string;
    cpus?: string;
    ['cold-boot']?: boolean;
    emulated?: string[];
    plain?: string[];
    ['second-nic']?: string[];
  },
): Promise<number> {
  const [sub, name, ...rest] = args;
  const invDir = process.env.KVMFORGE_INVENTORY_DIR ?? 'inventories';
  try {
    switch (sub) {
      case 'up': {
        const hosts = wholeFlag(f.hosts, 'hosts', 1, 1);
        for (const [flag, names] of [
          ['emulated', f.emulated],
          ['plain', f.plain],
          ['second-nic', f['second-nic']],
        ] as const) {
          for (const e of names ?? []) {
            const n = /^lab([1-9]\d*)$/.exec(e)?.[1];
            if (!n || Number(n) > hosts)
              throw ConfigError.one(`--${flag} '${e}': expected a lab VM name, lab1 … lab${hosts}`);
          }
        }
        const s = await labUp(
          {
            hosts,
            memory: wholeFlag(f.memory, 'memory', 2048, 512),
            cpus: wholeFlag(f.cpus, 'cpus', 2, 1),
            inventoryDir: invDir,
            golden: !f['cold-boot'],
            emulated: f.emulated,
            plain: f.plain,
            secondNic: f['second-nic'],
          },
          log,
        );
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
