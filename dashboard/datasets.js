// Datasets: the dataservice's datasets (through the GCS's /api/v1/datasets),
// newest first, and a dataset's page with each stage's progress.
import * as api from './api.js';
import { h, fmtAgo, fmtBytes, fmtTime, stateBadge, table, bar } from './ui.js';

const href = (id) => '#/datasets/' + encodeURIComponent(id);

function output(d) {
  return d.output.rows + ' rows · ' + d.output.blocks + ' blocks · ' + fmtBytes(d.output.bytes);
}

export const list = {
  mount(st) {
    st.body = h('div', {});
    st.root.append(h('h1', {}, 'Datasets'), st.body,
      h('p', { class: 'note' }, 'Datasets run by prism-dataservice (docs/datasets.md); ' +
        'without one running the cluster answers 503.'));
  },
  async refresh(st) {
    const doc = await api.get('/api/v1/datasets', st.abort.signal);
    const rows = doc.datasets.map((d) => h('tr', { 'data-dataset': d.dataset_id },
      h('td', {}, h('a', { href: href(d.dataset_id) }, d.name || d.dataset_id.slice(0, 8)),
        h('div', { class: 'sub mono' }, d.dataset_id)),
      h('td', { class: 'state' }, stateBadge(d.state)),
      h('td', {}, output(d)),
      h('td', { class: 'bars' }, bar('in flight', d.bytes_in_flight, d.memory_budget_bytes,
        fmtBytes)),
      h('td', {}, fmtAgo(d.created_at)),
      h('td', { class: 'cause' }, d.error || '')));
    st.body.replaceChildren(table(['dataset', 'state', 'output', 'memory (in flight / budget)',
      'created', 'error'], rows, 'No dataset yet.'));
  },
};

function row(k, v) { return h('tr', {}, h('th', {}, k), h('td', {}, v)); }

export const detail = {
  mount(st) {
    st.meta = h('div', { class: 'card' });
    st.stages = h('div', {});
    st.root.append(h('p', {}, h('a', { href: '#/datasets' }, '← Datasets')),
      h('h1', {}, 'Dataset ', h('span', { class: 'mono' }, st.arg)), st.meta,
      h('h2', {}, 'Stages'), st.stages);
  },
  async refresh(st) {
    const d = await api.get('/api/v1/datasets/' + encodeURIComponent(st.arg), st.abort.signal);
    st.meta.replaceChildren(h('table', { class: 'kv', id: 'dataset-meta' }, h('tbody', {},
      row('name', d.name || '—'),
      row('state', h('span', { id: 'dataset-state' }, stateBadge(d.state))),
      row('output', output(d)),
      row('in flight', fmtBytes(d.bytes_in_flight) + ' (peak ' +
        fmtBytes(d.peak_bytes_in_flight) + ', budget ' + fmtBytes(d.memory_budget_bytes) + ')'),
      row('error', d.error || '—'),
      row('created', fmtTime(d.created_at)),
      row('started', fmtTime(d.started_at)),
      row('ended', fmtTime(d.ended_at)))));
    const rows = (d.stages || []).map((s, i) => h('tr', { 'data-stage': i },
      h('td', {}, s.name, h('div', { class: 'sub' }, s.operator)),
      h('td', { class: 'num' }, s.rows),
      h('td', { class: 'num' }, s.blocks + ' · ' + fmtBytes(s.bytes)),
      h('td', { class: 'num' }, s.tasks_running),
      h('td', { class: 'num' }, s.tasks_done),
      h('td', { class: 'num' }, s.queued_blocks + ' · ' + fmtBytes(s.queued_bytes))));
    st.stages.replaceChildren(table(['stage', 'rows', 'blocks · bytes', 'tasks running',
      'tasks done', 'queued'], rows, 'No stage.'));
  },
};
