// The platform report's pure parts: domains read from virsh's output, where each part came from, and
// both renderings (the HTML well-formed whatever a name holds, checked with xmllint).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFacts } from '../../src/facts/host.ts';
import { hostPlatform, parseDomains, type PlatformReport } from '../../src/insight/platform.ts';
import { renderHtml, renderMarkdown } from '../../src/insight/platform-render.ts';
import { barChart, groupedChart } from '../../src/insight/plot.ts';

const FACTS = parseFacts(readFileSync(new URL('../fixtures/facts/debian12-lab.txt', import.meta.url), 'utf8'));
const TUNED = `<domain type='kvm'>
  <name>tuned</name><memory unit='KiB'>2097152</memory><vcpu placement='static'>2</vcpu><iothreads>1</iothreads>
  <memoryBacking><hugepages/></memoryBacking>
  <cputune><vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' cpuset='3'/><emulatorpin cpuset='1'/>
  <vcpusched vcpus='0-1' scheduler='fifo' priority='99'/></cputune>
  <devices><disk type='file' device='disk'><target dev='vda' bus='virtio'/></disk>
  <interface type='bridge'><model type='virtio'/></interface></devices></domain>`;
const PLAIN = `<domain type='qemu'><name>old &amp; slow</name><memory unit='KiB'>524288</memory><vcpu>1</vcpu>
  <devices><disk type='file' device='disk'><target dev='hda' bus='ide'/></disk></devices></domain>`;

describe('platform report', () => {
  it('reads each domain’s state, size and tuning from virsh', () => {
    const d = parseDomains(`@@domain tuned\nrunning\n${TUNED}\n@@domain old & slow\nshut off\n${PLAIN}\n`);
    expect(d).toEqual([
      {
        name: 'tuned',
        state: 'running',
        vcpus: 2,
        memoryMiB: 2048,
        tuning: [
          'hugepages',
          '2 vCPU(s) pinned',
          'emulator pinned',
          'fifo 99',
          'virtio disk',
          'virtio NIC',
          '1 I/O thread(s)',
        ],
      },
      { name: 'old & slow', state: 'shut off', vcpus: 1, memoryMiB: 512, tuning: [] },
    ]);
    expect(parseDomains('')).toEqual([]);
  });

  it('says where kernel, QEMU and libvirt came from', () => {
    const facts = FACTS;
    const f = { ...facts, kernel: '6.1.192-kvmforge-920587f8', versions: { qemu: '7.2.22', libvirt: '9.0.0' } };
    const p = hostPlatform(
      'h',
      f,
      {
        'linux-image-6.1.192-kvmforge-920587f8': '6.1.192-kvmforge-920587f8-1',
        'kvmforge-qemu': '7.2.22-kvmforge.5e81c2f9de94',
        'libvirt-daemon': '9.0.0-4+deb12u2',
      },
      [],
    );
    expect(p.kernel?.from).toBe('kvmforge build (linux-image-6.1.192-kvmforge-920587f8 6.1.192-kvmforge-920587f8-1)');
    expect(p.qemu?.from).toBe('kvmforge build (kvmforge-qemu 7.2.22-kvmforge.5e81c2f9de94)');
    expect(p.libvirt?.from).toBe('distribution (libvirt-daemon 9.0.0-4+deb12u2)');
    expect(hostPlatform('h', { ...f, kernel: '6.1.0-50-amd64' }, {}, []).kernel?.from).toBe('not from a package');
  });

  it('renders HTML that is well-formed whatever names hold, and Markdown', () => {
    const facts = FACTS;
    const nasty = `a<b>&"c'`;
    const r: PlatformReport = {
      generated: '2026-11-30T00:00:00Z',
      inventory: nasty,
      journal: '/j',
      hosts: [
        {
          ...hostPlatform(nasty, facts, {}, parseDomains(`@@domain tuned\nrunning\n${TUNED}\n`)),
          steps: [
            { step: 'files', status: 'ok' },
            { step: 'sriov', status: 'skipped', detail: 'no VFs asked for (sriov_vfs, sriov_max_vfs)' },
            { step: 'bridge', status: 'would change', detail: nasty },
          ],
          runs: [{ run: '2026-11-30T00-00-00Z', mode: 'apply', status: 'failed', changes: 0, ms: 1200, error: nasty }],
        },
        { host: 'down', error: 'connection refused', bridges: [], modules: [], domains: [], steps: [], runs: [] },
      ],
    };
    const html = renderHtml(r);
    execFileSync('xmllint', ['--noout', '-'], { input: html });
    expect(html).not.toContain(nasty);
    expect(html).toContain('a&lt;b&gt;&amp;&quot;c&#39;');
    expect(html).toContain('1 of 2 step(s) converged; would change: bridge');
    expect(html).toContain('<td>tuned</td><td>running</td><td>2</td><td>2048 MiB</td><td>hugepages, 2 vCPU(s) pinned');
    expect(html).toContain('not read: connection refused');
    const md = renderMarkdown(r);
    expect(md).toContain('| sriov | skipped | no VFs asked for (sriov_vfs, sriov_max_vfs) |');
    expect(md).toContain('## down\n\nNot read: connection refused');
  });

  it('charts: long labels cut to their slot (whole in a <title>), a legend in rows below the bars, ticks', () => {
    const names = Array.from({ length: 9 }, (_, i) => `a rather long series name ${i}`);
    const svg = barChart('t', 'seconds', [
      { label: 'a-very-long-virtual-machine-name-number-one', parts: names.map((name, i) => ({ name, value: i + 1 })) },
      { label: 'a-very-long-virtual-machine-name-number-two', parts: [{ name: names[0], value: 3 }] },
    ]);
    execFileSync('xmllint', ['--noout', '-'], { input: svg });
    const labels = [...svg.matchAll(/<text class="label"[^>]*><title>([^<]*)<\/title>([^<]*)</g)];
    expect(labels.map((m) => m[1])).toEqual([
      'a-very-long-virtual-machine-name-number-one',
      'a-very-long-virtual-machine-name-number-two',
    ]);
    for (const m of labels) expect([...m[2]].length * 6.6).toBeLessThanOrEqual(100);
    const barBottom = Math.max(
      ...[...svg.matchAll(/class="bar"[^>]* y="([\d.]+)"[^>]* height="([\d.]+)"/g)].map(
        (m) => Number(m[1]) + Number(m[2]),
      ),
    );
    const legendYs = [...svg.matchAll(/class="legend" x="[\d.]+" y="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(legendYs).toHaveLength(9);
    expect(Math.min(...legendYs)).toBeGreaterThan(barBottom + 20); // under the bar labels
    expect(new Set(legendYs).size).toBeGreaterThan(1); // wrapped into rows, not off the edge
    expect(svg).toContain('<text class="tick" x="55"');
    expect(svg).toMatch(/>45<\/text>/); // the top tick: the tallest bar's total (1+…+9)
  });

  it('grouped bars: a bar per series in each group, the spread as a whisker, a title that fits', () => {
    const title = 'a long title that would not fit a chart of two groups at its smallest width, at all';
    const svg = groupedChart(title, 'MB/s', [
      {
        label: 'disk-write',
        values: [
          { name: 'tuned', value: 6, min: 5, max: 7 },
          { name: 'untuned', value: 4 },
        ],
      },
      {
        label: 'cpu',
        values: [
          { name: 'tuned', value: 20 },
          { name: 'untuned', value: 20, min: 19, max: 21 },
        ],
      },
    ]);
    execFileSync('xmllint', ['--noout', '-'], { input: svg });
    expect([...svg.matchAll(/data-label="([^"]+)"/g)].map((m) => m[1])).toEqual([
      'disk-write tuned',
      'disk-write untuned',
      'cpu tuned',
      'cpu untuned',
    ]);
    expect(svg.match(/class="spread"/g)).toHaveLength(2);
    const width = Number(/width="(\d+)"/.exec(svg)![1]);
    expect(width).toBeGreaterThanOrEqual(Math.ceil(([...title].length * 6.6 * 15) / 12) + 40);
  });
});
