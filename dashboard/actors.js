// Actors: state, node, restarts, the cause of death or the reason it waits;
// kill (for good) or restart. A button asks for a second click to confirm.
import * as api from './api.js';
import { h, fmtAgo, stateBadge, table, shortId } from './ui.js';

const STATES = ['', 'PENDING_CREATION', 'ALIVE', 'RESTARTING', 'DEAD'];
const PAGE = 100;

export const list = { mount, refresh };

function mount(st) {
  st.cursors = [null];
  st.filter = '';
  st.armed = null; // 'kill:ID' or 'restart:ID' awaiting its confirming click
  st.nodeNames = {};
  const select = h('select', { id: 'actor-state', 'aria-label': 'state' },
    STATES.map((s) => h('option', { value: s }, s || 'all states')));
  select.addEventListener('change', () => {
    st.filter = select.value;
    st.cursors = [null];
    st.redraw();
  });
  st.prev = h('button', { type: 'button' }, '← Newer');
  st.next = h('button', { type: 'button' }, 'Older →');
  st.prev.addEventListener('click', () => { st.cursors.pop(); st.redraw(); });
  st.next.addEventListener('click', () => { st.cursors.push(st.nextCursor); st.redraw(); });
  st.msg = h('span', { class: 'error', role: 'alert' });
  st.body = h('div', {});
  st.root.append(h('h1', {}, 'Actors'),
    h('div', { class: 'toolbar' }, h('label', {}, 'State ', select), st.prev, st.next, st.msg),
    st.body);
}

async function kill(st, id, noRestart) {
  const key = (noRestart ? 'kill:' : 'restart:') + id;
  if (st.armed !== key) {
    st.armed = key;
    clearTimeout(st.disarm);
    st.disarm = setTimeout(() => { st.armed = null; st.redraw(); }, 5000);
    st.redraw();
    return;
  }
  st.armed = null;
  st.msg.textContent = '';
  try {
    await api.send('POST', '/api/v1/actors/' + id + '/kill', { no_restart: noRestart });
  } catch (e) {
    st.msg.textContent = e.message;
  }
  st.redraw();
}

function button(st, a, noRestart) {
  const key = (noRestart ? 'kill:' : 'restart:') + a.actor_id;
  const label = noRestart ? 'Kill' : 'Restart';
  return h('button', { type: 'button', class: noRestart ? 'danger' : '',
    'data-action': noRestart ? 'kill' : 'restart', onclick: () => kill(st, a.actor_id, noRestart) },
  st.armed === key ? 'Confirm ' + label.toLowerCase() : label);
}

async function refresh(st) {
  const q = new URLSearchParams({ limit: PAGE });
  if (st.filter) q.set('state', st.filter);
  const cur = st.cursors[st.cursors.length - 1];
  if (cur) q.set('cursor', cur);
  const [doc, nodes] = await Promise.all([
    api.get('/api/v1/actors?' + q, st.abort.signal),
    api.get('/api/v1/nodes?limit=1000', st.abort.signal),
  ]);
  for (const n of nodes.nodes) st.nodeNames[n.node_id] = n.name;
  st.nextCursor = doc.next_cursor;
  st.prev.disabled = st.cursors.length < 2;
  st.next.disabled = !doc.next_cursor;
  const rows = doc.actors.map((a) => h('tr', { 'data-actor': a.actor_id },
    h('td', {}, a.name || h('span', { class: 'mono' }, shortId(a.actor_id)),
      h('div', { class: 'sub mono' }, a.actor_id)),
    h('td', {}, a.class),
    h('td', { class: 'state' }, stateBadge(a.state)),
    h('td', {}, a.node_id ? (st.nodeNames[a.node_id] || shortId(a.node_id)) : '—'),
    h('td', { class: 'num' }, a.restarts + ' / ' + (a.max_restarts < 0 ? '∞' : a.max_restarts)),
    h('td', { class: 'cause' }, a.state === 'DEAD' ? (a.cause || '') : (a.reason || '')),
    h('td', {}, fmtAgo(a.updated_at)),
    h('td', { class: 'actions' }, a.state === 'DEAD' ? '' : [button(st, a, true),
      button(st, a, false)])));
  st.body.replaceChildren(table(['actor', 'class', 'state', 'node', 'restarts',
    'cause / reason', 'changed', ''], rows, 'No actor.'));
}
