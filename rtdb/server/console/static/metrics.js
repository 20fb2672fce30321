// The Metrics view: /.console/api/metrics polled every 2 s (from sign-in on, so the charts have a
// history when opened); rates from counter differences, connections as they are.
import { api } from './api.js';
import { h } from './dom.js';
import { drawChart } from './chart.js';

const EVERY_MS = 2000;
const WINDOW_MS = 5 * 60 * 1000;
const COLORS = { requests: '#3b82f6', writes: '#10b981', denied: '#ef4444', events: '#8b5cf6', ws: '#0ea5e9', lp: '#f59e0b', sse: '#ec4899' };

export class MetricsView {
  constructor(el, app) {
    this.el = el;
    this.app = app;
    this.samples = [];
    this.timer = null;
    this.charts = {};
    const card = (id, title, series) => {
      const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
      svg.classList.add('chart');
      svg.id = `chart-${id}`;
      const now = h('span.big#now-' + id, '–');
      const legend = series.length > 1
        ? h('div.legend', series.map((s) => h('span', h('i', { style: `background:${COLORS[s]}` }), s)))
        : null;
      this.charts[id] = { svg, now, series };
      return h('div.card.metric-card', h('div.card-head', h('h2', title), h('span.spacer'), now), legend, svg);
    };
    this.status = h('span.muted.small');
    el.append(
      h('header.view-head', h('div', h('h1', 'Metrics'), h('p.muted.small', 'Rates per second from the server\'s counters, polled every 2 s; the last 5 minutes')),
        h('div.head-right', this.status)),
      h('div.metric-grid',
        card('requests', 'Requests / s', ['requests']),
        card('writes', 'Writes / s', ['writes']),
        card('events', 'Events delivered / s', ['events']),
        card('denied', 'Rule denials / s', ['denied']),
        card('connections', 'Open connections', ['ws', 'lp', 'sse'])),
      h('p.muted.small.hint', 'Prometheus metrics (all counters, by transport and outcome): GET /metrics with the admin token.'));
  }

  startPolling() {
    if (this.timer) return;
    const tick = async () => {
      try {
        this.samples.push(await api.metrics());
        const cutoff = Date.now() - WINDOW_MS - EVERY_MS * 2;
        while (this.samples.length > 2 && this.samples[0].t < cutoff) this.samples.shift();
        this.status.textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
        if (!this.el.hidden) this.draw();
      } catch (err) {
        this.status.textContent = err.message;
        if (err.status === 401) { this.stopPolling(); return; }
      }
      this.timer = setTimeout(tick, EVERY_MS);
    };
    this.timer = setTimeout(tick, 0);
  }

  stopPolling() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  suspend() { this.stopPolling(); }

  show() { this.draw(); }

  /** Per-second rates between consecutive samples (a counter that went down: the server restarted). */
  rates(name) {
    const out = [];
    for (let i = 1; i < this.samples.length; i += 1) {
      const a = this.samples[i - 1];
      const b = this.samples[i];
      const dt = (b.t - a.t) / 1000;
      if (dt <= 0) continue;
      out.push([b.t, Math.max(0, b.counters[name] - a.counters[name]) / dt]);
    }
    return out;
  }

  draw() {
    const last = this.samples.at(-1);
    const now = last ? last.t : Date.now();
    for (const [id, chart] of Object.entries(this.charts)) {
      let series;
      if (id === 'connections') {
        series = chart.series.map((s) => ({ name: s, color: COLORS[s], points: this.samples.map((m) => [m.t, m.connections[s]]) }));
        chart.now.textContent = last ? String(last.connections.ws + last.connections.lp + last.connections.sse) : '–';
      } else {
        const points = this.rates(id);
        series = [{ name: id, color: COLORS[id], points }];
        const v = points.at(-1)?.[1];
        chart.now.textContent = v === undefined ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(1);
        chart.now.title = last ? `${last.counters[id]} in total` : '';
      }
      drawChart(chart.svg, series, { now, windowMs: WINDOW_MS });
    }
  }
}
