// The dashboard: sign-in, a hash router (#/overview, #/jobs, #/jobs/ID,
// #/actors, #/tasks, #/objects, #/nodes, #/datasets, #/datasets/ID, #/dags,
// #/dags/ID) and one poll every 2 s of the page shown.
import * as api from './api.js';
import * as overview from './overview.js';
import * as jobs from './jobs.js';
import * as actors from './actors.js';
import * as nodes from './nodes.js';
import * as tasks from './tasks.js';
import * as datasets from './datasets.js';
import * as dags from './dags.js';

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

let current = null; // {view, state}
let timer = null;
let firstRender = true;

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  switch (parts[0]) {
    case 'jobs': return parts[1] ? { view: jobs.detail, arg: parts[1], page: 'jobs' }
                                 : { view: jobs.list, page: 'jobs' };
    case 'actors': return { view: actors.list, page: 'actors' };
    case 'nodes': return { view: nodes.list, page: 'nodes' };
    case 'tasks': return { view: tasks.tasks, page: 'tasks' };
    case 'objects': return { view: tasks.objects, page: 'objects' };
    case 'datasets': return parts[1] ? { view: datasets.detail, arg: parts[1], page: 'datasets' }
                                     : { view: datasets.list, page: 'datasets' };
    case 'dags': return parts[1] ? { view: dags.detail, arg: parts[1], page: 'dags' }
                                 : { view: dags.list, page: 'dags' };
    default: return { view: overview.page, page: 'overview' };
  }
}

function setStatus(text, error) {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('error', !!error);
}

function showSignin(message) {
  stop();
  $('nav').hidden = true;
  $('signout').hidden = true;
  $('view').replaceChildren();
  $('signin').hidden = false;
  const e = $('signin-error');
  e.hidden = !message;
  e.textContent = message || '';
  $('token').focus();
}

function stop() {
  if (timer) clearTimeout(timer);
  timer = null;
  if (current && current.state.abort) current.state.abort.abort();
  current = null;
}

async function tick(c) {
  if (current !== c) return;
  try {
    await c.view.refresh(c.state);
    if (current !== c) return;
    setStatus('updated ' + new Date().toLocaleTimeString());
    if (firstRender && c.page === 'overview') {
      firstRender = false;
      performance.mark('prism-first-render');
    }
  } catch (e) {
    if (current !== c || e.name === 'AbortError') return;
    if (e instanceof api.Unauthorized) {
      api.clearToken();
      showSignin('The cluster refused the token (401). Sign in again with the current token.');
      return;
    }
    setStatus(e.message, true);
  }
  if (current === c) timer = setTimeout(() => tick(c), document.hidden ? POLL_MS * 5 : POLL_MS);
}

function show() {
  stop();
  if (!api.token()) { showSignin(); return; }
  $('signin').hidden = true;
  $('nav').hidden = false;
  $('signout').hidden = false;
  const r = route();
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.page === r.page);
  }
  const root = $('view');
  root.replaceChildren();
  const state = { root, abort: new AbortController(), arg: r.arg, redraw: null };
  const c = { view: r.view, state, page: r.page };
  current = c;
  state.redraw = () => { if (current === c) { clearTimeout(timer); tick(c); } };
  r.view.mount(state);
  tick(c);
}

$('signin').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const t = $('token').value.trim();
  if (!t) return;
  api.setToken(t);
  try {
    await api.get('/api/v1/cluster');
  } catch (e) {
    api.clearToken();
    showSignin(e instanceof api.Unauthorized
      ? 'Wrong token: the cluster answered 401 Unauthorized.'
      : 'Cannot reach the cluster: ' + e.message);
    return;
  }
  $('token').value = '';
  show();
});

$('signout').addEventListener('click', () => { api.clearToken(); showSignin(); });
window.addEventListener('hashchange', show);
show();
