// A hand-written SVG line chart: a fixed time window, a rounded y scale, one polyline per series.
const NS = 'http://www.w3.org/2000/svg';
const W = 560;
const H = 170;
const M = { l: 44, r: 12, t: 12, b: 22 };

const svgEl = (tag, attrs = {}, text) => {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
};

/** The smallest 1/2/5 × 10^n at or above `v` (at least 1). */
export function niceMax(v) {
  if (!(v > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const fmt = (v) => (v >= 10000 ? `${(v / 1000).toFixed(0)}k` : v >= 1000 ? `${(v / 1000).toFixed(1)}k` : String(Number(v.toFixed(2))));

/**
 * Draws `series` ([{name, color, points: [[t_ms, value], …]}]) over the last `windowMs` before `now`
 * into `svg` (replacing what was there).
 */
export function drawChart(svg, series, { now, windowMs }) {
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const from = now - windowMs;
  let top = 0;
  for (const s of series) for (const [t, v] of s.points) if (t >= from && v > top) top = v;
  const max = niceMax(top);
  const x = (t) => M.l + ((t - from) / windowMs) * (W - M.l - M.r);
  const y = (v) => H - M.b - (v / max) * (H - M.t - M.b);
  for (let i = 0; i <= 4; i += 1) {
    const v = (max * i) / 4;
    svg.append(svgEl('line', { x1: M.l, x2: W - M.r, y1: y(v), y2: y(v), class: i ? 'grid' : 'axis' }));
    svg.append(svgEl('text', { x: M.l - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, fmt(v)));
  }
  for (const [label, t] of [[`-${Math.round(windowMs / 60000)} min`, from], ['now', now]]) {
    svg.append(svgEl('text', { x: x(t), y: H - 5, 'text-anchor': t === now ? 'end' : 'start', class: 'tick' }, label));
  }
  for (const s of series) {
    const pts = s.points.filter(([t]) => t >= from);
    if (!pts.length) continue;
    const d = pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    if (series.length === 1) {
      const area = `${x(pts[0][0]).toFixed(1)},${y(0)} ${d} ${x(pts.at(-1)[0]).toFixed(1)},${y(0)}`;
      svg.append(svgEl('polygon', { points: area, fill: s.color, 'fill-opacity': '0.12' }));
    }
    svg.append(svgEl('polyline', { points: d, fill: 'none', stroke: s.color, 'stroke-width': '2', 'stroke-linejoin': 'round', class: 'line', 'data-series': s.name }));
    const [lt, lv] = pts.at(-1);
    svg.append(svgEl('circle', { cx: x(lt), cy: y(lv), r: 3, fill: s.color }));
  }
}
