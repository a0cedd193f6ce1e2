// Faults that need a real reboot, on the lab VM (runs in the lab project, which owns the VM): the host
// rebooted by someone else in the middle of an apply, and kvmforge killed while it waits for a reboot
// of its own. Each ends with an independent look at the VM (OpenSSH) and a re-run with zero changes.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { kvmforge, LAB_DIR, LAB_ENV, labBootId, labRun, resetLab, labInventoryWith } from '../harness/lab.ts';
import { PROJECT } from '../../src/lab/paths.ts';
import { quote } from '../../src/core/sh.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RUNS = join(LAB_DIR, '.kvmforge', 'runs');
const newestRun = () => (existsSync(RUNS) ? readdirSync(RUNS).sort().at(-1) : undefined);
const bootId = (connectTimeoutS?: number) => labBootId('lab1', connectTimeoutS);

const inventory = labInventoryWith;

/** Waits until the VM answers on a boot other than `old`. */
async function backFrom(old: string, seconds = 600) {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    try {
      if ((await bootId(5)) !== old) return;
    } catch {
      /* still down */
    }
    await sleep(2000);
  }
  throw new Error(`the lab VM did not come back within ${seconds}s`);
}

const DIR = '/etc/kvmforge-reboot';
const N = 12;
// hostile names too: they must reach the VM as data, through the resume as well
// (no slash in a name: it would make directories, as it should)
const fname = (i: number) => `f${i} it's $(touch kvmforge-pwned); \`id\` -x <&>.conf`;
const body = (i: number) => `file ${i} $(touch /tmp/kvmforge-pwned) '\n` + `${i}:`.repeat(2000) + '\n';

afterAll(async () => {
  await resetLab();
}, 600_000);

describe('a host rebooted by someone else in the middle of an apply', () => {
  it('is detected by its boot_id; the run resumes at the interrupted step and finishes; a re-run changes ' +
    'nothing', async () => {
    await resetLab();
    // each file write takes 2 s more (base64 slowed inside the VM), so the reboot lands mid-run
    await labRun(
      `sudo sh -c 'printf "#!/bin/sh\\nsleep 2\\nexec /usr/bin/base64 \\"\\$@\\"\\n" > /usr/local/bin/base64 && ` +
        `chmod 755 /usr/local/bin/base64'`,
    );
    const files = [
      'files:',
      ...Array.from({ length: N }, (_, i) => [
        `  - path: ${JSON.stringify(`${DIR}/${fname(i)}`)}`,
        `    content: ${JSON.stringify(body(i))}`,
      ]).flat(),
    ];
    const inv = inventory('rebooted', ['kvmforge_reconnect_timeout: 600', ...files]);
    const before = await bootId();
    const t0 = Date.now();
    const run = kvmforge(['apply', '-i', inv, '--steps', 'files']);
    // someone else reboots the VM once kvmforge has written a few files
    let written = 0;
    while (written < 3 && Date.now() - t0 < 300_000) {
      await sleep(1000);
      written = Number((await labRun(`sudo find ${DIR} -maxdepth 1 -name 'f*.conf' 2>/dev/null | wc -l`)).trim());
    }
    expect(written).toBeGreaterThanOrEqual(3);
    const rebootAt = Date.now() - t0;
    try {
      await labRun('sudo systemctl reboot');
    } catch {
      /* the session may drop as the VM goes down */
    }
    const r = await run;
    const out = r.stdout + r.stderr;
    expect(r.code, out).toBe(0);
    // the summary wraps a long note at 100 columns, continuing it on lines indented by four spaces
    expect(out.replace(/\n {4}/g, ' ')).toMatch(
      new RegExp(
        String.raw`lab1: note: rebooted by someone else during step files \(boot_id [0-9a-f]{8}… → [0-9a-f]{8}…; it` +
          String.raw` failed with: .*\); facts gathered again and the run resumed at files`,
      ),
    );
    // independently: a new boot, every file whole with its content, no temp file left
    expect(await bootId()).not.toBe(before);
    const listing = (await labRun(`sudo ls -A ${DIR}`)).trim().split('\n').sort();
    expect(listing).toEqual(Array.from({ length: N }, (_, i) => fname(i)).sort());
    for (let i = 0; i < N; i++) expect(await labRun(`sudo cat ${quote(`${DIR}/${fname(i)}`)}`)).toBe(body(i));
    expect((await labRun('sudo find / -xdev -name kvmforge-pwned 2>/dev/null | wc -l')).trim()).toBe('0');
    await labRun('sudo rm /usr/local/bin/base64');
    const again = await kvmforge(['apply', '-i', inv, '--steps', 'files']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toMatch(/\b0 change\(s\) made/);
    process.stderr.write(
      `[faults] rebooted by someone else ${(rebootAt / 1000).toFixed(1)} s into the apply; the run resumed and ` +
        `ended after ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
    );
  }, 1_200_000);
});

describe('kvmforge killed (kill -9) while it waits for a reboot it asked for', () => {
  it('the host finishes its reboot into the new state; the journal ends at the reboot; a re-run changes ' +
    'nothing', async () => {
    await resetLab();
    const inv = inventory('killed-in-reboot', ['boot_args_add: [kvmforge.faults=1]']);
    const before = await bootId();
    const child = spawn(
      process.execPath,
      [join(PROJECT, 'bin/kvmforge.js'), 'apply', '-i', inv, '--steps', 'boot-args'],
      { cwd: LAB_DIR, env: { ...process.env, ...LAB_ENV }, detached: true, stdio: 'ignore' },
    );
    const done = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    const started = newestRun();
    // kill it once its journal says it asked for the reboot
    let run: string | undefined;
    const t0 = Date.now();
    while (Date.now() - t0 < 300_000) {
      await sleep(500);
      run = newestRun();
      const log = run && run !== started ? join(RUNS, run, 'lab1.log') : undefined;
      if (log && existsSync(log) && /reboot \(boot_id/.test(readFileSync(log, 'utf8'))) break;
    }
    process.kill(-child.pid!, 'SIGKILL');
    expect(await done).toBeNull(); // killed, not finished
    const log = readFileSync(join(RUNS, run!, 'lab1.log'), 'utf8').trim();
    expect(log.split('\n').at(-1)).toMatch(/reboot \(boot_id [0-9a-f-]+\)/); // where it stopped
    expect(existsSync(join(RUNS, run!, 'report.json'))).toBe(false);
    // the host goes on by itself: a new boot with the new argument
    await backFrom(before);
    expect(await labRun('cat /proc/cmdline')).toContain('kvmforge.faults=1');
    const again = await kvmforge(['apply', '-i', inv, '--steps', 'boot-args']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toMatch(/\b0 change\(s\) made/);
  }, 1_200_000);
});
