// hugepages: 2 MiB pages now (sysctl) and at boot (sysctl.d), hugetlbfs mounted; the kernel's answer is
// read back from /proc/meminfo. 1 GiB pages go on the kernel command line (see boot-args).
import { HostError } from '../src/core/errors.ts';
import { planFile } from '../src/core/file.ts';
import { sh } from '../src/core/sh.ts';
import { badVar, varOr } from '../src/core/vars.ts';
import type { Change, Host, Step } from '../src/core/types.ts';

export const SYSCTL_FILE = '/etc/sysctl.d/80-kvmforge-hugepages.conf';

interface Params {
  count: number | { percent: number };
  minFreeMiB: number;
  allowShortfall: boolean;
  mount: string;
}

export function wantedPages(p: Params, totalKiB: number, pageKiB: number): number {
  return typeof p.count === 'number' ? p.count : Math.floor((totalKiB * p.count.percent) / 100 / pageKiB);
}

const step: Step<Params | undefined> = {
  name: 'hugepages',
  description: 'Reserve 2 MiB hugepages (sysctl now + sysctl.d at boot) and mount hugetlbfs',
  vars: {
    hugepages_enabled: { type: 'boolean', description: 'Run this step (default true).' },
    hugepages_count: {
      description: 'Number of 2 MiB pages (default 1024, the thesis: 2 GiB), or a share of memory like "10%" (the thesis guidance). 0 releases them.',
      oneOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: '^[0-9]{1,2}%$' }],
    },
    hugepages_min_free_mib: { type: 'integer', minimum: 0, description: 'Refuse a count that leaves less memory than this (default 1024).' },
    hugepages_allow_shortfall: { type: 'boolean', description: 'Accept fewer pages than asked when memory is fragmented (default false: fail).' },
    hugepages_mount: { type: 'string', pattern: '^/[^\\s]*$', description: 'hugetlbfs mount point (default /dev/hugepages).' },
    hugepages_1g_count: { type: 'integer', minimum: 0, description: '1 GiB pages, set on the kernel command line by boot-args (default 0).' },
  },
  params(host: Host) {
    if (!varOr(host, 'hugepages_enabled', true)) return undefined;
    const raw = varOr<number | string>(host, 'hugepages_count', 1024);
    if (typeof raw === 'string' && !/^\d{1,2}%$/.test(raw)) throw badVar(host, 'hugepages_count', `expected a whole number of pages or a percentage like "10%", got '${raw}'`);
    if (typeof raw === 'number' && (!Number.isInteger(raw) || raw < 0)) throw badVar(host, 'hugepages_count', `expected a whole number ≥ 0, got ${raw}`);
    return {
      count: typeof raw === 'string' ? { percent: Number(raw.slice(0, -1)) } : raw,
      minFreeMiB: varOr(host, 'hugepages_min_free_mib', 1024),
      allowShortfall: varOr(host, 'hugepages_allow_shortfall', false),
      mount: varOr(host, 'hugepages_mount', '/dev/hugepages'),
    };
  },
  async plan(ctx, p) {
    const { memory, sysctl, mounts, init } = ctx.facts;
    const pageKiB = memory.hugePageSizeKiB || 2048;
    const want = wantedPages(p!, memory.totalKiB, pageKiB);
    const current = Number(sysctl['vm.nr_hugepages'] ?? memory.hugePagesTotal);
    const changes: Change[] = [];
    if (want > current) {
      const leftMiB = (memory.totalKiB - want * pageKiB) / 1024;
      if (leftMiB < p!.minFreeMiB) {
        throw new HostError(`${want} hugepages (${(want * pageKiB) / 1024} MiB) would leave ${Math.floor(leftMiB)} MiB of ${Math.floor(memory.totalKiB / 1024)} MiB, under hugepages_min_free_mib (${p!.minFreeMiB}); ask for fewer or lower that limit`);
      }
    }
    const shortfallAccepted = p!.allowShortfall && current < want && current === memory.hugePagesTotal && ctx.facts.sysctl['vm.nr_hugepages'] !== undefined && (await ctx.readFile(SYSCTL_FILE))?.includes(`= ${want}\n`);
    if (current !== want && !shortfallAccepted) {
      const check = p!.allowShortfall
        ? `[ "$got" -ge ${want} ] || echo "kvmforge: the kernel gave $got of ${want} hugepages (shortfall allowed)" >&2`
        : `[ "$got" -ge ${want} ] || { echo "kvmforge: the kernel gave only $got of ${want} hugepages (memory too fragmented?); set hugepages_allow_shortfall: true to accept fewer" >&2; exit 1; }`;
      changes.push({
        summary: `vm.nr_hugepages ${current} → ${want}`,
        diff: `vm.nr_hugepages ${current} → ${want} (${(want * pageKiB) / 1024} MiB)`,
        script: [`sysctl -q -w vm.nr_hugepages=${want}`, `got=$(awk '/^HugePages_Total:/ { print $2 }' /proc/meminfo)`, check].join('\n'),
      });
    }
    const file = await planFile(ctx, { path: SYSCTL_FILE, content: `# kvmforge hugepages\nvm.nr_hugepages = ${want}\n` });
    if (file) changes.push(file);
    if (want > 0 && !mounts.some((m) => m.fstype === 'hugetlbfs' && m.target === p!.mount)) {
      const persist =
        p!.mount === '/dev/hugepages' && init === 'systemd'
          ? 'systemctl start dev-hugepages.mount 2>/dev/null || mount -t hugetlbfs hugetlbfs /dev/hugepages'
          : sh`mkdir -p ${p!.mount} && mount -t hugetlbfs hugetlbfs ${p!.mount} && { grep -qs ${` ${p!.mount} hugetlbfs `} /etc/fstab || echo ${`hugetlbfs ${p!.mount} hugetlbfs defaults 0 0`} >> /etc/fstab; }`;
      changes.push({ summary: `mount hugetlbfs on ${p!.mount}`, script: persist });
    }
    return changes;
  },
};
export default step;
