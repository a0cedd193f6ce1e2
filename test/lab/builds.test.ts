// Source builds for real: kernel, QEMU and libvirt built once on this machine (build host `localhost`,
// local transport; started in the background by the builds project's setup and awaited here), then installed
// on two VMs of this file's own lab (beside the lab project's) from the artifacts. The kernel is built first: lab1
// takes it (a broken trial kernel falls back by itself; a good one becomes the default) while QEMU and libvirt are
// still compiling, so only lab2's part waits for the whole build.
// QEMU and libvirt go to a *plain* lab VM — a server that never had Debian's libvirt or QEMU — with their
// runtime dependencies from Debian's mirror (through the lab relay), and must then run a VM. The packages'
// maintainer scripts (accounts, directories, upgrade, removal, purge) also run natively in a chroot.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BUILD_DIR,
  BUILD_ENV,
  BUILD_OUT,
  BUILDS,
  buildFailure,
  buildInventory,
  only,
  waitForBuild,
  waitForKernel,
} from '../harness/builds.ts';
import { kvmforge, LAB_INVENTORY, labRun, labVirsh, labState } from '../harness/lab.ts';
import { rootfsDir } from '../../src/lab/paths.ts';

const STEPS = 'kernel,qemu,libvirt';
const OLD = 'gnulinux-advanced-LABEL=kvmforge-root>gnulinux-6.1.0-50-amd64-advanced-LABEL=kvmforge-root';
const run = (args: string[], timeoutMs = 1_800_000) =>
  kvmforge([...args, '--journal', join(BUILDS, 'journal')], BUILD_ENV, timeoutMs);
/** `kvmforge artifacts --json` (it keeps no journal, so it refuses --journal). */
async function listArtifacts(): Promise<unknown> {
  const r = await kvmforge(['artifacts', '--json'], BUILD_ENV);
  if (r.code !== 0) throw new Error(`kvmforge artifacts --json exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Lab VMs as inventory hosts: connection vars from the lab's own inventory. */
function labHosts(vars: Record<string, string[]>): string[] {
  const lab = readFileSync(LAB_INVENTORY, 'utf8');
  const key = /ansible_ssh_private_key_file: (\S+)/.exec(lab)![1];
  const known = join(LAB_INVENTORY, '..', 'lab-known_hosts');
  return labState().vms.flatMap((v) => [
    `    ${v.name}:`,
    '      ansible_host: 127.0.0.1',
    `      ansible_port: ${v.port}`,
    '      ansible_user: kvmforge',
    '      ansible_become: true',
    `      ansible_ssh_private_key_file: ${key}`,
    `      kvmforge_known_hosts_file: ${known}`,
    ...(vars[v.name] ?? []).map((l) => `      ${l}`),
  ]);
}

/** A --json report, or an error that shows what the run printed on stderr. */
function report(r: { code: number | null; stdout: string; stderr: string }) {
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`no JSON report (exit ${r.code}); stderr:\n${r.stderr.slice(-3000)}`);
  }
}

/** A local command, awaited (never blocking vitest's worker). */
const local = promisify(execFile);
const artifacts = () => JSON.parse(readFileSync(BUILD_OUT, 'utf8'));
const buildLogs = (journalDir: string) => readdirSync(journalDir).filter((f) => /\.build-/.test(f));

describe.skipIf(process.env.KVMFORGE_SKIP_BUILDS)('source builds: kernel, QEMU, libvirt', () => {
  let release = '';
  let firstInv: string[] = [];
  let finalInv: string[] = [];

  // once the kernel is built (QEMU and libvirt go on compiling in the background)
  beforeAll(async () => {
    release = /^linux-image-(\S+?)_/.exec(await waitForKernel())![1];
    // lab2 is a plain server: no Debian libvirt or QEMU, so no libvirt-qemu user, no kvm/libvirt groups made by them
    const up = await kvmforge(['lab', 'up', '--hosts', '2', '--memory', '2048', '--plain', 'lab2'], {}, 1_200_000);
    if (up.code !== 0) throw new Error(`lab up --hosts 2 --plain lab2 failed: ${up.stderr}`);
    // lab1 gets the kernel with a trial command line that cannot boot; lab2 gets QEMU and libvirt, first with
    // Debian's qemu.conf (VMs run as the package's libvirt-qemu user), later the thesis's (as root)
    firstInv = buildInventory(
      'first.yaml',
      labHosts({
        lab1: [...only(['kernel']), 'kernel_trial_args: root=/dev/kvmforge-missing rootdelay=1'],
        lab2: [...only(['qemu', 'libvirt']), 'libvirt_qemu_conf: {}'],
      }),
    );
    // then lab1 boots its good kernel and bridges its NIC on it (the README's thesis line does both on one VM: the
    // built kernel has no IPv6 policy routing, so its local IPv6 routes sit in table main, which once failed the
    // bridge's check), and lab2 gets the thesis's whole platform (every step a lab VM can run)
    // Both wait 300 s before a bridge switch rolls back: with three or four TCG VMs and a compile on 2 cores, br0's
    // DHCP lease took longer than the default 90 s, once on lab2 (a CI run with the builds cached) and once on lab1
    // (a cold run, as QEMU's compile began beside the lab project's last files), and the switch rolled itself back,
    // as it should. A switch that works is confirmed as soon as SSH answers, so the longer wait only costs time when
    // one fails
    finalInv = buildInventory(
      'final.yaml',
      labHosts({
        lab1: [
          ...only(['kernel']),
          ...['virtio_modules', 'hugepages', 'ksm', 'boot_args', 'sriov', 'domains'].map(
            (st) => `${st}_enabled: false`,
          ),
          'bridge_rollback_timeout: 300',
        ],
        lab2: [...only(['qemu', 'libvirt']), 'bridge_rollback_timeout: 300'],
      }),
    );
  }, 80 * 60_000);

  // the lab is this file's own (the builds project's): down when done
  afterAll(async () => {
    const down = await kvmforge(['lab', 'down']);
    if (down.code !== 0) throw new Error(`lab down failed: ${down.stderr}`);
  }, 300_000);

  describe('the kernel on lab1, while QEMU and libvirt are still compiling', () => {
    it('plan on a fresh VM lists the install and the trial, and changes nothing', async () => {
      const r = await run(['plan', ...firstInv, '--limit', 'lab1', '--steps', STEPS]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`lab1 kernel: install kernel ${release}; 6.1.0-50-amd64 stays the default`);
      expect(r.stdout).toContain(
        `lab1 kernel: trial boot of ${release} (panic=5 root=/dev/kvmforge-missing rootdelay=1); ` +
          'default only if healthy',
      );
      expect((await labRun('dpkg -l "linux-image-*kvmforge*" 2>/dev/null | grep -c ^ii || true', 'lab1')).trim()).toBe(
        '0',
      );
    });

    it(
      'a trial kernel that cannot boot falls back by itself; the old kernel stays the default',
      async () => {
        const r = await run(['apply', ...firstInv, '--limit', 'lab1', '--steps', STEPS, '--json']);
        const rep = report(r);
        const lab1 = rep.hosts.find((h: { host: string }) => h.host === 'lab1');
        expect(r.code).toBe(1);
        expect(lab1.status).toBe('failed');
        expect(lab1.error).toMatch(
          new RegExp(`came back on 6\\.1\\.0-50-amd64, not ${release.replace(/\./g, '\\.')}: the trial boot failed`),
        );
        // an install only: nothing was built in this run
        expect(buildLogs(rep.journal)).toEqual([]);
        // independent checks over OpenSSH
        expect((await labRun('uname -r', 'lab1')).trim()).toBe('6.1.0-50-amd64');
        expect(await labRun('sudo grub-editenv list', 'lab1')).toContain(`saved_entry=${OLD}`);
        expect(await labRun(`dpkg-query -W -f '\${Status}' linux-image-${release}`, 'lab1')).toBe(
          'install ok installed',
        );
      },
      40 * 60_000,
    );

    it(
      'a good trial kernel becomes the default, and br0 comes up on it',
      async () => {
        const t0 = Date.now();
        const r = await run(['apply', ...finalInv, '--limit', 'lab1', '--json']);
        const rep = report(r);
        for (const h of rep.hosts) expect(`${h.host}: ${h.error ?? ''}`).toBe(`${h.host}: `);
        expect(r.code).toBe(0);
        expect(buildLogs(rep.journal)).toEqual([]);
        expect((await labRun('uname -r', 'lab1')).trim()).toBe(release);
        expect(await labRun('sudo grub-editenv list', 'lab1')).toContain(
          `saved_entry=${OLD.replace(/6\.1\.0-50-amd64/g, release)}`,
        );
        expect((await labRun('sudo grep -c kvmforge-trial /boot/grub/custom.cfg || true', 'lab1')).trim()).toBe('0');
        expect(await labRun('ls /dev/kvm; grep -oE "^kvm[a-z_]*" /proc/modules | sort', 'lab1')).toMatch(
          /\/dev\/kvm\nkvm\nkvm_amd/,
        );
        // br0 on the built kernel, its addresses carried (IPv6 by RA too)
        expect(await labRun('ip -o link show master br0', 'lab1')).toMatch(/: eth0: /);
        expect(await labRun('ip -o addr show dev br0', 'lab1')).toMatch(/inet 10\.0\.2\.15\/24[\s\S]*inet6 fec0::/);
        process.stderr.write(`[builds] lab1 good trial boot + bridge: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      },
      40 * 60_000,
    );
  });

  describe('QEMU and libvirt on the plain lab2, once the whole build is done', () => {
    beforeAll(async () => {
      const rc = await waitForBuild();
      if (rc !== 0) throw buildFailure(rc);
    }, 80 * 60_000);

    it('built all three once on the build host, from verified sources (libvirt also by its signature)', async () => {
      const report = artifacts();
      const steps = report.hosts[0].steps.filter((s: { status: string }) => s.status !== 'skipped');
      expect(steps.map((s: { step: string; status: string }) => s.step)).toEqual(['kernel', 'qemu', 'libvirt']);
      for (const s of steps)
        expect(s.changes[0].summary).toMatch(
          /artifact [0-9a-f]{12} (ready \(built on localhost in \d+ s\)|already in the local cache)/,
        );
      const metas = (await listArtifacts()) as {
        component: string;
        files: { name: string }[];
        builtOn: string;
        dropped: string[];
        buildSeconds: number;
      }[];
      const by = (c: string) => metas.find((m) => m.component === c)!;
      expect(by('kernel').files.map((f) => f.name)).toContainEqual(
        expect.stringMatching(/^linux-image-\d+\.\d+\.\d+-kvmforge-[0-9a-f]{8}_.*\.deb$/),
      );
      expect(by('qemu').files.map((f) => f.name)).toEqual([expect.stringMatching(/^kvmforge-qemu_.*_amd64\.deb$/)]);
      expect(by('libvirt').files.map((f) => f.name)).toEqual([
        expect.stringMatching(/^kvmforge-libvirt_.*_amd64\.deb$/),
      ]);
      expect(by('kernel').dropped).toEqual([]);
      expect(metas.every((m) => m.builtOn === 'localhost')).toBe(true);
      expect(by('kernel').files.map((f) => f.name)).toContainEqual(
        expect.stringMatching(new RegExp(`^linux-image-${release.replace(/\./g, '\\.')}_`)),
      );
      // the build host keeps the artifacts; its build directories are gone after success
      expect(readdirSync(join(BUILD_DIR, 'artifacts')).filter((d) => !d.endsWith('.part'))).toHaveLength(3);
      process.stderr.write(
        `[builds] build seconds: ${metas.map((m) => `${m.component} ${m.buildSeconds}`).join(', ')}\n`,
      );
    });

    it('building again finds everything cached', async () => {
      const r = await run(['build', ...firstInv, '--limit', 'localhost', '--json']);
      expect(r.code).toBe(0);
      const steps = report(r).hosts[0].steps.filter((s: { status: string }) => s.status !== 'skipped');
      expect(steps.map((s: { status: string }) => s.status)).toEqual(['ok', 'ok', 'ok']);
    });

    it('plan on the fresh plain VM lists the installs, and changes nothing', async () => {
      const r = await run(['plan', ...firstInv, '--limit', 'lab2', '--steps', STEPS]);
      expect(r.code).toBe(0);
      // QEMU from Debian's source package (the thesis inventory's qemu_version: distro): its upstream version
      expect(r.stdout).toMatch(/lab2 qemu: install QEMU 7\.2 \(7\.2-kvmforge\.[0-9a-f]{12}\)/);
      expect(r.stdout).toMatch(/lab2 libvirt: install libvirt 9\.0\.0/);
      expect((await labRun('ls /usr/local/bin', 'lab2')).trim()).toBe('');
      // a plain server: none of what Debian's libvirt and QEMU would have made
      expect(
        (
          await labRun(
            'command -v virsh libvirtd qemu-system-x86_64 || true; getent passwd libvirt-qemu || true; getent group ' +
              'libvirt || true; cat /etc/kvmforge-lab-image',
            'lab2',
          )
        ).trim(),
      ).toBe('plain');
    });

    it(
      'lab2 gets QEMU and libvirt from the artifacts',
      async () => {
        const r = await run(['apply', ...firstInv, '--limit', 'lab2', '--steps', STEPS, '--json']);
        const rep = report(r);
        const lab2 = rep.hosts.find((h: { host: string }) => h.host === 'lab2');
        expect(`${lab2.error ?? ''}`).toBe('');
        expect(r.code).toBe(0);
        expect(lab2.status).toBe('changed');
        // installs only: nothing was built in this run
        expect(buildLogs(rep.journal)).toEqual([]);
        // independent checks over OpenSSH
        expect(await labRun('kvm --version', 'lab2')).toMatch(/QEMU emulator version 7\.2\.\d+/);
        expect((await labRun('readlink /usr/local/bin/kvm', 'lab2')).trim()).toBe('qemu-system-x86_64');
        expect((await labRun('systemctl is-enabled libvirtd', 'lab2')).trim()).toBe('enabled');
        const v = await labRun('sudo virsh -c qemu:///system version', 'lab2');
        expect(v).toMatch(/Using library: libvirt 9\.0\.0/);
        expect(v).toMatch(/Running hypervisor: QEMU 7\.2\.\d+/);
        expect(await labRun('dpkg -S /usr/sbin/libvirtd', 'lab2')).toMatch(/^kvmforge-libvirt: /);
        // the packages made what the build names, as Debian's would: the QEMU user (in kvm), its group, libvirt
        expect(await labRun('id libvirt-qemu; getent group libvirt kvm | cut -d: -f1', 'lab2')).toMatch(
          /uid=\d+\(libvirt-qemu\) gid=\d+\(libvirt-qemu\) groups=.*\(kvm\)[\s\S]*libvirt\nkvm/,
        );
        expect((await labRun('stat -c "%U:%G %a" /var/lib/libvirt/qemu', 'lab2')).trim()).toBe(
          'libvirt-qemu:libvirt-qemu 750',
        );
        // the step proved the QEMU driver answers (not just that a unit is active), and timed it
        const log = readFileSync(join(rep.journal, 'lab2.log'), 'utf8');
        expect(log).toMatch(
          /libvirt answers after \d+ s: QEMU driver loaded \(x86_64 domcapabilities\), domain types: (kvm )?qemu/,
        );
        expect(log).toMatch(/QEMU emulator version 7\.2\.\d+ starts/);
        const took = (what: RegExp) =>
          Number(new RegExp(`${what.source}[^\\n]*: exit 0 in (\\d+) ms`).exec(log)?.[1] ?? NaN) / 1000;
        process.stderr.write(
          `[builds] plain lab2: install QEMU ${took(/qemu: install QEMU/)} s, install libvirt ` +
            `${took(/libvirt: install libvirt/)} s (runtime dependencies from the mirror), libvirt check ` +
            `${took(/libvirt: libvirtd enabled, started and answering/)} s\n`,
        );
      },
      40 * 60_000,
    );

    it(
      'the plain host runs a VM with the installed libvirt and QEMU (software-emulated inside it), defined and ' +
        'started by the domains step',
      async () => {
        const inv = buildInventory(
          'vm.yaml',
          labHosts({
            lab2: [
              ...only(['qemu', 'libvirt']),
              'libvirt_qemu_conf: {}',
              'domains_vms: [{name: tiny, type: qemu, memory: 64, vcpus: 1, nics: [], graphics: false, start: true}]',
            ],
          }),
        );
        const r = await run(['apply', ...inv, '--limit', 'lab2', '--steps', `${STEPS},domains`, '--json']);
        const rep = report(r);
        expect(rep.hosts[0].error ?? '').toBe('');
        expect(r.code).toBe(0);
        expect((await labRun('sudo virsh -c qemu:///system domstate --domain tiny', 'lab2')).trim()).toBe('running');
        const xml = await labRun('sudo virsh -c qemu:///system dumpxml --domain tiny', 'lab2');
        expect(xml).toMatch(/<domain type='qemu' id='\d+'>/);
        expect(xml).toMatch(/<emulator>\/usr\/local\/bin\/qemu-system-x86_64<\/emulator>/);
        expect((await labRun('ps -o user= -C qemu-system-x86_64', 'lab2')).trim()).toBe('libvirt-qemu');
        await labRun(
          'sudo virsh -c qemu:///system destroy --domain tiny >/dev/null; sudo virsh -c qemu:///system undefine ' +
            '--domain tiny >/dev/null',
          'lab2',
        );
      },
      20 * 60_000,
    );

    it(
      'the packages’ maintainer scripts on a plain tree, natively: install makes the accounts and directories, an ' +
        'upgrade keeps them, removal and purge leave nothing broken',
      async () => {
        const root = join(BUILDS, 'chroot');
        rmSync(root, { recursive: true, force: true });
        await local('cp', ['-a', rootfsDir('plain'), root]);
        const metas = (await listArtifacts()) as {
          component: string;
          key: string;
          version: string;
          files: { name: string }[];
        }[];
        const files = metas
          .filter((m) => m.component !== 'kernel')
          .flatMap((m) =>
            m.files.map((f) =>
              join(BUILD_ENV.KVMFORGE_CACHE, 'artifacts', `${m.component}-${m.version}-${m.key.slice(0, 12)}`, f.name),
            ),
          );
        expect(files).toHaveLength(2);
        for (const f of files) await local('cp', [f, join(root, 'tmp')]);
        const names = files.map((f) => `/tmp/${f.split('/').pop()}`);
        writeFileSync(join(root, 'etc/apt/apt.conf.d/99-test-no-proxy'), 'Acquire::http::Proxy "false";\n');
        await local('mount', ['--bind', '/dev', join(root, 'dev')]);
        await local('mount', ['-t', 'proc', 'proc', join(root, 'proc')]);
        // awaited: the installs in the chroot held vitest's worker 13.6 s in a cold run here
        const sh = async (cmd: string) =>
          (
            await local('chroot', [root, 'sh', '-c', cmd], {
              env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive' },
              timeout: 600_000,
            })
          ).stdout;
        try {
          await sh(
            `apt-get update -qq && apt-get install -y -qq --no-install-recommends ${names.join(' ')} >/dev/null`,
          );
          const made = () =>
            sh(
              'id libvirt-qemu; getent group libvirt kvm libvirt-qemu | cut -d: -f1 | tr "\\n" " "; ' +
                'stat -c "%n %U:%G %a" /var/lib/libvirt/qemu /var/lib/libvirt/images /var/cache/libvirt/qemu',
            );
          const first = await made();
          expect(first).toMatch(
            /uid=\d+\(libvirt-qemu\) gid=\d+\(libvirt-qemu\) groups=\d+\(libvirt-qemu\),\d+\(kvm\)/,
          );
          expect(first).toContain('libvirt kvm libvirt-qemu');
          expect(first).toContain('/var/lib/libvirt/qemu libvirt-qemu:libvirt-qemu 750');
          expect(first).toContain('/var/lib/libvirt/images root:root 711');
          // an upgrade (the same package again: dpkg runs the old prerm upgrade and the new postinst configure VERSION)
          await sh(`dpkg -i ${names.join(' ')} >/dev/null`);
          expect(await made()).toBe(first);
          expect(
            (await sh('dpkg -s kvmforge-libvirt kvmforge-qemu | grep -c "^Status: install ok installed"')).trim(),
          ).toBe('2');
          // removal: the daemon's files go, the accounts and VM images stay (as Debian's libvirt does); nothing
          // half-configured
          await sh('dpkg -r kvmforge-libvirt >/dev/null');
          expect((await sh('test ! -e /usr/sbin/libvirtd && id -u libvirt-qemu >/dev/null && echo ok')).trim()).toBe(
            'ok',
          );
          expect((await sh('dpkg --audit; dpkg -l | grep -E "^(iF|iU|rH|iH)" || true')).trim()).toBe('');
          // purge: the accounts the package made go too
          await sh('dpkg -P kvmforge-libvirt >/dev/null');
          expect(
            (await sh('getent passwd libvirt-qemu || true; getent group libvirt libvirt-qemu || true')).trim(),
          ).toBe('');
          expect((await sh('getent group kvm | cut -d: -f1')).trim()).toBe('kvm');
        } finally {
          for (const m of ['proc', 'dev']) await local('umount', ['-l', join(root, m)]);
          rmSync(root, { recursive: true, force: true });
        }
      },
      15 * 60_000,
    );

    it(
      'the plain lab2 gets the rest of the thesis platform (inventories/thesis.yaml on the lab: bridge, modules, ' +
        'hugepages, KSM, boot args and their reboot, qemu.conf, the thesis VM defined and the lab VM started with ' +
        'the built libvirt)',
      async () => {
        const t0 = Date.now();
        const plan = await run(['plan', ...finalInv, '--limit', 'lab2']);
        expect(plan.code, plan.stderr).toBe(0);
        // the thesis's qemu.conf, and what it gives up, said ahead
        expect(plan.stdout).toMatch(
          /lab2 libvirt: \/etc\/libvirt\/qemu\.conf: user = "root", group = "root", vnc_listen/,
        );
        expect(plan.stdout).toMatch(/define VM win2008-test3/);
        const r = await run(['apply', ...finalInv, '--limit', 'lab2', '--json']);
        const rep = report(r);
        for (const h of rep.hosts) expect(`${h.host}: ${h.error ?? ''}`).toBe(`${h.host}: `);
        expect(r.code).toBe(0);
        expect(buildLogs(rep.journal)).toEqual([]);
        // lab2, read independently after its reboot
        expect(await labRun('cat /proc/cmdline', 'lab2')).toContain('cgroup_disable=cpu,cpuset,memory');
        expect((await labRun('grep -oE "^(vhost_net|virtio_balloon) " /proc/modules | sort', 'lab2')).trim()).toBe(
          'vhost_net \nvirtio_balloon',
        );
        expect(Number(await labRun('cat /proc/sys/vm/nr_hugepages', 'lab2'))).toBeGreaterThan(0);
        expect((await labRun('cat /sys/kernel/mm/ksm/run', 'lab2')).trim()).toBe('1');
        expect(
          (await labRun('sudo grep -E "^(user|group|vnc_listen) " /etc/libvirt/qemu.conf | sort', 'lab2')).trim(),
        ).toBe('group = "root"\nuser = "root"\nvnc_listen = "0.0.0.0"');
        const virsh = (cmd: string) => labVirsh(cmd, 'lab2');
        expect(await virsh('domstate win2008-test3')).toBe('shut off');
        expect(await virsh('dumpxml win2008-test3')).toMatch(/<emulator>\/usr\/local\/bin\/kvm<\/emulator>/);
        expect(await virsh('domstate lab-vm')).toBe('running');
        expect(await virsh('dumpxml lab-vm')).toMatch(/<hugepages\/>[\s\S]*<source bridge='br0'\/>/);
        expect(await labRun('ip -o link show master br0', 'lab2')).toMatch(/: eth0: [\s\S]*: vnet\d+: /);
        // the thesis's choice: QEMU as root (started as /usr/local/bin/kvm, so found by the VM's name)
        expect((await labRun("ps -eo user=,args= | grep -E '[g]uest=lab-vm' | cut -d' ' -f1", 'lab2')).trim()).toBe(
          'root',
        );
        process.stderr.write(`[builds] lab2 thesis platform: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      },
      40 * 60_000,
    );

    it('a second apply on both hosts changes nothing', async () => {
      const t0 = Date.now();
      const r = await run(['apply', ...finalInv, '--limit', 'lab1,lab2', '--json']);
      expect(r.code).toBe(0);
      const rep = report(r);
      expect(rep.hosts.flatMap((h: { steps: { changes: unknown[] }[] }) => h.steps.flatMap((s) => s.changes))).toEqual(
        [],
      );
      process.stderr.write(`[builds] no-op apply, 2 hosts: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    }, 600_000);
  });
});
