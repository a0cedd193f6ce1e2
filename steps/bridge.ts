// bridge: br0 takes over a NIC (its MAC, addresses, gateway, DNS or DHCP), in the host's own network
// stack's config, switched over SSH without stranding anyone: a rollback is armed on the host first,
// the switch runs detached, kvmforge confirms on a new connection and only then disarms the rollback.
import { posix } from 'node:path';
import { badVar, varOr } from '../src/core/vars.ts';
import { planFiles, writeFileScript } from '../src/core/file.ts';
import { renderTemplate } from '../src/core/render.ts';
import { sh } from '../src/core/sh.ts';
import type { Change, FileSpec, Host, Step } from '../src/core/types.ts';
import type { Facts, Interface } from '../src/facts/gather.ts';

export const STACKS = ['networkd', 'ifupdown', 'networkmanager', 'netplan', 'ifcfg'] as const;
export type Stack = (typeof STACKS)[number];
export const STATE_DIR = '/var/lib/kvmforge/bridge';
const IFNAME = '^[A-Za-z0-9_.-]{1,15}$';
const IPV4 = '(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}';

interface Params {
  bridge: string;
  port?: string;
  dhcp?: boolean;
  addresses?: string[];
  gateway?: string;
  dns?: string[];
  mtu?: number;
  stp: boolean;
  forwardDelay: number;
  stack?: Stack;
  timeoutS: number;
}

/** Everything the templates need: the bridge as it will be. */
export interface Bridge {
  bridge: string;
  port: string;
  mac: string;
  dhcp: boolean;
  addresses: string[];
  gateway?: string;
  dns: string[];
  mtu?: number;
  stp: boolean;
  forwardDelay: number;
}

const ipToInt = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
export function inSubnet(ip: string, cidr: string): boolean {
  const [net, bits] = cidr.split('/');
  const mask = Number(bits) === 0 ? 0 : 2 ** 32 - 2 ** (32 - Number(bits));
  return (ipToInt(ip) & mask) >>> 0 === (ipToInt(net) & mask) >>> 0;
}

/** What the host looks like, from one probe. */
export interface NetView {
  stack: Stack | 'unknown';
  dns: string[];
  /** ifupdown files that declare the port (they get its stanza commented out) */
  interfaces: Record<string, string>;
}

export function probeScript(port: string, bridge: string): string {
  return [
    'export LC_ALL=C',
    sh`if ls /etc/netplan/*.yaml >/dev/null 2>&1 && command -v netplan >/dev/null; then echo '@@stack netplan'`,
    sh`elif systemctl is-active -q NetworkManager 2>/dev/null && nmcli -t -f DEVICE,STATE device 2>/dev/null | grep -qE ${`^(${port}|${bridge}):connected`}; then echo '@@stack networkmanager'`,
    sh`elif [ -f /etc/sysconfig/network-scripts/ifcfg-${port} ]; then echo '@@stack ifcfg'`,
    sh`elif command -v ifup >/dev/null && grep -qsE ${`^[[:space:]]*(auto|allow-hotplug|iface)[[:space:]]+(${port}|${bridge})([[:space:]]|$)`} /etc/network/interfaces /etc/network/interfaces.d/*; then echo '@@stack ifupdown'`,
    `elif systemctl is-active -q systemd-networkd 2>/dev/null; then echo '@@stack networkd'`,
    `else echo '@@stack unknown'; fi`,
    `sed -n 's/^nameserver[[:space:]]*/@@dns /p' /etc/resolv.conf 2>/dev/null || true`,
    sh`for f in /etc/network/interfaces /etc/network/interfaces.d/*; do case $f in */kvmforge-*|*.kvmforge.bak) continue;; esac; grep -qsE ${`^[[:space:]]*(auto|allow-hotplug|iface)[[:space:]]+([^#]*[[:space:]])?${port}([[:space:]]|$)`} "$f" || continue; echo "@@ifile $f"; cat "$f"; echo; echo '@@ifile-end'; done`,
  ].join('\n');
}

export function parseProbe(out: string): NetView {
  const v: NetView = { stack: 'unknown', dns: [], interfaces: {} };
  let file: string | undefined;
  let lines: string[] = [];
  for (const line of out.split('\n')) {
    if (file !== undefined) {
      if (line === '@@ifile-end') {
        v.interfaces[file] = lines.join('\n');
        file = undefined;
      } else lines.push(line);
    } else if (line.startsWith('@@ifile ')) {
      file = line.slice(8);
      lines = [];
    } else if (line.startsWith('@@stack ')) v.stack = line.slice(8) as Stack;
    else if (line.startsWith('@@dns ')) v.dns.push(line.slice(6).trim());
  }
  return v;
}

/** /etc/network/interfaces with the port's own stanza commented out (the bridge stanza brings it up). */
export function withoutStanza(text: string, nic: string): string {
  const out: string[] = [];
  let inStanza = false;
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    const starts = /^(auto|allow-hotplug|iface|mapping|source|source-directory|allow-[a-z]+)$/.test(words[0] ?? '') && !/^\s/.test(line);
    if (starts) inStanza = false;
    const mine = starts && ((words[0] === 'iface' && words[1] === nic) || (/^(auto|allow-)/.test(words[0]) && words.slice(1).includes(nic)));
    if (mine && words[0] === 'iface') inStanza = true;
    if (mine || (inStanza && /^\s+\S/.test(line))) out.push(`#kvmforge-bridge# ${line}`);
    else out.push(line);
  }
  return out.join('\n');
}

/** The bridge as asked, filling what the inventory leaves out from what the NIC has now. */
export function desired(host: Host, p: Params, facts: Facts, view: NetView): Bridge {
  const port = portOf(p, facts);
  if (!port) throw badVar(host, 'bridge_port', `no default route and more than one NIC with an address (${facts.interfaces.filter(physical).map((i) => i.name).join(', ') || 'none'}): say which NIC the bridge takes over`);
  const nic = facts.interfaces.find((i) => i.name === port);
  if (!nic) throw badVar(host, 'bridge_port', `NIC '${port}' does not exist on ${host.name} (it has ${facts.interfaces.map((i) => i.name).join(', ')})`);
  if (nic.kind === 'bridge') throw badVar(host, 'bridge_port', `'${port}' is itself a bridge: name the NIC it should take over`);
  // after a conversion the addresses live on the bridge: copy from there, so a re-run plans nothing
  const br = facts.interfaces.find((i) => i.name === p.bridge);
  const from: Interface = nic.master === p.bridge && br ? br : nic;
  const v4 = from.addresses.filter((a) => a.family === 'inet');
  const copiedDhcp = v4.some((a) => a.dynamic);
  const dhcp = p.dhcp ?? (p.addresses ? false : copiedDhcp);
  const addresses = p.addresses ?? (dhcp ? [] : v4.map((a) => `${a.address}/${a.prefix}`));
  if (!dhcp && !addresses.length) throw badVar(host, 'bridge_addresses', `${port} has no IPv4 address to copy and DHCP is off: give bridge_addresses or bridge_dhcp: true`);
  const gw = p.gateway ?? (facts.defaultRoute && [port, p.bridge].includes(facts.defaultRoute.dev) && !dhcp ? facts.defaultRoute.gateway : undefined);
  return {
    bridge: p.bridge,
    port,
    mac: (nic.master === p.bridge && br?.mac) || nic.mac || '',
    dhcp,
    addresses,
    gateway: gw,
    dns: p.dns ?? (dhcp ? [] : view.dns.filter((d) => new RegExp(`^${IPV4}$`).test(d))),
    mtu: p.mtu,
    stp: p.stp,
    forwardDelay: p.forwardDelay,
  };
}

/** The NIC to take over: the one asked for, else the default route's, else the only candidate. */
function portOf(p: Params, facts: Facts): string | undefined {
  const route = facts.defaultRoute?.dev;
  return p.port ?? (route && route !== p.bridge ? route : undefined) ?? soleNic(facts.interfaces, p.bridge);
}

const physical = (i: Interface) => i.name !== 'lo' && !i.kind;
/** The one NIC with an IPv4 address, or the one already in the bridge. */
function soleNic(ifs: Interface[], bridge: string): string | undefined {
  const inBridge = ifs.filter((i) => physical(i) && i.master === bridge);
  if (inBridge.length === 1) return inBridge[0].name;
  const nics = ifs.filter((i) => physical(i) && !i.master && i.addresses.some((a) => a.family === 'inet'));
  return nics.length === 1 ? nics[0].name : undefined;
}

/** The stack's own config files for the bridge. */
export function configFiles(stack: Stack, b: Bridge, view: NetView): FileSpec[] {
  const t = (name: string) => renderTemplate(`bridge/${name}`, { b });
  switch (stack) {
    case 'networkd':
      return [
        { path: `/etc/systemd/network/10-kvmforge-${b.bridge}.netdev`, content: t('networkd.netdev.ejs') },
        { path: `/etc/systemd/network/10-kvmforge-${b.bridge}-port-${b.port}.network`, content: t('networkd-port.network.ejs') },
        { path: `/etc/systemd/network/10-kvmforge-${b.bridge}.network`, content: t('networkd-bridge.network.ejs') },
      ];
    case 'ifupdown':
      return [
        ...Object.entries(view.interfaces).map(([path, text]) => ({ path, content: withoutStanza(text, b.port) })),
        { path: `/etc/network/interfaces.d/kvmforge-${b.bridge}`, content: t('ifupdown.ejs') },
      ];
    case 'networkmanager':
      return [
        { path: `/etc/NetworkManager/system-connections/kvmforge-${b.bridge}.nmconnection`, content: t('nm-bridge.nmconnection.ejs'), mode: '600' },
        { path: `/etc/NetworkManager/system-connections/kvmforge-${b.bridge}-port-${b.port}.nmconnection`, content: t('nm-port.nmconnection.ejs'), mode: '600' },
      ];
    case 'netplan':
      return [{ path: `/etc/netplan/90-kvmforge-${b.bridge}.yaml`, content: t('netplan.yaml.ejs'), mode: '600' }];
    case 'ifcfg':
      return [
        { path: `/etc/sysconfig/network-scripts/ifcfg-${b.bridge}`, content: t('ifcfg-bridge.ejs') },
        { path: `/etc/sysconfig/network-scripts/ifcfg-${b.port}`, content: t('ifcfg-port.ejs') },
      ];
  }
}

/**
 * A DHCP client that asked while the bridge was still coming up (a busy host) backs off for up to a
 * minute between tries, past the rollback timer: ask again every 10 s until the bridge has an address
 * (seen: a loaded 2-core machine left br0 without a lease for the whole rollback window, 36 s in the tests).
 */
function dhcpNudge(bridge: string): string {
  return sh`for i in 1 2 3 4 5 6; do sleep 10; ip -o -4 addr show dev ${bridge} | grep -q ' inet ' && break; networkctl renew ${bridge} 2>/dev/null || true; done`;
}

/** Commands that make the stack apply its (new or restored) config; `up` after a switch, `down` on rollback. */
export function stackCommands(stack: Stack, b: Bridge): { up: string; down: string } {
  const unbridge = sh`ip link set ${b.port} nomaster 2>/dev/null || true; ip link del ${b.bridge} 2>/dev/null || true`;
  switch (stack) {
    case 'networkd':
      return { up: sh`networkctl reload; networkctl reconfigure ${b.port}; networkctl reconfigure ${b.bridge} 2>/dev/null || true` + (b.dhcp ? `\n${dhcpNudge(b.bridge)}` : ''), down: `${unbridge}\n${sh`networkctl reload; networkctl reconfigure ${b.port}`}` };
    case 'ifupdown':
      return { up: sh`ifdown --force ${b.port} 2>/dev/null || true; ip addr flush dev ${b.port}; ifup ${b.bridge}`, down: `${sh`ifdown --force ${b.bridge} 2>/dev/null || true`}\n${unbridge}\n${sh`ip addr flush dev ${b.port}; ifup ${b.port}`}` };
    case 'networkmanager':
      return { up: sh`nmcli connection reload; nmcli connection up ${`kvmforge-${b.bridge}`}`, down: `nmcli connection reload\n${unbridge}\n${sh`nmcli device connect ${b.port}`}` };
    case 'netplan':
      return { up: 'netplan apply', down: `${unbridge}\nnetplan apply` };
    case 'ifcfg':
      return { up: sh`if systemctl is-active -q NetworkManager; then nmcli connection reload; nmcli device reapply ${b.port} || nmcli connection up ${`System ${b.port}`}; else systemctl restart network; fi`, down: `${unbridge}\n${sh`if systemctl is-active -q NetworkManager; then nmcli connection reload; nmcli device connect ${b.port}; else systemctl restart network; fi`}` };
  }
}

/** Passes when the port is in the bridge and the bridge has its addresses, route and DNS (waits for DHCP). */
export function verifyScript(b: Bridge, expectAddress?: string, waitS = 25): string {
  const want = b.dhcp ? (expectAddress ? [expectAddress] : []) : b.addresses;
  const checks = [
    sh`[ "$(basename "$(readlink /sys/class/net/${b.port}/master 2>/dev/null)")" = ${b.bridge} ]`,
    ...want.map((a) => sh`ip -o -4 addr show dev ${b.bridge} | grep -q ${` ${a} `}`),
    ...(b.dhcp && !expectAddress ? [sh`ip -o -4 addr show dev ${b.bridge} | grep -q ' inet '`] : []),
    ...(b.gateway ? [sh`ip route show default | grep -q ${`via ${b.gateway} dev ${b.bridge}`}`, sh`ping -c 1 -W 1 ${b.gateway} >/dev/null 2>&1; ip neigh show ${b.gateway} dev ${b.bridge} | grep -q lladdr`] : []),
    ...b.dns.map((d) => sh`{ grep -q ${`^nameserver ${d}`} /etc/resolv.conf || resolvectl dns 2>/dev/null | grep -q ${d}; }`),
  ];
  return [
    // a while for DHCP and the bridge to settle, well inside the rollback timeout (so what failed is still there to see)
    `ok=0; end=$(( $(date +%s) + ${waitS} ))`,
    `while [ "$(date +%s)" -lt $end ]; do if ${checks.join(' && ')}; then ok=1; break; fi; sleep 1; done`,
    '[ $ok = 1 ] && exit 0',
    sh`echo "port master: $(basename "$(readlink /sys/class/net/${b.port}/master 2>/dev/null)" 2>/dev/null); ${b.bridge}: $(ip -o -4 addr show dev ${b.bridge} 2>/dev/null | awk '{print $4}' | tr '\\n' ' '); default route: $(ip route show default | head -1)"`,
    ...(b.gateway ? [sh`ip neigh show ${b.gateway} | grep -q lladdr || echo ${`gateway ${b.gateway} does not answer on ${b.bridge}`}`] : []),
    'exit 1',
  ].join('\n');
}

/** The switch as one transaction: back up, arm the rollback, write the files, switch detached. */
export function switchScript(stack: Stack, b: Bridge, files: FileSpec[], timeoutS: number, check = verifyScript(b, undefined, 2)): string {
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

const step: Step<Params | undefined> = {
  name: 'bridge',
  description: 'br0 takes over the NIC (MAC, addresses, gateway, DNS or DHCP) with a rollback armed on the host',
  vars: {
    bridge_enabled: { type: 'boolean', description: 'Run this step (default true).' },
    bridge_name: { type: 'string', pattern: IFNAME, description: 'Bridge name, at most 15 characters (default br0).' },
    bridge_port: { type: 'string', pattern: IFNAME, description: 'The NIC the bridge takes over (default: the one carrying the default route).' },
    bridge_dhcp: { type: 'boolean', description: 'DHCP on the bridge (default: as the NIC does now).' },
    bridge_addresses: { type: 'array', minItems: 1, items: { type: 'string', pattern: `^${IPV4}/([0-9]|[12][0-9]|3[0-2])$` }, description: 'Static addresses in CIDR form (default: copy the NIC’s).' },
    bridge_gateway: { type: 'string', pattern: `^${IPV4}$`, description: 'Default gateway (default: the NIC’s, when static).' },
    bridge_dns: { type: 'array', items: { type: 'string', pattern: `^${IPV4}$` }, description: 'DNS servers (default: /etc/resolv.conf’s, when static).' },
    bridge_mtu: { type: 'integer', minimum: 576, maximum: 65535 },
    bridge_stp: { type: 'boolean', description: 'Spanning tree (default false).' },
    bridge_forward_delay: { type: 'integer', minimum: 0, maximum: 30, description: 'Seconds (default 0).' },
    bridge_stack: { enum: [...STACKS], description: 'Network stack to write for (default: detected).' },
    bridge_rollback_timeout: { type: 'integer', minimum: 20, maximum: 3600, description: 'Seconds before an unconfirmed switch rolls itself back (default 90).' },
  },
  params(host: Host) {
    if (!varOr(host, 'bridge_enabled', true)) return undefined;
    const addresses = host.vars.bridge_addresses as string[] | undefined;
    const gateway = host.vars.bridge_gateway as string | undefined;
    if (gateway && addresses && !addresses.some((a) => inSubnet(gateway, a))) throw badVar(host, 'bridge_gateway', `gateway ${gateway} is outside the bridge's subnets (${addresses.join(', ')})`);
    if (host.vars.bridge_dhcp === true && addresses) throw badVar(host, 'bridge_dhcp', 'bridge_dhcp: true and bridge_addresses both given: pick one');
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
    };
  },
  async plan(ctx, p) {
    const { facts, host } = ctx;
    // the probe only needs a name to look for; desired() below reports a missing or ambiguous NIC
    const view = parseProbe(await ctx.probe(probeScript(portOf(p!, facts) ?? 'eth0', p!.bridge)));
    const b = desired(host, p!, facts, view);
    const stack = p!.stack ?? (view.stack === 'unknown' ? undefined : view.stack);
    if (!stack) throw badVar(host, 'bridge_stack', `no network stack found managing ${b.port} (netplan, NetworkManager, ifcfg, ifupdown, systemd-networkd): set bridge_stack`);
    const files = configFiles(stack, b, view);
    const fileChanges = await planFiles(ctx, files);
    const br = facts.interfaces.find((i) => i.name === b.bridge);
    const nic = facts.interfaces.find((i) => i.name === b.port)!;
    const inet = nic.addresses.find((a) => a.family === 'inet');
    const expectCidr = nic.master !== b.bridge && inet ? `${inet.address}/${inet.prefix}` : undefined;
    const live = nic.master === b.bridge && !!br && (b.dhcp ? br.addresses.some((a) => a.family === 'inet') : b.addresses.every((a) => br.addresses.some((x) => `${x.address}/${x.prefix}` === a)));
    if (!fileChanges.length && live) return [];
    const what = `${b.bridge} takes over ${b.port} (${stack}; ${b.dhcp ? 'DHCP' : b.addresses.join(', ')}${b.gateway ? ` via ${b.gateway}` : ''}; MAC ${b.mac})`;
    const change: Change = {
      summary: fileChanges.length ? what : `${what}: config in place, re-applying it`,
      diff: fileChanges.map((c) => c.diff).filter(Boolean).join('\n') || undefined,
      script: switchScript(stack, b, files, p!.timeoutS, verifyScript(b, expectCidr, 2)),
      confirm: { verify: verifyScript(b, expectCidr, Math.max(8, Math.min(25, Math.floor(p!.timeoutS / 3)))), commit: COMMIT, rollback: ROLLBACK_NOW, timeoutS: p!.timeoutS, rolledBack: ROLLED_BACK },
    };
    return [change];
  },
};

export default step;
