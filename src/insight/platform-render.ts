// The platform report rendered: one HTML file (inline CSS and SVG, no script, no network; well-formed XML
// so xmllint can check it) or Markdown for a terminal or a wiki.
import { benchChart, type Workload } from './bench.ts';
import { exitsBars, exitsChart } from './exits.ts';
import { barChart, type Bar } from './plot.ts';
import type { HostPlatform, PlatformReport } from './platform.ts';

const esc = (s: unknown) =>
  String(s ?? '').replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const STATUSES = ['ok', 'would change', 'failed', 'skipped'];
/** The same colour for a status wherever it is drawn. */
const STATUS_COLORS: Record<string, string> = {
  ok: '#54a24b',
  changed: '#4c78a8',
  'would change': '#f58518',
  failed: '#e45756',
  skipped: '#bab0ac',
  interrupted: '#b279a2',
  'not run': '#bab0ac',
};

/** Converged: every step that runs on the host plans nothing (skipped ones don't count against it). */
export function converged(h: HostPlatform): { ok: number; of: number; drift: string[]; failed: string[] } {
  const on = h.steps.filter((s) => s.status !== 'skipped');
  return {
    ok: on.filter((s) => s.status === 'ok').length,
    of: on.length,
    drift: on.filter((s) => s.status === 'would change').map((s) => s.step),
    failed: on.filter((s) => s.status === 'failed').map((s) => s.step),
  };
}

/** Facts as label → value rows, shared by both renderings. */
function platformRows(h: HostPlatform): [string, string][] {
  const hp = h.hugepages;
  return [
    ['OS', h.os ?? ''],
    ['kernel', h.kernel ? `${h.kernel.release} — ${h.kernel.from}` : ''],
    ['QEMU', h.qemu ? `${h.qemu.version ?? 'not installed'} — ${h.qemu.from}` : ''],
    ['libvirt', h.libvirt ? `${h.libvirt.version ?? 'not installed'} — ${h.libvirt.from}` : ''],
    [
      'bridge',
      h.bridges
        .map((b) => `${b.name} (ports: ${b.ports.join(', ') || 'none'}; ${b.addresses.join(', ')})`)
        .join('; ') || 'none',
    ],
    ['modules', h.modules.join(', ') || 'none of kvm/vhost/virtio/vfio'],
    ['hugepages', hp ? `${hp.total} × ${hp.sizeKiB} KiB (${hp.free} free)` : ''],
    ['KSM', h.ksm ? `${h.ksm.run === 1 ? 'running' : `run=${h.ksm.run}`}, ${h.ksm.pagesSharing} pages sharing` : ''],
    ['boot args', h.cmdline ?? ''],
  ];
}

function stepChart(r: PlatformReport): string {
  const bars: Bar[] = r.hosts.map((h) => ({
    label: h.host,
    parts: STATUSES.map((st) => ({ name: st, value: h.steps.filter((s) => s.status === st).length })),
  }));
  return barChart('Steps per host, planned now', 'steps', bars, STATUS_COLORS);
}

function runChart(h: HostPlatform): string {
  const runs = h.runs.slice(-10);
  const bars: Bar[] = runs.map((x) => ({
    label: `${x.run.slice(5, 10)} ${x.run.slice(11, 16).replace('-', ':')}`,
    parts: [{ name: x.status, value: x.ms / 1000 }],
  }));
  return barChart(`${h.host}: the last runs (each host's time)`, 'seconds', bars, STATUS_COLORS);
}

const table = (head: string[] | null, rows: string[][]) =>
  `<table>${head ? `<thead><tr>${head.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead>` : ''}<tbody>` +
  rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('') +
  '</tbody></table>';

const CSS = `body{font-family:sans-serif;margin:2em;max-width:80em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f3f3f3}.ok{color:#1a7f37}.drift{color:#b35900}.failed{color:#c62828}
section{border-top:2px solid #ddd;margin-top:2em}svg{max-width:100%;height:auto}`;

function hostHtml(h: HostPlatform): string {
  if (h.error)
    return (
      `<section id="host-${esc(h.host)}"><h2>${esc(h.host)}</h2>` +
      `<p class="failed">not read: ${esc(h.error)}</p></section>`
    );
  const c = converged(h);
  return [
    `<section id="host-${esc(h.host)}"><h2>${esc(h.host)}</h2>`,
    `<p class="${c.ok === c.of ? 'ok' : c.failed.length ? 'failed' : 'drift'}">${c.ok} of ${c.of} step(s) converged` +
      `${c.drift.length ? `; would change: ${esc(c.drift.join(', '))}` : ''}` +
      `${c.failed.length ? `; failed: ${esc(c.failed.join(', '))}` : ''}</p>`,
    '<h3>Platform now</h3>',
    table(null, platformRows(h)),
    '<h3>Steps</h3>',
    table(
      ['step', 'plan now', 'detail'],
      h.steps.map((s) => [s.step, s.status, s.detail ?? '']),
    ),
    '<h3>Domains</h3>',
    h.domains.length
      ? table(
          ['domain', 'state', 'vCPUs', 'memory', 'tuning'],
          h.domains.map((d) => [d.name, d.state, String(d.vcpus), `${d.memoryMiB} MiB`, d.tuning.join(', ')]),
        )
      : '<p>none defined</p>',
    '<h3>Last runs</h3>',
    h.runs.length
      ? table(
          ['run', 'mode', 'status', 'changes', 'time', 'failure'],
          h.runs
            .slice(-10)
            .reverse()
            .map((x) => [x.run, x.mode, x.status, String(x.changes), seconds(x.ms), x.error ?? '']),
        ) + runChart(h)
      : '<p>no run in the journal yet</p>',
    '</section>',
  ].join('\n');
}

/** VM insight kept by exits --save and bench --save: rows for a table, and the chart each command draws. */
function insightParts(r: PlatformReport) {
  const parts: { title: string; head: string[]; rows: string[][]; svg: string }[] = [];
  if (r.exits) {
    const rows = r.exits.hosts.flatMap((h) =>
      h.vms
        .filter((v) => !v.error)
        .map((v) => [h.host, v.name, v.rate.toFixed(0), `${(v.ioShare * 100).toFixed(1)} %`, v.verdict]),
    );
    parts.push({
      title: `KVM exits (exits --save, ${r.exits.saved}, over ${r.exits.interval} s)`,
      head: ['host', 'VM', 'exits/s', 'I/O share', 'verdict'],
      rows,
      svg: exitsChart(r.exits.interval, exitsBars(r.exits.hosts)),
    });
  }
  if (r.bench) {
    const b = r.bench;
    const ws = Object.keys(b.workloads) as Workload[];
    parts.push({
      title:
        `Guests side by side (bench --save, ${b.saved}; ${b.sizeMiB} MiB, median of ${b.runs} runs; ` +
        'MB/s, higher is better)',
      head: ['guest', 'disk', 'NIC', ...ws],
      rows: b.vms.map((v) => [
        v.host,
        v.disk ?? '',
        v.nic ?? '',
        ...ws.map((w) => {
          const m = v.results[w];
          const sp = v.spread?.[w];
          return v.error
            ? v.error
            : m === undefined
              ? ''
              : `${m.toFixed(1)}${sp ? ` (${sp[0].toFixed(1)}–${sp[1].toFixed(1)})` : ''}`;
        }),
      ]),
      svg: benchChart('kvmforge bench (whiskers: lowest and highest run)', b.vms, ws),
    });
  }
  return parts;
}

/** The fleet table, one row per host, for both renderings. */
const FLEET_HEAD = ['host', 'converged', 'kernel', 'QEMU', 'libvirt', 'last run'];
function fleetRows(r: PlatformReport): string[][] {
  return r.hosts.map((h) => {
    const c = converged(h);
    const last = h.runs.at(-1);
    return [
      h.host,
      h.error ? 'not read' : `${c.ok}/${c.of}`,
      h.kernel?.release ?? '',
      h.qemu?.version ?? '',
      h.libvirt?.version ?? '',
      last ? `${last.run} ${last.mode}: ${last.status}` : 'none',
    ];
  });
}

export function renderHtml(r: PlatformReport): string {
  const fleet = fleetRows(r);
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8"/>',
    `<title>kvmforge platform report — ${esc(r.inventory)}</title>`,
    `<style>${CSS}</style></head><body>`,
    '<h1>kvmforge platform report</h1>',
    `<p>Inventory ${esc(r.inventory)}, journal ${esc(r.journal)}; made ${esc(r.generated)}.</p>`,
    '<h2>Fleet</h2>',
    table(FLEET_HEAD, fleet),
    stepChart(r),
    ...insightParts(r).flatMap((p) => [`<h2>${esc(p.title)}</h2>`, table(p.head, p.rows), p.svg]),
    ...r.hosts.map(hostHtml),
    '</body></html>',
    '',
  ].join('\n');
}

const mdCell = (s: unknown) =>
  String(s ?? '')
    .replace(/\|/g, '\\|')
    .replace(/\n/g, ' ');
const mdTable = (head: string[], rows: string[][]) =>
  [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(mdCell).join(' | ')} |`),
  ].join('\n');

export function renderMarkdown(r: PlatformReport): string {
  const out = [
    '# kvmforge platform report',
    '',
    `Inventory ${r.inventory}, journal ${r.journal}; made ${r.generated}.`,
    '',
    '## Fleet',
    '',
    mdTable(FLEET_HEAD, fleetRows(r)),
  ];
  for (const p of insightParts(r)) out.push('', `## ${p.title}`, '', mdTable(p.head, p.rows));
  for (const h of r.hosts) {
    out.push('', `## ${h.host}`, '');
    if (h.error) {
      out.push(`Not read: ${h.error}`);
      continue;
    }
    out.push(mdTable(['', ''], platformRows(h)), '', '### Steps', '');
    out.push(
      mdTable(
        ['step', 'plan now', 'detail'],
        h.steps.map((s) => [s.step, s.status, s.detail ?? '']),
      ),
    );
    out.push('', '### Domains', '');
    out.push(
      h.domains.length
        ? mdTable(
            ['domain', 'state', 'vCPUs', 'memory', 'tuning'],
            h.domains.map((d) => [d.name, d.state, String(d.vcpus), `${d.memoryMiB} MiB`, d.tuning.join(', ')]),
          )
        : 'none defined',
    );
    out.push('', '### Last runs', '');
    out.push(
      h.runs.length
        ? mdTable(
            ['run', 'mode', 'status', 'changes', 'time', 'failure'],
            h.runs
              .slice(-10)
              .reverse()
              .map((x) => [x.run, x.mode, x.status, String(x.changes), seconds(x.ms), x.error ?? '']),
          )
        : 'no run in the journal yet',
    );
  }
  return out.join('\n') + '\n';
}
