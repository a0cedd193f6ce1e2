// virtio-modules: load the thesis's virtio/vhost modules in its order and persist them in modules-load.d.
import { HostError } from '../src/core/errors.ts';
import { planFile } from '../src/core/file.ts';
import { sh } from '../src/core/sh.ts';
import { badVar, varOr } from '../src/core/vars.ts';
import type { Change, Host, Step } from '../src/core/types.ts';

export const THESIS_MODULES = ['virtio', 'virtio_ring', 'virtio_pci', 'virtio_blk', 'virtio_net', 'vhost_net', 'virtio_balloon'];
export const MODULES_FILE = '/etc/modules-load.d/kvmforge-virtio.conf';
const NAME = /^[A-Za-z0-9_-]{1,56}$/;
const norm = (m: string) => m.replace(/-/g, '_');

const step: Step<{ modules: string[] } | undefined> = {
  name: 'virtio-modules',
  description: 'Load virtio/vhost kernel modules (thesis order) and persist them in /etc/modules-load.d',
  vars: {
    virtio_modules_enabled: { type: 'boolean', description: 'Run this step (default true).' },
    virtio_modules_list: { type: 'array', items: { type: 'string', pattern: NAME.source }, description: `Modules in load order (default: ${THESIS_MODULES.join(', ')}).` },
    virtio_modules_vhost_net: { type: 'boolean', description: 'Load vhost_net (default true; the thesis notes it can hurt when a guest cannot keep up).' },
  },
  params(host: Host) {
    if (!varOr(host, 'virtio_modules_enabled', true)) return undefined;
    let modules = varOr<string[]>(host, 'virtio_modules_list', THESIS_MODULES).map(norm);
    for (const m of modules) if (!NAME.test(m)) throw badVar(host, 'virtio_modules_list', `'${m}' is not a module name`);
    if (new Set(modules).size !== modules.length) throw badVar(host, 'virtio_modules_list', 'a module is listed twice');
    if (!varOr(host, 'virtio_modules_vhost_net', true)) modules = modules.filter((m) => m !== 'vhost_net');
    return modules.length ? { modules } : undefined;
  },
  async plan(ctx, p) {
    const { modules } = p!;
    const loaded = new Set(ctx.facts.modules.map(norm));
    const builtin = new Set(ctx.facts.builtinModules.map(norm));
    const missing = modules.filter((m) => !loaded.has(m) && !builtin.has(m));
    const changes: Change[] = [];
    if (missing.length) {
      const out = await ctx.probe(`for m in ${sh`${missing}`}; do if modinfo -n "$m" >/dev/null 2>&1; then echo "$m yes"; else echo "$m no"; fi; done`);
      const absent = out.split('\n').filter((l) => l.endsWith(' no')).map((l) => l.split(' ')[0]);
      if (absent.length) throw new HostError(`module${absent.length > 1 ? 's' : ''} ${absent.join(', ')} not found for kernel ${ctx.facts.kernel}`);
      changes.push({ summary: `load module${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`, diff: missing.map((m) => `+ ${m}`).join('\n'), script: sh`modprobe -a ${missing}` });
    }
    const persist = modules.filter((m) => !builtin.has(m));
    const file = await planFile(ctx, { path: MODULES_FILE, content: `# kvmforge virtio-modules: loaded at boot, in this order\n${persist.join('\n')}\n` });
    if (file) changes.push(file);
    return changes;
  },
};
export default step;
