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
  // the kernel's own per-address routes, wherever they sit: a kernel without CONFIG_IPV6_MULTIPLE_TABLES keeps
  // IPv6's local routes in table main; they move with the addresses, which are carried and checked themselves
  if (r.type === 'local' || r.type === 'broadcast' || r.type === 'anycast') return false;
  if (r.family === 6 && (r.dst.startsWith('fe80:') || r.dst.startsWith('ff00:') || r.type === 'multicast'))
    return false;
  return true;
}

/** What the bridge will be, from what the host has now and what the vars ask. Throws Refusal. */
export function carry(p: BridgeParams, net: NetState): Bridge {
  const { port, bridgeLink, converted, from } = takenPort(p, net);
  const vlans = carriedVlans(p, net, port.name, from);
  const bond =
    port.kind === 'bond'
      ? { mode: port.bondMode, slaves: net.links.filter((l) => l.master === port.name).map((l) => l.name) }
      : undefined;
  const ip = carriedAddressing(p, net, port.name, from);
  const { routes, gw4, gw6 } = carriedRoutes(p, net, port.name, from, ip);
  const rules = carriedRules(p, net, from, ip.addrs, routes);
  const dnsOf = (link?: string) => (ip.dhcp ? link === from : link === undefined || link === from);
  const dns = p.dns ?? [...new Set(net.dns.filter((d) => dnsOf(d.link)).map((d) => d.server))];
  const domains = [...new Set(net.domains.filter((d) => dnsOf(d.link)).map((d) => d.domain))];
  const fromLink = (converted ? bridgeLink : port) as Link;
  for (const id of p.vlans)
    if (!p.vlanFiltering) throw new Refusal('bridge_vlans', `bridge_vlans ${id} needs bridge_vlan_filtering: true`);
  return {
    bridge: p.bridge,
    port: port.name,
    bond,
    mac: (converted ? bridgeLink?.mac : port.mac) ?? port.mac ?? '',
    mtu: p.mtu ?? (fromLink.mtu && fromLink.mtu !== 1500 ? fromLink.mtu : undefined),
    stp: p.stp,
    forwardDelay: p.forwardDelay,
    dhcp: ip.dhcp,
    dhcpClient: ip.dhcp ? dhcpClientOf(net.dhcpClientIds[from]) : undefined,
    addresses: [...ip.static4, ...ip.static6],
    ra: ip.ra,
    dhcp6: ip.dhcp6,
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

/** The NIC (or bond) the bridge takes over, refused when it can't be; `from` is where its network lives now
 * (after a conversion: the bridge, so a re-run plans the same). */
function takenPort(p: BridgeParams, net: NetState) {
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
  return { port, bridgeLink, converted, from: converted ? p.bridge : portName };
}

/** Children of the NIC: VLANs move onto the bridge; anything else on it (or WireGuard through it) is refused. */
function carriedVlans(p: BridgeParams, net: NetState, portName: string, from: string): VlanSpec[] {
  const vlans: VlanSpec[] = [];
  for (const c of net.links.filter((l) => l.parent === from || l.parent === portName)) {
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
  return vlans;
}

type Addressing = ReturnType<typeof carriedAddressing>;

/** Addresses: static ones are written; dynamic ones come back the way they came (DHCP, RA). */
function carriedAddressing(p: BridgeParams, net: NetState, portName: string, from: string) {
  const addrs = carriedAddrs(net, from);
  const v4 = addrs.filter((a) => a.family === 4);
  const v6 = addrs.filter((a) => a.family === 6);
  const dhcp = p.dhcp ?? (p.addresses ? false : v4.some((a) => a.dynamic));
  // static IPv4 addresses stay beside a DHCP one (a second address on a DHCP NIC); only an explicit
  // bridge_dhcp: true means DHCP instead of them
  const static4 = p.addresses ?? (p.dhcp === true ? [] : v4.filter((a) => !a.dynamic).map(cidr));
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
  const dyn6 = v6.filter((a) => a.dynamic);
  return {
    addrs,
    dhcp,
    static4,
    static6: v6.filter((a) => !a.dynamic).map(cidr),
    dhcp6: dyn6.some((a) => a.prefix === 128),
    ra:
      dyn6.some((a) => a.prefix !== 128) ||
      net.routes.some((r) => r.family === 6 && r.dev === from && r.proto === 'ra'),
    /** the v4 networks the bridge will be on */
    v4Nets: [...static4, ...(dhcp ? v4.filter((a) => a.dynamic).map(cidr) : [])],
  };
}

/** Routes through the NIC in any table; what DHCP or RA hands out comes back by itself. */
function carriedRoutes(p: BridgeParams, net: NetState, portName: string, from: string, ip: Addressing) {
  const routes: RouteSpec[] = [];
  for (const r of net.routes.filter((x) => x.dev === from && ownRoute(x))) {
    if (r.proto === 'kernel') continue;
    if (r.proto === 'dhcp' && r.family === 4 && ip.dhcp) continue;
    if (r.proto === 'ra' && r.family === 6) continue;
    if ((r.proto === 'dhcp' || r.proto === 'ra') && r.family === 6 && (ip.ra || ip.dhcp6)) continue;
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
  if (p.addresses) {
    for (const r of routes.filter((x) => x.family === 4 && x.gateway && !x.onlink)) {
      if (!ip.v4Nets.some((n) => inSubnet(r.gateway!, n)))
        throw new Refusal(
          'bridge_addresses',
          `${describeRoute({ ...r, table: r.table ?? 'main' }, p.bridge)} (from ${portName}) goes through ` +
            `${r.gateway}, which none of bridge_addresses (${p.addresses.join(', ')}) reaches`,
        );
    }
  }
  return {
    routes,
    gw4: routes.find((r) => r.family === 4 && isMainDefault(r)),
    gw6: routes.find((r) => r.family === 6 && isMainDefault(r)),
  };
}

/** Policy rules that name the NIC, or steer its addresses or its tables. */
function carriedRules(p: BridgeParams, net: NetState, from: string, addrs: Addressing['addrs'], routes: RouteSpec[]) {
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
  return rules;
}

/** networkd's DHCP client identifier as the bridge should send it (the lease is keyed on it). */
function dhcpClientOf(clientId: string | undefined): Bridge['dhcpClient'] {
  if (!clientId) return undefined;
  if (clientId.startsWith('01')) return { kind: 'mac' };
  if (clientId.startsWith('ff') && clientId.length >= 10)
    return { kind: 'duid', iaid: Number.parseInt(clientId.slice(2, 10), 16) };
  return undefined;
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
  const parts = [
    `rule ${r.priority}: ${r.not ? 'not ' : ''}from ${r.src ?? 'all'}`,
    r.dst && `to ${r.dst}`,
    r.iif && `iif ${r.iif}`,
    r.oif && `oif ${r.oif}`,
    r.fwmark && `fwmark ${r.fwmark}`,
    `lookup ${r.table ?? 'main'}`,
  ];
  return parts.filter(Boolean).join(' ');
}

type RouteLike = Pick<Route, 'dst' | 'gateway' | 'metric' | 'scope' | 'prefsrc'> &
  Partial<Pick<Route, 'table' | 'type' | 'onlink'>>;

/** A carried route in `ip route` argument order (the stacks that take ip syntax: ifupdown, ifcfg route-*). */
export function routeArgs(r: RouteLike, dev: string): string[] {
  const opt = (k: string, v: unknown) => (v !== undefined && v !== '' ? [k, String(v)] : []);
  return [
    r.dst,
    ...(r.gateway ? ['via', r.gateway] : []),
    'dev',
    dev,
    ...(r.table ? ['table', r.table] : []),
    ...opt('metric', r.metric),
    ...(r.type ? ['type', r.type] : []),
    ...(r.scope ? ['scope', r.scope] : []),
    ...(r.prefsrc ? ['src', r.prefsrc] : []),
    ...(r.onlink ? ['onlink'] : []),
  ];
}

/** A rule's selector in `ip rule` syntax (not, from, to, iif, oif, fwmark); the stacks add table and priority. */
export function ruleSelector(r: Pick<Rule, 'src' | 'dst' | 'iif' | 'oif' | 'fwmark' | 'not'>): string[] {
  return [
    ...(r.not ? ['not'] : []),
    ...(r.src ? ['from', r.src] : r.dst ? [] : ['from', 'all']),
    ...(r.dst ? ['to', r.dst] : []),
    ...(r.iif ? ['iif', r.iif] : []),
    ...(r.oif ? ['oif', r.oif] : []),
    ...(r.fwmark ? ['fwmark', r.fwmark] : []),
  ];
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
