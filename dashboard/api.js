// The REST API, with the cluster token kept in sessionStorage (this tab only).
const KEY = 'prism.token';

export class Unauthorized extends Error {}

export function token() { return sessionStorage.getItem(KEY); }
export function setToken(t) { sessionStorage.setItem(KEY, t); }
export function clearToken() { sessionStorage.removeItem(KEY); }

function headers(extra) {
  const h = { Authorization: 'Bearer ' + (token() || ''), ...extra };
  return h;
}

async function check(res) {
  if (res.status === 401) throw new Unauthorized('the cluster refused the token (401)');
  if (!res.ok) {
    let msg = res.status + ' ' + res.statusText;
    try {
      const doc = await res.json();
      if (doc && doc.error) msg = doc.error.message + ' (' + doc.error.code + ')';
    } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return res;
}

export async function get(path, signal) {
  const res = await check(await fetch(path, { headers: headers(), signal, cache: 'no-store' }));
  return res.json();
}

// The answer as text (kept as the server wrote it, e.g. for a download).
export async function getText(path, signal) {
  const res = await check(await fetch(path, { headers: headers(), signal, cache: 'no-store' }));
  return res.text();
}

export async function send(method, path, body) {
  const init = { method, headers: headers(body ? { 'Content-Type': 'application/json' } : {}) };
  if (body) init.body = JSON.stringify(body);
  const res = await check(await fetch(path, init));
  return res.json();
}

// Streams a job's log: calls onText with each decoded piece until the job
// ends (the stream closes) or `signal` aborts.
export async function followLog(id, onText, signal) {
  const res = await check(await fetch('/api/v1/jobs/' + encodeURIComponent(id) +
                                      '/logs?follow=true', { headers: headers(), signal }));
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    onText(dec.decode(value, { stream: true }));
  }
  onText(dec.decode());
}
