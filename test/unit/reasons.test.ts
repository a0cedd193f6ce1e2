// exits --reasons: the counting (real awk over perf-script lines in the formats kernels print), the
// per-VM line, and the refusal on a host without perf. The recording itself is in the integration test.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COUNT_AWK, parseReasons, reasonsLine, reasonsScript } from '../../src/insight/reasons.ts';

// `perf script -F pid,event,trace` lines: kvm_exit as VMX prints it (6.x), as SVM prints it, as older
// kernels print it (no vcpu), and kvm_userspace_exit
const PERF = [
  '  4242 kvm:kvm_exit: vcpu 0 reason IO_INSTRUCTION rip 0xfff3 info1 0x00000000001f0048 info2 0x0000000000000000 ' +
    'intr_info 0x00000000 error_code 0x00000000',
  '  4242 kvm:kvm_exit: vcpu 1 reason IO_INSTRUCTION rip 0xfff3 info1 0x00000000001f0048 info2 0x0000000000000000 ' +
    'intr_info 0x00000000 error_code 0x00000000',
  '  4242 kvm:kvm_exit: vcpu 0 reason HLT rip 0xfff5 info1 0x0000000000000000 info2 0x0000000000000000 intr_info ' +
    '0x00000000 error_code 0x00000000',
  '  4242 kvm:kvm_userspace_exit: reason KVM_EXIT_IO (2)',
  '  4242 kvm:kvm_userspace_exit: reason KVM_EXIT_IO (2)',
  '  5151 kvm:kvm_exit: vcpu 0 reason EXIT_NPF rip 0x1000 info1 0x0000000100000014 info2 0x00000000fee00300 ' +
    'intr_info 0x00000000 error_code 0x00000000',
  '  5151 kvm:kvm_exit: reason EXIT_IOIO rip 0x1000 info 1f70049 1003',
  '  5151 kvm:kvm_userspace_exit: reason KVM_EXIT_MMIO (6)',
].join('\n');

describe('exits --reasons', () => {
  it('counts kvm_exit and kvm_userspace_exit by PID and reason, in every format (real awk)', () => {
    const r = spawnSync('awk', [COUNT_AWK], { input: PERF, encoding: 'utf8' });
    expect(r.status).toBe(0);
    const by = parseReasons(r.stdout);
    expect(by.get(4242)).toEqual({ exits: { IO_INSTRUCTION: 2, HLT: 1 }, userspace: { KVM_EXIT_IO: 2 } });
    expect(by.get(5151)).toEqual({ exits: { EXIT_NPF: 1, EXIT_IOIO: 1 }, userspace: { KVM_EXIT_MMIO: 1 } });
  });

  it('one line per VM: the top reasons with shares; a KVM that does not trace kvm_exit is said', () => {
    expect(reasonsLine('win2003', { exits: { IO_INSTRUCTION: 55, HLT: 45 }, userspace: { KVM_EXIT_IO: 55 } }, 5)).toBe(
      'win2003: exit reasons over 5 s (perf): all exits: IO_INSTRUCTION 55 (55.0%), HLT 45 (45.0%); to user space: ' +
        'KVM_EXIT_IO 55 (100.0%)',
    );
    expect(reasonsLine('pio', { exits: {}, userspace: { KVM_EXIT_IO: 180000 } }, 2)).toBe(
      'pio: exit reasons over 2 s (perf): all exits: not traced by this KVM (kvm:kvm_exit fired 0 times); to user ' +
        'space: KVM_EXIT_IO 180000 (100.0%)',
    );
    expect(reasonsLine('idle', undefined, 2)).toBe('idle: exit reasons over 2 s (perf): no exits traced');
    const many = Object.fromEntries(['A', 'B', 'C', 'D', 'E', 'F', 'G'].map((k, i) => [k, 10 - i]));
    expect(reasonsLine('x', { exits: many, userspace: {} }, 1)).toMatch(
      /E 6 \(\d+\.\d%\), 2 more; to user space: none$/,
    );
  });

  it('a host without perf: one clear line, exit 3, nothing recorded', () => {
    const empty = mkdtempSync(join(tmpdir(), 'kvf-noperf-'));
    const r = spawnSync('/bin/sh', ['-c', `set -eu\n${reasonsScript([1, 2], 1)}`], {
      env: { PATH: empty },
      encoding: 'utf8',
    });
    expect(r.status).toBe(3);
    expect(r.stderr.trim()).toBe(
      'no perf on this host (Debian/Ubuntu: apt-get install linux-perf; RHEL: dnf install perf)',
    );
  });

  it('the script parses (sh -n) and carries only digits, commas and the interval', () => {
    const s = reasonsScript([123, 456], 2.5);
    expect(spawnSync('sh', ['-n', '-c', s]).status).toBe(0);
    expect(s).toMatch(/^' sh '?123,456'? "\$d" '?2\.5'? '\{ r = /m);
  });
});
