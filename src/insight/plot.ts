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
/** The legend's items in rows below the plot, wrapping at the chart's width: it never overlaps the data. */
function legendLayout(names: string[], w: number): { items: { name: string; x: number; row: number }[]; rows: number } {
  const items: { name: string; x: number; row: number }[] = [];
  let lx = 60;
  let row = 0;
  for (const name of names) {
    const item = 22 + textWidth(name) + 18;
    if (lx + item > w - 10 && lx > 60) {
      row++;
      lx = 60;
    }
    items.push({ name, x: lx, row });
    lx += item;
  }
  return { items, rows: row + 1 };
}

function legendSvg(items: { name: string; x: number; row: number }[], y0: number, color: (n: string) => string) {
  return items.map(
    (l) =>
      `<rect class="legend" x="${l.x}" y="${y0 + l.row * 20}" width="12" height="12" fill="${color(l.name)}"/><text ` +
      `x="${l.x + 16}" y="${y0 + l.row * 20 + 10}">${esc(l.name)}</text>`,
  );
}

/** The chart's frame: canvas, title, both axes with the unit, and the value ticks (0, half, the top). */
function frame(
  title: string,
  unit: string,
  w: number,
  h: number,
  top: number,
  plotBottom: number,
  max: number,
  num: (v: number) => string,
): string[] {
  const y = (v: number) => ((plotBottom - top) * v) / max;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" ` +
      `font-family="sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<text x="${w / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`,
    `<line x1="60" y1="${plotBottom}" x2="${w - 20}" y2="${plotBottom}" stroke="black"/>`,
    `<line x1="60" y1="${top}" x2="60" y2="${plotBottom}" stroke="black"/>`,
    `<text x="14" y="${(top + plotBottom) / 2}" transform="rotate(-90 14 ${(top + plotBottom) / 2})" ` +
      `text-anchor="middle">${esc(unit)}</text>`,
    ...[0, max / 2, max].map(
      (v) =>
        `<text class="tick" x="55" y="${(plotBottom - y(v) + 4).toFixed(2)}" text-anchor="end">${esc(num(v))}</text>`,
    ),
  ];
}

export function barChart(title: string, unit: string, bars: Bar[], colors: Record<string, string> = {}): string {
  // wide enough for the bars and for the title (15 px text)
  const w = Math.max(360, 120 + bars.length * 110, Math.ceil((textWidth(title) * 15) / 12) + 40);
  const top = 50;
  const plotBottom = 260;
  const max = Math.max(1e-9, ...bars.map((b) => b.parts.reduce((n, p) => n + p.value, 0)));
  const names = [...new Set(bars.flatMap((b) => b.parts.map((p) => p.name)))];
  const color = (n: string) => colors[n] ?? COLORS[names.indexOf(n) % COLORS.length];
  const y = (v: number) => ((plotBottom - top) * v) / max;
  const legend = legendLayout(names, w);
  const h = plotBottom + 40 + legend.rows * 20;
  const num = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(v % 1 ? 1 : 0));
  const out = frame(title, unit, w, h, top, plotBottom, max, num);
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
  out.push(...legendSvg(legend.items, plotBottom + 32, color));
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export interface Group {
  label: string;
  /** one bar per series, side by side; min/max draw the measured spread as a whisker */
  values: { name: string; value: number; min?: number; max?: number }[];
}

/** Grouped bars (one group per label, a bar per series in it) with the spread of the runs as whiskers. */
export function groupedChart(
  title: string,
  unit: string,
  groups: Group[],
  colors: Record<string, string> = {},
): string {
  const names = [...new Set(groups.flatMap((g) => g.values.map((v) => v.name)))];
  const color = (n: string) => colors[n] ?? COLORS[names.indexOf(n) % COLORS.length];
  const bw = 34;
  const slot = Math.max(110, names.length * (bw + 6) + 30);
  const w = Math.max(360, 100 + groups.length * slot, Math.ceil((textWidth(title) * 15) / 12) + 40);
  const top = 50;
  const plotBottom = 260;
  const max = Math.max(1e-9, ...groups.flatMap((g) => g.values.map((v) => Math.max(v.value, v.max ?? 0))));
  const y = (v: number) => ((plotBottom - top) * v) / max;
  const legend = legendLayout(names, w);
  const h = plotBottom + 40 + legend.rows * 20;
  const num = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(v % 1 && v < 100 ? 1 : 0));
  const out = frame(title, unit, w, h, top, plotBottom, max, num);
  groups.forEach((g, gi) => {
    const x0 = 75 + gi * slot;
    g.values.forEach((v, i) => {
      const x = x0 + i * (bw + 6);
      const hgt = y(v.value);
      out.push(
        `<rect class="bar" data-label="${esc(`${g.label} ${v.name}`)}" data-part="${esc(v.name)}" ` +
          `data-value="${v.value}" x="${x}" y="${(plotBottom - hgt).toFixed(2)}" width="${bw}" ` +
          `height="${hgt.toFixed(2)}" fill="${color(v.name)}"/>`,
      );
      if (v.min !== undefined && v.max !== undefined && v.max > v.min) {
        const cx = x + bw / 2;
        const [y1, y2] = [plotBottom - y(v.min), plotBottom - y(v.max)];
        out.push(
          `<path class="spread" d="M${cx} ${y1.toFixed(2)}V${y2.toFixed(2)}M${cx - 5} ${y1.toFixed(2)}h10M${cx - 5} ` +
            `${y2.toFixed(2)}h10" stroke="black" fill="none"/>`,
        );
      }
      out.push(
        `<text x="${x + bw / 2}" y="${(plotBottom - Math.max(hgt, y(v.max ?? 0)) - 5).toFixed(2)}" ` +
          `text-anchor="middle" font-size="10">${esc(num(v.value))}</text>`,
      );
    });
    const mid = x0 + (g.values.length * (bw + 6) - 6) / 2;
    out.push(
      `<text class="label" x="${mid}" y="${plotBottom + 18}" text-anchor="middle"><title>${esc(g.label)}</title>` +
        `${esc(fitLabel(g.label, slot - 10))}</text>`,
    );
  });
  out.push(...legendSvg(legend.items, plotBottom + 32, color));
  out.push('</svg>');
  return out.join('\n') + '\n';
}
