// kvmforge report on namespace hosts: after an apply (one host failing), the page has every host and step,
// the platform as `kvmforge facts` reads it, the last runs with the failure's reason, and well-formed
// markup (xmllint); Markdown too. Bad input is exit 2 before any connection, nothing written.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NsLab, runAsync } from '../harness/nshosts.ts';
import { pngPixels } from '../harness/png.ts';

const lab = new NsLab(2);
let inv = '';
const runsDir = () => join(lab.dir, '.kvmforge', 'runs');

beforeAll(async () => {
  await lab.up();
  inv = lab.inventory(join(lab.dir, 'report.yaml'), {
    h1: ['files:', '  - path: /etc/kvmforge-report.conf', '    content: "v1\\n"'],
    h2: ['files:', '  - path: /proc/kvmforge-cannot-write-here', '    content: "v1\\n"'],
  });
  const r = await lab.cli(['apply', '-i', inv, '--steps', 'files']);
  expect(r.code, r.stderr).toBe(1); // h2 fails: the report must show why
  // VM insight kept by exits --save and bench --save (their saving is tested with real VMs in exits.test.ts
  // and the lab's bench.test.ts; here: what the report draws from them)
  const insight = join(lab.dir, '.kvmforge', 'insight');
  mkdirSync(insight, { recursive: true });
  const row = (name: string, rate: number, io: number, verdict: string) => ({
    name,
    rate,
    ioRate: rate * io,
    ioShare: io,
    verdict,
  });
  writeFileSync(
    join(insight, 'exits-2026-11-30T00-00-00Z.json'),
    JSON.stringify({
      saved: '2026-11-30T00-00-00Z',
      interval: 2,
      hosts: [
        {
          host: 'h1',
          vms: [row('web', 41000, 0.93, 'I/O-bound: virtio and vhost pay off'), row('idle', 90, 0.02, 'quiet')],
        },
      ],
    }),
  );
  writeFileSync(
    join(insight, 'bench-2026-11-30T00-00-00Z.json'),
    JSON.stringify({
      saved: '2026-11-30T00-00-00Z',
      sizeMiB: 8,
      blockKiB: 4,
      runs: 3,
      workloads: { 'disk-write': 'disk write', cpu: 'cpu' },
      vms: [
        {
          host: 'tuned',
          disk: 'virtio_blk',
          nic: 'virtio_net',
          results: { 'disk-write': 5.9, cpu: 20.2 },
          spread: { 'disk-write': [5.1, 6.4], cpu: [19.8, 20.5] },
        },
        {
          host: 'untuned',
          disk: 'ata_piix',
          nic: 'e1000',
          results: { 'disk-write': 4.7, cpu: 20.2 },
          spread: { 'disk-write': [4.2, 5.0], cpu: [20.0, 20.4] },
        },
      ],
    }),
  );
}, 300_000);
afterAll(() => lab.down());

describe('kvmforge report', () => {
  it('one HTML file: every host and step, the platform as facts reads it, the last runs with the failure', async () => {
    const before = readdirSync(runsDir()).length;
    const r = await lab.cli(['report', '-i', inv]);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(runsDir()).length).toBe(before); // read only: no run added to the journal it reports on
    const file = join(lab.dir, '.kvmforge', 'report', 'index.html');
    expect(r.stdout).toContain(`report: .kvmforge/report/index.html (2 host(s))`);
    const html = readFileSync(file, 'utf8');
    execFileSync('xmllint', ['--noout', file]); // well-formed: every tag closed, every value escaped
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/); // no script, nothing fetched
    const steps = (await lab.cli(['steps'])).stdout
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/)[0]);
    const facts = JSON.parse((await lab.cli(['facts', '-i', inv, '--json'])).stdout);
    for (const h of ['h1', 'h2']) {
      const section = html.slice(html.indexOf(`<section id="host-${h}">`));
      expect(section).toContain(`<td>${facts[h].kernel} — `);
      expect(section).toContain(
        `<td>${facts[h].memory.hugePagesTotal} × ${facts[h].memory.hugePageSizeKiB} KiB ` +
          `(${facts[h].memory.hugePagesFree} free)</td>`,
      );
      for (const s of steps) expect(section).toContain(`<td>${s}</td>`);
    }
    expect(steps.length).toBeGreaterThan(8);
    // the apply: h1 changed, h2 failed with its reason; the plan now: h1's files converged
    expect(html).toMatch(/<td>apply<\/td><td>changed<\/td><td>1<\/td>/);
    expect(html).toMatch(/<td>apply<\/td><td>failed<\/td><td>0<\/td><td>[\d.]+ s<\/td><td>files: [^<]*kvmforge-cannot/);
    expect(html).toMatch(/<td>files<\/td><td>ok<\/td>/);
    expect(html).toMatch(/<svg [^>]*>[\s\S]*<rect class="bar"/); // charts, inline
  });

  it('opens in a real browser (headless Chromium): no console error, every host, the charts drawn', async () => {
    const file = join(lab.dir, '.kvmforge', 'report', 'index.html');
    const shot = join(lab.dir, 'report.png');
    // awaited: two headless Chromium runs take 15 s here under load, too long to hold vitest's worker
    const chromium = (args: string[]) =>
      runAsync(
        'chromium',
        [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--hide-scrollbars',
          `--user-data-dir=${join(lab.dir, 'chromium')}`,
          '--enable-logging=stderr',
          '--v=0',
          ...args,
          `file://${file}`,
        ],
        { timeoutMs: 120_000 },
      );
    const dom = await chromium(['--dump-dom']);
    expect(dom.code, dom.stderr).toBe(0);
    const consoleLines = dom.stderr.split('\n').filter((l) => /CONSOLE|Uncaught|Failed to load/.test(l));
    expect(consoleLines).toEqual([]);
    const text = dom.stdout;
    for (const h of ['h1', 'h2']) expect(text).toContain(`<section id="host-${h}">`);
    // the fleet's steps, the saved exits and bench results, and each host's runs
    expect((text.match(/<svg /g) ?? []).length).toBe(5);
    expect(text).toContain('I/O-bound: virtio and vhost pay off');
    expect(text).toMatch(/<path class="spread"/);
    const png = await chromium(['--window-size=1200,4000', `--screenshot=${shot}`]);
    expect(png.code, png.stderr).toBe(0);
    // what the charts drew, in the status colours: ok (h1's files), skipped, h1's changed run, h2's failed one
    const img = pngPixels(readFileSync(shot));
    const seen = new Map<string, number>();
    for (let y = 0; y < img.height; y++)
      for (let x = 0; x < img.width; x++) seen.set(img.rgb(x, y), (seen.get(img.rgb(x, y)) ?? 0) + 1);
    for (const c of ['#54a24b', '#bab0ac', '#4c78a8', '#e45756']) expect(seen.get(c) ?? 0, c).toBeGreaterThan(200);
  });

  it('--format md for a terminal or a wiki', async () => {
    const out = join(lab.dir, 'md');
    const r = await lab.cli(['report', '-i', inv, '--format', 'md', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    const facts = JSON.parse((await lab.cli(['facts', '-i', inv, '--json'])).stdout);
    expect(md).toContain('## h1');
    expect(md).toContain(`| kernel | ${facts.h1.kernel} — `);
    expect(md).toMatch(/\| files \| ok \|/);
  });

  it(
    'bad input: no journal, another inventory’s journal, --out not writable — exit 2, one line, nothing ' + 'written',
    async () => {
      const none = await lab.cli(['report', '-i', inv, '--journal', join(lab.dir, 'nowhere')]);
      expect(none.code).toBe(2);
      expect(none.stderr).toMatch(/no run journal at .*nowhere \(it has no runs\/\)/);
      expect(existsSync(join(lab.dir, 'nowhere'))).toBe(false);

      const other = join(lab.dir, 'other-journal');
      mkdirSync(join(other, 'runs', '2026-01-01T00-00-00Z'), { recursive: true });
      writeFileSync(
        join(other, 'runs', '2026-01-01T00-00-00Z', 'report.json'),
        JSON.stringify({ mode: 'apply', started: '', ms: 1, hosts: [{ host: 'db9', status: 'ok', steps: [], ms: 1 }] }),
      );
      const foreign = await lab.cli(['report', '-i', inv, '--journal', other]);
      expect(foreign.code).toBe(2);
      expect(foreign.stderr).toMatch(/has 1 run\(s\), none on these hosts \(h1, h2\): another inventory's journal/);
      expect(existsSync(join(other, 'report'))).toBe(false);

      writeFileSync(join(lab.dir, 'a-file'), 'x');
      const bad = await lab.cli(['report', '-i', inv, '--out', join(lab.dir, 'a-file')]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/--out .*a-file: cannot write there \(EEXIST\)/);
      expect(readFileSync(join(lab.dir, 'a-file'), 'utf8')).toBe('x');

      const fmt = await lab.cli(['report', '-i', inv, '--format', 'pdf']);
      expect(fmt.code).toBe(2);
      expect(fmt.stderr).toMatch(/--format.*pdf.*html, md/);
    },
  );
});
