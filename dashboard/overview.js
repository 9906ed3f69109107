// Overview: nodes alive/dead, each live node's CPU/GPU/memory used vs total,
// jobs by state, actors by state.
import * as api from './api.js';
import { h, bar, table } from './ui.js';

const JOB_STATES = ['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED'];
const ACTOR_STATES = ['PENDING_CREATION', 'ALIVE', 'RESTARTING', 'DEAD'];
const RECENT = 100; // ended jobs are counted among the newest this many
const ACTORS = 200; // actors are counted among the newest this many

export const page = { mount, refresh };

function mount(st) {
  st.root.append(h('h1', {}, 'Overview'));
  st.body = h('div', { class: 'overview' });
  st.root.append(st.body);
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
  const [cluster, live, recent, actors] = await Promise.all([
    api.get('/api/v1/cluster', sig),
    api.get('/api/v1/nodes?state=ALIVE&limit=1000', sig),
    api.get('/api/v1/jobs?limit=' + RECENT, sig),
    api.get('/api/v1/actors?limit=' + ACTORS, sig),
  ]);
  const jc = counts(recent.jobs, JOB_STATES);
  jc.PENDING = cluster.jobs.pending;
  jc.RUNNING = cluster.jobs.running;
  const ac = counts(actors.actors, ACTOR_STATES);

  const nodeRows = live.nodes.map((n) => {
    const names = ['CPU', 'GPU', 'memory'].filter((k) => (n.resources[k] || 0) > 0);
    return h('tr', { 'data-node': n.node_id },
      h('td', {}, n.name),
      h('td', { class: 'bars' }, names.map((k) =>
        bar(k, (n.resources[k] || 0) - (n.available[k] || 0), n.resources[k]))));
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
      table(['node', 'resources'], nodeRows, 'No live node.')));
}
