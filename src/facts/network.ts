// The host's network as the kernel and its resolver see it: links, addresses, routes (every table, both
// families), policy rules, DNS and search domains, plus which stack manages it and from which files.
// One probe (read-only, one round trip) and pure parsers; the bridge step records it before a switch and
// checks the same things after.
import { fact } from '../core/types.ts';

export type Family = 4 | 6;

export interface Link {
  name: string;
  mac?: string;
  mtu?: number;
  up: boolean;
  /** linkinfo kind: bridge, bond, vlan, macvlan, wireguard, … (undefined: a plain NIC) */
  kind?: string;
  /** what this link is enslaved to (a bridge or a bond) and as what */
  master?: string;
  slaveKind?: string;
  /** the lower link of a VLAN, macvlan, ipvlan … (`eth0.100@eth0`) */
  parent?: string;
  vlanId?: number;
  vlanProtocol?: string;
  bondMode?: string;
}

export interface Addr {
  dev: string;
  family: Family;
  address: string;
  prefix: number;
  /** has a lifetime: handed out by DHCP (v4), or by RA/SLAAC or DHCPv6 (v6) */
  dynamic: boolean;
  scope: string;
  /** an IPv6 privacy address: it rotates, nobody configures it */
  temporary?: boolean;
}

export interface Route {
  family: Family;
  /** 'default' or a prefix (a host route without /N) */
  dst: string;
  gateway?: string;
  dev?: string;
  table: string;
  metric?: number;
  /** kernel, boot (by hand or ifupdown), static (networkd, NetworkManager), dhcp, ra, … */
  proto: string;
  scope?: string;
  type: string;
  prefsrc?: string;
  onlink: boolean;
  /** what kvmforge cannot carry over (multipath, nexthop objects, encapsulation): named here */
  unsupported?: string;
}

export interface Rule {
  family: Family;
  priority: number;
  src?: string;
  dst?: string;
  iif?: string;
  oif?: string;
  table?: string;
  fwmark?: string;
  proto: string;
  not: boolean;
  /** what kvmforge cannot carry over (goto, nop, suppress_prefixlength, uidrange …): named here */
  unsupported?: string;
}

export type Stack = 'networkd' | 'ifupdown' | 'networkmanager' | 'netplan' | 'ifcfg';

export interface NetState {
  links: Link[];
  addrs: Addr[];
  routes: Route[];
  rules: Rule[];
  /** nameservers of /etc/resolv.conf and of systemd-resolved (global and per link) */
  dns: { server: string; link?: string }[];
  domains: { domain: string; link?: string }[];
  stack?: Stack;
  /** the config file each interface comes from, when the stack can tell (networkd, NetworkManager, ifcfg) */
  sources: Record<string, string>;
  /** config files that name the port or one of its VLANs: path → text (ifupdown, netplan, ifcfg, NetworkManager) */
  files: Record<string, string>;
  /** networkd's DHCPv4 client identifier of each link (hex), so the bridge asks for the same lease */
  dhcpClientIds: Record<string, string>;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The probe: read-only. `names` are the interfaces whose config files are wanted (port, its VLANs, the bridge). */
export function networkProbe(names: string[]): string {
  const alt = names.map((n) => n.replace(/[.[\]*^$]/g, '\\$&')).join('|');
  const word = `(${alt})(\\.[0-9]+)?`;
  return [
    'export LC_ALL=C',
    // which daemons run, asked once (every process costs, most under emulation)
    'nd=no; nm=no; rs=no',
    'systemctl is-active -q systemd-networkd 2>/dev/null && nd=yes',
    'systemctl is-active -q NetworkManager 2>/dev/null && nm=yes',
    'systemctl is-active -q systemd-resolved 2>/dev/null && rs=yes',
    // links and addresses in one: `ip -d addr` carries the link details too
    "echo '@@addr'; ip -d -j addr show 2>/dev/null || echo '[]'",
    "echo '@@route'; ip -d -j route show table all 2>/dev/null || echo '[]'",
    "echo '@@rule4'; ip -d -j -4 rule show 2>/dev/null || echo '[]'",
    "echo '@@rule6'; ip -d -j -6 rule show 2>/dev/null || echo '[]'",
    "echo '@@resolv'; cat /etc/resolv.conf 2>/dev/null || true",
    "echo '@@resolved'",
    'if [ $rs = yes ]; then',
    "  resolvectl dns 2>/dev/null; echo '@@resolved-domains'; resolvectl domain 2>/dev/null",
    'fi || true',
    // which stack manages the port: the same order as the step's detection
    "echo '@@stack'",
    'if ls /etc/netplan/*.yaml >/dev/null 2>&1 && command -v netplan >/dev/null &&',
    `  grep -qsE ${q(`^[^#]*${word}:`)} /etc/netplan/*.yaml; then echo netplan`,
    `elif [ $nm = yes ] && nmcli -t -f DEVICE,STATE device 2>/dev/null | grep -qE ${q(`^${word}:connected`)}; then`,
    '  echo networkmanager',
    'elif ls /etc/sysconfig/network-scripts/ifcfg-* >/dev/null 2>&1 &&',
    `  grep -qsE ${q(`^DEVICE="?${word}"?$`)} /etc/sysconfig/network-scripts/ifcfg-*; then echo ifcfg`,
    'elif command -v ifup >/dev/null &&',
    `  grep -qsE ${q(`^[[:space:]]*(auto|allow-hotplug|iface)[[:space:]]+([^#]*[[:space:]])?${word}([[:space:]]|$)`)}` +
      ' \\',
    '    /etc/network/interfaces /etc/network/interfaces.d/*; then echo ifupdown',
    'elif [ $nd = yes ]; then echo networkd; fi',
    // where the port's and the bridge's config comes from
    `echo '@@sources'; for i in ${names.map(q).join(' ')}; do [ -e "/sys/class/net/$i" ] || continue`,
    '  if [ $nd = yes ]; then',
    '    f=$(networkctl status -n0 "$i" 2>/dev/null | sed -n "s/^ *Network File: //p")',
    '    [ -z "$f" ] || [ "$f" = n/a ] || echo "$i $f"',
    '  fi',
    '  if [ $nm = yes ]; then',
    '    f=$(nmcli -g GENERAL.CON-PATH device show "$i" 2>/dev/null | tail -n1); [ -z "$f" ] || echo "$i nm:$f"',
    '  fi',
    '  [ -f "/etc/sysconfig/network-scripts/ifcfg-$i" ] && echo "$i /etc/sysconfig/network-scripts/ifcfg-$i"',
    'done; true',
    // the files that name them (or a VLAN on them: eth0.100), whole: ifupdown stanzas, netplan YAML, ifcfg,
    // NetworkManager keyfiles
    "echo '@@files'",
    's=/etc/sysconfig/network-scripts',
    'for f in /etc/network/interfaces /etc/network/interfaces.d/* /etc/netplan/*.yaml \\',
    '  $s/ifcfg-* $s/route-* $s/route6-* $s/rule-* $s/rule6-* /etc/NetworkManager/system-connections/*; do',
    '  [ -f "$f" ] || continue; case $f in */kvmforge-*|*.kvmforge.bak|*/90-kvmforge-*) continue;; esac',
    `  grep -qsE -e ${q(`(^|[^A-Za-z0-9_.-])${word}([^A-Za-z0-9_-]|$)`)} "$f" || case \${f##*/} in`,
    `    ifcfg-*|route-*|route6-*|rule-*|rule6-*) echo "\${f##*/}" | grep -qE -e ${q(`-${word}$`)} || continue;;`,
    '    *) continue;;',
    '  esac',
    '  printf "@@file %s\\n" "$f"; cat "$f"; echo; echo "@@end"',
    'done',
    // networkd's DHCP client identifier (the lease is keyed on it, and its IAID follows the interface name)
    "echo '@@clientid'",
    'if [ $nd = yes ]; then for d in /sys/class/net/*; do',
    '  read -r i < "$d/ifindex" 2>/dev/null || continue; l=/run/systemd/netif/leases/$i; [ -f "$l" ] || continue',
    '  while IFS== read -r k v; do [ "$k" = CLIENTID ] && echo "${d##*/} $v"; done < "$l"',
    'done; fi; true',
  ].join('\n');
}

function sections(out: string): Record<string, string> {
  const res: Record<string, string> = {};
  let cur = '';
  let inFile = false;
  for (const line of out.split('\n')) {
    const m = /^@@([a-z46-]+)$/.exec(line);
    if (!inFile && m) {
      cur = m[1];
      res[cur] = '';
      continue;
    }
    if (line.startsWith('@@file ')) inFile = true;
    if (line === '@@end') inFile = false;
    if (cur) res[cur] += `${line}\n`;
  }
  return res;
}

function json<T>(text: string | undefined): T[] {
  const t = (text ?? '').trim();
  if (!t) return [];
  try {
    return JSON.parse(t) as T[];
  } catch {
    return [];
  }
}

interface IpLink {
  ifname: string;
  address?: string;
  mtu?: number;
  flags?: string[];
  master?: string;
  link?: string;
  linkinfo?: {
    info_kind?: string;
    info_slave_kind?: string;
    info_data?: { id?: number; protocol?: string; mode?: string };
  };
}

export function parseLinks(text: string): Link[] {
  return json<IpLink>(text).map((l) => ({
    name: l.ifname,
    mac: l.address,
    mtu: l.mtu,
    up: (l.flags ?? []).includes('UP'),
    kind: l.linkinfo?.info_kind,
    master: l.master,
    slaveKind: l.linkinfo?.info_slave_kind,
    parent: l.link ?? undefined,
    vlanId: l.linkinfo?.info_kind === 'vlan' ? l.linkinfo.info_data?.id : undefined,
    vlanProtocol: l.linkinfo?.info_kind === 'vlan' ? l.linkinfo.info_data?.protocol : undefined,
    bondMode: l.linkinfo?.info_kind === 'bond' ? l.linkinfo.info_data?.mode : undefined,
  }));
}

export function parseAddrs(text: string): Addr[] {
  const out: Addr[] = [];
  for (const l of json<{
    ifname: string;
    addr_info?: {
      family: string;
      local: string;
      prefixlen: number;
      dynamic?: boolean;
      scope?: string;
      temporary?: boolean;
    }[];
  }>(text)) {
    for (const a of l.addr_info ?? []) {
      if (a.family !== 'inet' && a.family !== 'inet6') continue;
      out.push({
        dev: l.ifname,
        family: a.family === 'inet' ? 4 : 6,
        address: a.local,
        prefix: a.prefixlen,
        dynamic: Boolean(a.dynamic),
        scope: a.scope ?? 'global',
        ...(a.temporary ? { temporary: true } : {}),
      });
    }
  }
  return out;
}

interface IpRoute {
  type?: string;
  dst: string;
  gateway?: string;
  via?: { family?: string; host?: string };
  dev?: string;
  table?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  prefsrc?: string;
  flags?: string[];
  nexthops?: unknown[];
  nhid?: number;
  encap?: string;
  pref?: string;
}

/** `ip -j route` (both families when `family` is not given: told apart by their addresses). */
export function parseRoutes(text: string, family?: Family): Route[] {
  return json<IpRoute>(text).map((r) => {
    // iproute2 prints `pref` on every IPv6 route only
    const fam: Family = family ?? (r.dst.includes(':') || r.gateway?.includes(':') || r.pref !== undefined ? 6 : 4);
    const unsupported = r.nexthops
      ? 'a multipath route'
      : r.nhid !== undefined
        ? 'a route through a nexthop object'
        : r.encap
          ? `an encapsulated (${r.encap}) route`
          : r.via
            ? 'a route via another address family'
            : undefined;
    return {
      family: fam,
      dst: r.dst,
      gateway: r.gateway,
      dev: r.dev,
      table: r.table ?? 'main',
      metric: r.metric,
      proto: r.protocol ?? 'boot',
      scope: r.scope,
      type: r.type ?? 'unicast',
      prefsrc: r.prefsrc,
      onlink: (r.flags ?? []).includes('onlink'),
      ...(unsupported ? { unsupported } : {}),
    };
  });
}

interface IpRule {
  priority: number;
  src?: string;
  srclen?: number;
  dst?: string;
  dstlen?: number;
  iif?: string;
  oif?: string;
  table?: string;
  fwmark?: string;
  fwmask?: string;
  protocol?: string;
  not?: null | boolean;
  action?: string;
  goto?: number;
  [k: string]: unknown;
}

const RULE_KEYS = new Set([
  'priority',
  'src',
  'srclen',
  'dst',
  'dstlen',
  'iif',
  'oif',
  'table',
  'fwmark',
  'fwmask',
  'protocol',
  'not',
  'l3mdev',
]);

export function parseRules(text: string, family: Family): Rule[] {
  return json<IpRule>(text).map((r) => {
    const prefix = (a?: string, len?: number) =>
      !a || a === 'all' ? undefined : len !== undefined ? `${a}/${len}` : a;
    const odd = Object.keys(r).filter((k) => !RULE_KEYS.has(k));
    const unsupported =
      r.action && r.action !== 'unicast'
        ? `a rule with action ${r.action}`
        : odd.length
          ? `a rule with ${odd.join(', ')}`
          : undefined;
    return {
      family,
      priority: r.priority,
      src: prefix(r.src, r.srclen),
      dst: prefix(r.dst, r.dstlen),
      iif: r.iif,
      oif: r.oif,
      table: r.table,
      fwmark: r.fwmark ? (r.fwmask && r.fwmask !== '0xffffffff' ? `${r.fwmark}/${r.fwmask}` : r.fwmark) : undefined,
      proto: r.protocol ?? 'boot',
      not: 'not' in r,
      ...(unsupported ? { unsupported } : {}),
    };
  });
}

/** resolv.conf, and resolvectl's `Link 2 (eth0): 10.0.2.3` lines. */
export function parseDns(resolv: string, resolved: string): Pick<NetState, 'dns' | 'domains'> {
  const dns: NetState['dns'] = [];
  const domains: NetState['domains'] = [];
  for (const line of resolv.split('\n')) {
    const m = /^\s*(nameserver|search|domain)\s+(.+?)\s*$/.exec(line);
    if (!m) continue;
    if (m[1] === 'nameserver') {
      if (!/^127\.0\.0\.53$/.test(m[2])) dns.push({ server: m[2].split(/\s+/)[0] });
    } else for (const d of m[2].split(/\s+/)) domains.push({ domain: d });
  }
  const [servers = '', doms = ''] = resolved.split('@@resolved-domains');
  const perLink = (text: string, add: (value: string, link?: string) => void) => {
    for (const line of text.split('\n')) {
      const m = /^(Global|Link \d+ \(([^)]+)\)):\s*(.*)$/.exec(line.trim());
      if (!m) continue;
      for (const v of m[3].split(/\s+/).filter(Boolean)) add(v, m[2]);
    }
  };
  perLink(servers, (server, link) => {
    if (!dns.some((d) => d.server === server && d.link === link)) dns.push({ server, link });
  });
  perLink(doms, (domain, link) => {
    if (domain !== '~.' && !domains.some((d) => d.domain === domain && d.link === link)) domains.push({ domain, link });
  });
  return { dns, domains };
}

export function parseNetwork(out: string): NetState {
  const s = sections(out);
  const files: Record<string, string> = {};
  let file: string | undefined;
  let lines: string[] = [];
  for (const line of (s.files ?? '').split('\n')) {
    if (line.startsWith('@@file ')) {
      file = line.slice(7);
      lines = [];
    } else if (line === '@@end' && file) {
      files[file] = lines.join('\n').replace(/\n$/, '');
      file = undefined;
    } else if (file) lines.push(line);
  }
  const pairs = (text = '') =>
    Object.fromEntries(
      text
        .split('\n')
        .map((l) => /^(\S+)\s+(.+)$/.exec(l.trim()))
        .filter((m): m is RegExpExecArray => !!m)
        .map((m) => [m[1], m[2]]),
    );
  const stack = (s.stack ?? '').trim();
  return {
    links: parseLinks(s.addr ?? ''),
    addrs: parseAddrs(s.addr ?? ''),
    routes:
      s.route !== undefined
        ? parseRoutes(s.route)
        : [...parseRoutes(s.route4 ?? '', 4), ...parseRoutes(s.route6 ?? '', 6)],
    rules: [...parseRules(s.rule4 ?? '', 4), ...parseRules(s.rule6 ?? '', 6)],
    ...parseDns(s.resolv ?? '', `${s.resolved ?? ''}@@resolved-domains${s['resolved-domains'] ?? ''}`),
    stack: (['networkd', 'ifupdown', 'networkmanager', 'netplan', 'ifcfg'] as const).find((x) => x === stack),
    sources: pairs(s.sources),
    files,
    dhcpClientIds: pairs(s.clientid),
  };
}

/** The host's network as a named fact, with the config files of these interfaces (the port, the bridge). */
export const network = (names: string[]) =>
  fact(`network:${names.join(',')}`, networkProbe(names), (out) => parseNetwork(out));
