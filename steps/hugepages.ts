// hugepages: 2 MiB pages now (sysctl) and at boot (sysctl.d), hugetlbfs mounted; the kernel's answer is
// read back from /proc/meminfo. 1 GiB pages go on the kernel command line (see boot-args).
import { HostError } from '../src/core/errors.ts';
import { fileText, planFile } from '../src/core/file.ts';
import { sh } from '../src/core/sh.ts';
import { badVar, varOf } from '../src/core/vars.ts';
import type { Change, Host, Step, VarSpec } from '../src/core/types.ts';
import { init, memory, mounts, sysctl } from '../src/facts/host.ts';

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

const vars: Record<string, VarSpec> = {
  hugepages_count: {
    schema: {
      oneOf: [
        { type: 'integer', minimum: 0 },
        { type: 'string', pattern: '^[0-9]{1,2}%$' },
      ],
    },
    default: 1024,
    defaultText: '1024, or `"10%"` of memory — the thesis\'s guidance',
    description:
      'Number of 2 MiB pages (the thesis: 2 GiB), or a share of memory like "10%" (the thesis guidance). 0 releases ' +
      'them.',
  },
  hugepages_min_free_mib: {
    schema: { type: 'integer', minimum: 0 },
    default: 1024,
    description: 'Refuse a count that leaves less memory than this.',
  },
  hugepages_allow_shortfall: {
    schema: { type: 'boolean' },
    default: false,
    description: 'Accept fewer pages than asked when memory is fragmented (false: fail).',
  },
  hugepages_mount: {
    schema: { type: 'string', pattern: '^/[^\\s]*$' },
    default: '/dev/hugepages',
    description: 'hugetlbfs mount point.',
  },
};

const step: Step<Params> = {
  name: 'hugepages',
  description: 'Reserve 2 MiB hugepages (sysctl now + sysctl.d at boot) and mount hugetlbfs',
  doc:
    '`vm.nr_hugepages` now and in `/etc/sysctl.d/80-kvmforge-hugepages.conf`; reads `/proc/meminfo` back and ' +
    'fails if the kernel gave fewer pages; hugetlbfs on `/dev/hugepages`; refuses a count that leaves less than ' +
    '`hugepages_min_free_mib`',
  vars,
  params(host: Host) {
    const raw = varOf<number | string>(host, vars, 'hugepages_count');
    if (typeof raw === 'string' && !/^\d{1,2}%$/.test(raw))
      throw badVar(
        host,
        'hugepages_count',
        `expected a whole number of pages or a percentage like "10%", got '${raw}'`,
      );
    if (typeof raw === 'number' && (!Number.isInteger(raw) || raw < 0))
      throw badVar(host, 'hugepages_count', `expected a whole number ≥ 0, got ${raw}`);
    return {
      count: typeof raw === 'string' ? { percent: Number(raw.slice(0, -1)) } : raw,
      minFreeMiB: varOf(host, vars, 'hugepages_min_free_mib'),
      allowShortfall: varOf(host, vars, 'hugepages_allow_shortfall'),
      mount: varOf(host, vars, 'hugepages_mount'),
    };
  },
  async plan(ctx, p) {
    const [mem, sys, mnt, ini] = await ctx.read(memory, sysctl, mounts, init);
    const pageKiB = mem.hugePageSizeKiB || 2048;
    const want = wantedPages(p, mem.totalKiB, pageKiB);
    const current = Number(sys['vm.nr_hugepages'] ?? mem.hugePagesTotal);
    const changes: Change[] = [];
    if (want > current) {
      const leftMiB = (mem.totalKiB - want * pageKiB) / 1024;
      if (leftMiB < p.minFreeMiB) {
        throw new HostError(
          `${want} hugepages (${(want * pageKiB) / 1024} MiB) would leave ${Math.floor(leftMiB)} MiB of ` +
            `${Math.floor(mem.totalKiB / 1024)} MiB, under hugepages_min_free_mib (${p.minFreeMiB}); ask for fewer ` +
            `or lower that limit`,
        );
      }
    }
    const shortfallAccepted =
      p.allowShortfall &&
      current < want &&
      current === mem.hugePagesTotal &&
      sys['vm.nr_hugepages'] !== undefined &&
      (await ctx.read(fileText(SYSCTL_FILE)))[0]?.includes(`= ${want}\n`);
    if (current !== want && !shortfallAccepted) {
      const check = p.allowShortfall
        ? `[ "$got" -ge ${want} ] || echo "kvmforge: the kernel gave $got of ${want} hugepages (shortfall allowed)" >&2`
        : `[ "$got" -ge ${want} ] || { echo "kvmforge: the kernel gave only $got of ${want} hugepages (memory too ` +
          `fragmented?); set hugepages_allow_shortfall: true to accept fewer" >&2; exit 1; }`;
      changes.push({
        kind: 'script',
        summary: `vm.nr_hugepages ${current} → ${want}`,
        diff: `vm.nr_hugepages ${current} → ${want} (${(want * pageKiB) / 1024} MiB)`,
        script: [
          `sysctl -q -w vm.nr_hugepages=${want}`,
          `got=$(awk '/^HugePages_Total:/ { print $2 }' /proc/meminfo)`,
          check,
        ].join('\n'),
      });
    }
    const file = await planFile(ctx, {
      path: SYSCTL_FILE,
      content: `# kvmforge hugepages\nvm.nr_hugepages = ${want}\n`,
    });
    if (file) changes.push(file);
    if (want > 0 && !mnt.some((m) => m.fstype === 'hugetlbfs' && m.target === p.mount)) {
      const persist =
        p.mount === '/dev/hugepages' && ini === 'systemd'
          ? 'systemctl start dev-hugepages.mount 2>/dev/null || mount -t hugetlbfs hugetlbfs /dev/hugepages'
          : sh`mkdir -p ${p.mount} && mount -t hugetlbfs hugetlbfs ${p.mount} && { grep -qs ` +
            sh`${` ${p.mount} hugetlbfs `} /etc/fstab || echo ${`hugetlbfs ${p.mount} hugetlbfs defaults 0 0`} >> ` +
            sh`/etc/fstab; }`;
      changes.push({ kind: 'script', summary: `mount hugetlbfs on ${p.mount}`, script: persist });
    }
    return changes;
  },
};
export default step;
