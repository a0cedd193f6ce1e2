import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFacts, parseOsRelease, splitSections } from '../../src/facts/host.ts';

const fixture = (n: string) => readFileSync(`test/fixtures/facts/${n}`, 'utf8');

describe('facts parser', () => {
  it('parses a Rocky 9 host (BLS, dnf, bridge, KSM counters, versions)', () => {
    const f = parseFacts(fixture('rocky9-synthetic.txt'));
    expect(f.os).toMatchObject({ id: 'rocky', versionId: '9.4', family: 'rhel' });
    expect(f.kernel).toBe('5.14.0-427.13.1.el9_4.x86_64');
    expect(f.cpu).toMatchObject({ count: 8, virtFlags: ['vmx'] });
    expect(f.memory).toEqual({
      totalKiB: 32614096,
      availableKiB: 28000000,
      hugePagesTotal: 1024,
      hugePagesFree: 1000,
      hugePageSizeKiB: 2048,
    });
    expect(f.modules).toEqual(['kvm', 'kvm_intel', 'vhost_net']);
    expect(f.builtinModules).toContain('virtio');
    expect(f.sysctl['vm.nr_hugepages']).toBe('1024');
    expect(f.ksm).toMatchObject({ run: 1, pages_shared: 42 });
    expect(f.interfaces.find((i) => i.name === 'eno1')).toMatchObject({ master: 'br0', addresses: [] });
    expect(f.interfaces.find((i) => i.name === 'br0')).toMatchObject({
      kind: 'bridge',
      addresses: [{ address: '192.0.2.10', prefix: 24, dynamic: true }, expect.anything()],
    });
    expect(f.defaultRoute).toEqual({ dev: 'br0', gateway: '192.0.2.1' });
    expect(f).toMatchObject({
      init: 'systemd',
      packageManager: 'dnf',
      bootLoader: 'grub-bls',
      versions: { qemu: '8.2.0', libvirt: '10.0.0' },
      user: { uid: 0, name: 'root' },
    });
  });

  it('parses a real capture from a Debian 12 machine', () => {
    const f = parseFacts(fixture('debian12-local.txt'));
    expect(f.os.family).toBe('debian');
    expect(f.packageManager).toBe('apt');
    expect(f.memory.totalKiB).toBeGreaterThan(0);
    expect(f.interfaces.some((i) => i.name === 'lo')).toBe(true);
    expect(f.bootId).toMatch(/^[0-9a-f-]{36}$/);
    // /proc/sys integers must be read whole (a byte-wise read returns only the first digit)
    expect(f.sysctl['kernel.sched_rt_runtime_us']).toBe('950000');
    expect(f.ksm.pages_to_scan).toBe(100);
  });

  it('classifies distro families by ID and ID_LIKE', () => {
    expect(parseOsRelease('ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"').family).toBe('debian');
    expect(parseOsRelease('ID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="7"').family).toBe('rhel');
    expect(parseOsRelease('ID=almalinux\nID_LIKE="rhel centos fedora"').family).toBe('rhel');
    expect(parseOsRelease('ID=opensuse-leap\nID_LIKE="suse opensuse"').family).toBe('suse');
    expect(parseOsRelease('ID=gentoo').family).toBe('unknown');
  });

  it('tolerates missing sections (a minimal host)', () => {
    const f = parseFacts('@@kernel\n6.1.0\n@@os\nID=debian\n');
    expect(f).toMatchObject({
      kernel: '6.1.0',
      interfaces: [],
      modules: [],
      bootLoader: 'unknown',
      packageManager: 'unknown',
      defaultRoute: undefined,
    });
  });

  it('splits sections without eating blank lines inside them', () => {
    expect(splitSections('@@a\nx\n\ny\n@@b\n')).toEqual({ a: 'x\n\ny', b: '' });
  });
});
