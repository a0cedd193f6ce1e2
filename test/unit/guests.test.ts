import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.ts';
import { checkPolicies, describeGuests, migrateUri, policyOf } from '../../src/runner/guests.ts';
import { parseInv } from '../harness/fake-host.ts';

const inv = (vars: string) =>
  parseInv(`all:\n  hosts:\n    kvm1:\n${vars}    kvm2:\n      ansible_host: 192.0.2.2\n      ansible_user: ops\n`);

describe('reboots with running VMs: policies', () => {
  it('refuse by default, with the VMs and the choices named', () => {
    const [h] = inv('').hosts;
    expect(policyOf(h)).toMatchObject({ policy: 'refuse', shutdownTimeoutS: 120, migrateBack: true });
    expect(describeGuests(['web1', 'db1'], policyOf(h))).toMatch(
      new RegExp(
        String.raw`running VMs would be stopped by the reboot: web1, db1 — refused \(reboot_running_vms: refuse\)\. ` +
          'Choose reboot_running_vms: shutdown, managedsave or migrate',
      ),
    );
  });

  it('migrate: to an inventory host over qemu+ssh as the inventory reaches it, and back', () => {
    const i = inv('      reboot_running_vms: migrate\n      reboot_migrate_to: kvm2\n');
    expect(checkPolicies(i.hosts, i.hosts)).toEqual([]);
    expect(migrateUri(i.hosts[1])).toBe('qemu+ssh://ops@192.0.2.2/system');
    expect(describeGuests(['web1'], policyOf(i.hosts[0]))).toBe(
      'running VMs web1: migrated live to kvm2 before the reboot, and back after it',
    );
  });

  it(
    'bad input before any connection: a target not in the inventory, the host itself, migrate without a target, ' +
      'an unknown policy',
    () => {
      const notThere = inv('      reboot_running_vms: migrate\n      reboot_migrate_to: kvm9\n');
      expect(checkPolicies(notThere.hosts, notThere.hosts)[0]).toMatchObject({
        key: 'kvm1.reboot_migrate_to',
        line: 5,
        message: "'kvm9' is not a host of the inventory",
      });
      const self = inv('      reboot_running_vms: migrate\n      reboot_migrate_to: kvm1\n');
      expect(checkPolicies(self.hosts, self.hosts)[0].message).toMatch(/cannot migrate its guests to itself/);
      const none = inv('      reboot_running_vms: migrate\n');
      expect(checkPolicies(none.hosts, none.hosts)[0].message).toMatch(/migrate needs reboot_migrate_to/);
      expect(() => inv('      reboot_running_vms: destroy\n')).toThrow(ConfigError);
      expect(() => inv('      reboot_vm_shutdown_timeout: 1\n')).toThrow(/reboot_vm_shutdown_timeout/);
    },
  );
});
