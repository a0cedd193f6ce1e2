// libvirt: built from source once (meson -Dsystem=true -Ddriver_qemu=enabled), packaged, installed from
// the artifact; libvirtd enabled and running; qemu.conf settings from vars.
import { HostError } from '../src/core/errors.ts';
import { raw, sh } from '../src/core/sh.ts';
import { badVar, varOf } from '../src/core/vars.ts';
import { fileText } from '../src/core/file.ts';
import { fact, type BuildParams, type Change, type VarSpec } from '../src/core/types.ts';
import { arch, init, osRelease } from '../src/facts/host.ts';
import {
  BUILD_VARS,
  buildParams,
  buildWanted,
  checkBuildHosts,
  COMMON_BUILD_VARS,
  installChange,
  installedVersion,
  packageFiles,
  specFor,
  type SourceBuildStep,
} from '../src/artifacts/kit.ts';
import { PACKAGES, packageVersion } from '../src/artifacts/recipes.ts';
import { LIBVIRT_CHECK, LIBVIRT_WORKS, qemuAccounts } from '../src/artifacts/maintainer.ts';

interface Params {
  build: BuildParams;
  mesonArgs: string[];
  qemuConf: Record<string, string | number>;
}

export const QEMU_CONF = '/etc/libvirt/qemu.conf';
const ARG = /^-D[a-z0-9_]+=[A-Za-z0-9_.,:/+-]*$/;

/** What a qemu.conf setting gives up, shown in the plan. */
export function qemuConfWarnings(conf: Record<string, string | number>): string[] {
  const w: string[] = [];
  if (conf.user === 'root' || conf.group === 'root')
    w.push(
      "QEMU runs as root (the thesis's user/group = root): a guest that escapes QEMU owns the host; libvirt's " +
        'default unprivileged user confines it',
    );
  if (conf.vnc_listen === '0.0.0.0' || conf.vnc_listen === '::')
    w.push(
      'vnc_listen on every address: VM consoles are reachable from any network, without a password unless ' +
        'vnc_password or vnc_tls is set',
    );
  if (conf.security_driver === 'none') w.push('security_driver = none turns off AppArmor/SELinux confinement of VMs');
  return w;
}

/** A qemu.conf value as libvirt writes it: strings quoted, numbers bare. */
export const confValue = (v: string | number | boolean) =>
  typeof v === 'string' ? `"${v}"` : typeof v === 'boolean' ? (v ? '1' : '0') : String(v);

/** qemu.conf with the given keys set: an existing (or commented-out) line is replaced, else appended. */
export function setConf(text: string, conf: Record<string, string | number>): string {
  let out = text;
  for (const [k, v] of Object.entries(conf)) {
    const line = `${k} = ${confValue(v)}`;
    const set = new RegExp(`^${k}\\s*=.*$`, 'm');
    const commented = new RegExp(`^#\\s*${k}\\s*=.*$`, 'm');
    if (set.test(out)) out = out.replace(set, line);
    else if (commented.test(out)) out = out.replace(commented, line);
    else out = `${out.replace(/\n*$/, '\n')}${line}\n`;
  }
  return out;
}

/** What the host has of the libvirt package: installed version, unit state, the accounts qemu.conf names,
 * and — when the wanted version is installed — whether the QEMU driver answers now. */
export const libvirtState = (name: string, want: string, named: { k: 'user' | 'group'; v: string }[]) =>
  fact(
    `libvirt-state:${name}:${want}:${named.map((n) => `${n.k}=${n.v}`).join(',')}`,
    [
      `v=$(${installedVersion(name)}); echo "version=$v"`,
      sh`echo "enabled=$(systemctl is-enabled libvirtd 2>/dev/null || true)"; echo "active=$(systemctl is-active ` +
        sh`libvirtd libvirtd.socket 2>/dev/null | grep -qx active && echo active || echo inactive)"`,
      ...named.map(
        ({ k, v }) =>
          sh`if getent ${k === 'user' ? 'passwd' : 'group'} ${v} >/dev/null; then echo ${`${k}=yes`}; else echo ` +
          sh`${`${k}=no`}; fi`,
      ),
      sh`if [ "$v" = ${want} ]; then ${raw(LIBVIRT_WORKS)}; fi`,
    ].join('\n'),
    (out) => (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(out)?.[1].trim() ?? '',
  );

const vars: Record<string, VarSpec> = {
  ...BUILD_VARS('libvirt'),
  ...COMMON_BUILD_VARS,
  libvirt_meson_args: {
    schema: { type: 'array', items: { type: 'string' } },
    default: [],
    description: 'Extra meson options (-Dname=value).',
  },
  libvirt_qemu_conf: {
    schema: { type: 'object', additionalProperties: { type: ['string', 'integer', 'boolean'] } },
    default: {},
    description:
      'qemu.conf settings, e.g. {user: root, group: root, vnc_listen: 0.0.0.0} as in the thesis (the plan warns what ' +
      'they give up).',
  },
};

const step: SourceBuildStep<Params> = {
  name: 'libvirt',
  description:
    'libvirt from source (libvirt_version): built once, packaged, installed from the artifact; libvirtd enabled; ' +
    'qemu.conf settings',
  doc:
    'libvirt (meson `-Dsystem=true -Ddriver_qemu=enabled`) built once, packaged as `kvmforge-libvirt` (it ' +
    "replaces the distro's libvirt packages: same files; its maintainer scripts make the QEMU user and groups the " +
    'build names), installed; libvirtd enabled and started, then checked: its QEMU driver must answer (`virsh ' +
    'capabilities`, `domcapabilities`); `qemu.conf` settings (old file kept as `.kvmforge.bak`), with a plan warning ' +
    'for `user/group = root` and `vnc_listen = 0.0.0.0`',
  vars,
  wanted: buildWanted('libvirt'),
  params(host) {
    const qemuConf = varOf<Record<string, string | number>>(host, vars, 'libvirt_qemu_conf');
    for (const [k, v] of Object.entries(qemuConf)) {
      if (!/^[a-z][a-z0-9_]*$/.test(k))
        throw badVar(host, `libvirt_qemu_conf.${k}`, `'${k}' is not a qemu.conf setting name`);
      if (typeof v === 'string' && /["\n\\]/.test(v))
        throw badVar(
          host,
          `libvirt_qemu_conf.${k}`,
          'a qemu.conf string may not contain quotes, backslashes or newlines',
        );
    }
    const build = buildParams(host, 'libvirt');
    const mesonArgs = varOf<string[]>(host, vars, 'libvirt_meson_args');
    for (const a of mesonArgs)
      if (typeof a !== 'string' || !ARG.test(a))
        throw badVar(host, 'libvirt_meson_args', `'${a}' is not one meson option (-Dname=value)`);
    return { build, mesonArgs, qemuConf };
  },
  checkAll: (params, inventory) => checkBuildHosts(params, inventory),
  artifact: (ctx, p) => specFor(ctx, 'libvirt', p.build, { mesonArgs: p.mesonArgs }),
  async plan(ctx, p) {
    const { qemuConf } = p;
    const a = await step.artifact(ctx, p);
    const { spec, key } = a;
    const [ini, os, ar] = await ctx.read(init, osRelease, arch);
    if (ini !== 'systemd')
      throw new HostError('libvirt step: libvirtd is enabled with systemd; this host has another init');
    const want = packageVersion(spec, key);
    const name = PACKAGES.libvirt.name('');
    // qemu.conf may name a user or group: it must exist, or be one the package makes
    const made = qemuAccounts(os, p.mesonArgs);
    const named = (['user', 'group'] as const)
      .filter((k) => typeof qemuConf[k] === 'string')
      .map((k) => ({ k, v: String(qemuConf[k]) }));
    const [get] = await ctx.read(libvirtState(name, want, named));
    for (const { k, v } of named) {
      const creates = [made.user, made.group, 'kvm', 'libvirt', 'root'];
      if (get(k) !== 'yes' && !(k === 'user' ? [made.user, 'root'] : creates).includes(v)) {
        throw badVar(
          ctx.host,
          `libvirt_qemu_conf.${k}`,
          `qemu.conf ${k} '${v}' does not exist on ${ctx.host.name}, and the kvmforge-libvirt package does not ` +
            `make it (it makes the user ${made.user} and the groups ` +
            `${[...new Set([made.group, 'kvm', 'libvirt'])].join(', ')}): create it first or name one that exists`,
        );
      }
    }
    const changes: Change[] = [];
    const installing = get('version') !== want;
    if (installing)
      changes.push(
        installChange(
          a,
          packageFiles(name),
          `install libvirt ${spec.version} (${want}${get('version') ? `, replacing ${get('version')}` : ''})`,
        ),
      );
    const warnings = qemuConfWarnings(qemuConf);
    if (Object.keys(qemuConf).length) {
      const [current] = await ctx.read(fileText(QEMU_CONF));
      const text = current ?? '';
      const next = setConf(text, qemuConf);
      if (installing || next !== text) {
        const settings = Object.entries(qemuConf).map(([k, v]) => `${k} = ${confValue(v)}`);
        changes.push({
          kind: 'script',
          summary: `${QEMU_CONF}: ${settings.join(', ')}`,
          diff: settings.map((s) => `+ ${s}`).join('\n'),
          warning: warnings.join('; ') || undefined,
          // edited on the host after the install (the package may bring its own qemu.conf); old one kept
          script: [
            sh`f=${QEMU_CONF}; [ -f "$f" ] || : > "$f"; cp -p "$f" "$f.kvmforge.bak"; tmp=$(mktemp ` +
              sh`"$f.kvmforge-XXXXXX"); cp -p "$f" "$tmp"`,
            ...Object.entries(qemuConf).map(([k, v]) => {
              const replacement = `${k} = ${confValue(v).replace(/[|&]/g, '\\$&')}`;
              return (
                sh`line=${`${k} = ${confValue(v)}`}; if grep -qE ${`^${k}[[:space:]]*=`} "$tmp"; then sed -i ` +
                sh`${`s|^${k}[[:space:]]*=.*|${replacement}|`} "$tmp"; elif grep ` +
                sh`-qE ${`^#[[:space:]]*${k}[[:space:]]*=`} "$tmp"; then sed -i ` +
                sh`${`0,/^#[[:space:]]*${k}[[:space:]]*=.*/s||${replacement}|`} "$tmp"; ` +
                'else echo "$line" >> "$tmp"; fi'
              );
            }),
            'sync "$tmp" 2>/dev/null || true; mv -f "$tmp" "$f"',
            'if systemctl is-active -q libvirtd; then systemctl restart libvirtd; fi',
          ].join('\n'),
        });
      }
    }
    // a unit that is active proves nothing: the QEMU driver must answer
    const works = get('works') === 'yes';
    if (installing || get('enabled') !== 'enabled' || !works) {
      const why = installing
        ? ''
        : !works
          ? ` (its QEMU driver does not answer now: virsh -c qemu:///system capabilities)`
          : '';
      changes.push({
        kind: 'script',
        summary: `libvirtd enabled, started and answering${why}`,
        diff:
          `libvirtd: ${get('enabled') || 'absent'}/${get('active') || 'inactive'}` +
          (installing ? '' : `, QEMU driver ${works ? 'answers' : 'does not answer'}`) +
          ` → enabled/active, QEMU driver answers (capabilities, domcapabilities ${ar})`,
        script: LIBVIRT_CHECK,
      });
    }
    if (warnings.length && changes.length && !changes.some((c) => c.warning)) changes[0].warning = warnings.join('; ');
    return changes;
  },
};
export default step;
