// Live charts drawn as SVG by the page (no library): the cluster's figures
// of the last minutes, from GET /api/v1/metrics/history. The GCS keeps ten
// minutes of samples, so a page opened now shows a curve at once; afterwards
// the page asks only for the samples it has not seen (?since=).
import * as api from './api.js';
import { h } from './ui.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 300;
const H = 80;

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c);
  return el;
}

// The samples seen so far ({t: [], series: {name: []}}), at most max_samples.
export function newHistory() {
  return { t: [], series: {}, since: 0, interval: 2000, max: 300 };
}

export async function update(hist, signal) {
  const doc = await api.get('/api/v1/metrics/history?since=' + hist.since, signal);
  hist.interval = doc.interval_ms;
  hist.max = doc.max_samples;
  hist.t.push(...doc.t);
  for (const [name, values] of Object.entries(doc.series)) {
    (hist.series[name] = hist.series[name] || []).push(...values);
  }
  const extra = hist.t.length - hist.max;
  if (extra > 0) {
    hist.t.splice(0, extra);
    for (const values of Object.values(hist.series)) values.splice(0, extra);
  }
  if (hist.t.length) hist.since = hist.t[hist.t.length - 1];
  return doc.stores;
}

// One chart: lines [{label, values, cls}] over the times `t`, scaled from 0
// to the largest value; `fmt` writes a value for the legend.
export function chart(id, title, t, lines, fmt) {
  const n = t.length;
  let top = 0;
  for (const l of lines) for (const v of l.values) if (v > top) top = v;
  if (!(top > 0)) top = 1;
  const span = n > 1 ? t[n - 1] - t[0] : 1;
  const x = (i) => (n > 1 ? ((t[i] - t[0]) / span) * W : W);
  const y = (v) => H - 1 - (v / top) * (H - 4);
  const plot = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none',
    class: 'chart', role: 'img', 'aria-label': title });
  plot.append(svg('line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: 'axis' }));
  for (const l of lines) {
    if (!n) continue;
    const pts = l.values.map((v, i) => x(i).toFixed(1) + ',' + y(v).toFixed(1)).join(' ');
    plot.append(svg('polyline', { points: pts, class: 'line ' + (l.cls || '') }));
  }
  const minutes = n > 1 ? Math.round(span / 60000) : 0;
  return h('div', { class: 'chart-card', id, 'data-points': n },
    h('div', { class: 'chart-head' }, h('span', { class: 'chart-title' }, title),
      h('span', { class: 'sub' }, 'max ' + fmt(top) + (minutes ? ' · ' + minutes + ' min' : ''))),
    plot,
    h('div', { class: 'chart-legend' }, lines.map((l) => h('span', { class: 'key ' + (l.cls || '') },
      l.label + ' ' + fmt(l.values.length ? l.values[l.values.length - 1] : 0)))));
}

// A small line of `values` from 0 to `max` (a node's store use), without axes.
export function spark(values, max, label) {
  const n = values.length;
  const top = max > 0 ? max : 1;
  const pts = values.map((v, i) => (n > 1 ? (i / (n - 1)) * 100 : 100).toFixed(1) + ',' +
    (19 - (v / top) * 18).toFixed(1)).join(' ');
  return svg('svg', { viewBox: '0 0 100 20', preserveAspectRatio: 'none', class: 'spark',
    role: 'img', 'aria-label': label, 'data-points': n },
  svg('polyline', { points: pts, class: 'line' }));
}
