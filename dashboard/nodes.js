// Nodes: every incarnation, live ones first; resources, object store,
// heartbeat, why dead.
import * as api from './api.js';
import * as charts from './charts.js';
import { h, fmtAgo, fmtTime, fmtAmount, stateBadge, table, bar, storeBar } from './ui.js';

// Each store's use over the samples seen (the stores come with the history).
function storeSeries(st, stores) {
  const seen = new Set();
  for (const x of stores) {
    seen.add(x.node_id);
    const s = (st.series[x.node_id] = st.series[x.node_id] || []);
    s.push(...x.used_series);
    if (s.length > st.hist.max) s.splice(0, s.length - st.hist.max);
  }
  for (const id of Object.keys(st.series)) if (!seen.has(id)) delete st.series[id];
}

function storeCell(st, x) {
  if (!x) return '—';
  return [...storeBar(x), charts.spark(st.series[x.node_id] || [], x.capacity_bytes,
    'object store use of ' + x.name)];
}

export const list = { mount, refresh };

function mount(st) {
  st.showDead = true;
  st.hist = charts.newHistory();
  st.series = {}; // node id -> its store's used bytes, oldest first
  const box = h('input', { type: 'checkbox', id: 'nodes-dead', checked: true });
  box.addEventListener('change', () => { st.showDead = box.checked; st.redraw(); });
  st.body = h('div', {});
  st.root.append(h('h1', {}, 'Nodes'),
    h('div', { class: 'toolbar' }, h('label', {}, box, ' show dead nodes')), st.body);
}

async function refresh(st) {
  const [doc, stores] = await Promise.all([
    api.get('/api/v1/nodes?limit=' + (st.showDead ? 200 : 1000) +
      (st.showDead ? '' : '&state=ALIVE'), st.abort.signal),
    charts.update(st.hist, st.abort.signal)]);
  storeSeries(st, stores);
  const store = Object.fromEntries(stores.map((x) => [x.node_id, x]));
  const nodes = doc.nodes.slice().sort((a, b) => (a.state === b.state ? 0
    : a.state === 'ALIVE' ? -1 : 1));
  const rows = nodes.map((n) => {
    const res = Object.keys(n.resources).filter((k) => n.resources[k] > 0).sort();
    return h('tr', { 'data-node': n.node_id, class: n.state === 'DEAD' ? 'dead' : '' },
      h('td', {}, n.name, h('div', { class: 'sub mono' }, n.node_id)),
      h('td', { class: 'state' }, stateBadge(n.state)),
      h('td', { class: 'mono' }, n.address || '—'),
      h('td', { class: 'bars' }, n.state === 'ALIVE'
        ? res.map((k) => bar(k, n.resources[k] - (n.available[k] || 0), n.resources[k]))
        : res.map((k) => k + ' ' + fmtAmount(k, n.resources[k])).join(', ')),
      h('td', { class: 'bars store' }, storeCell(st, store[n.node_id])),
      h('td', {}, n.state === 'ALIVE' ? fmtAgo(n.last_heartbeat) : fmtTime(n.dead_at)),
      h('td', { class: 'cause' }, n.message || ''));
  });
  st.body.replaceChildren(table(['node', 'state', 'address', 'resources (used / total)',
    'object store', 'heartbeat / died', 'message'], rows, 'No node registered.'));
}
