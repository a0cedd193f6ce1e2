// Named VM presets. A VM (or a user profile in domains_profiles) names one with `profile:`; its own
// keys win over the profile's. `tier:` picks one of the thesis's four scheduling tiers (chapter 4).

/** The thesis's VM (§5, win2008-test3.xml), as data: render it and you get that XML back. */
export const BUILTIN_PROFILES: Record<string, Record<string, unknown>> = {
  thesis: {
    type: 'kvm',
    memory: 3072,
    vcpus: 2,
    machine: 'pc',
    arch: 'x86_64',
    boot: ['hd'],
    emulator: '/usr/bin/kvm',
    disks: [{ path: '/home/win2008-test3.img', format: 'qcow2', cache: 'writeback', bus: 'virtio' }],
    nics: [{ bridge: 'br0', model: 'virtio' }],
    graphics: { type: 'vnc', port: -1, keymap: 'en-us' },
    inputs: true,
    memballoon: 'default',
  },
  // the thesis's tuning chapters (5–6) switched on: hugepages, balloon, vhost, an I/O thread, no host cache
  tuned: {
    type: 'kvm',
    memory: 2048,
    vcpus: 2,
    machine: 'pc',
    boot: ['hd'],
    disks: [{ format: 'qcow2', cache: 'none', io: 'native', discard: 'unmap', bus: 'virtio', iothread: 1 }],
    nics: [{ bridge: 'br0', model: 'virtio', vhost: true }],
    graphics: { type: 'vnc', listen: '127.0.0.1', port: -1, keymap: 'en-us' },
    hugepages: true,
    memballoon: 'virtio',
    iothreads: 1,
  },
};

/** The thesis's tiers: scheduler and priority for every vCPU thread (nice values are for `kvmforge tune`). */
export const TIERS: Record<string, { scheduler: 'other' | 'rr' | 'fifo'; priority?: number; nice: number }> = {
  ordinary: { scheduler: 'other', nice: 0 },
  rr90: { scheduler: 'rr', priority: 90, nice: 0 },
  rr99: { scheduler: 'rr', priority: 99, nice: -10 },
  fifo99: { scheduler: 'fifo', priority: 99, nice: 0 },
};
