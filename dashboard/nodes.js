// Nodes: every incarnation, live ones first; resources, object store,
// heartbeat, why dead.
import * as api from './api.js';
import { h, fmtAgo, fmtTime, fmtAmount, stateBadge, table, bar, storeBar } from './ui.js';

// The stores' last reports come with the history; a `since` past every
// sample asks for them alone.
const STORES = '/api/v1/metrics/history?since=' + Number.MAX_SAFE_INTEGER;

export const list = { mount, refresh };

function mount(st) {
  st.showDead = true;
  const box = h('input', { type: 'checkbox', id: 'nodes-dead', checked: true });
  box.addEventListener('change', () => { st.showDead = box.checked; st.redraw(); });
  st.body = h('div', {});
  st.root.append(h('h1', {}, 'Nodes'),
    h('div', { class: 'toolbar' }, h('label', {}, box, ' show dead nodes')), st.body);
}

async function refresh(st) {
  const [doc, hist] = await Promise.all([
    api.get('/api/v1/nodes?limit=' + (st.showDead ? 200 : 1000) +
      (st.showDead ? '' : '&state=ALIVE'), st.abort.signal),
    api.get(STORES, st.abort.signal)]);
  const store = Object.fromEntries(hist.stores.map((x) => [x.node_id, x]));
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
      h('td', { class: 'bars store' }, store[n.node_id] ? storeBar(store[n.node_id]) : '—'),
      h('td', {}, n.state === 'ALIVE' ? fmtAgo(n.last_heartbeat) : fmtTime(n.dead_at)),
      h('td', { class: 'cause' }, n.message || ''));
  });
  st.body.replaceChildren(table(['node', 'state', 'address', 'resources (used / total)',
    'object store', 'heartbeat / died', 'message'], rows, 'No node registered.'));
}
