// Tasks: the recent tasks of every owner (as owners report them), with their
// state, node and error, and their timeline (timeline.js); and the objects
// every owner holds.
import * as api from './api.js';
import * as timeline from './timeline.js';
import { h, fmtAgo, fmtBytes, stateBadge, table, shortId } from './ui.js';

const TASK_STATES = ['', 'PENDING', 'FINISHED', 'FAILED'];
const OBJECT_STATES = ['', 'PENDING', 'READY', 'FAILED'];
const LIMIT = 100;
const TIMELINE_TASKS = 300; // drawn; the download has every task the GCS keeps
const TIMELINE_EVERY = 5; // polls (10 s): a trace costs more than the list

function filter(id, states, st) {
  const select = h('select', { id, 'aria-label': 'state' },
    states.map((s) => h('option', { value: s }, s || 'all states')));
  select.addEventListener('change', () => { st.filter = select.value; st.redraw(); });
  return h('label', {}, 'State ', select);
}

function duration(t) {
  if (!t.started_at || !t.ended_at) return '—';
  const ms = t.ended_at - t.started_at;
  return ms < 1000 ? ms + ' ms' : (ms / 1000).toFixed(1) + ' s';
}

function mountTimeline(st) {
  st.polls = 0;
  st.timeline = h('div', { id: 'timeline' });
  const save = h('button', { type: 'button', id: 'timeline-download' }, 'Download trace (JSON)');
  const status = h('span', { class: 'sub', id: 'timeline-download-status' });
  save.addEventListener('click', async () => {
    save.disabled = true;
    try {
      await timeline.download(st.abort.signal);
      status.textContent = 'saved prism-timeline.json: open it in ui.perfetto.dev or chrome://tracing';
    } catch (e) {
      status.textContent = 'download failed: ' + e.message;
    }
    save.disabled = false;
  });
  return h('section', { class: 'card' },
    h('div', { class: 'toolbar' }, h('h2', {}, 'Timeline'), save, status),
    st.timeline,
    h('p', { class: 'note' }, 'The newest ' + TIMELINE_TASKS + ' tasks that ran, a lane per ' +
      'worker, from when the worker took it up until its outcome reached the owner; updated every ' +
      (TIMELINE_EVERY * 2) + ' s.'));
}

async function refreshTimeline(st) {
  if (st.polls++ % TIMELINE_EVERY) return;
  const trace = await api.get('/api/v1/timeline?limit=' + TIMELINE_TASKS, st.abort.signal);
  st.timeline.replaceChildren(timeline.draw(trace));
}

export const tasks = {
  mount(st) {
    st.filter = '';
    st.note = h('p', { class: 'note' });
    st.body = h('div', {});
    st.root.append(h('h1', {}, 'Tasks'), mountTimeline(st),
      h('div', { class: 'toolbar' }, filter('task-state', TASK_STATES, st)), st.body, st.note);
  },
  async refresh(st) {
    await refreshTimeline(st);
    const q = new URLSearchParams({ limit: LIMIT });
    if (st.filter) q.set('state', st.filter);
    const doc = await api.get('/api/v1/tasks?' + q, st.abort.signal);
    const rows = doc.tasks.map((t) => h('tr', { 'data-task': t.task_id },
      h('td', {}, t.name, h('div', { class: 'sub mono' }, t.task_id)),
      h('td', { class: 'state' }, stateBadge(t.state)),
      h('td', { class: 'mono' }, shortId(t.node_id)),
      h('td', { class: 'mono clip' }, t.owner),
      h('td', {}, fmtAgo(t.submitted_at)),
      h('td', {}, duration(t)),
      h('td', { class: 'cause' }, t.error || t.reason || '')));
    st.body.replaceChildren(table(['task', 'state', 'node', 'owner', 'submitted', 'ran',
      'error / reason'], rows, 'No task reported yet.'));
    st.note.textContent = 'The newest ' + doc.tasks.length + ' of ' + doc.kept + ' kept' +
      (doc.dropped ? '; owners left out ' + doc.dropped + ' successes' : '') + '.';
  },
};

const LARGEST = 5; // objects shown per node

// Each live node's largest objects in its store, as their owners list them.
async function refreshLargest(st) {
  const nodes = (await api.get('/api/v1/nodes?state=ALIVE', st.abort.signal)).nodes;
  const docs = await Promise.all(nodes.map((n) => api.get('/api/v1/objects?' +
    new URLSearchParams({ node_id: n.node_id, state: 'READY', sort: 'size', limit: LARGEST }),
  st.abort.signal)));
  const rows = nodes.flatMap((n, i) => docs[i].objects.map((o) => h('tr',
    { 'data-largest': o.object_id, 'data-node': n.node_id },
    h('td', {}, n.name),
    h('td', { class: 'mono' }, o.object_id),
    h('td', { class: 'num size' }, fmtBytes(o.size)),
    h('td', { class: 'mono clip' }, o.owner))));
  st.largest.replaceChildren(table(['node', 'object', 'size', 'owner'], rows,
    'No object in a node\'s store.'));
}

export const objects = {
  mount(st) {
    st.filter = '';
    st.note = h('p', { class: 'note' });
    st.body = h('div', {});
    st.largest = h('div', { id: 'largest' });
    st.root.append(h('h1', {}, 'Objects'),
      h('section', { class: 'card' }, h('h2', {}, 'Largest per node'), st.largest,
        h('p', { class: 'note' }, 'The ' + LARGEST + ' largest values in each live node\'s ' +
          'object store, among the objects their owners list.')),
      h('div', { class: 'toolbar' }, filter('object-state', OBJECT_STATES, st)), st.body, st.note);
  },
  async refresh(st) {
    await refreshLargest(st);
    const q = new URLSearchParams({ limit: LIMIT });
    if (st.filter) q.set('state', st.filter);
    const doc = await api.get('/api/v1/objects?' + q, st.abort.signal);
    const rows = doc.objects.map((o) => h('tr', { 'data-object': o.object_id },
      h('td', { class: 'mono' }, o.object_id),
      h('td', { class: 'state' }, stateBadge(o.state), o.lost ? ' lost' : ''),
      h('td', {}, o.source),
      h('td', { class: 'num' }, o.state === 'READY' ? fmtBytes(o.size) : '—'),
      h('td', { class: 'mono clip' }, o.owner),
      h('td', { class: 'num' }, o.refs + (o.borrowers ? ' + ' + o.borrowers + ' borrowed' : '')),
      h('td', {}, o.location ? o.location + (o.node_id ? ' ' + shortId(o.node_id) : '') : '—')));
    st.body.replaceChildren(table(['object', 'state', 'source', 'size', 'owner', 'refs',
      'where'], rows, 'No object held.'));
    st.note.textContent = doc.objects.length + ' shown of ' + doc.total +
      (doc.unreported ? '; owners hold ' + doc.unreported + ' more they do not list' : '') + '.';
  },
};
