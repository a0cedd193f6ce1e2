// Step fixtures: vars and facts in, changes (commands + diffs) out. No host involved.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.ts';
import { resolveParams } from '../../src/runner/run.ts';
import virtio, { MODULES_FILE, THESIS_MODULES } from '../../steps/virtio-modules.ts';
import hugepages, { SYSCTL_FILE } from '../../steps/hugepages.ts';
import ksm, { UNIT_FILE, thesisRun, unitText } from '../../steps/ksm.ts';
import bootArgs, { DROPIN, dropinText, THESIS_ARGS } from '../../steps/boot-args.ts';
import { debianFacts, fakeCtx, host, loose, rockyFacts } from '../harness/fake-host.ts';
import type { Step } from '../../src/core/types.ts';

const plan = async (step: Step<any>, vars: string[], facts = debianFacts(), fake = {}) => {
  const h = host(vars);
  return loose(await step.plan(fakeCtx(facts, fake, h), step.params(h)));
};
const configError = (step: Step<any>, vars: string[]) => {
  try {
    resolveParams([host(vars)], [step]);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems[0];
    throw e;
  }
  throw new Error('expected a ConfigError');
};
const modulesFile =
  `# kvmforge virtio-modules: loaded at boot, in this ` +
  `order\n${THESIS_MODULES.filter((m) => !['virtio', 'virtio_ring'].includes(m)).join('\n')}\n`;

describe('virtio-modules', () => {
  const withBuiltins = () => {
    const f = debianFacts();
    f.builtinModules = ['virtio', 'virtio_ring'];
    f.modules = ['virtio_pci', 'virtio_blk', 'virtio_net'];
    return f;
  };
  const exists = { outputs: { 'modinfo:*': 'vhost_net yes\nvirtio_balloon yes\n' } };

  it('unset: loads the missing modules with modprobe -a, in order, and persists them', async () => {
    const c = await plan(virtio, [], withBuiltins(), exists);
    expect(c.map((x) => x.summary)).toEqual(['load modules vhost_net, virtio_balloon', `create ${MODULES_FILE}`]);
    expect(c[0].script).toBe('modprobe -a vhost_net virtio_balloon');
    expect(c[1].file!.content).toBe(modulesFile); // built-ins are present, not persisted
  });

  it('already set: nothing to do', async () => {
    const f = withBuiltins();
    f.modules.push('vhost_net', 'virtio_balloon');
    expect(await plan(virtio, [], f, { files: { [MODULES_FILE]: modulesFile } })).toEqual([]);
  });

  it('partly set: file right, a module unloaded', async () => {
    const f = withBuiltins();
    f.modules.push('vhost_net');
    const c = await plan(virtio, [], f, {
      files: { [MODULES_FILE]: modulesFile },
      outputs: { 'modinfo:*': 'virtio_balloon yes\n' },
    });
    expect(c.map((x) => x.summary)).toEqual(['load module virtio_balloon']);
  });

  it('vhost_net off drops it from the list', async () => {
    const c = await plan(virtio, ['virtio_modules_vhost_net: false'], withBuiltins(), {
      outputs: { 'modinfo:*': 'virtio_balloon yes\n' },
    });
    expect(c[0].script).toBe('modprobe -a virtio_balloon');
    expect(c[1].file!.content).not.toContain('vhost_net');
  });

  it('a module missing for the running kernel fails the step with its name', async () => {
    await expect(
      plan(virtio, ['virtio_modules_list: [virtio_net, no_such_mod]'], withBuiltins(), {
        outputs: { 'modinfo:*': 'no_such_mod no\n' },
      }),
    ).rejects.toThrow(/module no_such_mod not found for kernel/);
  });

  it('bad input: a module name with shell characters → file:line', () => {
    expect(configError(virtio, ['virtio_modules_list: ["vhost_net; reboot"]'])).toMatchObject({
      file: 'inv.yaml',
      line: 4,
    });
  });
});

describe('hugepages', () => {
  const f = (nr: number, total = 4 * 1024 * 1024) => {
    const x = debianFacts();
    x.memory = { totalKiB: total, availableKiB: total, hugePagesTotal: nr, hugePagesFree: nr, hugePageSizeKiB: 2048 };
    x.sysctl['vm.nr_hugepages'] = String(nr);
    x.mounts.push({ source: 'hugetlbfs', target: '/dev/hugepages', fstype: 'hugetlbfs' });
    return x;
  };
  const conf = (n: number) => `# kvmforge hugepages\nvm.nr_hugepages = ${n}\n`;

  it('unset: the thesis default 1024, now and at boot, checked against /proc/meminfo', async () => {
    const c = await plan(hugepages, [], f(0));
    expect(c[0].summary).toBe('vm.nr_hugepages 0 → 1024');
    expect(c[0].script).toContain('sysctl -q -w vm.nr_hugepages=1024');
    expect(c[0].script).toMatch(/HugePages_Total.*\n.*exit 1/s);
    expect(c[1].file).toMatchObject({ path: SYSCTL_FILE, content: conf(1024) });
  });

  it('already set: nothing', async () => {
    expect(await plan(hugepages, [], f(1024), { files: { [SYSCTL_FILE]: conf(1024) } })).toEqual([]);
  });

  it('wrong value: changes the running value and the file', async () => {
    const c = await plan(hugepages, ['hugepages_count: 256'], f(1024), { files: { [SYSCTL_FILE]: conf(1024) } });
    expect(c.map((x) => x.summary)).toEqual(['vm.nr_hugepages 1024 → 256', `update ${SYSCTL_FILE}`]);
    expect(c[1].diff).toContain('-vm.nr_hugepages = 1024\n+vm.nr_hugepages = 256');
  });

  it('"10%" of memory', async () => {
    const c = await plan(hugepages, ['hugepages_count: "10%"'], f(0, 2_000_000));
    expect(c[0].summary).toBe('vm.nr_hugepages 0 → 97');
  });

  it('refuses a count that leaves too little memory', async () => {
    await expect(plan(hugepages, [], f(0, 2 * 1024 * 1024))).rejects.toThrow(
      /would leave 0 MiB of 2048 MiB, under hugepages_min_free_mib \(1024\)/,
    );
  });

  it('mounts hugetlbfs when it is not mounted', async () => {
    const x = f(1024);
    x.mounts = [];
    const c = await plan(hugepages, [], x, { files: { [SYSCTL_FILE]: conf(1024) } });
    expect(c.map((y) => y.summary)).toEqual(['mount hugetlbfs on /dev/hugepages']);
  });

  it('no systemd, other mount point: mounts and adds an fstab line', async () => {
    const x = f(1024);
    x.mounts = [];
    x.init = 'other';
    const c = await plan(hugepages, ['hugepages_mount: /mnt/huge'], x, { files: { [SYSCTL_FILE]: conf(1024) } });
    expect(c[0].script).toBe(
      "mkdir -p /mnt/huge && mount -t hugetlbfs hugetlbfs /mnt/huge && { grep -qs ' /mnt/huge hugetlbfs ' /etc/fstab " +
        "|| echo 'hugetlbfs /mnt/huge hugetlbfs defaults 0 0' >> /etc/fstab; }",
    );
  });

  it('bad input: negative or non-integer counts → file:line', () => {
    expect(configError(hugepages, ['hugepages_count: -1'])).toMatchObject({ line: 4 });
    expect(configError(hugepages, ['hugepages_count: 1.5'])).toMatchObject({ line: 4 });
    expect(configError(hugepages, ['hugepages_count: "lots"'])).toMatchObject({ line: 4 });
  });
});

describe('ksm', () => {
  const f = (run: number, scan = 100, sleep = 20) => {
    const x = debianFacts();
    x.init = 'systemd';
    x.ksm = { ...x.ksm, run, pages_to_scan: scan, sleep_millisecs: sleep };
    return x;
  };
  const enabled = { outputs: { 'is-enabled:*': 'enabled\n' } };
  const unit = (run = 1, scan = 100, sleep = 20) => unitText({ run, pagesToScan: scan, sleepMs: sleep });

  it('unset: turns KSM on and installs + enables the unit', async () => {
    const c = await plan(ksm, [], f(0), { outputs: { 'is-enabled:*': 'disabled\n' } });
    expect(c.map((x) => x.summary)).toEqual([
      'ksm run 0 → 1',
      `create ${UNIT_FILE}`,
      'reload systemd for kvmforge-ksm.service',
      'enable kvmforge-ksm.service',
    ]);
    expect(c[0].script).toBe('echo 1 > /sys/kernel/mm/ksm/run');
  });

  it('already set: nothing', async () => {
    expect(await plan(ksm, [], f(1), { ...enabled, files: { [UNIT_FILE]: unit() } })).toEqual([]);
  });

  it('partly set: scan rate differs', async () => {
    const c = await plan(ksm, ['ksm_pages_to_scan: 1000'], f(1), { ...enabled, files: { [UNIT_FILE]: unit() } });
    expect(c[0]).toMatchObject({
      summary: 'ksm pages_to_scan 100 → 1000',
      script: 'echo 1000 > /sys/kernel/mm/ksm/pages_to_scan',
    });
    expect(c[1].diff).toContain("+ExecStart=/bin/sh -c 'echo 1000 >");
  });

  it('turn-off with unmerge (run=2) settles at 0', async () => {
    const c = await plan(ksm, ['ksm_run: 2'], f(1), { ...enabled, files: { [UNIT_FILE]: unit() } });
    expect(c[0].script).toBe('echo 2 > /sys/kernel/mm/ksm/run');
    expect(await plan(ksm, ['ksm_run: 2'], f(0), { ...enabled, files: { [UNIT_FILE]: unit(0) } })).toEqual([]);
  });

  it("the thesis's policy: production above the CPU limit → off", async () => {
    expect(thesisRun('test', 5, 2, 70).run).toBe(1);
    expect(thesisRun('production', 1.8, 2, 70)).toMatchObject({ run: 0 });
    expect(thesisRun('production', 0.5, 2, 70)).toMatchObject({ run: 1 });
    const c = await plan(ksm, ['ksm_policy: thesis', 'ksm_host_role: production'], f(1), {
      ...enabled,
      files: { [UNIT_FILE]: unit() },
      outputs: { loadavg: '3.90 2.00 1.00 3/200 999\n', 'is-enabled:*': 'enabled\n' },
    });
    expect(c[0].summary).toBe('ksm run 1 → 0');
    expect(c[0].diff).toMatch(/over 70%/);
  });

  it('no systemd (other init): sets sysfs now and warns that it will not survive a reboot', async () => {
    const x = f(0);
    x.init = 'other';
    const c = await plan(ksm, [], x);
    expect(c.map((y) => y.summary)).toEqual(['ksm run 0 → 1']);
    expect(c[0].warning).toMatch(/will not survive a reboot/);
  });

  it('fails on a kernel without KSM', async () => {
    const x = f(0);
    x.ksm = {};
    await expect(plan(ksm, [], x)).rejects.toThrow(/KSM is not available/);
  });

  it('bad input: out-of-range values → file:line', () => {
    expect(configError(ksm, ['ksm_run: 3'])).toMatchObject({ line: 4 });
    expect(configError(ksm, ['ksm_pages_to_scan: 0'])).toMatchObject({ line: 4 });
  });
});

describe('boot-args', () => {
  const cgroup2 = (cmdline: string) => {
    const x = debianFacts();
    x.cmdline = cmdline;
    x.bootLoader = 'grub';
    x.mounts.push({ source: 'cgroup2', target: '/sys/fs/cgroup', fstype: 'cgroup2' });
    return x;
  };
  const base = 'BOOT_IMAGE=/boot/vmlinuz root=LABEL=x ro quiet';

  it('Debian, unset: a grub.d drop-in, update-grub, a reboot, and the cgroup v2 warning', async () => {
    const c = await plan(bootArgs, [], cgroup2(base));
    expect(c.map((x) => x.summary)).toEqual([
      `create ${DROPIN}`,
      'update-grub',
      'reboot: /proc/cmdline lacks cgroup_disable=cpu,cpuset,memory',
    ]);
    expect(c[0].file!.content).toBe(dropinText({ add: THESIS_ARGS, remove: [] }));
    expect(c[0].warning).toMatch(/cgroup v2.*alternative/);
    expect(c[2].kind).toBe('reboot');
  });

  it('Debian, already set and booted: nothing', async () => {
    const drop = dropinText({ add: THESIS_ARGS, remove: [] });
    expect(
      await plan(bootArgs, [], cgroup2(`${base} cgroup_disable=cpu,cpuset,memory`), { files: { [DROPIN]: drop } }),
    ).toEqual([]);
  });

  it('Debian, configured but not booted yet: only the reboot', async () => {
    const drop = dropinText({ add: THESIS_ARGS, remove: [] });
    const c = await plan(bootArgs, [], cgroup2(base), { files: { [DROPIN]: drop } });
    expect(c.map((x) => x.summary)).toEqual(['reboot: /proc/cmdline lacks cgroup_disable=cpu,cpuset,memory']);
  });

  it('the drop-in really adds and removes args when GRUB sources it', async () => {
    const { execFileSync } = await import('node:child_process');
    const text = dropinText({ add: ['a=1', 'intel_iommu=on'], remove: ['quiet'] });
    const out = execFileSync('sh', ['-c', `GRUB_CMDLINE_LINUX="ro quiet splash"\n${text}\necho "$GRUB_CMDLINE_LINUX"`])
      .toString()
      .trim();
    expect(out.split(/\s+/)).toEqual(['ro', 'splash', 'a=1', 'intel_iommu=on']);
  });

  it('1 GiB hugepages and IOMMU args come from other vars', async () => {
    const h = host(['hugepages_1g_count: 4', 'boot_args_iommu: true', 'boot_args_add: []']);
    expect(bootArgs.params(h)).toEqual({
      add: ['intel_iommu=on', 'iommu=pt', 'hugepagesz=1G', 'hugepages=4'],
      remove: [],
    });
  });

  it('RHEL 9 (BLS): grubby for every kernel', async () => {
    const c = await plan(bootArgs, ['boot_args_remove: [rhgb]'], rockyFacts(), {
      outputs: {
        'grubby-default':
          'index=0\nkernel="/boot/vmlinuz"\nargs="ro crashkernel=1G-4G:192M rhgb quiet"\nroot="/dev/mapper/rl-root"\n',
      },
    });
    expect(c[0].script).toBe(
      "grubby --update-kernel=ALL '--args=cgroup_disable=cpu,cpuset,memory' '--remove-args=rhgb'",
    );
    expect(c[1].kind).toBe('reboot');
  });

  it('CentOS 7: edits GRUB_CMDLINE_LINUX in /etc/default/grub and runs grub2-mkconfig', async () => {
    const f = rockyFacts();
    f.bootLoader = 'grub';
    f.os = { ...f.os, id: 'centos', versionId: '7' };
    const grub = 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="crashkernel=auto rhgb quiet"\nGRUB_DISABLE_RECOVERY="true"\n';
    const c = await plan(bootArgs, [], f, {
      files: { '/etc/default/grub': grub },
      outputs: { 'grub2-cfg': '/boot/grub2/grub.cfg\n' },
    });
    expect(c[0].diff).toContain('+GRUB_CMDLINE_LINUX="crashkernel=auto rhgb quiet cgroup_disable=cpu,cpuset,memory"');
    expect(c[1].script).toBe('grub2-mkconfig -o /boot/grub2/grub.cfg');
    expect(c[2].kind).toBe('reboot');
  });

  it('unsupported boot set-up fails the step', async () => {
    const f = debianFacts();
    f.bootLoader = 'unknown';
    await expect(plan(bootArgs, [], f)).rejects.toThrow(/unsupported boot set-up/);
  });

  it('bad input: a boot arg with spaces or quotes → file:line', () => {
    expect(configError(bootArgs, ['boot_args_add: ["quiet splash"]'])).toMatchObject({ line: 4 });
    expect(configError(bootArgs, [`boot_args_add: ['a="b"']`])).toMatchObject({ line: 4 });
  });
});
