// Jobs: the list (state filter, pages through the API's cursor) and a job's
// page (metadata, its log followed live, stop and delete).
import * as api from './api.js';
import { h, fmtTime, fmtAgo, stateBadge, table, shortId } from './ui.js';

const STATES = ['', 'PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED'];
const PAGE = 50;
const LOG_KEEP = 1 << 20; // characters of log kept on the page (the newest)

const jobHref = (id) => '#/jobs/' + encodeURIComponent(id);

// ---------------------------------------------------------------- the list

export const list = { mount: mountList, refresh: refreshList };

function mountList(st) {
  st.cursors = [null]; // cursor of each page visited; the last is shown
  st.filter = sessionStorage.getItem('prism.jobs.state') || '';
  const select = h('select', { id: 'job-state', 'aria-label': 'state' },
    STATES.map((s) => h('option', { value: s, selected: s === st.filter }, s || 'all states')));
  select.addEventListener('change', () => {
    st.filter = select.value;
    sessionStorage.setItem('prism.jobs.state', st.filter);
    st.cursors = [null];
    st.redraw();
  });
  st.prev = h('button', { type: 'button', id: 'jobs-prev' }, '← Newer');
  st.next = h('button', { type: 'button', id: 'jobs-next' }, 'Older →');
  st.prev.addEventListener('click', () => { st.cursors.pop(); st.redraw(); });
  st.next.addEventListener('click', () => { st.cursors.push(st.nextCursor); st.redraw(); });
  st.body = h('div', {});
  st.root.append(h('h1', {}, 'Jobs'),
    h('div', { class: 'toolbar' }, h('label', {}, 'State ', select), st.prev, st.next),
    st.body);
}

async function refreshList(st) {
  const q = new URLSearchParams({ limit: PAGE });
  if (st.filter) q.set('state', st.filter);
  const cur = st.cursors[st.cursors.length - 1];
  if (cur) q.set('cursor', cur);
  const doc = await api.get('/api/v1/jobs?' + q, st.abort.signal);
  st.nextCursor = doc.next_cursor;
  st.prev.disabled = st.cursors.length < 2;
  st.next.disabled = !doc.next_cursor;
  const rows = doc.jobs.map((j) => h('tr', { 'data-job': j.job_id },
    h('td', {}, h('a', { href: jobHref(j.job_id) }, j.job_id)),
    h('td', {}, stateBadge(j.state)),
    h('td', { class: 'mono clip' }, j.entrypoint),
    h('td', {}, fmtAgo(j.submitted_at)),
    h('td', { class: 'clip' }, j.message || '')));
  st.body.replaceChildren(table(['job', 'state', 'entrypoint', 'submitted', 'message'], rows,
    st.filter ? 'No ' + st.filter + ' job.' : 'No job yet.'));
}

// ---------------------------------------------------------------- one job

export const detail = { mount: mountDetail, refresh: refreshDetail };

function mountDetail(st) {
  st.meta = h('div', { class: 'card' });
  st.log = h('pre', { class: 'log', id: 'job-log' });
  st.logNote = h('span', { class: 'note', id: 'job-log-state' }, 'connecting…');
  st.stopBtn = h('button', { type: 'button', id: 'job-stop' }, 'Stop');
  st.deleteBtn = h('button', { type: 'button', id: 'job-delete', class: 'danger' }, 'Delete');
  st.actionMsg = h('span', { class: 'error', role: 'alert' });
  st.stopBtn.addEventListener('click', () => act(st, 'POST', '/stop'));
  st.deleteBtn.addEventListener('click', () => act(st, 'DELETE', ''));
  st.root.append(h('p', {}, h('a', { href: '#/jobs' }, '← Jobs')),
    h('h1', {}, 'Job ', h('span', { class: 'mono' }, st.arg)),
    h('div', { class: 'toolbar' }, st.stopBtn, st.deleteBtn, st.actionMsg),
    st.meta, h('h2', {}, 'Log ', st.logNote), st.log);
  follow(st);
}

async function act(st, method, suffix) {
  st.actionMsg.textContent = '';
  try {
    await api.send(method, '/api/v1/jobs/' + encodeURIComponent(st.arg) + suffix);
    if (method === 'DELETE') { location.hash = '#/jobs'; return; }
    st.redraw();
  } catch (e) {
    st.actionMsg.textContent = e.message;
  }
}

// The log, streamed until the job ends; shown from the start, the newest
// LOG_KEEP characters kept. Scrolls along while the reader is at the bottom.
async function follow(st) {
  let text = '';
  const append = (piece) => {
    if (!piece) return;
    const pinned = st.log.scrollTop + st.log.clientHeight >= st.log.scrollHeight - 4;
    text += piece;
    if (text.length > LOG_KEEP) text = text.slice(text.length - LOG_KEEP);
    st.log.textContent = text;
    if (pinned) st.log.scrollTop = st.log.scrollHeight;
  };
  try {
    st.logNote.textContent = 'following';
    await api.followLog(st.arg, append, st.abort.signal);
    st.logNote.textContent = 'complete';
  } catch (e) {
    if (e.name === 'AbortError') return;
    st.logNote.textContent = 'unavailable: ' + e.message;
  }
}

function row(k, v) { return h('tr', {}, h('th', {}, k), h('td', {}, v)); }

async function refreshDetail(st) {
  const j = await api.get('/api/v1/jobs/' + encodeURIComponent(st.arg), st.abort.signal);
  const ended = ['SUCCEEDED', 'FAILED', 'STOPPED'].includes(j.state);
  st.stopBtn.disabled = ended || j.stop_requested;
  st.deleteBtn.disabled = !ended;
  const kv = (o) => (o && Object.keys(o).length
    ? Object.entries(o).map(([k, v]) => k + '=' + v).join(', ') : '—');
  st.meta.replaceChildren(h('table', { class: 'kv', id: 'job-meta' }, h('tbody', {},
    row('state', h('span', { id: 'job-state' }, stateBadge(j.state),
      j.stop_requested && !ended ? ' (stopping)' : '')),
    row('entrypoint', h('code', {}, j.entrypoint)),
    row('message', j.message || '—'),
    row('exit code', j.driver_exit_code ?? '—'),
    row('node', j.node_id ? h('a', { href: '#/nodes' }, shortId(j.node_id)) : '—'),
    row('resources', kv(j.resources)),
    row('metadata', kv(j.metadata)),
    row('packages', j.packages.length ? j.packages.map((p) => (p.name ? p.name + ' ' : '') +
      p.sha256.slice(0, 12)).join(', ') : '—'),
    row('submitted', fmtTime(j.submitted_at)),
    row('started', fmtTime(j.start_time)),
    row('ended', fmtTime(j.end_time)))));
}
