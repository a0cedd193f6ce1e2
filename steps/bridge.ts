// bridge: br0 takes over a NIC (or a bond) with everything it carried — its MAC, addresses of both
// families (static, DHCP, RA), routes in every table, policy rules, DNS and search domains, MTU, VLANs on
// it — in the host's own network stack's config, switched over SSH without stranding anyone: a rollback
// is armed on the host first, the switch runs detached, kvmforge confirms on a new connection (the host's
// network before, renamed for the bridge, must all be there after) and only then disarms the rollback.
import { posix } from 'node:path';
import { badVar, varOr } from '../src/core/vars.ts';
import { planFiles, writeFileScript } from '../src/core/file.ts';
import { sh } from '../src/core/sh.ts';
import type { Change, FileSpec, Host, Step } from '../src/core/types.ts';
import { networkProbe, parseNetwork, type NetState, type Stack } from '../src/facts/network.ts';
import { carry, carriedSummary, inSubnet, Refusal, type Bridge, type BridgeParams } from '../src/bridge/carry.ts';
import { checkScript, expectations } from '../src/bridge/check.ts';
import { configFiles, stackCommands, STACKS } from '../src/bridge/stacks.ts';

export { STACKS };
export const STATE_DIR = '/var/lib/kvmforge/bridge';
const IFNAME = '^[A-Za-z0-9_.-]{1,15}$';
const IPV4 = '(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}';
const IPV6 = '[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*';

/** The interfaces whose config files the probe reads: the port (as far as facts tell) and the bridge. */
function probeNames(host: Host, p: BridgeParams, net: { interfaces: { name: string }[]; defaultRoute?: { dev: string } }): string[] {
  const dev = p.port ?? net.defaultRoute?.dev;
  const names = dev && dev !== p.bridge ? [dev, ...(dev.includes('.') ? [dev.slice(0, dev.lastIndexOf('.'))] : [])] : net.interfaces.map((i) => i.name).filter((n) => n !== 'lo');
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
    '[ -f "$d/pending/why" ] || { sh "$d/check.sh" > "$d/pending/why" 2>&1 && echo "its own checks passed; only kvmforge could not reach it" > "$d/pending/why"; }',
    'mv "$d/pending" "$d/rolling-back" || exit 0',
    '(cd "$d/rolling-back/files" && find . -type f) | while IFS= read -r f; do cp -a "$d/rolling-back/files/${f#./}" "/${f#./}"; done',
    '[ -f "$d/rolling-back/new" ] && while IFS= read -r f; do rm -f "$f"; done < "$d/rolling-back/new"',
    cmds.down,
    'rm -rf "$d/rolled-back"; mv "$d/rolling-back" "$d/rolled-back"; date > "$d/rolled-back/at"',
  ].join('\n');
  return [
    `d=${STATE_DIR}`,
    'mkdir -p "$d"; rm -rf "$d/pending" "$d/rolled-back"; mkdir -p "$d/pending/files"',
    ...files.map((f) => sh`if [ -e ${f.path} ]; then mkdir -p "$d/pending/files"${posix.dirname(f.path)}; cp -a ${f.path} "$d/pending/files"${f.path}; else echo ${f.path} >> "$d/pending/new"; fi`),
    `cat > "$d/rollback.sh" <<'KVMFORGE_EOF'\n${rollback}\nKVMFORGE_EOF`,
    `cat > "$d/check.sh" <<'KVMFORGE_EOF'\n${check}\nKVMFORGE_EOF`,
    `cat > "$d/switch.sh" <<'KVMFORGE_EOF'\nsleep 1\n${cmds.up}\nKVMFORGE_EOF`,
    // arm first: if anything below or the switch itself goes wrong, the host puts itself back
    'if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null; then',
    '  systemctl stop kvmforge-bridge-rollback.timer 2>/dev/null || true; systemctl reset-failed kvmforge-bridge-rollback.service 2>/dev/null || true',
    `  systemd-run --quiet --unit=kvmforge-bridge-rollback --on-active=${timeoutS} /bin/sh "$d/rollback.sh"`,
    'else',
    `  setsid nohup sh -c 'sleep ${timeoutS}; sh ${STATE_DIR}/rollback.sh' >/dev/null 2>&1 < /dev/null & echo $! > "$d/pending/timer.pid"`,
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
export const ROLLBACK_NOW = `systemctl stop kvmforge-bridge-rollback.timer 2>/dev/null || true\necho 'kvmforge rolled it back: its check failed' > ${STATE_DIR}/pending/why 2>/dev/null\nsetsid nohup sh ${STATE_DIR}/rollback.sh >/dev/null 2>&1 < /dev/null &`;
/** Exit 0 once the rollback ran; prints what the host's own check found before it rolled back. */
export const ROLLED_BACK = `test -f ${STATE_DIR}/rolled-back/at && { cat ${STATE_DIR}/rolled-back/why 2>/dev/null || true; }`;

const step: Step<BridgeParams | undefined> = {
  name: 'bridge',
  description: 'br0 takes over the NIC with all it carried (addresses, routes, rules, DNS, VLANs; a bond as the port), with a rollback armed on the host',
  vars: {
    bridge_enabled: { type: 'boolean', description: 'Run this step (default true).' },
    bridge_name: { type: 'string', pattern: IFNAME, description: 'Bridge name, at most 15 characters (default br0).' },
    bridge_port: { type: 'string', pattern: IFNAME, description: 'The NIC or bond the bridge takes over (default: the one carrying the default route).' },
    bridge_dhcp: { type: 'boolean', description: 'DHCP on the bridge (default: as the NIC does now).' },
    bridge_addresses: { type: 'array', minItems: 1, items: { type: 'string', pattern: `^(${IPV4}/([0-9]|[12][0-9]|3[0-2])|${IPV6}/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))$` }, description: 'Static addresses in CIDR form, replacing the NIC’s IPv4 ones (default: copy the NIC’s).' },
    bridge_gateway: { type: 'string', pattern: `^${IPV4}$`, description: 'IPv4 default gateway (default: the NIC’s default route).' },
    bridge_dns: { type: 'array', items: { type: 'string', pattern: `^(${IPV4}|${IPV6})$` }, description: 'DNS servers (default: the host’s).' },
    bridge_mtu: { type: 'integer', minimum: 576, maximum: 65535 },
    bridge_stp: { type: 'boolean', description: 'Spanning tree (default false).' },
    bridge_forward_delay: { type: 'integer', minimum: 0, maximum: 30, description: 'Seconds (default 0).' },
    bridge_stack: { enum: [...STACKS], description: 'Network stack to write for (default: detected).' },
    bridge_rollback_timeout: { type: 'integer', minimum: 20, maximum: 3600, description: 'Seconds before an unconfirmed switch rolls itself back (default 90).' },
    bridge_vlan_filtering: { type: 'boolean', description: 'A VLAN-aware bridge: the port carries the VLANs tagged (default false: VLAN interfaces on the NIC move on top of the bridge).' },
    bridge_vlans: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 4094 }, description: 'VLAN ids the port carries into a VLAN-aware bridge (with bridge_vlan_filtering).' },
  },
  params(host: Host) {
    if (!varOr(host, 'bridge_enabled', true)) return undefined;
    const addresses = host.vars.bridge_addresses as string[] | undefined;
    const gateway = host.vars.bridge_gateway as string | undefined;
    const v4 = addresses?.filter((a) => !a.includes(':'));
    if (gateway && v4 && !v4.some((a) => inSubnet(gateway, a))) throw badVar(host, 'bridge_gateway', `gateway ${gateway} is outside the bridge's subnets (${addresses!.join(', ')})`);
    if (host.vars.bridge_dhcp === true && v4?.length) throw badVar(host, 'bridge_dhcp', 'bridge_dhcp: true and IPv4 bridge_addresses both given: pick one');
    const vlans = varOr<number[]>(host, 'bridge_vlans', []);
    const vlanFiltering = varOr(host, 'bridge_vlan_filtering', false);
    if (vlans.length && !vlanFiltering) throw badVar(host, 'bridge_vlans', 'bridge_vlans needs bridge_vlan_filtering: true (without it, VLAN interfaces on the NIC move on top of the bridge by themselves)');
    return {
      bridge: varOr(host, 'bridge_name', 'br0'),
      port: host.vars.bridge_port as string | undefined,
      dhcp: host.vars.bridge_dhcp as boolean | undefined,
      addresses,
      gateway,
      dns: host.vars.bridge_dns as string[] | undefined,
      mtu: host.vars.bridge_mtu as number | undefined,
      stp: varOr(host, 'bridge_stp', false),
      forwardDelay: varOr(host, 'bridge_forward_delay', 0),
      stack: host.vars.bridge_stack as Stack | undefined,
      timeoutS: varOr(host, 'bridge_rollback_timeout', 90),
      vlanFiltering,
      vlans,
    };
  },
  async plan(ctx, p) {
    const { facts, host } = ctx;
    const net = parseNetwork(await ctx.probe(networkProbe(probeNames(host, p!, facts))));
    const b = plannedBridge(host, p!, net);
    const stack = p!.stack ?? net.stack;
    if (!stack) throw badVar(host, 'bridge_stack', `no network stack found managing ${b.port} (netplan, NetworkManager, ifcfg, ifupdown, systemd-networkd): set bridge_stack`);
    const files = bridgeFiles(host, stack, b, net);
    const fileChanges = await planFiles(ctx, files);
    const port = net.links.find((l) => l.name === b.port)!;
    const onBridge = net.addrs.filter((a) => a.dev === b.bridge);
    const live = port.master === b.bridge && (b.dhcp ? onBridge.some((a) => a.family === 4) : true) && b.addresses.every((a) => onBridge.some((x) => `${x.address}/${x.prefix}` === a));
    if (!fileChanges.length && live) return [];
    const exps = expectations(b, p!, net);
    const what = `${b.bridge} takes over ${b.port} (${stack}; ${carriedSummary(b) || 'no addresses'}; MAC ${b.mac})`;
    const change: Change = {
      summary: fileChanges.length ? what : `${what}: config in place, re-applying it`,
      diff: [...fileChanges.map((c) => c.diff).filter(Boolean), `check after the switch (${exps.length}):`, ...exps.map((e) => `  ${e.what}`)].join('\n'),
      script: switchScript(stack, b, files, p!.timeoutS, checkScript(exps, 2)),
      confirm: { verify: checkScript(exps, Math.max(8, Math.min(25, Math.floor(p!.timeoutS / 3)))), commit: COMMIT, rollback: ROLLBACK_NOW, timeoutS: p!.timeoutS, rolledBack: ROLLED_BACK },
    };
    return [change];
  },
};

export default step;
