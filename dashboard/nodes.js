// Nodes: every incarnation, live ones first; resources, object store,
// heartbeat, why dead; each live node's workers (asked of its agent through
// the GCS) and its services' health; the cluster's services (GCS,
// schedulers, dataservice) and whether they still announce themselves.
import * as api from './api.js';
import * as charts from './charts.js';
import { h, fmtAgo, fmtTime, fmtAmount, stateBadge, table, bar, storeBar, shortId } from './ui.js';

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

// A live node's workers, or the error its ask met (shown in place).
async function workers(n, signal) {
  try {
    return await api.get('/api/v1/nodes/' + n.node_id + '/workers', signal);
  } catch (e) {
    if (e instanceof api.Unauthorized || e.name === 'AbortError') throw e;
    return { error: e.message };
  }
}

function workersRow(n, doc) {
  const cell = h('td', { colspan: 7, class: 'workers' });
  if (doc.error) {
    cell.append(h('p', { class: 'cause' }, 'workers: ' + doc.error));
  } else {
    const rows = doc.workers.map((w) => h('tr', { 'data-worker': w.worker_id },
      h('td', { class: 'mono' }, shortId(w.worker_id)),
      h('td', { class: 'state' }, w.state),
      h('td', { class: 'num pid' }, w.pid),
      h('td', { class: 'mono' }, w.lease_id ? shortId(w.lease_id) : '—'),
      h('td', { class: 'mono clip' }, w.owner_id || '—'),
      h('td', {}, w.resources ? Object.keys(w.resources).sort()
        .map((k) => k + ' ' + fmtAmount(k, w.resources[k])).join(', ') : '—'),
      h('td', {}, fmtAgo(w.started))));
    cell.append(h('div', { class: 'sub' }, doc.workers.length + ' workers (' +
      doc.prestart_workers + ' kept started, at most ' + doc.max_workers + ')'),
    table(['worker', 'state', 'pid', 'lease', 'lease owner', 'lease holds', 'started'], rows,
      'No worker process.'));
  }
  return h('tr', { 'data-workers': n.node_id, class: 'workers' }, cell);
}

// What the GCS knows of a live node's services: its agent's last heartbeat,
// its store's last report, and whether the agent answered for its workers.
function health(n, store, doc) {
  const line = (name, ok, text) => h('div', { class: ok ? 'ok' : 'bad' }, name + ': ' + text);
  return [
    line('node agent', true, 'heartbeat ' + fmtAgo(n.last_heartbeat)),
    line('workers', !doc.error, doc.error ? 'no answer' : 'answered'),
    store ? line('object store', true, 'reported ' + fmtAgo(store.reported_at) + ', ' +
      store.objects + ' objects') : line('object store', false, 'no report'),
  ];
}

// The cluster's services (GCS, schedulers, dataservice), as they announce
// themselves; the first of each kind also gets an id (svc-KIND) for tests.
async function refreshServices(st) {
  const doc = await api.get('/api/v1/services', st.abort.signal);
  const seen = new Set();
  const rows = doc.services.map((x) => {
    const figures = Object.keys(x).filter((k) => typeof x[k] === 'number' &&
      !['pid', 'started_at', 'last_seen'].includes(k)).sort().map((k) => k + ' ' + x[k]);
    const first = !seen.has(x.service);
    seen.add(x.service);
    return h('tr', { 'data-service': x.id, class: x.state === 'ALIVE' ? '' : 'dead' },
      h('td', {}, x.service, h('div', { class: 'sub mono' }, x.service === 'gcs' ? '' : x.id)),
      h('td', { class: 'state', id: first ? 'svc-' + x.service : null }, stateBadge(x.state)),
      h('td', { class: 'mono' }, x.address),
      h('td', { class: 'num' }, x.pid),
      h('td', {}, fmtAgo(x.started_at)),
      h('td', {}, fmtAgo(x.last_seen)),
      h('td', {}, figures.join(', ') || '—'));
  });
  st.services.replaceChildren(table(['service', 'state', 'address', 'pid', 'started',
    'last seen', 'figures'], rows, 'No service answered.'));
}

export const list = { mount, refresh };

function mount(st) {
  st.showDead = true;
  st.hist = charts.newHistory();
  st.series = {}; // node id -> its store's used bytes, oldest first
  const box = h('input', { type: 'checkbox', id: 'nodes-dead', checked: true });
  box.addEventListener('change', () => { st.showDead = box.checked; st.redraw(); });
  st.body = h('div', {});
  st.services = h('div', { id: 'services' });
  st.root.append(h('h1', {}, 'Nodes'), h('h2', {}, 'Services'), st.services, h('h2', {}, 'Nodes'),
    h('div', { class: 'toolbar' }, h('label', {}, box, ' show dead nodes')), st.body);
}

async function refresh(st) {
  const [doc, stores] = await Promise.all([
    api.get('/api/v1/nodes?limit=' + (st.showDead ? 200 : 1000) +
      (st.showDead ? '' : '&state=ALIVE'), st.abort.signal),
    charts.update(st.hist, st.abort.signal), refreshServices(st)]);
  storeSeries(st, stores);
  const store = Object.fromEntries(stores.map((x) => [x.node_id, x]));
  const nodes = doc.nodes.slice().sort((a, b) => (a.state === b.state ? 0
    : a.state === 'ALIVE' ? -1 : 1));
  const pools = await Promise.all(nodes.map((n) => (n.state === 'ALIVE'
    ? workers(n, st.abort.signal) : null)));
  const rows = nodes.map((n, i) => {
    const res = Object.keys(n.resources).filter((k) => n.resources[k] > 0).sort();
    const row = h('tr', { 'data-node': n.node_id, class: n.state === 'DEAD' ? 'dead' : '' },
      h('td', {}, n.name, h('div', { class: 'sub mono' }, n.node_id)),
      h('td', { class: 'state' }, stateBadge(n.state)),
      h('td', { class: 'mono' }, n.address || '—'),
      h('td', { class: 'bars' }, n.state === 'ALIVE'
        ? res.map((k) => bar(k, n.resources[k] - (n.available[k] || 0), n.resources[k]))
        : res.map((k) => k + ' ' + fmtAmount(k, n.resources[k])).join(', ')),
      h('td', { class: 'bars store' }, storeCell(st, store[n.node_id])),
      h('td', { class: 'health' }, n.state === 'ALIVE'
        ? health(n, store[n.node_id], pools[i]) : 'died ' + fmtTime(n.dead_at)),
      h('td', { class: 'cause' }, n.message || ''));
    return pools[i] ? [row, workersRow(n, pools[i])] : row;
  });
  st.body.replaceChildren(table(['node', 'state', 'address', 'resources (used / total)',
    'object store', 'health / died', 'message'], rows.flat(), 'No node registered.'));
}
