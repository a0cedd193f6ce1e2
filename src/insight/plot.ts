// A small SVG bar chart (no dependency): one group per label, stacked segments, values on the bars.
const esc = (s: string) =>
  s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]!);

export interface Bar {
  label: string;
  /** Stacked segments, bottom first. */
  parts: { name: string; value: number }[];
}

const COLORS = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2'];

/** Roughly how wide a text is at font-size 12 (no font metrics here; sans-serif averages ~6.6 px). */
const textWidth = (t: string) => [...t].length * 6.6;

/** A label cut to fit `px`, with an ellipsis (the whole label goes in a <title>). */
function fitLabel(t: string, px: number): string {
  const n = Math.floor(px / 6.6);
  return [...t].length <= n ? t : `${[...t].slice(0, Math.max(1, n - 1)).join('')}…`;
}

/** `colors` gives series their own colours (e.g. failed in red); the others take the palette in order. */
export function barChart(title: string, unit: string, bars: Bar[], colors: Record<string, string> = {}): string {
  const w = Math.max(360, 120 + bars.length * 110);
  const top = 50;
  const plotBottom = 260;
  const max = Math.max(1e-9, ...bars.map((b) => b.parts.reduce((n, p) => n + p.value, 0)));
  const names = [...new Set(bars.flatMap((b) => b.parts.map((p) => p.name)))];
  const color = (n: string) => colors[n] ?? COLORS[names.indexOf(n) % COLORS.length];
  const y = (v: number) => ((plotBottom - top) * v) / max;
  // the legend below the bar labels, in rows that wrap: it never overlaps the bars
  const legend: { name: string; x: number; row: number }[] = [];
  let lx = 60;
  let row = 0;
  for (const n of names) {
    const item = 22 + textWidth(n) + 18;
    if (lx + item > w - 10 && lx > 60) {
      row++;
      lx = 60;
    }
    legend.push({ name: n, x: lx, row });
    lx += item;
  }
  const h = plotBottom + 40 + (row + 1) * 20;
  const num = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(v % 1 ? 1 : 0));
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" ` +
      `font-family="sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<text x="${w / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`,
    `<line x1="60" y1="${plotBottom}" x2="${w - 20}" y2="${plotBottom}" stroke="black"/>`,
    `<line x1="60" y1="${top}" x2="60" y2="${plotBottom}" stroke="black"/>`,
    `<text x="14" y="${(top + plotBottom) / 2}" transform="rotate(-90 14 ${(top + plotBottom) / 2})" ` +
      `text-anchor="middle">${esc(unit)}</text>`,
  ];
  // the value axis: 0, half and the top, in the chart's unit
  for (const v of [0, max / 2, max])
    out.push(
      `<text class="tick" x="55" y="${(plotBottom - y(v) + 4).toFixed(2)}" text-anchor="end">${esc(num(v))}</text>`,
    );
  bars.forEach((b, i) => {
    const x = 80 + i * 110;
    let base = plotBottom;
    for (const p of b.parts) {
      const hgt = y(p.value);
      base -= hgt;
      out.push(
        `<rect class="bar" data-label="${esc(b.label)}" data-part="${esc(p.name)}" data-value="${p.value}" ` +
          `x="${x}" y="${base.toFixed(2)}" width="70" height="${hgt.toFixed(2)}" fill="${color(p.name)}"/>`,
      );
    }
    const total = b.parts.reduce((n, p) => n + p.value, 0);
    out.push(`<text x="${x + 35}" y="${(base - 6).toFixed(2)}" text-anchor="middle">${esc(num(total))}</text>`);
    // a label never wider than its slot (100 px of the 110 between bars): no two collide
    out.push(
      `<text class="label" x="${x + 35}" y="${plotBottom + 18}" text-anchor="middle"><title>${esc(b.label)}</title>` +
        `${esc(fitLabel(b.label, 100))}</text>`,
    );
  });
  for (const l of legend) {
    const ly = plotBottom + 32 + l.row * 20;
    out.push(
      `<rect class="legend" x="${l.x}" y="${ly}" width="12" height="12" fill="${color(l.name)}"/><text ` +
        `x="${l.x + 16}" y="${ly + 10}">${esc(l.name)}</text>`,
    );
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
