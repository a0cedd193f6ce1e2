// What a bridge must carry over from the NIC it takes over: the NIC's whole network as the host has it
// now (addresses of both families and how they come — static, DHCP, RA —, routes in every table, policy
// rules, DNS and search domains, MTU, VLANs on it, a bond's slaves), refusing before any change what it
// cannot carry. Pure: the host's network in (src/facts/network.ts), the bridge as it must be out.
import type { Addr, Family, Link, NetState, Route, Rule, Stack } from '../facts/network.ts';

export interface BridgeParams {
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
  vlanFiltering: boolean;
  /** VLAN ids the port carries tagged into a VLAN-aware bridge (bridge_vlans) */
  vlans: number[];
}

export interface RouteSpec {
  family: Family;
  dst: string;
  gateway?: string;
  dev: string;
  /** undefined: the main table */
  table?: string;
  metric?: number;
  onlink?: boolean;
  type?: string;
  scope?: string;
  prefsrc?: string;
}

export interface RuleSpec {
  family: Family;
  priority: number;
  src?: string;
  dst?: string;
  iif?: string;
  oif?: string;
  table?: string;
  fwmark?: string;
  not?: boolean;
}

export interface VlanSpec {
  name: string;
  id: number;
  protocol?: string;
}

/** The bridge as it must be: everything the templates and the check need. */
export interface Bridge {
  bridge: string;
  port: string;
  /** the port is a bond: bridged as it is, its slaves untouched */
  bond?: { mode?: string; slaves: string[] };
  mac: string;
  mtu?: number;
  stp: boolean;
  forwardDelay: number;
  dhcp: boolean;
  /** networkd's DHCPv4 client identity, kept so the bridge gets the NIC's lease */
  dhcpClient?: { kind: 'mac' } | { kind: 'duid'; iaid: number };
  /** static addresses, both families, CIDR */
  addresses: string[];
  /** IPv6 addresses by router advertisement (SLAAC) / DHCPv6, as the NIC had them */
  ra: boolean;
  dhcp6: boolean;
  /** the main table's default gateways (kept apart because every stack has a word for them) */
  gateway?: string;
  gateway6?: string;
  routes: RouteSpec[];
  rules: RuleSpec[];
  dns: string[];
  domains: string[];
  vlans: VlanSpec[];
  vlanFiltering: boolean;
  vlanIds: number[];
}

/** A reason the bridge can't be made as asked: the host is refused before anything changes. */
export class Refusal extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
  }
}

const ipToInt = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
export function inSubnet(ip: string, cidr: string): boolean {
  if (ip.includes(':') || cidr.includes(':')) return false;
  const [net, bits] = cidr.split('/');
  const mask = Number(bits) === 0 ? 0 : 2 ** 32 - 2 ** (32 - Number(bits));
  return (ipToInt(ip) & mask) >>> 0 === (ipToInt(net) & mask) >>> 0;
}

/** The addresses a device has that someone configured or leased: not link-local, host-scoped or temporary ones. */
export const carriedAddrs = (net: NetState, dev: string) =>
  net.addrs.filter((a) => a.dev === dev && !isLinkLocal6(a) && a.scope !== 'host' && !a.temporary);
const isLinkLocal6 = (a: Addr) => a.family === 6 && (a.scope === 'link' || a.address.toLowerCase().startsWith('fe80:'));
const cidr = (a: Addr) => `${a.address}/${a.prefix}`;
const PLAIN_KINDS = new Set([undefined, 'bond']);

/** The NIC to take over: the one asked for, else the default route's, else the only candidate. */
export function choosePort(p: BridgeParams, net: NetState): string | undefined {
  if (p.port) return p.port;
  const def =
    net.routes.find((r) => r.dst === 'default' && r.table === 'main' && r.family === 4 && r.dev) ??
    net.routes.find((r) => r.dst === 'default' && r.table === 'main' && r.dev && !r.dev.startsWith('lo'));
  if (def?.dev && def.dev !== p.bridge) {
    const l = net.links.find((x) => x.name === def.dev);
    // the default route through a VLAN on the NIC: the NIC is the port
    if (l?.kind === 'vlan' && l.parent) return l.parent;
    return def.dev;
  }
  // converted already: the bridge's own member
  const members = net.links.filter((l) => l.master === p.bridge && PLAIN_KINDS.has(l.kind));
  if (members.length === 1) return members[0].name;
  const nics = net.links.filter(
    (l) =>
      l.name !== 'lo' &&
      PLAIN_KINDS.has(l.kind) &&
      !l.master &&
      net.addrs.some((a) => a.dev === l.name && a.family === 4),
  );
  return nics.length === 1 ? nics[0].name : undefined;
}

/** Routes worth carrying and checking: not the kernel's own (local table, multicast, link-local). */
export function ownRoute(r: Route): boolean {
  if (r.table === 'local') return false;
  if (r.family === 6 && (r.dst.startsWith('fe80:') || r.dst.startsWith('ff00:') || r.type === 'multicast'))
    return false;
  return true;
}

/** What the bridge will be, from what the host has now and what the vars ask. Throws Refusal. */
export function carry(p: BridgeParams, net: NetState): Bridge {
  const portName = choosePort(p, net);
  const names = net.links.filter((l) => l.name !== 'lo').map((l) => l.name);
  if (!portName)
    throw new Refusal(
      'bridge_port',
      `no default route and more than one NIC with an address (${
        net.links
          .filter((l) => l.name !== 'lo' && PLAIN_KINDS.has(l.kind))
          .map((l) => l.name)
          .join(', ') || 'none'
      }): say which NIC the bridge takes over`,
    );
  const port = net.links.find((l) => l.name === portName);
  if (!port) throw new Refusal('bridge_port', `NIC '${portName}' does not exist (the host has ${names.join(', ')})`);
  if (port.kind === 'bridge')
    throw new Refusal('bridge_port', `'${portName}' is itself a bridge: name the NIC it should take over`);
  if (!PLAIN_KINDS.has(port.kind))
    throw new Refusal(
      'bridge_port',
      `'${portName}' is a ${port.kind} interface: the bridge takes over a NIC or a bond`,
    );
  if (port.master && port.master !== p.bridge) {
    const m = net.links.find((l) => l.name === port.master);
    if (m?.kind === 'bond' || port.slaveKind === 'bond')
      throw new Refusal(
        'bridge_port',
        `'${portName}' is a slave of bond ${port.master}: bridge the bond instead (bridge_port: ${port.master}); ` +
          `its slaves stay as they are`,
      );
    throw new Refusal(
      'bridge_port',
      `'${portName}' is already a port of ${m?.kind ?? port.slaveKind ?? 'another device'} ${port.master}: a NIC ` +
        `can be in one bridge only`,
    );
  }
  const bridgeLink = net.links.find((l) => l.name === p.bridge);
  if (bridgeLink && bridgeLink.kind !== 'bridge')
    throw new Refusal('bridge_name', `'${p.bridge}' exists on the host as a ${bridgeLink.kind ?? 'NIC'}, not a bridge`);
  const converted = port.master === p.bridge && !!bridgeLink;
  // after a conversion the network lives on the bridge: read it from there, so a re-run plans the same
  const from = converted ? p.bridge : portName;

  // children: VLANs move onto the bridge; anything else on the NIC can't be carried
  const children = net.links.filter((l) => l.parent === from || l.parent === portName);
  const vlans: VlanSpec[] = [];
  for (const c of children) {
    if (c.kind === 'vlan' && c.vlanId !== undefined)
      vlans.push({
        name: c.name,
        id: c.vlanId,
        protocol: c.vlanProtocol && c.vlanProtocol !== '802.1Q' ? c.vlanProtocol : undefined,
      });
    else
      throw new Refusal(
        'bridge_port',
        `${c.name} is a ${c.kind ?? 'device'} on ${portName}; kvmforge does not know how to move it onto ` +
          `${p.bridge} — move or remove it first`,
      );
  }
  const wg = net.links.filter(
    (l) =>
      l.kind === 'wireguard' &&
      net.routes.some(
        (r) => r.dev === l.name && r.gateway && net.addrs.some((a) => a.dev === from && inSubnet(r.gateway!, cidr(a))),
      ),
  );
  if (wg.length)
    throw new Refusal(
      'bridge_port',
      `${wg.map((l) => l.name).join(', ')} (WireGuard) routes through ${portName}; kvmforge does not carry it over`,
    );
  const bond =
    port.kind === 'bond'
      ? { mode: port.bondMode, slaves: net.links.filter((l) => l.master === portName).map((l) => l.name) }
      : undefined;

  // addresses: static ones are written; dynamic ones come back the way they came (DHCP, RA)
  const addrs = carriedAddrs(net, from);
  const v4 = addrs.filter((a) => a.family === 4);
  const v6 = addrs.filter((a) => a.family === 6);
  const dhcp = p.dhcp ?? (p.addresses ? false : v4.some((a) => a.dynamic));
  const static4 = p.addresses ?? (dhcp ? [] : v4.filter((a) => !a.dynamic).map(cidr));
  if (p.dhcp === false && !p.addresses && !static4.length && v4.some((a) => a.dynamic))
    throw new Refusal(
      'bridge_dhcp',
      `${portName} has only a DHCP address and bridge_dhcp is false: give bridge_addresses`,
    );
  if (!dhcp && !static4.length && !v6.length)
    throw new Refusal(
      'bridge_addresses',
      `${portName} has no address to copy and DHCP is off: give bridge_addresses or bridge_dhcp: true`,
    );
  const static6 = v6.filter((a) => !a.dynamic).map(cidr);
  const dyn6 = v6.filter((a) => a.dynamic);
  const dhcp6 = dyn6.some((a) => a.prefix === 128);
  const ra =
    dyn6.some((a) => a.prefix !== 128) || net.routes.some((r) => r.family === 6 && r.dev === from && r.proto === 'ra');

  // routes through the NIC in any table; what DHCP or RA hands out comes back by itself
  const routes: RouteSpec[] = [];
  for (const r of net.routes.filter((x) => x.dev === from && ownRoute(x))) {
    if (r.proto === 'kernel') continue;
    if (r.proto === 'dhcp' && r.family === 4 && dhcp) continue;
    if (r.proto === 'ra' && r.family === 6) continue;
    if ((r.proto === 'dhcp' || r.proto === 'ra') && r.family === 6 && (ra || dhcp6)) continue;
    if (r.unsupported)
      throw new Refusal(
        'bridge_port',
        `${describeRoute(r, r.dev!)} on ${portName} is ${r.unsupported}; kvmforge does not carry it over`,
      );
    routes.push({
      family: r.family,
      dst: r.dst,
      gateway: r.gateway,
      dev: p.bridge,
      table: r.table === 'main' ? undefined : r.table,
      metric: r.family === 6 && r.metric === 1024 ? undefined : r.metric,
      onlink: r.onlink || undefined,
      type: r.type === 'unicast' ? undefined : r.type,
      scope:
        r.scope === 'global' || r.scope === 'universe' || r.scope === undefined || (r.scope === 'link' && !r.gateway)
          ? undefined
          : r.scope,
      prefsrc: r.prefsrc,
    });
  }
  // an explicit gateway replaces the NIC's default route of that family
  if (p.gateway) {
    const i = routes.findIndex((r) => r.family === 4 && r.dst === 'default' && !r.table);
    const g: RouteSpec = { family: 4, dst: 'default', gateway: p.gateway, dev: p.bridge };
    if (i >= 0) routes[i] = { ...routes[i], gateway: p.gateway };
    else routes.unshift(g);
  }
  // onlink is what networkd itself adds to a Gateway= it can't reach yet (a DHCP address): still the gateway
  const isMainDefault = (r: RouteSpec) =>
    r.dst === 'default' && !r.table && r.gateway && !r.metric && !r.type && !r.prefsrc;
  const gw4 = routes.find((r) => r.family === 4 && isMainDefault(r));
  const gw6 = routes.find((r) => r.family === 6 && isMainDefault(r));
  const v4Nets = [...static4, ...(dhcp ? v4.filter((a) => a.dynamic).map(cidr) : [])];
  if (p.addresses) {
    for (const r of routes.filter((x) => x.family === 4 && x.gateway && !x.onlink)) {
      if (!v4Nets.some((n) => inSubnet(r.gateway!, n)))
        throw new Refusal(
          'bridge_addresses',
          `${describeRoute({ ...r, table: r.table ?? 'main' }, p.bridge)} (from ${portName}) goes through ` +
            `${r.gateway}, which none of bridge_addresses (${p.addresses.join(', ')}) reaches`,
        );
    }
  }

  // policy rules that name the NIC, or steer its addresses or its tables
  const ownTables = new Set(routes.filter((r) => r.table).map((r) => r.table));
  const rules: RuleSpec[] = [];
  for (const r of net.rules) {
    if (r.proto === 'kernel') continue;
    const names = r.iif === from || r.oif === from;
    const srcOwn = r.src && addrs.some((a) => a.address === r.src!.split('/')[0]);
    const tableOwn = r.table && ownTables.has(r.table);
    if (!names && !srcOwn && !tableOwn) continue;
    if (r.unsupported)
      throw new Refusal('bridge_port', `${describeRule(r)} is ${r.unsupported}; kvmforge does not carry it over`);
    const rename = (n?: string) => (n === from ? p.bridge : n);
    rules.push({
      family: r.family,
      priority: r.priority,
      src: r.src,
      dst: r.dst,
      iif: rename(r.iif),
      oif: rename(r.oif),
      table: r.table,
      fwmark: r.fwmark,
      not: r.not || undefined,
    });
  }

  const linkDns = (link?: string) => link === undefined || link === from;
  const dns = p.dns ?? [
    ...new Set(net.dns.filter((d) => (dhcp ? d.link === from : linkDns(d.link))).map((d) => d.server)),
  ];
  const domains = [
    ...new Set(net.domains.filter((d) => (dhcp ? d.link === from : linkDns(d.link))).map((d) => d.domain)),
  ];

  const fromLink = (converted ? bridgeLink : port) as Link;
  const mtu = p.mtu ?? (fromLink.mtu && fromLink.mtu !== 1500 ? fromLink.mtu : undefined);
  const clientId = net.dhcpClientIds[from];
  const dhcpClient =
    !dhcp || !clientId
      ? undefined
      : clientId.startsWith('01')
        ? ({ kind: 'mac' } as const)
        : clientId.startsWith('ff') && clientId.length >= 10
          ? ({ kind: 'duid', iaid: parseInt(clientId.slice(2, 10), 16) } as const)
          : undefined;

  for (const id of p.vlans)
    if (!p.vlanFiltering) throw new Refusal('bridge_vlans', `bridge_vlans ${id} needs bridge_vlan_filtering: true`);
  return {
    bridge: p.bridge,
    port: portName,
    bond,
    mac: (converted ? bridgeLink?.mac : port.mac) ?? port.mac ?? '',
    mtu,
    stp: p.stp,
    forwardDelay: p.forwardDelay,
    dhcp,
    dhcpClient,
    addresses: [...static4, ...static6],
    ra,
    dhcp6,
    gateway: gw4?.gateway,
    gateway6: gw6?.gateway,
    routes: routes.filter((r) => r !== gw4 && r !== gw6),
    rules,
    dns,
    domains,
    vlans,
    vlanFiltering: p.vlanFiltering,
    vlanIds: [...new Set([...p.vlans, ...(p.vlanFiltering ? vlans.map((v) => v.id) : [])])].sort((a, b) => a - b),
  };
}

export function describeRoute(r: Pick<Route, 'dst' | 'gateway' | 'table' | 'family'>, dev: string): string {
  const what = r.dst === 'default' ? `default route${r.family === 6 ? ' (IPv6)' : ''}` : `route to ${r.dst}`;
  return (
    `${what}${r.gateway ? ` via ${r.gateway}` : ''} dev ` +
    `${dev}${r.table && r.table !== 'main' ? ` table ${r.table}` : ''}`
  );
}

export function describeRule(
  r: Pick<Rule, 'priority' | 'src' | 'dst' | 'iif' | 'oif' | 'table' | 'fwmark' | 'not'>,
): string {
  return (
    `rule ${r.priority}: ${r.not ? 'not ' : ''}from ` +
    `${r.src ?? 'all'}${r.dst ? ` to ${r.dst}` : ''}${r.iif ? ` iif ${r.iif}` : ''}${r.oif ? ` oif ${r.oif}` : ''}${r.fwmark ? ` fwmark ${r.fwmark}` : ''} lookup ${r.table ?? 'main'}`
  );
}

/** One line for the plan and the summary: what the bridge carries over. */
export function carriedSummary(b: Bridge): string {
  const parts: string[] = [];
  if (b.dhcp) parts.push('DHCP');
  if (b.addresses.length) parts.push(b.addresses.join(', '));
  if (b.ra) parts.push('IPv6 by RA');
  if (b.dhcp6) parts.push('DHCPv6');
  if (b.gateway) parts.push(`via ${b.gateway}`);
  if (b.gateway6) parts.push(`via ${b.gateway6}`);
  const n = (k: number, one: string) => `${k} ${one}${k === 1 ? '' : 's'}`;
  if (b.routes.length) parts.push(n(b.routes.length, 'route'));
  if (b.rules.length) parts.push(n(b.rules.length, 'rule'));
  if (b.dns.length) parts.push(`DNS ${b.dns.join(' ')}`);
  if (b.domains.length) parts.push(`search ${b.domains.join(' ')}`);
  if (b.mtu) parts.push(`MTU ${b.mtu}`);
  if (b.vlans.length) parts.push(`VLAN ${b.vlans.map((v) => v.name).join(', ')}`);
  if (b.bond) parts.push(`bond ${b.port} (${b.bond.slaves.join(', ')})`);
  return parts.join('; ');
}
