// virtio-modules: load the thesis's virtio/vhost modules in its order and persist them in modules-load.d.
import { HostError } from '../src/core/errors.ts';
import { planFile } from '../src/core/file.ts';
import { sh } from '../src/core/sh.ts';
import { strictFact, type Change, type Host, type Step, type VarSpec } from '../src/core/types.ts';
import { badVar, varOf } from '../src/core/vars.ts';
import { builtinModules, kernelRelease, loadedModules } from '../src/facts/host.ts';

export const THESIS_MODULES = [
  'virtio',
  'virtio_ring',
  'virtio_pci',
  'virtio_blk',
  'virtio_net',
  'vhost_net',
  'virtio_balloon',
];
export const MODULES_FILE = '/etc/modules-load.d/kvmforge-virtio.conf';
const NAME = /^[A-Za-z0-9_-]{1,56}$/;
const norm = (m: string) => m.replace(/-/g, '_');

/** Which of these modules the running kernel has (modinfo finds them). */
export const modulesKnown = (modules: string[]) =>
  strictFact(
    `modinfo:${modules.join(',')}`,
    `for m in ${sh`${modules}`}; do if modinfo -n "$m" >/dev/null 2>&1; then echo "$m yes"; else echo "$m no"; fi; ` +
      `done`,
    (out) =>
      out
        .split('\n')
        .filter((l) => l.endsWith(' no'))
        .map((l) => l.split(' ')[0]),
  );

const vars: Record<string, VarSpec> = {
  virtio_modules_list: {
    schema: { type: 'array', items: { type: 'string', pattern: NAME.source } },
    default: THESIS_MODULES,
    defaultText: THESIS_MODULES.join(', '),
    description: 'Modules in load order.',
  },
  virtio_modules_vhost_net: {
    schema: { type: 'boolean' },
    default: true,
    description: 'Load vhost_net (the thesis notes it can hurt when a guest cannot keep up).',
  },
};

const step: Step<{ modules: string[] }> = {
  name: 'virtio-modules',
  description: 'Load virtio/vhost kernel modules (thesis order) and persist them in /etc/modules-load.d',
  doc:
    "`modprobe -a` the missing modules in the thesis's order; `/etc/modules-load.d/kvmforge-virtio.conf`. " +
    "Built-in modules count as present; a module the running kernel doesn't have fails the step with its name",
  vars,
  wanted: (host) => (modulesOf(host).length ? true : 'no modules to load'),
  params(host: Host) {
    const listed = varOf<string[]>(host, vars, 'virtio_modules_list').map(norm);
    for (const m of listed) if (!NAME.test(m)) throw badVar(host, 'virtio_modules_list', `'${m}' is not a module name`);
    if (new Set(listed).size !== listed.length) throw badVar(host, 'virtio_modules_list', 'a module is listed twice');
    return { modules: modulesOf(host) };
  },
  async plan(ctx, { modules }) {
    const [mods, builtins, kernel] = await ctx.read(loadedModules, builtinModules, kernelRelease);
    const loaded = new Set(mods.map(norm));
    const builtin = new Set(builtins.map(norm));
    const missing = modules.filter((m) => !loaded.has(m) && !builtin.has(m));
    const changes: Change[] = [];
    if (missing.length) {
      const [absent] = await ctx.read(modulesKnown(missing));
      if (absent.length)
        throw new HostError(
          `module${absent.length > 1 ? 's' : ''} ${absent.join(', ')} not found for kernel ${kernel}`,
        );
      changes.push({
        kind: 'script',
        summary: `load module${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`,
        diff: missing.map((m) => `+ ${m}`).join('\n'),
        script: sh`modprobe -a ${missing}`,
      });
    }
    const persist = modules.filter((m) => !builtin.has(m));
    const file = await planFile(ctx, {
      path: MODULES_FILE,
      content: `# kvmforge virtio-modules: loaded at boot, in this order\n${persist.join('\n')}\n`,
    });
    if (file) changes.push(file);
    return changes;
  },
};

function modulesOf(host: Host): string[] {
  const modules = varOf<string[]>(host, vars, 'virtio_modules_list').map(norm);
  return varOf(host, vars, 'virtio_modules_vhost_net') ? modules : modules.filter((m) => m !== 'vhost_net');
}
export default step;
