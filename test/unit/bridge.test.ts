// Bridge step fixtures: every network stack's config from the same facts, addressing copied from the NIC,
// idempotence, bad input, and the switch script checked by sh -n. Real switches are in test/lab/bridge.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../../src/core/errors.ts';
import { parseInventory } from '../../src/inventory/load.ts';
import type { Facts } from '../../src/facts/gather.ts';
import bridge, { configFiles, desired, parseProbe, stackCommands, STACKS, switchScript, verifyScript, withoutStanza, type Stack } from '../../steps/bridge.ts';
import { debianFacts, fakeCtx } from '../harness/fake-host.ts';

const hostOf = (vars: string[] = []) => parseInventory(['all:', '  hosts:', '    h1:', ...vars.map((v) => `      ${v}`), ''].join('\n'), 'inv.yaml').hosts[0];

/** A server with a static address, a gateway and DNS on eth0. */
function staticFacts(): Facts {
  const f = debianFacts();
  f.interfaces = [
    { name: 'lo', addresses: [{ family: 'inet', address: '127.0.0.1', prefix: 8, dynamic: false }] },
    { name: 'eth0', mac: '52:54:00:12:34:56', mtu: 1500, state: 'UP', addresses: [{ family: 'inet', address: '192.168.10.5', prefix: 24, dynamic: false }] },
    { name: 'eth1', mac: '52:54:00:12:34:57', mtu: 1500, state: 'DOWN', addresses: [] },
  ];
  f.defaultRoute = { dev: 'eth0', gateway: '192.168.10.1' };
  return f;
}
const probeOut = (stack: string, extra = '') => `@@stack ${stack}\n@@dns 192.168.10.53\n${extra}`;

describe('bridge: what the bridge copies from the NIC', () => {
  it('static addresses, gateway, DNS and the MAC, or DHCP when the NIC uses DHCP', () => {
    const p = bridge.params(hostOf())!;
    const b = desired(hostOf(), p, staticFacts(), parseProbe(probeOut('networkd')));
    expect(b).toMatchObject({ bridge: 'br0', port: 'eth0', mac: '52:54:00:12:34:56', dhcp: false, addresses: ['192.168.10.5/24'], gateway: '192.168.10.1', dns: ['192.168.10.53'] });
    const lab = desired(hostOf(), p, debianFacts(), parseProbe(probeOut('networkd')));
    expect(lab).toMatchObject({ port: 'eth0', dhcp: true, addresses: [], dns: [] }); // the lab VM: DHCP, no default route
  });
  it('after a conversion it copies from the bridge, so a re-run plans the same files', () => {
    const f = staticFacts();
    f.interfaces[1] = { ...f.interfaces[1], master: 'br0', addresses: [] };
    f.interfaces.push({ name: 'br0', kind: 'bridge', mac: '52:54:00:12:34:56', addresses: [{ family: 'inet', address: '192.168.10.5', prefix: 24, dynamic: false }] });
    f.defaultRoute = { dev: 'br0', gateway: '192.168.10.1' };
    const b = desired(hostOf(), bridge.params(hostOf())!, f, parseProbe(probeOut('networkd')));
    expect(b).toMatchObject({ port: 'eth0', addresses: ['192.168.10.5/24'], gateway: '192.168.10.1', mac: '52:54:00:12:34:56' });
  });
});

describe('bridge: each stack’s own config', () => {
  const b = desired(hostOf(['bridge_mtu: 9000', 'bridge_stp: true', 'bridge_forward_delay: 2']), bridge.params(hostOf(['bridge_mtu: 9000', 'bridge_stp: true', 'bridge_forward_delay: 2']))!, staticFacts(), parseProbe(probeOut('networkd')));
  const ifaces = { '/etc/network/interfaces': 'source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet static\n    address 192.168.10.5/24\n    gateway 192.168.10.1\n\nauto eth1\niface eth1 inet manual\n' };
  const view = { stack: 'ifupdown' as const, dns: ['192.168.10.53'], interfaces: ifaces };
  const text = (stack: Stack) => configFiles(stack, b, view).map((f) => `### ${f.path}\n${f.content}`).join('\n');

  it('systemd-networkd: .netdev + a .network for the port and one for the bridge, sorted before the rest', () => {
    const t = text('networkd');
    for (const s of ['### /etc/systemd/network/10-kvmforge-br0.netdev', 'Kind=bridge', 'MACAddress=52:54:00:12:34:56', 'STP=yes', 'ForwardDelaySec=2', 'MTUBytes=9000', '[Match]\nName=eth0\n\n[Network]\nBridge=br0', 'Address=192.168.10.5/24', 'Gateway=192.168.10.1', 'DNS=192.168.10.53']) expect(t).toContain(s);
  });
  it('ifupdown: the port’s stanza is commented out, a bridge stanza made with ip (no bridge-utils)', () => {
    const files = configFiles('ifupdown', b, view);
    const main = files.find((f) => f.path === '/etc/network/interfaces')!.content;
    expect(main).toContain('#kvmforge-bridge# allow-hotplug eth0\n#kvmforge-bridge# iface eth0 inet static\n#kvmforge-bridge#     address 192.168.10.5/24');
    expect(main).toContain('auto lo\niface lo inet loopback'); // others untouched
    expect(main).toContain('auto eth1\niface eth1 inet manual');
    const br = files.find((f) => f.path === '/etc/network/interfaces.d/kvmforge-br0')!.content;
    for (const s of ['auto br0\niface br0 inet static', 'pre-up ip link add br0 type bridge stp_state 1 forward_delay 200', 'pre-up ip link set br0 address 52:54:00:12:34:56', 'pre-up ip link set eth0 master br0 up', 'address 192.168.10.5/24', 'gateway 192.168.10.1', 'dns-nameservers 192.168.10.53', 'mtu 9000']) expect(br).toContain(s);
    expect(withoutStanza('auto eth0 eth1\n', 'eth0')).toBe('#kvmforge-bridge# auto eth0 eth1\n');
    // ifupdown's dhcp method takes no gateway option: the route is added when the bridge is up
    const dhcp = configFiles('ifupdown', { ...b, dhcp: true, addresses: [] }, view).find((f) => f.path.endsWith('kvmforge-br0'))!.content;
    expect(dhcp).toContain('iface br0 inet dhcp');
    expect(dhcp).toContain('up ip route replace default via 192.168.10.1 dev br0');
    expect(dhcp).not.toMatch(/^\s+gateway /m);
  });
  it('NetworkManager keyfiles: a bridge and its port', () => {
    const t = text('networkmanager');
    for (const s of ['type=bridge\ninterface-name=br0', 'mac-address=52:54:00:12:34:56', 'stp=true', 'method=manual', 'address1=192.168.10.5/24,192.168.10.1', 'dns=192.168.10.53;', 'master=br0\nslave-type=bridge']) expect(t).toContain(s);
    expect(configFiles('networkmanager', b, view).every((f) => f.mode === '600')).toBe(true);
  });
  it('netplan: valid YAML, the port without DHCP, the bridge with the addressing', () => {
    const [f] = configFiles('netplan', b, view);
    const y = parseYaml(f.content);
    expect(y.network.ethernets.eth0).toEqual({ dhcp4: false, dhcp6: false });
    expect(y.network.bridges.br0).toMatchObject({ interfaces: ['eth0'], macaddress: '52:54:00:12:34:56', mtu: 9000, dhcp4: false, addresses: ['192.168.10.5/24'], routes: [{ to: 'default', via: '192.168.10.1' }], nameservers: { addresses: ['192.168.10.53'] }, parameters: { stp: true, 'forward-delay': 2 } });
  });
  it('RHEL ifcfg, as in the thesis: BRIDGE=br0 on the NIC, ifcfg-br0 with its former address', () => {
    const t = text('ifcfg');
    for (const s of ['### /etc/sysconfig/network-scripts/ifcfg-br0', 'DEVICE=br0\nTYPE=Bridge\nONBOOT=yes\nBOOTPROTO=static', 'IPADDR=192.168.10.5\nPREFIX=24', 'GATEWAY=192.168.10.1', 'DNS1=192.168.10.53', '### /etc/sysconfig/network-scripts/ifcfg-eth0', 'BRIDGE=br0', 'HWADDR=52:54:00:12:34:56']) expect(t).toContain(s);
  });
  it('every stack’s switch script is valid sh, arms the rollback before writing anything, and runs the switch detached', () => {
    for (const stack of STACKS) {
      const script = switchScript(stack, b, configFiles(stack, b, view), 90);
      execFileSync('sh', ['-n'], { input: script });
      execFileSync('sh', ['-n'], { input: verifyScript(b) });
      const arm = script.indexOf('systemd-run --quiet --unit=kvmforge-bridge-rollback --on-active=90');
      expect(arm).toBeGreaterThan(0);
      expect(arm).toBeLessThan(script.indexOf('base64 -d'));
      expect(script).toContain('setsid nohup sh "$d/switch.sh"');
      expect(script).not.toContain('.kvmforge.bak'); // old versions live in /var/lib/kvmforge/bridge
    }
  });
});

describe('bridge: plan', () => {
  it('plans one confirmed switch with the files as diff; nothing once converted; a diff against another bridge config', async () => {
    const h = hostOf();
    const p = bridge.params(h)!;
    const changes = await bridge.plan(fakeCtx(staticFacts(), { probes: [[/@@stack/, probeOut('networkd')]] }, h), p);
    expect(changes).toHaveLength(1);
    expect(changes[0].summary).toBe('br0 takes over eth0 (networkd; 192.168.10.5/24 via 192.168.10.1; MAC 52:54:00:12:34:56)');
    expect(changes[0].confirm).toMatchObject({ timeoutS: 90 });
    expect(changes[0].diff).toContain('+Address=192.168.10.5/24');
    // converted: eth0 in br0, br0 with the address, files in place
    const f = staticFacts();
    f.interfaces[1] = { ...f.interfaces[1], master: 'br0', addresses: [] };
    f.interfaces.push({ name: 'br0', kind: 'bridge', mac: '52:54:00:12:34:56', addresses: [{ family: 'inet', address: '192.168.10.5', prefix: 24, dynamic: false }] });
    f.defaultRoute = { dev: 'br0', gateway: '192.168.10.1' };
    const b = desired(h, p, f, parseProbe(probeOut('networkd')));
    const files = Object.fromEntries(configFiles('networkd', b, parseProbe(probeOut('networkd'))).map((x) => [x.path, x.content]));
    expect(await bridge.plan(fakeCtx(f, { probes: [[/@@stack/, probeOut('networkd')]], files }, h), p)).toEqual([]);
    // someone's STP setting differs: a diff, and the same confirmed switch
    const other = { ...files, '/etc/systemd/network/10-kvmforge-br0.netdev': files['/etc/systemd/network/10-kvmforge-br0.netdev'].replace('STP=no', 'STP=yes') };
    const diff = await bridge.plan(fakeCtx(f, { probes: [[/@@stack/, probeOut('networkd')]], files: other }, h), p);
    expect(diff[0].diff).toMatch(/-STP=yes\n\+STP=no/);
  });
});

describe('bridge: bad input is exit 2 with file:line, host untouched', () => {
  const problem = (vars: string[]) => {
    try {
      const h = hostOf(vars);
      bridge.params(h);
    } catch (e) {
      if (e instanceof ConfigError) return e.problems[0];
      throw e;
    }
    throw new Error('expected a ConfigError');
  };
  it.each([
    ['a bridge name over 15 characters', ['bridge_name: br0-way-too-long-name'], /bridge_name/],
    ['an address that is not CIDR', ['bridge_addresses: [192.168.10.5]'], /bridge_addresses/],
    ['an address out of range', ['bridge_addresses: [192.168.300.5/24]'], /bridge_addresses/],
    ['a gateway outside the subnet', ['bridge_addresses: [192.168.10.5/24]', 'bridge_gateway: 10.0.0.1'], /gateway 10.0.0.1 is outside the bridge's subnets/],
  ])('%s', (_w, vars, re) => {
    const p = problem(vars);
    expect(p.file).toBe('inv.yaml');
    expect(p.line).toBeGreaterThanOrEqual(4);
    expect(`${p.key} ${p.message}`).toMatch(re);
  });
  it('a port NIC the host lacks fails the plan as bad input (exit 2), before anything changes', async () => {
    const h = hostOf(['bridge_port: eth9']);
    const err = await bridge.plan(fakeCtx(staticFacts(), { probes: [[/@@stack/, probeOut('networkd')]] }, h), bridge.params(h)!).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/inv\.yaml:4:20: h1\.bridge_port: NIC 'eth9' does not exist on h1 \(it has lo, eth0, eth1\)/);
  });
});

describe('bridge: DHCP on networkd after the switch', () => {
  it('asks for the lease again every 10 s until the bridge has an address, then stops (real sh; networkctl, ip and sleep faked)', () => {
    const b = desired(hostOf(), bridge.params(hostOf())!, staticFacts(), parseProbe(probeOut('networkd')));
    const dhcp = { ...b, dhcp: true, addresses: [] };
    const bin = mkdtempSync(join(tmpdir(), 'kvf-nudge-'));
    const log = join(bin, 'log');
    // the bridge gets its address at the third look
    writeFileSync(join(bin, 'ip'), `#!/bin/sh\nn=$(cat ${bin}/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${bin}/n\n[ $n -ge 3 ] && echo '4: br0    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic br0'\nexit 0\n`, { mode: 0o755 });
    writeFileSync(join(bin, 'networkctl'), `#!/bin/sh\necho "networkctl $*" >> ${log}\n`, { mode: 0o755 });
    writeFileSync(join(bin, 'sleep'), `#!/bin/sh\necho "sleep $*" >> ${log}\n`, { mode: 0o755 });
    execFileSync('sh', ['-c', stackCommands('networkd', dhcp).up], { env: { PATH: `${bin}:/usr/bin:/bin` } });
    expect(readFileSync(log, 'utf8')).toBe(['networkctl reload', 'networkctl reconfigure eth0', 'networkctl reconfigure br0', 'sleep 10', 'networkctl renew br0', 'sleep 10', 'networkctl renew br0', 'sleep 10', ''].join('\n'));
    // a static bridge has no lease to ask for
    expect(stackCommands('networkd', b).up).not.toContain('renew');
  });
});

