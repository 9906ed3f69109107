// Small DOM helpers. Text always goes in as text nodes (never as HTML), so
// nothing the cluster reports can inject markup.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  return new Date(ms).toLocaleString();
}

export function fmtAgo(ms) {
  if (!ms) return '—';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return Math.floor(s / 86400) + ' d ago';
}

export function fmtBytes(n) {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
}

export function fmtNumber(v) {
  if (v === undefined || v === null) return '—';
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1);
}

// A node's object store: a bar of its arena, and what is spilled to disk.
export function storeBar(st) {
  return [bar('store', st.used_bytes, st.capacity_bytes, fmtBytes),
    st.spilled_bytes ? h('div', { class: 'sub' }, 'spilled ' + fmtBytes(st.spilled_bytes)) : null];
}

export function fmtAmount(name, v) {
  if (v === undefined || v === null) return '—';
  if (name === 'memory') return fmtBytes(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

export function stateBadge(state) {
  return h('span', { class: 'badge s-' + String(state).toLowerCase() }, state);
}

export function shortId(id) { return id ? id.slice(0, 8) : '—'; }

// A bar of used / total (width set through the CSSOM, which the CSP allows);
// `fmt` writes the amounts (default: by the resource's name).
export function bar(name, used, total, fmt) {
  const frac = total > 0 ? Math.min(1, Math.max(0, used / total)) : 0;
  const fill = h('span', { class: 'fill' + (frac > 0.9 ? ' hot' : '') });
  fill.style.width = (frac * 100).toFixed(1) + '%';
  return h('div', { class: 'meter', title: name },
    h('span', { class: 'label' }, name),
    h('span', { class: 'track' }, fill),
    h('span', { class: 'value' }, fmt ? fmt(used) + ' / ' + fmt(total)
      : fmtAmount(name, used) + ' / ' + fmtAmount(name, total)));
}

export function table(columns, rows, empty) {
  if (!rows.length) return h('p', { class: 'empty' }, empty || 'Nothing yet.');
  return h('table', {},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows));
}
