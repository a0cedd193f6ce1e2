// The bridge in each network stack's own configuration: new files for the bridge, and the port's and its
// VLANs' existing files changed in place (their old versions kept by the switch, restored by a rollback).
// Plus the commands that make each stack apply a switch or a rollback.
import { posix } from 'node:path';
import type * as Yaml from 'yaml';
import { lazy } from '../core/lazy.ts';
import { renderTemplate } from '../core/render.ts';
import { sh } from '../core/sh.ts';
import type { FileSpec } from '../core/types.ts';
import type { NetState, Stack } from '../facts/network.ts';
import { Refusal, routeArgs, ruleSelector, type Bridge } from './carry.ts';

export const STACKS: readonly Stack[] = ['networkd', 'ifupdown', 'networkmanager', 'netplan', 'ifcfg'];
const MARK = '#kvmforge-bridge# ';
const yaml = lazy<typeof Yaml>('yaml');

const ifupdownFiles = (net: NetState) =>
  Object.entries(net.files).filter(
    ([p]) => p === '/etc/network/interfaces' || p.startsWith('/etc/network/interfaces.d/'),
  );

/** An ifupdown file with the port's stanzas commented out (a bond's kept, as `inet manual`, so the bond is still made),
 * and the port and its VLANs taken off `auto`/`allow-*` lines (the bridge's stanza brings them up). */
export function ifupdownEdit(text: string, nic: string, opts: { bond?: boolean; vlans?: string[] } = {}): string {
  const out: string[] = [];
  // a bond stays on its auto line (it must exist before the bridge enslaves it); a NIC and its VLANs are brought up by
  // the bridge
  const takeOff = new Set([...(opts.bond ? [] : [nic]), ...(opts.vlans ?? [])]);
  let stanza: 'port' | 'port6' | 'other' = 'other';
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    const starts =
      !/^\s/.test(line) && /^(auto|allow-[a-z]+|iface|mapping|source|source-directory|rename)$/.test(words[0] ?? '');
    if (starts) stanza = 'other';
    if (starts && /^(auto|allow-)/.test(words[0]) && words.slice(1).some((w) => takeOff.has(w))) {
      out.push(MARK + line);
      const rest = words.slice(1).filter((w) => !takeOff.has(w));
      if (rest.length) out.push(`${words[0]} ${rest.join(' ')}`);
      continue;
    }
    if (starts && words[0] === 'iface' && words[1] === nic) {
      stanza = words[2] === 'inet6' ? 'port6' : 'port';
      if (opts.bond && stanza === 'port' && words[3] === 'manual') {
        out.push(line); // already the bridge's port
        continue;
      }
      if (opts.bond && stanza === 'port') {
        out.push(MARK + line, `iface ${nic} inet manual`);
        continue;
      }
      out.push(MARK + line);
      continue;
    }
    const option = /^\s+\S/.test(line);
    if (stanza === 'port6' && option) out.push(MARK + line);
    else if (stanza === 'port' && option) {
      // a bond keeps what makes it a bond; everything about addresses and routes moves to the bridge
      const keep = opts.bond && /^\s+(bond[-_]|slaves|hwaddress|mtu|pre-up ip link|post-down ip link)/.test(line);
      out.push(keep ? line : MARK + line);
    } else out.push(line);
  }
  return out.join('\n');
}

/** INI (keyfile) edit: sets `key=value` in `[section]`, adding the section or key when missing. */
export function iniSet(text: string, section: string, key: string, value: string): string {
  const lines = text.split('\n');
  let cur = '';
  let secEnd = -1;
  for (let i = 0; i < lines.length; i++) {
    const s = /^\[(.+)\]\s*$/.exec(lines[i]);
    if (s) {
      cur = s[1];
      continue;
    }
    if (cur !== section) continue;
    if (lines[i].trim()) secEnd = i;
    if (new RegExp(`^${key}\\s*=`).test(lines[i])) {
      lines[i] = `${key}=${value}`;
      return lines.join('\n');
    }
  }
  if (secEnd < 0) {
    const at = lines.indexOf(`[${section}]`);
    if (at >= 0) secEnd = at;
  }
  if (secEnd >= 0) {
    lines.splice(secEnd + 1, 0, `${key}=${value}`);
    return lines.join('\n');
  }
  return `${text.replace(/\n*$/, '\n')}\n[${section}]\n${key}=${value}\n`;
}

const iniGet = (text: string, section: string, key: string) => {
  let cur = '';
  for (const line of text.split('\n')) {
    const s = /^\[(.+)\]\s*$/.exec(line);
    if (s) cur = s[1];
    else if (cur === section) {
      const m = new RegExp(`^${key}\\s*=\\s*(.*)$`).exec(line);
      if (m) return m[1].trim();
    }
  }
  return undefined;
};

/** Drops whole [sections] from a keyfile. */
const iniDrop = (text: string, sections: string[]) => {
  const out: string[] = [];
  let drop = false;
  for (const line of text.split('\n')) {
    const s = /^\[(.+)\]\s*$/.exec(line);
    if (s) drop = sections.includes(s[1]);
    if (!drop) out.push(line);
  }
  return out.join('\n');
};

/** NetworkManager: our bridge and port profiles; the NIC's own profile stops autoconnecting; a bond's profile
 * becomes the bridge's port; VLAN profiles get the bridge as parent. */
function networkManagerFiles(b: Bridge, net: NetState, t: (n: string) => string): FileSpec[] {
  const files: FileSpec[] = [
    {
      path: `/etc/NetworkManager/system-connections/kvmforge-${b.bridge}.nmconnection`,
      content: t('nm-bridge.nmconnection.ejs'),
      mode: '600',
    },
  ];
  const vlanNames = new Set(b.vlans.map((v) => v.name));
  const found = new Set<string>();
  for (const [path, text] of Object.entries(net.files).filter(([p]) =>
    p.startsWith('/etc/NetworkManager/system-connections/'),
  )) {
    const ifname = iniGet(text, 'connection', 'interface-name');
    const type = iniGet(text, 'connection', 'type');
    if (
      type === 'vlan' &&
      ifname &&
      (iniGet(text, 'vlan', 'parent') === b.port ||
        vlanNames.has(ifname) ||
        iniGet(text, 'vlan', 'parent') === b.bridge)
    ) {
      found.add(ifname);
      files.push({ path, content: iniSet(text, 'vlan', 'parent', b.bridge), mode: '600' });
    } else if (ifname === b.port && b.bond && type === 'bond') {
      found.add(b.port);
      let c = iniDrop(text, ['ipv4', 'ipv6']);
      c = iniSet(iniSet(c, 'connection', 'master', b.bridge), 'connection', 'slave-type', 'bridge');
      files.push({ path, content: c, mode: '600' });
    } else if (ifname === b.port)
      files.push({ path, content: iniSet(text, 'connection', 'autoconnect', 'false'), mode: '600' });
  }
  notFound(
    'a NetworkManager profile',
    [...(b.bond ? [b.port] : []), ...vlanNames].filter((n) => !found.has(n)),
  );
  if (!b.bond)
    files.push({
      path: `/etc/NetworkManager/system-connections/kvmforge-${b.bridge}-port-${b.port}.nmconnection`,
      content: t('nm-port.nmconnection.ejs'),
      mode: '600',
    });
  return files;
}

/** A bond or VLAN that must move but that no config file of the stack defines: refused (it would be lost). */
function notFound(what: string, names: string[]) {
  if (names.length)
    throw new Refusal(
      'bridge_port',
      `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} in no ${what.replace(/^an? /, '')} kvmforge can ` +
        `find, so ${names.length === 1 ? 'it' : 'they'} cannot be moved onto the bridge: define ` +
        `${names.length === 1 ? 'it' : 'them'} in ${what} first`,
    );
}

const ADDRESSING = [
  'dhcp4',
  'dhcp6',
  'addresses',
  'gateway4',
  'gateway6',
  'routes',
  'routing-policy',
  'nameservers',
  'accept-ra',
  'ipv6-privacy',
  'dhcp4-overrides',
  'dhcp6-overrides',
  'dhcp-identifier',
  'mtu',
];

/**
 * netplan: the files that define the port lose its addressing (it moves to the bridge's file); VLANs get `link:
 * BRIDGE`.
 */
function netplanFiles(b: Bridge, net: NetState): { files: FileSpec[]; declared: boolean } {
  const files: FileSpec[] = [];
  let declared = false;
  const vlanNames = new Set(b.vlans.map((v) => v.name));
  const found = new Set<string>();
  for (const [path, text] of Object.entries(net.files).filter(([p]) => p.startsWith('/etc/netplan/'))) {
    const { parseDocument, isMap } = yaml();
    const doc = parseDocument(text);
    let changed = false;
    for (const kind of ['ethernets', 'bonds']) {
      const port = doc.getIn(['network', kind, b.port]);
      if (!isMap(port)) continue;
      declared = true;
      for (const k of ADDRESSING) {
        if (!port.has(k)) continue;
        port.delete(k);
        changed = true;
      }
    }
    const vlans = doc.getIn(['network', 'vlans']);
    if (isMap(vlans)) {
      for (const item of vlans.items) {
        const name = String((item.key as { value?: unknown })?.value ?? item.key);
        const v = item.value;
        if (!isMap(v) || !(v.get('link') === b.port || vlanNames.has(name) || v.get('link') === b.bridge)) continue;
        found.add(name);
        if (v.get('link') !== b.bridge) {
          v.set('link', b.bridge);
          changed = true;
        }
      }
    }
    if (changed) files.push({ path, content: doc.toString(), mode: '600' });
  }
  notFound('a netplan file', [
    ...(b.bond && !declared ? [b.port] : []),
    ...[...vlanNames].filter((n) => !found.has(n)),
  ]);
  return { files, declared };
}

const IFCFG_LINK_KEYS =
  /^(DEVICE|NAME|UUID|TYPE|HWADDR|MACADDR|ONBOOT|NM_CONTROLLED|BONDING_OPTS|BONDING_MASTER|MTU|ETHTOOL_OPTS|USERCTL)=/;

/** RHEL ifcfg: ifcfg-BRIDGE + its route/rule files; the port's ifcfg keeps only what makes the link; its old
 * route/rule files are emptied (they name the port); VLANs get PHYSDEV=BRIDGE. */
function ifcfgFiles(b: Bridge, net: NetState, t: (n: string, extra?: object) => string): FileSpec[] {
  const dir = '/etc/sysconfig/network-scripts';
  const files: FileSpec[] = [{ path: `${dir}/ifcfg-${b.bridge}`, content: t('ifcfg-bridge.ejs') }];
  for (const [kind, fam, name] of [
    ['routes', 4, 'route'],
    ['routes', 6, 'route6'],
    ['rules', 4, 'rule'],
    ['rules', 6, 'rule6'],
  ] as const) {
    const some = kind === 'routes' ? b.routes.some((r) => r.family === fam) : b.rules.some((r) => r.family === fam);
    if (some) files.push({ path: `${dir}/${name}-${b.bridge}`, content: t('ifcfg-routes.ejs', { kind, family: fam }) });
    if (net.files[`${dir}/${name}-${b.port}`] !== undefined)
      files.push({ path: `${dir}/${name}-${b.port}`, content: `# kvmforge bridge: moved to ${name}-${b.bridge}\n` });
  }
  const old = net.files[`${dir}/ifcfg-${b.port}`] ?? '';
  const kept = old.split('\n').filter((l) => IFCFG_LINK_KEYS.test(l) && !/^(MTU)=/.test(l));
  const has = (k: string) => kept.some((l) => l.startsWith(`${k}=`));
  const port = [
    `# kvmforge bridge: ${b.port} is a port of ${b.bridge} (RHEL network-scripts)`,
    ...(has('DEVICE') ? [] : [`DEVICE=${b.port}`]),
    ...(has('TYPE') ? [] : [b.bond ? 'TYPE=Bond' : 'TYPE=Ethernet']),
    ...(has('ONBOOT') ? [] : ['ONBOOT=yes']),
    ...(has('HWADDR') || b.bond ? [] : [`HWADDR=${b.mac}`]),
    ...kept,
    'BOOTPROTO=none',
    `BRIDGE=${b.bridge}`,
    ...(b.mtu ? [`MTU=${b.mtu}`] : []),
  ];
  files.push({ path: `${dir}/ifcfg-${b.port}`, content: `${port.join('\n')}\n` });
  notFound('an ifcfg file', [
    ...(b.bond && !old ? [b.port] : []),
    ...b.vlans.map((v) => v.name).filter((n) => net.files[`${dir}/ifcfg-${n}`] === undefined),
  ]);
  for (const v of b.vlans) {
    const f = `${dir}/ifcfg-${v.name}`;
    const text = net.files[f];
    if (text === undefined) continue;
    const lines = text.split('\n').filter((l) => !/^PHYSDEV=/.test(l));
    files.push({ path: f, content: `${lines.join('\n').replace(/\n*$/, '\n')}PHYSDEV=${b.bridge}\n` });
  }
  return files;
}

/** The stack's own config for the bridge, and the existing files it changes. */
export function configFiles(stack: Stack, b: Bridge, net: NetState): FileSpec[] {
  const t = (name: string, extra: object = {}) =>
    renderTemplate(`bridge/${name}`, { b, routeArgs, ruleSelector, ...extra });
  switch (stack) {
    case 'networkd': {
      const mine = `10-kvmforge-${b.bridge}-port-${b.port}.network`;
      const src = net.sources[b.port];
      if (src && !posix.basename(src).startsWith('10-kvmforge-') && posix.basename(src) < mine) {
        throw new Refusal(
          'bridge_stack',
          `systemd-networkd reads ${src} for ${b.port} before kvmforge's ${mine} would be read (files are taken in ` +
            `name order): rename it to sort after ${mine}, or merge it`,
        );
      }
      return [
        { path: `/etc/systemd/network/10-kvmforge-${b.bridge}.netdev`, content: t('networkd.netdev.ejs') },
        { path: `/etc/systemd/network/${mine}`, content: t('networkd-port.network.ejs') },
        { path: `/etc/systemd/network/10-kvmforge-${b.bridge}.network`, content: t('networkd-bridge.network.ejs') },
      ];
    }
    case 'ifupdown':
      return [
        ...ifupdownFiles(net)
          .map(([path, text]) => ({
            path,
            content: ifupdownEdit(text, b.port, { bond: !!b.bond, vlans: b.vlans.map((v) => v.name) }),
          }))
          .filter((f) => f.content !== net.files[f.path]),
        { path: `/etc/network/interfaces.d/kvmforge-${b.bridge}`, content: t('ifupdown.ejs') },
      ];
    case 'networkmanager':
      return networkManagerFiles(b, net, t);
    case 'netplan': {
      if (b.vlanFiltering)
        throw new Refusal(
          'bridge_vlan_filtering',
          'netplan has no setting for a VLAN-aware bridge: use VLAN interfaces on the bridge (the default), or ' +
            'another stack',
        );
      const { files, declared } = netplanFiles(b, net);
      return [
        ...files,
        {
          path: `/etc/netplan/90-kvmforge-${b.bridge}.yaml`,
          content: t('netplan.yaml.ejs', { declarePort: !declared }),
          mode: '600',
        },
      ];
    }
    case 'ifcfg':
      if (b.vlanFiltering)
        throw new Refusal(
          'bridge_vlan_filtering',
          'RHEL network-scripts have no setting for a VLAN-aware bridge: use VLAN interfaces on the bridge (the ' +
            'default), or another stack',
        );
      return ifcfgFiles(b, net, t);
  }
}

/** Where a switch keeps its state on the host; `pending/` exists from the switch until its commit or rollback. */
export const STATE_DIR = '/var/lib/kvmforge/bridge';

/**
 * A DHCP client whose first tries went unanswered (a busy host, a slow network) backs off: networkd asks at 0, 4, 8,
 * 16, 32 and 64 s, then not before 128 s, past the rollback timer (seen in CI: br0 without a lease for all of a 90 s
 * window). While the switch is unconfirmed and br0 has no DHCP address, restart its client, which asks at once:
 * after 15 s, then 30, 60 and every 120 s. `networkctl renew` would not do: it renews a lease and does nothing
 * without one (systemd 252, sd_dhcp_client_send_renew). A restart takes all of br0's configuration off and puts it
 * back (link_drop_managed_config), IPv6 too, so the waits grow: restarts every 10 s never let a host too busy to
 * finish one in 10 s get anything (seen in a cold CI run: br0 with no address at all, IPv4 or IPv6, for 90 s).
 */
function dhcpNudge(bridge: string, stateDir: string): string {
  return (
    // at most about an hour, should the switch's state dir outlive its timer
    sh`w=15; n=0; while [ $n -lt 32 ]; do n=$((n+1)); sleep $w; [ -d ${stateDir}/pending ] || break; ` +
    sh`ip -o -4 addr show dev ${bridge} dynamic | grep -q ' inet ' && break; ` +
    sh`networkctl reconfigure ${bridge} 2>/dev/null || true; [ $w -lt 120 ] && w=$((w*2)); done`
  );
}

/** Commands that make the stack apply its (new or restored) config; `up` after a switch, `down` on rollback. */
export function stackCommands(stack: Stack, b: Bridge, stateDir = STATE_DIR): { up: string; down: string } {
  const vlans = b.vlans.map((v) => v.name);
  // a VLAN's parent can't change under it: it is made again on the bridge (and on the NIC by a rollback)
  const dropVlans = vlans.length ? sh`for v in ${vlans}; do ip link del "$v" 2>/dev/null || true; done` : '';
  const unbridge = [
    dropVlans,
    sh`ip link set ${b.port} nomaster 2>/dev/null || true; ip link del ${b.bridge} 2>/dev/null || true`,
  ]
    .filter(Boolean)
    .join('\n');
  switch (stack) {
    case 'networkd':
      return {
        up: [
          dropVlans,
          sh`networkctl reload; networkctl reconfigure ${b.port}; networkctl reconfigure ${b.bridge} 2>/dev/null ` +
            sh`|| true`,
          b.dhcp ? dhcpNudge(b.bridge, stateDir) : '',
        ]
          .filter(Boolean)
          .join('\n'),
        down: [
          unbridge,
          sh`networkctl reload; networkctl reconfigure ${b.port}`,
          ...(b.bond ? b.bond.slaves.map((s) => sh`networkctl reconfigure ${s} 2>/dev/null || true`) : []),
        ].join('\n'),
      };
    case 'ifupdown': {
      const downVlans = vlans.length ? sh`for v in ${vlans}; do ifdown --force "$v" 2>/dev/null || true; done` : '';
      return {
        up: [
          downVlans,
          dropVlans,
          b.bond
            ? sh`ip addr flush dev ${b.port}`
            : sh`ifdown --force ${b.port} 2>/dev/null || true; ip addr flush dev ${b.port}`,
          sh`ifup ${b.bridge}`,
        ]
          .filter(Boolean)
          .join('\n'),
        down: [
          sh`ifdown --force ${b.bridge} 2>/dev/null || true`,
          unbridge,
          b.bond ? sh`ifdown --force ${b.port} 2>/dev/null || true` : '',
          sh`ip addr flush dev ${b.port}; ifup ${b.port}`,
          vlans.length ? sh`for v in ${vlans}; do ifup "$v" || true; done` : '',
        ]
          .filter(Boolean)
          .join('\n'),
      };
    }
    case 'networkmanager':
      return {
        up: [
          dropVlans,
          sh`nmcli connection reload; nmcli connection up ${`kvmforge-${b.bridge}`}`,
          vlans.length ? sh`for v in ${vlans}; do nmcli device connect "$v" 2>/dev/null || true; done` : '',
        ]
          .filter(Boolean)
          .join('\n'),
        down: [
          'nmcli connection reload',
          unbridge,
          sh`nmcli device connect ${b.port}`,
          vlans.length ? sh`for v in ${vlans}; do nmcli device connect "$v" 2>/dev/null || true; done` : '',
        ]
          .filter(Boolean)
          .join('\n'),
      };
    case 'netplan':
      return { up: [dropVlans, 'netplan apply'].filter(Boolean).join('\n'), down: `${unbridge}\nnetplan apply` };
    case 'ifcfg':
      return {
        up: [
          dropVlans,
          sh`if systemctl is-active -q NetworkManager; then nmcli connection reload; nmcli device reapply ` +
            sh`${b.port} || nmcli connection up ${`System ${b.port}`}; else systemctl restart network; fi`,
        ]
          .filter(Boolean)
          .join('\n'),
        down:
          `${unbridge}\n` +
          sh`if systemctl is-active -q NetworkManager; then nmcli connection reload; ` +
          sh`nmcli device connect ${b.port}; else systemctl restart network; fi`,
      };
  }
}
