// The bridge step on a real Debian VM, over the SSH connection it reconfigures: systemd-networkd (the
// image's stack) and ifupdown (the VM switched to it first). Conversions in a row, broken configs that
// roll back by themselves, and a reboot that keeps the bridge. State is read with OpenSSH + ip/bridge -j.
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { kvmforge, LAB_ENV, LAB_INVENTORY, labExec, resetLab } from '../harness/lab.ts';

const ROUNDS = Number(process.env.KVMFORGE_BRIDGE_ROUNDS ?? 10);
const TIMEOUT = 36; // seconds before an unconfirmed switch rolls back (the minimum is 20); the check waits a third of it
const times: Record<string, number[]> = { switch: [], rollback: [] };

function inventory(name: string, vars: string[] = []): string {
  const file = join(LAB_ENV.KVMFORGE_INVENTORY_DIR, `${name}.yaml`);
  writeFileSync(file, readFileSync(LAB_INVENTORY, 'utf8').replace(/^\s*hugepages_count: "10%".*$/m, ['', `        bridge_rollback_timeout: ${TIMEOUT}`, ...vars.map((v) => `        ${v}`)].join('\n')));
  return file;
}

interface NetState {
  br0: string[];
  eth0: string[];
  eth0Master?: string;
  routes: string[];
  brMac?: string;
}

function netState(): NetState {
  const [addr, route, link] = labExec("ip -j addr; echo '@@'; ip -j route; echo '@@'; /sbin/bridge -j link").split('@@').map((x) => x.trim() || '[]');
  const ifs = JSON.parse(addr) as { ifname: string; address: string; addr_info: { family: string; local: string; prefixlen: number }[] }[];
  const v4 = (n: string) => (ifs.find((i) => i.ifname === n)?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
  const ports = JSON.parse(link) as { ifname: string; master: string }[];
  return { br0: v4('br0'), eth0: v4('eth0'), eth0Master: ports.find((p) => p.ifname === 'eth0')?.master, routes: (JSON.parse(route) as { dst: string; dev: string }[]).map((r) => `${r.dst} dev ${r.dev}`), brMac: ifs.find((i) => i.ifname === 'br0')?.address };
}

const bridged = (s: NetState) => {
  expect(s.eth0Master).toBe('br0');
  expect(s.br0).toEqual(['10.0.2.15/24']);
  expect(s.eth0).toEqual([]);
  expect(s.routes).toContain('10.0.2.0/24 dev br0');
  expect(s.brMac).toBe('52:54:00:6b:66:01'); // the NIC's MAC: same DHCP lease, same switch port security
};
const plain = (s: NetState) => {
  expect(s.eth0Master).toBeUndefined();
  expect(s.eth0).toEqual(['10.0.2.15/24']);
  expect(s.br0).toEqual([]);
};

async function planIsEmpty(inv: string) {
  const r = await kvmforge(['plan', '-i', inv, '--steps', 'bridge', '--json']);
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout).hosts[0].steps[0].changes).toEqual([]);
}

async function brokenRollsBack(inv: string, why: RegExp) {
  const t0 = Date.now();
  const r = await kvmforge(['apply', '-i', inv, '--steps', 'bridge']);
  times.rollback.push(Date.now() - t0);
  expect(r.code).toBe(1);
  expect(r.stdout + r.stderr).toMatch(/not confirmed .*the host rolled back and is reachable at its old address/);
  expect(r.stdout + r.stderr).toMatch(why);
}

/** Moves the VM from systemd-networkd to ifupdown (dhclient), detached so the session can drop. */
function toIfupdown() {
  labExec(`sudo sh -c 'printf "auto eth0\\niface eth0 inet dhcp\\n" > /etc/network/interfaces.d/eth0; rm -f /etc/systemd/network/50-lab-dhcp.network; systemctl disable -q systemd-networkd.service systemd-networkd.socket; setsid nohup sh -c "systemctl stop systemd-networkd.service systemd-networkd.socket; ip addr flush dev eth0; ifup eth0" >/dev/null 2>&1 </dev/null &'`);
  for (let i = 0; i < 60; i++) {
    try {
      if (labExec('systemctl is-active systemd-networkd || true; ip -br -4 addr show eth0').includes('10.0.2.15')) return;
    } catch {
      /* the address moves: ssh may fail for a moment */
    }
    execSleep(1);
  }
  throw new Error('the VM did not come back on ifupdown');
}
const execSleep = (s: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, s * 1000);

describe.each([
  ['systemd-networkd', false, ROUNDS, ROUNDS],
  ['ifupdown', true, Math.min(ROUNDS, 3), Math.min(ROUNDS, 2)],
])('bridge on %s', (stack, ifupdown, rounds, broken) => {
  const prepare = async () => {
    await resetLab();
    if (ifupdown) toIfupdown();
    plain(netState());
  };

  it(`${rounds} conversions in a row keep SSH working and end bridged; plan is empty after each`, async () => {
    const inv = inventory('bridge');
    for (let i = 0; i < rounds; i++) {
      await prepare();
      const p = await kvmforge(['plan', '-i', inv, '--steps', 'bridge']);
      expect(p.stdout).toContain(`br0 takes over eth0 (${ifupdown ? 'ifupdown' : 'networkd'}; DHCP; MAC 52:54:00:6b:66:01)`);
      plain(netState()); // check mode changed nothing
      await convertOnce(inv);
      bridged(netState());
      await planIsEmpty(inv);
      expect(labExec('sudo ls /var/lib/kvmforge/bridge; sudo systemctl is-active kvmforge-bridge-rollback.timer || true')).toMatch(/committed[\s\S]*inactive/);
    }
  }, 1_800_000);

  it(`${broken} broken configs (an address SSH can't reach; a gateway that doesn't answer) roll back by themselves`, async () => {
    await prepare();
    for (let i = 0; i < broken; i++) {
      // kvmforge cannot reach 10.0.2.99, so the host's timer rolls back; the host's own checks passed and it
      // says so. This one waits out the whole timer, so it is every fourth (the first of each stack).
      if (i % 4 === 0) await brokenRollsBack(inventory('bad-addr', ['bridge_addresses: [10.0.2.99/24]']), /before rolling back it found: its own checks passed; only kvmforge could not reach it/);
      // whichever side gets there first (kvmforge's check, or the host's before its timer rolls back) names the gateway
      else await brokenRollsBack(inventory('bad-gw', ['bridge_gateway: 10.0.2.77']), /gateway 10.0.2.77 does not answer on br0/);
      plain(netState()); // the old config, back by itself
      expect(labExec('sudo cat /var/lib/kvmforge/bridge/rolled-back/at')).toMatch(/20\d\d/);
    }
  }, 1_800_000);

  it('a reboot after a conversion keeps the bridge', async () => {
    await prepare();
    await convertOnce(inventory('bridge'));
    const boot = labExec('cat /proc/sys/kernel/random/boot_id').trim();
    labExec('sudo sh -c "setsid nohup sh -c \'sleep 1; systemctl reboot\' >/dev/null 2>&1 </dev/null &"');
    let back = false;
    for (let i = 0; i < 100 && !back; i++) {
      execSleep(5);
      try {
        back = labExec('cat /proc/sys/kernel/random/boot_id').trim() !== boot;
      } catch {
        /* still rebooting */
      }
    }
    expect(back).toBe(true);
    bridged(netState());
  }, 900_000);
});

afterAll(() => {
  const fmt = (xs: number[]) => (xs.length ? `${xs.length} runs, ${(Math.min(...xs) / 1000).toFixed(1)}–${(Math.max(...xs) / 1000).toFixed(1)} s` : 'none');
  process.stderr.write(`bridge figures (whole kvmforge apply, TCG): switch+confirm ${fmt(times.switch)}; broken → rolled back ${fmt(times.rollback)}\n`);
});

async function convertOnce(inv: string) {
  const t0 = Date.now();
  const r = await kvmforge(['apply', '-i', inv, '--steps', 'bridge', '--verify']);
  times.switch.push(Date.now() - t0);
  expect(r.stdout + r.stderr).not.toMatch(/FAILED/);
  expect(r.code).toBe(0);
}
