// The task timeline: the newest tasks that ran (GET /api/v1/timeline, a
// Chrome trace), drawn as bars in a lane per worker, grouped by node and
// colored by function; and the same trace downloaded as a file for
// Perfetto or chrome://tracing.
import * as api from './api.js';
import { svg } from './charts.js';
import { h } from './ui.js';

const LANE = 16;
const LABEL = 150; // room for the lane names
const W = 1000;

// A stable hue per function name.
function color(name) {
  let x = 0;
  for (let i = 0; i < name.length; i++) x = (x * 31 + name.charCodeAt(i)) >>> 0;
  return 'hsl(' + (x % 360) + ' 60% 55%)';
}

function fmtMs(us) {
  const ms = us / 1000;
  return ms < 1000 ? ms.toFixed(ms < 10 ? 1 : 0) + ' ms' : (ms / 1000).toFixed(2) + ' s';
}

function laneNames(trace) {
  const names = new Map();
  for (const e of trace.traceEvents) {
    if (e.ph !== 'M') continue;
    names.set(e.name === 'process_name' ? 'p' + e.pid : 'p' + e.pid + 't' + e.tid, e.args.name);
  }
  return names;
}

// The trace as an SVG (or a note when no task has run yet).
export function draw(trace) {
  const events = trace.traceEvents.filter((e) => e.ph === 'X');
  if (!events.length) return h('p', { class: 'empty', id: 'timeline-empty' }, 'No task has run yet.');
  const names = laneNames(trace);
  const lanes = [...new Set(events.map((e) => e.pid * 1e6 + e.tid))].sort((a, b) => a - b);
  const row = new Map(lanes.map((k, i) => [k, i]));
  const t0 = Math.min(...events.map((e) => e.ts));
  const t1 = Math.max(...events.map((e) => e.ts + e.dur));
  const scale = (W - LABEL) / Math.max(1, t1 - t0);
  const height = lanes.length * LANE + 18;
  const plot = svg('svg', { viewBox: `0 0 ${W} ${height}`, class: 'timeline', id: 'timeline-svg',
    role: 'img', 'aria-label': 'task timeline' });
  lanes.forEach((k, i) => {
    const pid = Math.floor(k / 1e6), tid = k % 1e6;
    const node = (names.get('p' + pid) || '').split(' ')[0];
    const worker = (names.get('p' + pid + 't' + tid) || '').replace('worker ', '').slice(0, 8);
    plot.append(svg('text', { x: 2, y: i * LANE + 12, class: 'lane' }, node + ' · ' + worker));
  });
  for (const e of events) {
    const y = row.get(e.pid * 1e6 + e.tid) * LANE + 2;
    const rect = svg('rect', { x: (LABEL + (e.ts - t0) * scale).toFixed(1), y,
      width: Math.max(1, e.dur * scale).toFixed(1), height: LANE - 4, fill: color(e.name),
      class: 'task' + (e.args.state === 'FAILED' ? ' failed' : ''), 'data-task': e.args.task_id },
    svg('title', {}, e.name + ' · ' + fmtMs(e.dur) + ' · ' + e.args.state + ' · ' +
      e.args.task_id + (e.args.error ? ' · ' + e.args.error : '')));
    plot.append(rect);
  }
  plot.append(svg('text', { x: LABEL, y: height - 3, class: 'lane' }, new Date(t0 / 1000)
    .toLocaleTimeString()));
  plot.append(svg('text', { x: W - 2, y: height - 3, class: 'lane end' },
    '+' + fmtMs(t1 - t0)));
  const fns = [...new Set(events.map((e) => e.name))].sort().slice(0, 20);
  return h('div', {},
    plot,
    h('div', { class: 'chart-legend' }, fns.map((f) => h('span', { class: 'fn' },
      svg('svg', { viewBox: '0 0 10 10', class: 'swatch' },
        svg('rect', { width: 10, height: 10, fill: color(f) })), ' ' + f))));
}

// Saves the whole trace (as the API wrote it) as prism-timeline.json.
export async function download(signal) {
  const text = await api.getText('/api/v1/timeline', signal);
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const a = h('a', { href: url, download: 'prism-timeline.json', hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
