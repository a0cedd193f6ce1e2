// A small SVG bar chart (no dependency): one group per label, stacked segments, values on the bars.
const esc = (s: string) =>
  s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]!);

export interface Bar {
  label: string;
  /** Stacked segments, bottom first. */
  parts: { name: string; value: number }[];
}

const COLORS = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2'];

export function barChart(title: string, unit: string, bars: Bar[]): string {
  const w = Math.max(360, 120 + bars.length * 110);
  const h = 320;
  const top = 50;
  const bottom = h - 60;
  const max = Math.max(1e-9, ...bars.map((b) => b.parts.reduce((n, p) => n + p.value, 0)));
  const names = [...new Set(bars.flatMap((b) => b.parts.map((p) => p.name)))];
  const color = (n: string) => COLORS[names.indexOf(n) % COLORS.length];
  const y = (v: number) => ((bottom - top) * v) / max;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" ` +
      `font-family="sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<text x="${w / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`,
    `<line x1="60" y1="${bottom}" x2="${w - 20}" y2="${bottom}" stroke="black"/>`,
    `<text x="14" y="${(top + bottom) / 2}" transform="rotate(-90 14 ${(top + bottom) / 2})" ` +
      `text-anchor="middle">${esc(unit)}</text>`,
  ];
  bars.forEach((b, i) => {
    const x = 80 + i * 110;
    let base = bottom;
    for (const p of b.parts) {
      const hgt = y(p.value);
      base -= hgt;
      out.push(
        `<rect class="bar" data-label="${esc(b.label)}" data-part="${esc(p.name)}" data-value="${p.value}" ` +
          `x="${x}" y="${base.toFixed(2)}" width="70" height="${hgt.toFixed(2)}" fill="${color(p.name)}"/>`,
      );
    }
    const total = b.parts.reduce((n, p) => n + p.value, 0);
    const label = total >= 1000 ? `${(total / 1000).toFixed(1)}k` : total.toFixed(total % 1 ? 1 : 0);
    out.push(`<text x="${x + 35}" y="${(base - 6).toFixed(2)}" text-anchor="middle">${esc(label)}</text>`);
    out.push(`<text x="${x + 35}" y="${bottom + 18}" text-anchor="middle">${esc(b.label)}</text>`);
  });
  names.forEach((n, i) => {
    out.push(
      `<rect x="${60 + i * 130}" y="${h - 24}" width="12" height="12" fill="${color(n)}"/><text ` +
        `x="${76 + i * 130}" y="${h - 14}">${esc(n)}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
