// Overview: nodes alive/dead, each live node's CPU/GPU/memory used vs total
// and its object store, jobs by state, actors by state, and live charts of
// the last minutes (charts.js).
import * as api from './api.js';
import * as charts from './charts.js';
import { h, bar, table, fmtBytes, fmtNumber, storeBar } from './ui.js';

const JOB_STATES = ['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED'];
const ACTOR_STATES = ['PENDING_CREATION', 'ALIVE', 'RESTARTING', 'DEAD'];
const RECENT = 100; // ended jobs are counted among the newest this many
const ACTORS = 200; // actors are counted among the newest this many

export const page = { mount, refresh };

function mount(st) {
  st.root.append(h('h1', {}, 'Overview'));
  st.hist = charts.newHistory();
  st.charts = h('section', { class: 'charts', id: 'ov-charts' });
  st.body = h('div', { class: 'overview' });
  st.root.append(st.charts, st.body);
}

function drawCharts(st) {
  const { t, series: s } = st.hist;
  const v = (name) => s[name] || [];
  const perSecond = (name) => v(name).map((n) => n / (st.hist.interval / 1000));
  st.charts.replaceChildren(
    charts.chart('chart-tasks', 'Tasks finished / s', t, [
      { label: 'finished', values: perSecond('tasks_finished') },
      { label: 'failed', values: perSecond('tasks_failed'), cls: 'bad' }], fmtNumber),
    charts.chart('chart-cpu', 'CPU in use', t, [
      { label: 'used', values: v('cpu_used') },
      { label: 'total', values: v('cpu_total'), cls: 'total' }], fmtNumber),
    charts.chart('chart-memory', 'Memory in use', t, [
      { label: 'used', values: v('memory_used') },
      { label: 'total', values: v('memory_total'), cls: 'total' }], fmtBytes),
    charts.chart('chart-store', 'Object stores', t, [
      { label: 'used', values: v('store_used') },
      { label: 'spilled', values: v('store_spilled'), cls: 'warn' },
      { label: 'capacity', values: v('store_capacity'), cls: 'total' }], fmtBytes),
    charts.chart('chart-actors', 'Actors and jobs', t, [
      { label: 'actors alive', values: v('actors_alive') },
      { label: 'jobs running', values: v('jobs_running'), cls: 'alt' },
      { label: 'jobs pending', values: v('jobs_pending'), cls: 'warn' }], fmtNumber),
    charts.chart('chart-nodes', 'Nodes alive', t, [
      { label: 'alive', values: v('nodes_alive') }], fmtNumber));
}

function counts(items, states) {
  const n = Object.fromEntries(states.map((s) => [s, 0]));
  for (const it of items) n[it.state] = (n[it.state] || 0) + 1;
  return n;
}

function stat(label, value, cls) {
  return h('div', { class: 'stat ' + (cls || '') }, h('span', { class: 'num' }, value),
    h('span', { class: 'lbl' }, label));
}

async function refresh(st) {
  const sig = st.abort.signal;
  const [cluster, live, recent, actors, stores] = await Promise.all([
    api.get('/api/v1/cluster', sig),
    api.get('/api/v1/nodes?state=ALIVE&limit=1000', sig),
    api.get('/api/v1/jobs?limit=' + RECENT, sig),
    api.get('/api/v1/actors?limit=' + ACTORS, sig),
    charts.update(st.hist, sig),
  ]);
  drawCharts(st);
  const store = Object.fromEntries(stores.map((x) => [x.node_id, x]));
  const jc = counts(recent.jobs, JOB_STATES);
  jc.PENDING = cluster.jobs.pending;
  jc.RUNNING = cluster.jobs.running;
  const ac = counts(actors.actors, ACTOR_STATES);

  const nodeRows = live.nodes.map((n) => {
    const names = ['CPU', 'GPU', 'memory'].filter((k) => (n.resources[k] || 0) > 0);
    return h('tr', { 'data-node': n.node_id },
      h('td', {}, n.name),
      h('td', { class: 'bars' }, names.map((k) =>
        bar(k, (n.resources[k] || 0) - (n.available[k] || 0), n.resources[k]))),
      h('td', { class: 'bars store' }, store[n.node_id] ? storeBar(store[n.node_id]) : '—'));
  });

  st.body.replaceChildren(
    h('section', { class: 'cards' },
      h('div', { class: 'card', id: 'ov-nodes' }, h('h2', {}, 'Nodes'),
        h('div', { class: 'stats' }, stat('alive', cluster.nodes_alive, 'ok'),
          stat('dead', cluster.nodes_dead, cluster.nodes_dead ? 'bad' : ''))),
      h('div', { class: 'card', id: 'ov-jobs' }, h('h2', {}, h('a', { href: '#/jobs' }, 'Jobs')),
        h('div', { class: 'stats' }, JOB_STATES.map((s) => stat(s.toLowerCase(), jc[s]))),
        h('p', { class: 'note' }, 'ended: among the newest ' + RECENT)),
      h('div', { class: 'card', id: 'ov-actors' },
        h('h2', {}, h('a', { href: '#/actors' }, 'Actors')),
        h('div', { class: 'stats' },
          ACTOR_STATES.map((s) => stat(s.toLowerCase().replace('_', ' '), ac[s]))),
        actors.next_cursor ? h('p', { class: 'note' }, 'among the newest ' + ACTORS) : null)),
    h('section', { class: 'card', id: 'ov-resources' },
      h('h2', {}, h('a', { href: '#/nodes' }, 'Live nodes: used / total')),
      table(['node', 'resources', 'object store'], nodeRows, 'No live node.')));
}
