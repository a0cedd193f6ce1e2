// bench/compare-ansible: the four tuning steps, kvmforge vs Ansible (Debian's ansible package), in one run.
// (a) check mode against namespace hosts (both tools only read: these hosts share this machine's kernel)
// (b) a converged re-run against a lab VM (already tuned by kvmforge; both must report no change).
// usage: node --import tsx bench/compare-ansible.ts [hosts=20] [--skip-lab]
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NsLab, runAsync } from '../test/harness/nshosts.ts';
import { PROJECT } from '../src/lab/paths.ts';
import { dropinText, THESIS_ARGS } from '../steps/boot-args.ts';
import { unitText } from '../steps/ksm.ts';
import { THESIS_MODULES } from '../steps/virtio-modules.ts';

const N = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 20);
const STEPS = 'virtio-modules,hugepages,ksm,boot-args';
const PLAYBOOK = join(PROJECT, 'bench/ansible/tuning.yml');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: string[] = [];
const row = (r: string) => {
  rows.push(r);
  console.error(r);
};
// the playbook writes byte-identical files, so a converged host is converged for both tools
const VARS_FILE = `/tmp/kvf-ansible-vars-${process.pid}.json`;
writeFileSync(
  VARS_FILE,
  JSON.stringify({
    modules_file: `# kvmforge virtio-modules: loaded at boot, in this order\n${THESIS_MODULES.join('\n')}\n`,
    ksm_unit: unitText({ run: 1, pagesToScan: 200, sleepMs: 20 }),
    grub_dropin: dropinText({ add: THESIS_ARGS, remove: [] }),
  }),
);

function ansibleEnv(knownHosts: string, best: boolean): Record<string, string> {
  const common = `-o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes`;
  return {
    ANSIBLE_HOST_KEY_CHECKING: 'True',
    ANSIBLE_SSH_ARGS: best
      ? `-o ControlMaster=auto -o ControlPersist=60s ${common}`
      : `-C -o ControlMaster=auto -o ControlPersist=60s ${common}`,
    ANSIBLE_PIPELINING: best ? 'True' : 'False',
    ANSIBLE_FORKS: best ? String(N) : '5',
    ANSIBLE_GATHERING: best ? 'explicit' : 'implicit',
    ANSIBLE_PYTHON_INTERPRETER: 'auto_silent',
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_CONTROL_PATH_DIR: `/tmp/kvf-ansible-cp-${process.pid}`,
  };
}

async function timed(fn: () => Promise<{ code: number | null; stdout: string; stderr: string }>, rounds = 3) {
  const ms: number[] = [];
  let last: { code: number | null; stdout: string; stderr: string } | undefined;
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    last = await fn();
    ms.push(performance.now() - t0);
    if (last.code !== 0)
      throw new Error(`failed (${last.code}): ${last.stdout.slice(-1500)}${last.stderr.slice(-1500)}`);
  }
  return { ms: median(ms), out: last! };
}

// (a) check mode on namespace hosts
{
  const lab = await new NsLab(N).up();
  try {
    // this machine's kernel has no loadable modules: both tools leave modprobe out here
    const on = [
      'virtio_modules_enabled: true',
      'virtio_modules_list: []',
      'hugepages_enabled: true',
      'ksm_enabled: true',
      'boot_args_enabled: true',
      'hugepages_count: 64',
      'ksm_pages_to_scan: 200',
    ];
    const inv = lab.inventory(join(lab.dir, 'inv.yaml'), Object.fromEntries(lab.hosts.map((h) => [h.name, on])));
    const kvf = await timed(() => lab.cli(['plan', '-i', inv, '--steps', STEPS, '--forks', String(N), '--json']));
    const ansibleInv = join(lab.dir, 'ansible.ini');
    const lines = lab.hosts.map(
      (h) => `${h.name} ansible_host=${h.address} ansible_user=root ansible_ssh_private_key_file=${lab.key}`,
    );
    writeFileSync(ansibleInv, `[all]\n${lines.join('\n')}\n`);
    const ans = async (best: boolean) =>
      timed(
        () =>
          runAsync(
            'ip',
            [
              'netns',
              'exec',
              lab.hub,
              'ansible-playbook',
              '-i',
              ansibleInv,
              '--check',
              '-e',
              `@${VARS_FILE}`,
              '-e',
              '{"virtio_modules": [], "ksm_unit_enable": false}',
              PLAYBOOK,
            ],
            { cwd: lab.dir, env: { ...process.env, ...ansibleEnv(lab.knownHosts, best) }, timeoutMs: 900_000 },
          ),
        2,
      );
    const ansDefault = await ans(false);
    const ansBest = await ans(true);
    row(
      `| check mode, ${N} namespace hosts | ${kvf.ms.toFixed(0)} | ${ansDefault.ms.toFixed(0)} | ` +
        `${ansBest.ms.toFixed(0)} | ${(ansDefault.ms / kvf.ms).toFixed(1)}× | ${(ansBest.ms / kvf.ms).toFixed(1)}× |`,
    );
  } finally {
    lab.down();
  }
}

// (b) converged re-run on a lab VM
if (!process.argv.includes('--skip-lab')) {
  const env = {
    ...process.env,
    KVMFORGE_LAB: '/tmp/kvmforge-bench-ansible/state',
    KVMFORGE_INVENTORY_DIR: '/tmp/kvmforge-bench-ansible/inv',
  };
  const cli = (args: string[]) =>
    runAsync(process.execPath, [join(PROJECT, 'bin/kvmforge.js'), ...args], { env, timeoutMs: 1_200_000 });
  try {
    const up = await cli(['lab', 'up']);
    if (up.code !== 0) throw new Error(up.stderr);
    const inv = join(env.KVMFORGE_INVENTORY_DIR, 'bench.yaml');
    writeFileSync(
      inv,
      readFileSync(join(env.KVMFORGE_INVENTORY_DIR, 'lab.yaml'), 'utf8').replace(
        'hugepages_count: "10%"',
        'hugepages_count: 64\n        ksm_pages_to_scan: 200',
      ),
    );
    const first = await cli(['apply', '-i', inv, '--steps', STEPS]);
    if (first.code !== 0) throw new Error(first.stdout);
    const state = JSON.parse(readFileSync(env.KVMFORGE_LAB + '/state.json', 'utf8'));
    const port = state.vms[0].port;
    const key = readFileSync(inv, 'utf8').match(/ansible_ssh_private_key_file: (\S+)/)![1];
    const ansibleInv = '/tmp/kvmforge-bench-ansible/ansible.ini';
    writeFileSync(
      ansibleInv,
      `[all]\nlab1 ansible_host=127.0.0.1 ansible_port=${port} ansible_user=kvmforge ` +
        `ansible_ssh_private_key_file=${key}\n`,
    );
    const kh = join(env.KVMFORGE_INVENTORY_DIR, 'lab-known_hosts');
    const kvf = await timed(async () => {
      const r = await cli(['apply', '-i', inv, '--steps', STEPS, '--json']);
      if (r.code === 0 && JSON.parse(r.stdout).hosts[0].status !== 'ok') return { ...r, code: 99 };
      return r;
    });
    const ans = (best: boolean) =>
      timed(async () => {
        const r = await runAsync('ansible-playbook', ['-i', ansibleInv, '-e', `@${VARS_FILE}`, PLAYBOOK], {
          env: { ...process.env, ...ansibleEnv(kh, best) },
          timeoutMs: 1_200_000,
        });
        if (r.code === 0 && !/changed=0/.test(r.stdout)) return { ...r, code: 98 };
        return r;
      }, 2);
    const ansDefault = await ans(false);
    const ansBest = await ans(true);
    row(
      `| converged re-run, 1 lab VM (${state.accel}) | ${kvf.ms.toFixed(0)} | ${ansDefault.ms.toFixed(0)} | ` +
        `${ansBest.ms.toFixed(0)} | ${(ansDefault.ms / kvf.ms).toFixed(1)}× | ${(ansBest.ms / kvf.ms).toFixed(1)}× |`,
    );
  } finally {
    await cli(['lab', 'down']);
  }
}

console.log('| run | kvmforge (ms) | Ansible default (ms) | Ansible best (ms) | vs default | vs best |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(r);
