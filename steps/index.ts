// Every step, in the order a run applies them.
import type { Step } from '../src/core/types.ts';
import { catalogOf } from '../src/inventory/schema.ts';
import files from './files.ts';
import kernel from './kernel.ts';
import qemu from './qemu.ts';
import libvirt from './libvirt.ts';
import bridge from './bridge.ts';
import virtioModules from './virtio-modules.ts';
import hugepages from './hugepages.ts';
import ksm from './ksm.ts';
import bootArgs from './boot-args.ts';
import sriov from './sriov.ts';
import domains from './domains.ts';

// source builds first (the thesis built kernel, QEMU and libvirt before configuring anything)
export const steps: Step<any>[] = [
  files,
  kernel,
  qemu,
  libvirt,
  bridge,
  virtioModules,
  hugepages,
  ksm,
  bootArgs,
  sriov,
  domains,
];

export function stepByName(name: string): Step<any> | undefined {
  return steps.find((s) => s.name === name);
}

/** Every step's vars, for the inventory's checks and its JSON Schema. */
export const catalog = catalogOf(steps);
