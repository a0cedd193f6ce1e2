// bridge: br0 takes over a NIC (or a bond) with everything it carried — its MAC, addresses of both
// families (static, DHCP, RA), routes in every table, policy rules, DNS and search domains, MTU, VLANs on
// it — in the host's own network stack's config, switched over SSH without stranding anyone: a rollback
// is armed on the host first, the switch runs detached, kvmforge confirms on a new connection (the host's
// network before, renamed for the bridge, must all be there after) and only then disarms the rollback.
import { posix } from 'node:path';
import { badVar, varOf } from '../src/core/vars.ts';
import { planFiles, writeFileScript } from '../src/core/file.ts';
import { sh } from '../src/core/sh.ts';
import type { Change, FileSpec, Host, Step, VarSpec } from '../src/core/types.ts';
import { defaultRoute, interfaces } from '../src/facts/host.ts';
import { network, type NetState, type Stack } from '../src/facts/network.ts';
import { carry, carriedSummary, inSubnet, Refusal, type Bridge, type BridgeParams } from '../src/bridge/carry.ts';
import { checkScript, expectations } from '../src/bridge/check.ts';
import { configFiles, STACKS, STATE_DIR, stackCommands } from '../src/bridge/stacks.ts';

export { STACKS };
const IFNAME = '^[A-Za-z0-9_.-]{1,15}$';
const IPV4 = '(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}';
const IPV6 = '[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*';

/** The interfaces whose config files the probe reads: the port (as far as facts tell) and the bridge. */
function probeNames(
  _host: Host,
  p: BridgeParams,
  net: { interfaces: { name: string }[]; defaultRoute?: { dev: string } },
): string[] {
  const dev = p.port ?? net.defaultRoute?.dev;
  const names =
    dev && dev !== p.bridge
      ? [dev, ...(dev.includes('.') ? [dev.slice(0, dev.lastIndexOf('.'))] : [])]
      : net.interfaces.map((i) => i.name).filter((n) => n !== 'lo');
  return [...new Set([...names, p.bridge])];
}

/** The bridge as it must be, or the host's reason it can't be (exit 2 for that host, nothing changed). */
export function plannedBridge(host: Host, p: BridgeParams, net: NetState): Bridge {
  try {
    return carry(p, net);
  } catch (e) {
    if (e instanceof Refusal) throw badVar(host, e.key, e.message);
    throw e;
  }
}

export function bridgeFiles(host: Host, stack: Stack, b: Bridge, net: NetState): FileSpec[] {
  try {
    return configFiles(stack, b, net);
  } catch (e) {
    if (e instanceof Refusal) throw badVar(host, e.key, e.message);
    throw e;
  }
}

/** The switch as one transaction: back up, arm the rollback, write the files, switch detached. */
export function switchScript(stack: Stack, b: Bridge, files: FileSpec[], timeoutS: number, check: string): string {
  const cmds = stackCommands(stack, b);
  const rollback = [
    '#!/bin/sh',
    `# kvmforge bridge rollback: restores the network config from before the switch`,
    `d=${STATE_DIR}`,
    '[ -d "$d/pending" ] || exit 0',
    // say why on the host itself: kvmforge may not have got a word in before the timer fired
    '[ -f "$d/pending/why" ] || { sh "$d/check.sh" > "$d/pending/why" 2>&1 && echo "its own checks passed; only ' +
      'kvmforge could not reach it" > "$d/pending/why"; }',
    'mv "$d/pending" "$d/rolling-back" || exit 0',
    '(cd "$d/rolling-back/files" && find . -type f) | while IFS= read -r f; do cp -a "$d/rolling-back/files/${f#./}" ' +
      '"/${f#./}"; done',
    '[ -f "$d/rolling-back/new" ] && while IFS= read -r f; do rm -f "$f"; done < "$d/rolling-back/new"',
    cmds.down,
    'rm -rf "$d/rolled-back"; mv "$d/rolling-back" "$d/rolled-back"; date > "$d/rolled-back/at"',
  ].join('\n');
  return [
    `d=${STATE_DIR}`,
    'mkdir -p "$d"; rm -rf "$d/pending" "$d/rolled-back"; mkdir -p "$d/pending/files"',
    ...files.map(
      (f) =>
        sh`if [ -e ${f.path} ]; then mkdir -p "$d/pending/files"${posix.dirname(f.path)}; cp -a ${f.path} ` +
        sh`"$d/pending/files"${f.path}; else echo ${f.path} >> "$d/pending/new"; fi`,
    ),
    `cat > "$d/rollback.sh" <<'KVMFORGE_EOF'\n${rollback}\nKVMFORGE_EOF`,
    `cat > "$d/check.sh" <<'KVMFORGE_EOF'\n${check}\nKVMFORGE_EOF`,
    `cat > "$d/switch.sh" <<'KVMFORGE_EOF'\nsleep 1\n${cmds.up}\nKVMFORGE_EOF`,
    // arm first: if anything below or the switch itself goes wrong, the host puts itself back
    'if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null; then',
    '  systemctl stop kvmforge-bridge-rollback.timer 2>/dev/null || true; systemctl reset-failed ' +
      'kvmforge-bridge-rollback.service 2>/dev/null || true',
    `  systemd-run --quiet --unit=kvmforge-bridge-rollback --on-active=${timeoutS} /bin/sh "$d/rollback.sh"`,
    'else',
    `  setsid nohup sh -c 'sleep ${timeoutS}; sh ${STATE_DIR}/rollback.sh' >/dev/null 2>&1 < /dev/null & echo $! > ` +
      `"$d/pending/timer.pid"`,
    'fi',
    // the old versions are in $d/pending/files (then $d/committed/files), not beside: some stacks load every file
    ...files.map((f) => `( ${writeFileScript({ ...f, noBackup: true })} ) || { sh "$d/rollback.sh"; exit 1; }`),
    // detached from this SSH session: a dropped session cannot stop it halfway
    'setsid nohup sh "$d/switch.sh" > "$d/pending/switch.log" 2>&1 < /dev/null &',
    'echo switching',
  ].join('\n');
}

export const COMMIT = [
  `d=${STATE_DIR}`,
  'systemctl stop kvmforge-bridge-rollback.timer 2>/dev/null || true',
  '[ -f "$d/pending/timer.pid" ] && kill "$(cat "$d/pending/timer.pid")" 2>/dev/null || true',
  '[ -d "$d/pending" ] || { echo "the rollback already ran" >&2; exit 1; }',
  'rm -rf "$d/committed"; mv "$d/pending" "$d/committed"',
].join('\n');
export const ROLLBACK_NOW =
  `systemctl stop kvmforge-bridge-rollback.timer 2>/dev/null || true\necho 'kvmforge ` +
  `rolled it back: its check failed' > ${STATE_DIR}/pending/why 2>/dev/null\nsetsid nohup sh ` +
  `${STATE_DIR}/rollback.sh >/dev/null 2>&1 < /dev/null &`;
/** Exit 0 once the rollback ran; prints what the host's own check found before it rolled back. */
export const ROLLED_BACK =
  `test -f ${STATE_DIR}/rolled-back/at && { cat ${STATE_DIR}/rolled-back/why 2>/dev/null ` + `|| true; }`;

const vars: Record<string, VarSpec> = {
  bridge_name: {
    schema: { type: 'string', pattern: IFNAME },
    default: 'br0',
    description: 'Bridge name, at most 15 characters.',
  },
  bridge_port: {
    schema: { type: 'string', pattern: IFNAME },
    defaultText: "the default route's NIC or bond, else the only NIC with an address",
    description: 'The NIC or bond the bridge takes over.',
  },
  bridge_dhcp: { schema: { type: 'boolean' }, defaultText: 'as the NIC does now', description: 'DHCP on the bridge.' },
  bridge_addresses: {
    schema: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'string',
        pattern: `^(${IPV4}/([0-9]|[12][0-9]|3[0-2])|${IPV6}/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))$`,
      },
    },
    defaultText: "the NIC's",
    description: 'Static addresses in CIDR form, replacing the NIC’s IPv4 ones.',
  },
  bridge_gateway: {
    schema: { type: 'string', pattern: `^${IPV4}$` },
    defaultText: "the NIC's default route",
    description: 'IPv4 default gateway.',
  },
  bridge_dns: {
    schema: { type: 'array', items: { type: 'string', pattern: `^(${IPV4}|${IPV6})$` } },
    defaultText: "the host's",
    description: 'DNS servers.',
  },
  bridge_mtu: {
    schema: { type: 'integer', minimum: 576, maximum: 65535 },
    defaultText: "the NIC's",
    description: 'MTU of the bridge and its port.',
  },
  bridge_stp: { schema: { type: 'boolean' }, default: false, description: 'Spanning tree.' },
  bridge_forward_delay: { schema: { type: 'integer', minimum: 0, maximum: 30 }, default: 0, description: 'Seconds.' },
  bridge_stack: { schema: { enum: [...STACKS] }, defaultText: 'detected', description: 'Network stack to write for.' },
  bridge_rollback_timeout: {
    schema: { type: 'integer', minimum: 20, maximum: 3600 },
    default: 90,
    defaultText: '90 s',
    description: 'Seconds before an unconfirmed switch rolls itself back.',
  },
  bridge_vlan_filtering: {
    schema: { type: 'boolean' },
    default: false,
    description:
      'A VLAN-aware bridge: the port carries the VLANs tagged (false: VLAN interfaces on the NIC move on top of the ' +
      'bridge).',
  },
  bridge_vlans: {
    schema: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 4094 } },
    default: [],
    description: 'VLAN ids the port carries into a VLAN-aware bridge (with bridge_vlan_filtering).',
  },
};

const step: Step<BridgeParams> = {
  name: 'bridge',
  description:
    'br0 takes over the NIC with all it carried (addresses, routes, rules, DNS, VLANs; a bond as the port), with a ' +
    'rollback armed on the host',
  doc:
    'br0 takes over a NIC (or a bond) with **everything it carried** — its MAC, IPv4 and IPv6 addresses as they ' +
    'come (static, DHCP, RA/SLAAC, DHCPv6), routes in every table, the policy rules that name it, DNS servers and ' +
    "search domains, MTU, VLANs on it — written in the host's own stack: systemd-networkd, ifupdown, NetworkManager " +
    'keyfiles, netplan or RHEL ifcfg (detected). Switched safely and checked before/after, see below',
  vars,
  params(host: Host) {
    const addresses = host.vars.bridge_addresses as string[] | undefined;
    const gateway = host.vars.bridge_gateway as string | undefined;
    const v4 = addresses?.filter((a) => !a.includes(':'));
    if (gateway && v4 && !v4.some((a) => inSubnet(gateway, a)))
      throw badVar(
        host,
        'bridge_gateway',
        `gateway ${gateway} is outside the bridge's subnets (${addresses!.join(', ')})`,
      );
    if (host.vars.bridge_dhcp === true && v4?.length)
      throw badVar(host, 'bridge_dhcp', 'bridge_dhcp: true and IPv4 bridge_addresses both given: pick one');
    const vlans = varOf<number[]>(host, vars, 'bridge_vlans');
    const vlanFiltering = varOf<boolean>(host, vars, 'bridge_vlan_filtering');
    if (vlans.length && !vlanFiltering)
      throw badVar(
        host,
        'bridge_vlans',
        'bridge_vlans needs bridge_vlan_filtering: true (without it, VLAN interfaces on the NIC move on top of the ' +
          'bridge by themselves)',
      );
    return {
      bridge: varOf(host, vars, 'bridge_name'),
      port: host.vars.bridge_port as string | undefined,
      dhcp: host.vars.bridge_dhcp as boolean | undefined,
      addresses,
      gateway,
      dns: host.vars.bridge_dns as string[] | undefined,
      mtu: host.vars.bridge_mtu as number | undefined,
      stp: varOf(host, vars, 'bridge_stp'),
      forwardDelay: varOf(host, vars, 'bridge_forward_delay'),
      stack: host.vars.bridge_stack as Stack | undefined,
      timeoutS: varOf(host, vars, 'bridge_rollback_timeout'),
      vlanFiltering,
      vlans,
    };
  },
  async plan(ctx, p) {
    const { host } = ctx;
    const [ifs, route] = await ctx.read(interfaces, defaultRoute);
    const [net] = await ctx.read(network(probeNames(host, p, { interfaces: ifs, defaultRoute: route })));
    const b = plannedBridge(host, p, net);
    const stack = p.stack ?? net.stack;
    if (!stack)
      throw badVar(
        host,
        'bridge_stack',
        `no network stack found managing ${b.port} (netplan, NetworkManager, ifcfg, ifupdown, systemd-networkd): ` +
          `set bridge_stack`,
      );
    const files = bridgeFiles(host, stack, b, net);
    const fileChanges = await planFiles(ctx, files);
    const port = net.links.find((l) => l.name === b.port)!;
    const onBridge = net.addrs.filter((a) => a.dev === b.bridge);
    const live =
      port.master === b.bridge &&
      (b.dhcp ? onBridge.some((a) => a.family === 4) : true) &&
      b.addresses.every((a) => onBridge.some((x) => `${x.address}/${x.prefix}` === a));
    if (!fileChanges.length && live) return [];
    const exps = expectations(b, p, net);
    const what = `${b.bridge} takes over ${b.port} (${stack}; ${carriedSummary(b) || 'no addresses'}; MAC ${b.mac})`;
    const change: Change = {
      kind: 'switch',
      summary: fileChanges.length ? what : `${what}: config in place, re-applying it`,
      diff: [
        ...fileChanges.map((c) => c.diff).filter(Boolean),
        `check after the switch (${exps.length}):`,
        ...exps.map((e) => `  ${e.what}`),
      ].join('\n'),
      script: switchScript(stack, b, files, p.timeoutS, checkScript(exps, 2)),
      verify: checkScript(exps, Math.max(8, Math.min(25, Math.floor(p.timeoutS / 3)))),
      commit: COMMIT,
      rollback: ROLLBACK_NOW,
      timeoutS: p.timeoutS,
      rolledBack: ROLLED_BACK,
    };
    return [change];
  },
};

export default step;
