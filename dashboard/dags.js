// DAGs: the compiled DAGs drivers report (GET /api/v1/dags), newest first,
// and a DAG's page with its stages (each bind: actor, class, method, the
// nodes it reads), its actors' loops (as their workers report them) and its
// channels.
import * as api from './api.js';
import { h, fmtAgo, fmtBytes, fmtTime, shortId, stateBadge, table } from './ui.js';

const href = (id) => '#/dags/' + encodeURIComponent(id);

// "Counter.add ← input" for a bind; the input and the gathers by their kind.
function describe(d, n) {
  if (n.kind !== 'bind') return n.kind.replace('_', ' ');
  return (n.class || 'actor ' + shortId(n.actor_id)) + '.' + n.method;
}

// The paths a loop's values took, those taken at all: "read_decoded 50, …".
function valuePaths(values) {
  return Object.entries(values || {}).filter(([, n]) => n > 0)
    .map(([k, n]) => k + ' ' + n).join(', ');
}

function shape(d) {
  return d.nodes.filter((n) => n.kind === 'bind').map((n) => describe(d, n)).join(' → ');
}

export const list = {
  mount(st) {
    st.body = h('div', {});
    st.root.append(h('h1', {}, 'DAGs'), st.body,
      h('p', { class: 'note' }, 'Static actor graphs compiled by drivers (docs/dags.md); ' +
        'executions counted as the driver reads their results.'));
  },
  async refresh(st) {
    const doc = await api.get('/api/v1/dags', st.abort.signal);
    const rows = doc.dags.map((d) => h('tr', { 'data-dag': d.id },
      h('td', {}, h('a', { href: href(d.id), class: 'mono' }, shortId(d.id))),
      h('td', { class: 'state' }, stateBadge(d.state)),
      h('td', {}, shape(d)),
      h('td', { class: 'num executions' }, d.executions),
      h('td', { class: 'mono' }, shortId(d.owner.replace(/^owner:/, ''))),
      h('td', {}, fmtAgo(d.created_at))));
    st.body.replaceChildren(table(['DAG', 'state', 'stages', 'executions', 'driver', 'compiled'],
      rows, 'No DAG yet.'));
  },
};

function row(k, v) { return h('tr', {}, h('th', {}, k), h('td', {}, v)); }

export const detail = {
  mount(st) {
    st.meta = h('div', { class: 'card' });
    st.nodes = h('div', {});
    st.loops = h('div', {});
    st.edges = h('div', {});
    st.root.append(h('p', {}, h('a', { href: '#/dags' }, '← DAGs')),
      h('h1', {}, 'DAG ', h('span', { class: 'mono' }, st.arg)), st.meta,
      h('h2', {}, 'Nodes'), st.nodes, h('h2', {}, 'Loops'), st.loops, h('h2', {}, 'Channels'),
      st.edges);
  },
  async refresh(st) {
    const d = await api.get('/api/v1/dags/' + encodeURIComponent(st.arg), st.abort.signal);
    st.meta.replaceChildren(h('table', { class: 'kv', id: 'dag-meta' }, h('tbody', {},
      row('state', h('span', { id: 'dag-state' }, stateBadge(d.state))),
      row('executions', h('span', { id: 'dag-executions' }, d.executions)),
      row('in flight at most', d.max_inflight),
      row('value size at most', fmtBytes(d.max_buf_size)),
      row('driver', h('span', { class: 'mono' }, d.owner)),
      row('compiled', fmtTime(d.created_at)))));
    const outputs = new Set(d.outputs);
    const nodes = d.nodes.map((n) => h('tr', { 'data-node': n.index },
      h('td', { class: 'num' }, n.index),
      h('td', {}, describe(d, n), outputs.has(n.index) ? h('div', { class: 'sub' }, 'output') : ''),
      h('td', { class: 'mono' }, n.actor_id ? shortId(n.actor_id) : '—'),
      h('td', {}, n.args.length ? n.args.join(', ') : '—')));
    st.nodes.replaceChildren(table(['#', 'node', 'actor', 'reads'], nodes, 'No node.'));
    // Each actor's loop: its class and methods from the nodes it runs.
    const methods = (id) => d.nodes.filter((n) => n.kind === 'bind' && n.actor_id === id)
      .map((n) => describe(d, n)).join(', ');
    const loops = (d.loops || []).map((l) => h('tr', { 'data-loop': l.actor_id },
      h('td', {}, h('span', { class: 'mono' }, shortId(l.actor_id)),
        h('div', { class: 'sub' }, methods(l.actor_id))),
      h('td', { class: 'state' }, stateBadge(l.state)),
      h('td', { class: 'num executions' }, l.executions),
      h('td', { class: 'active' }, fmtAgo(l.active_at)),
      h('td', { class: 'values' }, valuePaths(l.values)),
      h('td', { class: 'cause' }, l.error || '')));
    st.loops.replaceChildren(table(['actor', 'state', 'executions', 'last active', 'values',
      'error'], loops, 'No loop reported.'));
    const edges = d.edges.map((e) => h('tr', {},
      h('td', {}, e.from + ' → ' + e.to), h('td', {}, e.kind), h('td', {}, fmtBytes(e.slot_size))));
    st.edges.replaceChildren(table(['edge', 'kind', 'slot'], edges, 'No channel.'));
  },
};
