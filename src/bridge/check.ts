// The bridge's check: the host's network before the switch, renamed for the bridge (eth0 → br0), must
// all be there after it — every address, route (both families, every table), rule, DNS server and search
// domain, the MTU, the VLANs on top, a bond's slaves — and the gateway must answer. Anything missing is
// named ("default route via 10.0.2.2 dev br0 missing after the switch"); the runner then rolls back.
import { quote, sh } from '../core/sh.ts';
import type { NetState, Route } from '../facts/network.ts';
import { carriedAddrs, describeRoute, describeRule, ownRoute, type Bridge, type BridgeParams } from './carry.ts';

export interface Expectation {
  /** what holds, for the journal: "address 10.0.2.15/24 on br0" */
  what: string;
  /** what is missing when the test fails */
  missing: string;
  /** a POSIX sh test, true when it holds */
  test: string;
}

const routeTest = (r: { family: Route['family']; dst: string; gateway?: string; table?: string }, dev: string) =>
  sh`[ -n "$(ip -${String(r.family)} route show table ${r.table ?? 'main'} exact ${r.dst} ` +
  sh`${r.gateway ? ['via', r.gateway] : []} dev ${dev} 2>/dev/null)" ]`;

/** The host's network before, as it must be after the switch. `from` is where it lived (the NIC). */
export function expectations(b: Bridge, p: BridgeParams, before: NetState): Expectation[] {
  const from = before.links.find((l) => l.name === b.port)?.master === b.bridge ? b.bridge : b.port;
  const rename = (dev?: string) => (dev === from ? b.bridge : dev);
  const out: Expectation[] = [];
  const add = (what: string, missing: string, test: string) => out.push({ what, missing, test });
  add(
    `${b.port} is a port of ${b.bridge}`,
    `${b.port} is not a port of ${b.bridge} after the switch`,
    sh`[ "$(basename "$(readlink /sys/class/net/${b.port}/master 2>/dev/null)" 2>/dev/null)" = ${b.bridge} ]`,
  );
  const v4Asked = Boolean(p.addresses || p.gateway || p.dhcp !== undefined);
  // addresses: the NIC's (or those asked for, when the vars change IPv4)
  const addrs = carriedAddrs(before, from);
  const want = [
    ...(v4Asked
      ? b.addresses.filter((a) => !a.includes(':'))
      : addrs.filter((a) => a.family === 4).map((a) => `${a.address}/${a.prefix}`)),
    ...addrs.filter((a) => a.family === 6).map((a) => `${a.address}/${a.prefix}`),
  ];
  for (const a of new Set(want))
    add(
      `address ${a} on ${b.bridge}`,
      `address ${a} missing on ${b.bridge} after the switch`,
      sh`ip -o addr show dev ${b.bridge} 2>/dev/null | grep -qF -- ${` ${a} `}`,
    );
  if (v4Asked && b.dhcp && !b.addresses.some((a) => !a.includes(':')))
    add(
      `an IPv4 address by DHCP on ${b.bridge}`,
      `no IPv4 address by DHCP on ${b.bridge} after the switch`,
      sh`ip -o -4 addr show dev ${b.bridge} 2>/dev/null | grep -q ' inet '`,
    );
  // routes through the NIC (every table), and every default route the host had
  const vlanNames = new Set(b.vlans.map((v) => v.name));
  const routes = before.routes.filter(
    (r) => ownRoute(r) && r.dev && (r.dev === from || vlanNames.has(r.dev) || r.dst === 'default'),
  );
  for (const r of routes) {
    if (v4Asked && r.family === 4 && r.dev === from) continue; // IPv4 through the bridge is what the vars say: below
    const dev = rename(r.dev)!;
    const d = describeRoute(r, dev);
    add(d, `${d} missing after the switch`, routeTest(r, dev));
  }
  if (v4Asked) {
    for (const r of [
      ...(b.gateway ? [{ family: 4 as const, dst: 'default', gateway: b.gateway }] : []),
      ...b.routes.filter((x) => x.family === 4),
    ]) {
      const d = describeRoute({ ...r, table: ('table' in r ? r.table : undefined) ?? 'main' }, b.bridge);
      add(d, `${d} missing after the switch`, routeTest(r, b.bridge));
    }
  }
  // policy rules: all of the host's own (not the kernel's three), the NIC's renamed
  for (const r of before.rules.filter((x) => x.proto !== 'kernel')) {
    const renamed = { ...r, iif: rename(r.iif), oif: rename(r.oif) };
    const d = describeRule(renamed);
    const sel = [
      ...(renamed.src ? ['from', renamed.src] : []),
      ...(renamed.dst ? ['to', renamed.dst] : []),
      ...(renamed.iif ? ['iif', renamed.iif] : []),
      ...(renamed.oif ? ['oif', renamed.oif] : []),
      ...(renamed.fwmark ? ['fwmark', renamed.fwmark] : []),
    ];
    add(
      d,
      `${d} missing after the switch`,
      sh`[ -n "$(ip -${String(r.family)} rule show pref ${r.priority} ${sel} table ${r.table ?? 'main'} ` +
        sh`2>/dev/null)" ]`,
    );
  }
  // DNS servers and search domains, in resolv.conf or systemd-resolved
  const dns = p.dns ?? [
    ...new Set(before.dns.filter((d) => d.link === undefined || d.link === from).map((d) => d.server)),
  ];
  for (const s of dns)
    add(
      `DNS server ${s}`,
      `DNS server ${s} missing after the switch`,
      sh`{ grep -qE ${`^nameserver[[:space:]]+${s.replace(/\./g, '\\.')}([[:space:]]|$)`} /etc/resolv.conf ` +
        sh`2>/dev/null || resolvectl dns 2>/dev/null | grep -qwF -- ${s}; }`,
    );
  for (const dom of new Set(
    before.domains.filter((d) => d.link === undefined || d.link === from).map((d) => d.domain),
  )) {
    add(
      `search domain ${dom}`,
      `search domain ${dom} missing after the switch`,
      sh`{ grep -E '^(search|domain)[[:space:]]' /etc/resolv.conf 2>/dev/null | grep -qwF -- ${dom} || resolvectl ` +
        sh`domain 2>/dev/null | grep -qwF -- ${dom}; }`,
    );
  }
  // MTU, VLANs on top of the bridge (with their addresses), a bond's slaves
  const mtu = b.mtu ?? before.links.find((l) => l.name === from)?.mtu;
  if (mtu)
    add(
      `MTU ${mtu} on ${b.bridge}`,
      `MTU of ${b.bridge} is not ${mtu} after the switch`,
      sh`[ "$(cat /sys/class/net/${b.bridge}/mtu 2>/dev/null)" = ${String(mtu)} ]`,
    );
  for (const v of b.vlans) {
    add(
      `VLAN ${v.name} (id ${v.id}) on ${b.bridge}`,
      `VLAN ${v.name} is not on ${b.bridge} after the switch`,
      sh`ip -o link show ${v.name} 2>/dev/null | grep -qF -- ${` ${v.name}@${b.bridge}: `}`,
    );
    for (const a of carriedAddrs(before, v.name)) {
      const c = `${a.address}/${a.prefix}`;
      add(
        `address ${c} on ${v.name}`,
        `address ${c} missing on ${v.name} after the switch`,
        sh`ip -o addr show dev ${v.name} 2>/dev/null | grep -qF -- ${` ${c} `}`,
      );
    }
  }
  for (const s of b.bond?.slaves ?? [])
    add(
      `${s} is a slave of ${b.port}`,
      `${s} is no longer a slave of ${b.port} after the switch`,
      sh`[ "$(basename "$(readlink /sys/class/net/${s}/master 2>/dev/null)" 2>/dev/null)" = ${b.port} ]`,
    );
  // the gateway answers through the bridge (a route alone proves nothing)
  const gw = b.gateway;
  // (ping may not be installed: a TCP connect attempt resolves the neighbour just as well)
  if (gw)
    add(
      `gateway ${gw} answers on ${b.bridge}`,
      `gateway ${gw} does not answer on ${b.bridge}`,
      sh`{ ping -c 1 -W 1 ${gw} >/dev/null 2>&1 || timeout 2 bash -c ${`: </dev/tcp/${gw}/9`} >/dev/null 2>&1; ip ` +
        sh`neigh show ${gw} dev ${b.bridge} | grep -q lladdr; }`,
    );
  return out;
}

/** Waits up to `waitS` for every expectation; prints what was kept (exit 0) or each thing missing (exit 1). */
export function checkScript(exps: Expectation[], waitS: number): string {
  const body = exps
    .map((e) => `  if ${e.test}; then kept=$((kept+1)); else miss="$miss$nl"${quote(e.missing)}; fi`)
    .join('\n');
  return [
    `nl='\n'`,
    'check() {',
    '  miss=; kept=0',
    body,
    '  [ -z "$miss" ]',
    '}',
    `end=$(( $(date +%s) + ${Math.max(0, Math.floor(waitS))} ))`,
    'while :; do',
    `  if check; then echo "kept after the switch ($kept of ${exps.length}):"; printf '  %s\\n' ` +
      `${exps.map((e) => quote(e.what)).join(' ')}; exit 0; fi`,
    '  [ "$(date +%s)" -lt "$end" ] || break',
    '  sleep 1',
    'done',
    'printf "%s\\n" "$miss" | sed "/^$/d"',
    'exit 1',
  ].join('\n');
}
