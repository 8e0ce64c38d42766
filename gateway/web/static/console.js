// smslab web console — plain ES module, no build step, nothing loaded from the network.
// Hash routes: #/tasks, #/tasks/new, #/tasks/ID, #/tasks/ID/edit, #/tasks/ID/ground-truth, #/audiences,
// #/inbound, #/opt-outs, #/testbed.
// Sign-in: open the console as /#token=TOKEN (the URL `smslab serve` prints); the token is kept in
// sessionStorage and removed from the visible URL. Without one the console asks for it.

const API = '/api/v1';
const TOKEN_KEY = 'smslab.token';
const PAGE_SIZE = 20;
const POLL_MS = 2000;

export const STATUS_LABELS = {
  moderating: 'Moderating',
  rejected: 'Rejected',
  scheduled: 'To be sent',
  sending: 'Sending',
  completed: 'Completed',
  failed: 'Execution Failed',
};
const RESULT_LABELS = { succeeded: 'Succeeded', failed: 'Failed', pending: 'No feedback' };
const SMS_TYPES = { marketing: 'Marketing', notification: 'Notification', digital: 'Digital' };
const SEND_TYPES = { immediate: 'Immediate', scheduled: 'Scheduled' };
// Why a number was not sent: one capitalised label per reason; a reason a plugin adds is humanised.
export const SKIP_LABELS = {
  empty: 'Empty number',
  invalid: 'Invalid number',
  duplicate: 'Duplicate number',
  over_limit: 'Over the recipient limit',
  refused: 'Refused by the platform',
  opted_out: 'Opted out',
};
// The same reasons inside a sentence, with their count ("2 empty numbers", "1 refused by the platform").
const SKIP_PHRASES = {
  empty: (n) => plural(n, 'empty number'),
  invalid: (n) => plural(n, 'invalid number'),
  duplicate: (n) => plural(n, 'duplicate number'),
  over_limit: (n) => `${fmtNum(n)} over the recipient limit`,
  refused: (n) => `${fmtNum(n)} refused by the platform`,
  opted_out: (n) => `${fmtNum(n)} opted out`,
};
const PAGE_SIZES = [20, 50, 100];
const JUMPS = [
  { seconds: 300, label: '+5 min' },
  { seconds: 3600, label: '+1 h' },
  { seconds: 72 * 3600, label: '+72 h' },
  { seconds: 7 * 24 * 3600, label: '+7 days' },
];

const state = {
  token: null,
  clock: null,
  platforms: null,
  renderSeq: 0,
  timers: new Set(),
  list: { status: '', platform: '', q: '', cursors: [null], page: 0 },
  messages: { taskId: null, result: '', q: '', limit: PAGE_SIZE, cursors: [null], page: 0 },
  truth: { taskId: null, limit: PAGE_SIZE, cursors: [null], page: 0 },
  inbound: { q: '', cursors: [null], page: 0 },
  optouts: { q: '', cursors: [null], page: 0 },
  previewOpen: false,
};

// ---------------------------------------------------------------- small helpers

/** Build an element: h('div', {class: 'x', onclick: fn}, 'text', child). Text is never parsed as HTML. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'testid') {
      el.dataset.testid = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value') {
      el.value = value;
    } else if (key === 'checked' || key === 'selected' || key === 'disabled' || key === 'hidden' || key === 'required' || key === 'multiple') {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (sel, root = document) => root.querySelector(sel);

function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
}

/** RFC 3339 times inside a service message, written like the rest of the console. */
function withHumanTimes(text) {
  return String(text).replace(/\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})/g, (m) => fmtTime(m));
}

function fmtNum(n) {
  if (n === null || n === undefined) return '—';
  return typeof n === 'number' ? n.toLocaleString('en-US') : String(n);
}

function fmtDuration(seconds) {
  if (seconds % 86400 === 0) return `${fmtNum(seconds / 86400)} d`;
  if (seconds % 3600 === 0) return `${fmtNum(seconds / 3600)} h`;
  if (seconds % 60 === 0) return `${fmtNum(seconds / 60)} min`;
  return `${fmtNum(seconds)} s`;
}

/** Seconds for people: 0.3 s, 5 s, 1 min 30 s, 2 h, 3 d 4 h. */
export function fmtSeconds(value) {
  const s = Number(value);
  if (!Number.isFinite(s)) return String(value);
  if (s < 60) return `${Number(s.toFixed(s < 10 ? 2 : 1)).toLocaleString('en-US')}\u00a0s`;
  const units = [[86400, 'd'], [3600, 'h'], [60, 'min'], [1, 's']];
  const out = [];
  let rest = Math.round(s);
  for (const [size, unit] of units) {
    const n = Math.floor(rest / size);
    if (n) { out.push(`${fmtNum(n)}\u00a0${unit}`); rest -= n * size; }
    if (out.length === 2) break;
  }
  return out.join(' ');
}

/** "1 duplicate", "2 duplicates", "1,234 numbers": every count in a sentence goes through here. */
export function plural(n, one, many = `${one}s`) {
  return `${fmtNum(n)} ${Number(n) === 1 ? one : many}`;
}

function percentOf(part, whole) {
  if (!whole) return '0 %';
  const v = (part / whole) * 100;
  return `${Number(v.toFixed(v > 0 && v < 1 ? 1 : 0))} %`;
}

/** "opted_out" → "Opted out": a reason or key a plugin adds, made readable. */
export function humanize(key) {
  const text = String(key).replace(/[_-]+/g, ' ').replace(/\s+/g, ' ').trim();
  return text ? text[0].toUpperCase() + text.slice(1) : '';
}

export function skipLabel(reason) {
  return SKIP_LABELS[reason] || humanize(reason);
}

function skipPhrase(reason, n) {
  const f = SKIP_PHRASES[reason];
  return f ? f(n) : `${fmtNum(n)} ${humanize(reason).toLowerCase()}`;
}

/** A service message made into a sentence: capital first letter, a full stop at the end. */
export function sentence(text) {
  const t = String(text || '').trim();
  if (!t) return '';
  const first = t[0].toUpperCase() + t.slice(1);
  return /[.!?…]$/.test(first) ? first : `${first}.`;
}

/** Known service reasons written with raw counts ("no number could be sent (19985 empty)") get
 *  labels and thousands separators; anything else is kept as the service wrote it. */
function reasonText(reason) {
  const t = String(reason || '').trim();
  const m = t.match(/^no number could be sent \((.+)\)$/);
  if (m) {
    const parts = m[1].split(/,\s*/).map((p) => {
      const pm = p.match(/^(\d+) (\S+)$/);
      return pm ? skipPhrase(pm[2], Number(pm[1])) : p;
    });
    return `no number could be sent (${parts.join(', ')})`;
  }
  return t;
}

/** Why a task is Rejected or Execution Failed, as one human sentence. */
export function statusSentence(task) {
  const r = reasonText(task.status_reason);
  if (!r) return '';
  if (task.status === 'failed') return sentence(`The task failed: ${r}`);
  if (task.status === 'rejected') return sentence(`Moderation rejected the task: ${r}`);
  return sentence(r);
}

/** An element with a native title AND a tooltip child, so hovering or focusing shows `text`.
 *  The tooltip is placed by measuring (see placeTip): below the element, or above it when there
 *  is no room below, and moved left or right so that it stays inside the viewport. */
function withTip(el, text, { align = 'left' } = {}) {
  if (!text) return el;
  el.title = text;
  el.classList.add('has-tip');
  el.dataset.tipAlign = align;
  if (!el.hasAttribute('tabindex') && !/^(A|BUTTON|INPUT|SELECT|TEXTAREA)$/.test(el.tagName)) {
    el.tabIndex = 0;
  }
  el.append(h('span', { class: 'tip', role: 'tooltip', testid: 'tooltip' }, text));
  el.addEventListener('mouseenter', () => openTip(el));
  el.addEventListener('mouseleave', () => { if (!el.contains(document.activeElement)) closeTip(el); });
  el.addEventListener('focusin', () => openTip(el));
  el.addEventListener('focusout', () => { if (!el.matches(':hover')) closeTip(el); });
  return el;
}

const TIP_MARGIN = 8; // px kept free between a tooltip and the viewport's edges
const TIP_GAP = 6; // px between the element and its tooltip

function openTip(el) {
  document.querySelectorAll('.has-tip.tip-open').forEach((other) => { if (other !== el && !other.contains(el)) closeTip(other); });
  el.classList.add('tip-open');
  placeTip(el);
}

function closeTip(el) {
  el.classList.remove('tip-open');
}

/** Put an open tooltip where it fits: below or above its element, clamped left and right. */
export function placeTip(el) {
  const tip = el.querySelector(':scope > .tip');
  if (!tip || !el.classList.contains('tip-open')) return;
  const vw = document.documentElement.clientWidth;
  const vh = document.documentElement.clientHeight;
  tip.style.maxWidth = `${Math.max(120, Math.min(320, vw - 2 * TIP_MARGIN))}px`;
  tip.style.left = '0px';
  tip.style.top = '0px';
  const a = el.getBoundingClientRect();
  const t = tip.getBoundingClientRect();
  const below = a.bottom + TIP_GAP;
  const above = a.top - TIP_GAP - t.height;
  let top;
  let placement;
  if (below + t.height <= vh - TIP_MARGIN) { top = below; placement = 'below'; }
  else if (above >= TIP_MARGIN) { top = above; placement = 'above'; }
  else {
    // Neither side has room (a very short viewport): take the roomier side and keep it inside.
    placement = a.top > vh - a.bottom ? 'above' : 'below';
    top = Math.max(TIP_MARGIN, Math.min(placement === 'above' ? above : below, vh - TIP_MARGIN - t.height));
  }
  let left = el.dataset.tipAlign === 'right' ? a.right - t.width : a.left;
  left = Math.max(TIP_MARGIN, Math.min(left, vw - TIP_MARGIN - t.width));
  tip.style.left = `${Math.round(left)}px`;
  tip.style.top = `${Math.round(top)}px`;
  tip.dataset.placement = placement;
}

function placeOpenTips() {
  document.querySelectorAll('.has-tip.tip-open').forEach(placeTip);
}

function clearTimers() {
  for (const t of state.timers) clearTimeout(t);
  state.timers.clear();
}

function later(fn, ms) {
  const t = setTimeout(() => {
    state.timers.delete(t);
    fn();
  }, ms);
  state.timers.add(t);
  return t;
}

let flashTimer = null;
function flash(message, kind = 'ok') {
  const el = $('#flash');
  el.className = `flash flash-${kind}`;
  el.textContent = message;
  el.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { el.hidden = true; }, kind === 'error' ? 8000 : 4000);
}

function errorBox(err, testid = 'error') {
  const msg = err instanceof ApiError ? err.message : String(err && err.message ? err.message : err);
  const code = err instanceof ApiError && err.code ? err.code : null;
  return h('div', { class: 'alert alert-error', role: 'alert', testid },
    code ? h('strong', {}, code, ': ') : null, msg,
    err instanceof ApiError && err.field ? h('span', { class: 'muted' }, ` (field: ${err.field})`) : null);
}

// ---------------------------------------------------------------- API

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** An error's message without the "field: " prefix the service starts it with, for showing it
 *  next to that field ("name: a task named … already exists" → "a task named … already exists"). */
export function fieldMessage(err) {
  const msg = String((err && err.message) || err || '');
  const field = err && err.field;
  if (field && msg.startsWith(`${field}: `)) return msg.slice(field.length + 2);
  return msg;
}

async function api(method, path, body, { contentType, withStatus = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  let payload;
  if (body !== undefined && body !== null) {
    if (contentType) {
      headers['Content-Type'] = contentType;
      payload = body;
    } else {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
  }
  let res;
  try {
    res = await fetch(API + path, { method, headers, body: payload });
  } catch (e) {
    throw new ApiError(0, 'network', `The service did not answer (${e.message}).`);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    const err = new ApiError(res.status, e.code || null, e.message || `${res.status} ${res.statusText}`.trim(), e.field);
    if (res.status === 401) onUnauthorized(err);
    throw err;
  }
  return withStatus ? { status: res.status, data } : data;
}

function qs(params) {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== '') sp.set(k, v);
  }
  const s = sp.toString();
  return s ? `?${s}` : '';
}

async function loadPlatforms() {
  if (!state.platforms) {
    const data = await api('GET', '/platforms');
    state.platforms = (data && data.items) || [];
  }
  return state.platforms;
}

async function loadAllAudiences(max = 500) {
  const items = [];
  let cursor = null;
  do {
    const page = await api('GET', `/audiences${qs({ limit: 100, cursor })}`);
    items.push(...(page.items || []));
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

// ---------------------------------------------------------------- auth

function readTokenFromFragment() {
  const hash = window.location.hash || '';
  const m = hash.match(/^#\/?token=([^&]+)/);
  if (!m) return false;
  const token = decodeURIComponent(m[1]);
  sessionStorage.setItem(TOKEN_KEY, token);
  // Remove the token from the visible URL (and from history).
  history.replaceState(null, '', `${window.location.pathname}${window.location.search}#/tasks`);
  return true;
}

function onUnauthorized(err) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  renderSignIn(`The token was refused: ${err.message}`);
}

function renderSignIn(message, kind = 'error') {
  clearTimers();
  state.renderSeq += 1;
  $('#nav').hidden = true;
  $('#signout').hidden = true;
  $('#clockbar').hidden = true;
  const input = h('input', {
    id: 'token-input', testid: 'token-input', type: 'password', autocomplete: 'off',
    placeholder: 'paste the token', required: true, class: 'input',
  });
  const form = h('form', {
    class: 'card signin', testid: 'signin-form',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      state.token = token;
      try {
        await api('GET', '/clock');
      } catch (e) {
        if (e.status !== 401) {
          state.token = null;
          renderSignIn(e.message);
        }
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, token);
      if (!window.location.hash || window.location.hash === '#') window.location.hash = '#/tasks';
      start();
    },
  },
  h('h1', {}, 'Sign in'),
  h('p', {}, 'Open the URL that ', h('code', {}, 'smslab serve'), ' prints (it ends in ',
    h('code', {}, '#token=…'), '), or paste a token created with ',
    h('code', {}, 'smslab token create --workspace NAME'), '.'),
  message ? h('div', {
    class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status', testid: kind === 'error' ? 'signin-error' : 'signin-note',
  }, message) : null,
  h('label', { for: 'token-input' }, 'Token'),
  input,
  h('div', { class: 'form-actions' }, h('button', { class: 'btn btn-primary', type: 'submit', testid: 'signin-submit' }, 'Sign in')));
  const view = $('#view');
  view.replaceChildren(form);
  input.focus();
}

// ---------------------------------------------------------------- clock

async function refreshClock() {
  try {
    state.clock = await api('GET', '/clock');
  } catch (e) {
    if (e.status === 401) return;
    state.clock = null;
  }
  renderClockInto($('#clockbar'), 'clock');
  const tb = document.getElementById('testbed-clock');
  if (tb) renderClockInto(tb, 'testbed-clock');
}

function renderClockInto(container, prefix) {
  if (!container) return;
  const c = state.clock;
  const wall = !c || c.mode === 'wall';
  const reason = !c ? 'The clock is not available.'
    : wall ? 'The service runs on the wall clock; start it with --clock virtual to jump ahead.' : null;
  const buttons = JUMPS.map((j) => {
    const btn = h('button', {
      type: 'button', class: 'btn btn-small', testid: `${prefix}-advance-${j.seconds}`,
      disabled: wall, dataset: { seconds: String(j.seconds) },
      onclick: () => advanceClock(j.seconds, btn),
    }, j.label);
    return wall ? withTip(h('span', { class: 'action-wrap' }, btn), reason) : btn;
  });
  container.replaceChildren(
    h('span', { class: 'clock-label' }, 'Service clock'),
    h('span', { class: 'clock-now', testid: `${prefix}-now` }, c ? fmtTime(c.now) : '—'),
    h('span', { class: `badge clock-mode mode-${c ? c.mode : 'unknown'}`, testid: `${prefix}-mode` },
      c ? c.mode + (c.rate && c.rate !== 1 ? ` ×${c.rate}` : '') : 'unknown'),
    h('span', { class: 'clock-jumps', role: 'group', 'aria-label': 'Advance the clock' }, buttons),
  );
  container.hidden = false;
}

async function advanceClock(seconds, btn) {
  const all = document.querySelectorAll('[data-seconds]');
  all.forEach((b) => { b.disabled = true; });
  if (btn) btn.classList.add('busy');
  try {
    state.clock = await api('POST', '/clock/advance', { seconds });
    flash(`Clock advanced by ${fmtDuration(seconds)}: now ${fmtTime(state.clock.now)}.`);
  } catch (e) {
    flash(e.message, 'error');
  } finally {
    await refreshClock();
    route();
  }
}

// ---------------------------------------------------------------- status and small widgets

function statusBadge(task, { align = 'right' } = {}) {
  const label = STATUS_LABELS[task.status] || task.status;
  const el = h('span', {
    class: `status status-${task.status}`, testid: 'task-status', dataset: { status: task.status },
  }, label);
  if ((task.status === 'rejected' || task.status === 'failed') && task.status_reason) {
    withTip(el, statusSentence(task), { align });
    el.dataset.reason = task.status_reason;
  } else if (task.status_reason) {
    el.title = sentence(task.status_reason);
  }
  return el;
}

function subActivitiesCell(subs) {
  subs = subs || [];
  if (subs.length === 0) return h('span', { class: 'muted' }, '—');
  const names = subs.map((s) => s.name || String(s.id));
  if (subs.length === 1) return h('span', { testid: 'sub-activities' }, names[0]);
  const el = h('span', { class: 'pill', testid: 'sub-activities' }, plural(subs.length, 'sub-activity', 'sub-activities'));
  return withTip(el, names.join(', '));
}

/** An action button; disabled with its reason shown on hover when not allowed. */
function actionButton(label, { allowed, reason, testid, onclick, kind = '' }) {
  const btn = h('button', { type: 'button', class: `btn btn-small ${kind}`, testid, disabled: !allowed, onclick }, label);
  if (allowed) return btn;
  const wrap = h('span', { class: 'action-wrap', testid: `${testid}-locked` }, btn);
  return withTip(wrap, reason || 'Not allowed now.', { align: 'right' });
}

const LOCK_RULE = 'Only a rejected task, or a scheduled task more than 5 minutes before its send time, can be edited or deleted.';

/** Why Edit and Delete are greyed out, as human sentences (the service's lock_reason names the
 *  status in its API form, e.g. "the task is execution failed"). */
export function lockText(task) {
  const byStatus = {
    sending: 'The task is sending; it can no longer change.',
    completed: 'The task has completed; it can no longer change.',
    failed: 'The task failed; it can no longer change.',
  };
  if (byStatus[task.status]) return `${byStatus[task.status]} ${LOCK_RULE}`;
  const reason = String(task.lock_reason || '');
  if (task.send_type !== 'scheduled' && /immediate/.test(reason)) {
    return 'An immediate task can be changed only after moderation rejected it.';
  }
  if (/5 minutes/.test(reason)) {
    return 'The send time is 5 minutes away or less; the task can no longer change.';
  }
  return reason ? sentence(reason) : LOCK_RULE;
}

async function deleteTask(task, after) {
  if (!window.confirm(`Delete task "${task.name}"? This cannot be undone.`)) return;
  try {
    await api('DELETE', `/tasks/${task.id}`);
    flash(`Task "${task.name}" deleted.`);
    after();
  } catch (e) {
    flash(e.message, 'error');
  }
}

function pager({ page, hasPrev, hasNext, onPrev, onNext, prefix, label = null }) {
  return h('div', { class: 'pager', testid: `${prefix}-pager` },
    h('button', { type: 'button', class: 'btn btn-small', testid: `${prefix}-prev`, disabled: !hasPrev, onclick: onPrev }, '‹ Prev'),
    label === null
      ? h('span', { class: 'muted', testid: `${prefix}-page` }, `Page ${fmtNum(page + 1)}`)
      : h('span', { class: 'muted', testid: `${prefix}-range` }, label),
    h('button', { type: 'button', class: 'btn btn-small', testid: `${prefix}-next`, disabled: !hasNext, onclick: onNext }, 'Next ›'));
}

function td(label, ...children) {
  return h('td', { 'data-label': label }, ...children);
}

// ---------------------------------------------------------------- task list

async function viewTaskList(view, seq) {
  const L = state.list;
  let platforms = [];
  try { platforms = await loadPlatforms(); } catch { platforms = []; }
  if (seq !== state.renderSeq) return;

  const statusSel = h('select', { id: 'filter-status', testid: 'filter-status', class: 'input' },
    h('option', { value: '' }, 'All statuses'),
    Object.entries(STATUS_LABELS).map(([v, l]) => h('option', { value: v, selected: L.status === v }, l)));
  const platformSel = h('select', { id: 'filter-platform', testid: 'filter-platform', class: 'input' },
    h('option', { value: '' }, 'All platforms'),
    platforms.map((p) => h('option', { value: p.name, selected: L.platform === p.name }, p.name)));
  const search = h('input', {
    id: 'filter-q', testid: 'filter-q', type: 'search', class: 'input', placeholder: 'Search name or content',
    value: L.q,
  });
  const resetPaging = () => { L.cursors = [null]; L.page = 0; };
  statusSel.addEventListener('change', () => { L.status = statusSel.value; resetPaging(); route(); });
  platformSel.addEventListener('change', () => { L.platform = platformSel.value; resetPaging(); route(); });
  const filters = h('form', {
    class: 'filters', testid: 'task-filters', role: 'search',
    onsubmit: (ev) => { ev.preventDefault(); L.q = search.value.trim(); resetPaging(); route(); },
  },
  h('label', { class: 'field-inline' }, h('span', {}, 'Status'), statusSel),
  h('label', { class: 'field-inline' }, h('span', {}, 'Platform'), platformSel),
  h('label', { class: 'field-inline grow' }, h('span', {}, 'Search'), search),
  h('button', { type: 'submit', class: 'btn', testid: 'filter-search' }, 'Search'));

  const header = h('div', { class: 'page-head' },
    h('h1', {}, 'Tasks'),
    h('div', { class: 'head-actions' },
      h('button', { type: 'button', class: 'btn', testid: 'tasks-refresh', onclick: () => route() }, 'Refresh'),
      h('a', { class: 'btn btn-primary', href: '#/tasks/new', testid: 'create-task-link' }, 'New task')));

  const body = h('div', { testid: 'task-list-body' }, h('p', { class: 'muted' }, 'Loading tasks…'));
  view.replaceChildren(header, filters, body);
  await loadTaskPage(body, seq);
}

const ACTIVE = new Set(['moderating', 'scheduled', 'sending']);
const LIST_POLL_MS = 5000;

/** Fetch and draw one page of tasks; while some task is still moving, redraw it every few seconds. */
async function loadTaskPage(body, seq) {
  const L = state.list;
  let page;
  try {
    page = await api('GET', `/tasks${qs({
      status: L.status, platform: L.platform, q: L.q, limit: PAGE_SIZE, cursor: L.cursors[L.page],
    })}`);
  } catch (e) {
    if (seq === state.renderSeq) body.replaceChildren(errorBox(e, 'task-list-error'));
    return;
  }
  if (seq !== state.renderSeq) return;
  const items = page.items || [];

  const table = h('table', { class: 'table tasks-table cards-on-narrow', id: 'task-table', testid: 'task-table' },
    h('thead', {}, h('tr', {},
      ['Task', 'Sub-activities', 'Content', 'Audience', 'Audience size', 'Sent', 'Succeeded', 'Failed',
        'Platform', 'SMS type', 'Sending type', 'Status', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, items.map((t) => taskRow(t))));

  const note = h('p', { class: 'note' },
    'Sent = succeeded + failed + no feedback. A number with no feedback 72 hours after it was sent becomes failed (RECEIPT_TIMEOUT).');

  body.replaceChildren(
    items.length ? table : h('div', { class: 'empty', testid: 'task-list-empty' },
      L.status || L.platform || L.q ? 'No task matches these filters.' : 'No tasks yet. ',
      L.status || L.platform || L.q ? null : h('a', { href: '#/tasks/new' }, 'Create the first one.')),
    pager({
      prefix: 'tasks', page: L.page, hasPrev: L.page > 0, hasNext: Boolean(page.next_cursor),
      onPrev: () => { L.page -= 1; route(); },
      onNext: () => { L.cursors[L.page + 1] = page.next_cursor; L.page += 1; route(); },
    }),
    note);

  if (items.some((t) => ACTIVE.has(t.status))) {
    const poll = () => {
      if (seq !== state.renderSeq) return;
      // Do not pull rows from under the pointer (a tooltip may be open) or while a dialog is up.
      if (body.matches(':hover') || body.contains(document.activeElement) || document.hidden) { later(poll, LIST_POLL_MS); return; }
      loadTaskPage(body, seq);
    };
    later(poll, LIST_POLL_MS);
  }
}

function taskRow(t) {
  const tr = h('tr', { testid: 'task-row', dataset: { taskId: String(t.id), status: t.status } },
    td('Task', h('a', { href: `#/tasks/${t.id}`, class: 'task-name', testid: 'task-name' }, t.name)),
    td('Sub-activities', subActivitiesCell(t.sub_activities)),
    td('Content', h('span', { class: 'content-summary', title: t.content_summary || '', testid: 'task-content' }, t.content_summary || '—')),
    td('Audience', h('span', { testid: 'task-audience' }, t.audience_name || (t.audience_id ? `#${t.audience_id}` : '—'))),
    td('Audience size', h('span', { class: 'num', testid: 'task-audience-size' }, fmtNum(t.audience_size))),
    td('Sent', h('span', { class: 'num', testid: 'task-sent' }, fmtNum(t.sent))),
    td('Succeeded', h('span', { class: 'num ok', testid: 'task-succeeded' }, fmtNum(t.succeeded))),
    td('Failed', h('span', { class: 'num bad', testid: 'task-failed' }, fmtNum(t.failed))),
    td('Platform', h('span', { testid: 'task-platform' }, t.platform)),
    td('SMS type', h('span', { testid: 'task-sms-type' }, SMS_TYPES[t.sms_type] || t.sms_type)),
    td('Sending type', h('span', { testid: 'task-send-type' }, SEND_TYPES[t.send_type] || t.send_type,
      t.send_type === 'scheduled' && t.send_at ? h('small', { class: 'muted block' }, fmtTime(t.send_at)) : null)),
    td('Status', statusBadge(t)),
    td('Actions', h('div', { class: 'row-actions' },
      h('a', { class: 'btn btn-small', href: `#/tasks/${t.id}`, testid: 'action-view' }, 'View Details'),
      actionButton('Edit', {
        allowed: t.can_edit, reason: lockText(t), testid: 'action-edit',
        onclick: () => { window.location.hash = `#/tasks/${t.id}/edit`; },
      }),
      actionButton('Delete', {
        allowed: t.can_delete, reason: lockText(t), testid: 'action-delete', kind: 'btn-danger',
        onclick: () => deleteTask(t, () => route()),
      }))));
  return tr;
}

// ---------------------------------------------------------------- task details

async function viewTaskDetails(view, seq, id) {
  if (state.messages.taskId !== id) {
    state.messages = { taskId: id, result: '', q: '', limit: PAGE_SIZE, cursors: [null], page: 0 };
    state.previewOpen = false;
  }
  let task;
  try {
    task = await api('GET', `/tasks/${id}`);
  } catch (e) {
    if (seq === state.renderSeq) {
      view.replaceChildren(h('p', {}, h('a', { href: '#/tasks' }, '‹ All tasks')), errorBox(e, 'task-error'));
    }
    return;
  }
  if (seq !== state.renderSeq) return;

  const head = h('div', { class: 'page-head' },
    h('div', {},
      h('p', { class: 'crumbs' }, h('a', { href: '#/tasks', testid: 'back-to-list' }, '‹ All tasks')),
      h('h1', { testid: 'detail-name' }, task.name, ' ', statusBadge(task, { align: 'left' }))),
    h('div', { class: 'head-actions' },
      h('button', { type: 'button', class: 'btn', testid: 'detail-refresh', onclick: () => route() }, 'Refresh'),
      task.platform === 'sim' ? h('a', {
        class: 'btn', href: `#/tasks/${task.id}/ground-truth`, testid: 'detail-ground-truth',
        title: 'What the simulated carrier decided for each number, and every receipt it sent',
      }, 'Ground truth') : null,
      actionButton('Edit', {
        allowed: task.can_edit, reason: lockText(task), testid: 'detail-edit',
        onclick: () => { window.location.hash = `#/tasks/${task.id}/edit`; },
      }),
      actionButton('Delete', {
        allowed: task.can_delete, reason: lockText(task), testid: 'detail-delete', kind: 'btn-danger',
        onclick: () => deleteTask(task, () => { window.location.hash = '#/tasks'; }),
      })));

  const reason = (task.status === 'rejected' || task.status === 'failed') && task.status_reason
    ? h('div', { class: 'alert alert-error', testid: 'detail-status-reason' }, statusSentence(task))
    : null;

  // Build the page off-screen and swap it in once the numbers are loaded, so the 2-second
  // auto-refresh does not flicker.
  const gen = generateCard(task);
  const msgs = messagesCard(task, gen);
  await msgs.ready;
  if (seq !== state.renderSeq) return;
  view.replaceChildren(...[head, reason, contentCard(task), countsCard(task), msgs.card, gen].filter(Boolean));

  if (task.status === 'sending' || task.status === 'moderating') {
    later(() => { if (seq === state.renderSeq) refreshDetailsInPlace(view, seq, id); }, POLL_MS);
  }
}

/** Auto-refresh while sending: replace the page quietly, keeping the per-number table's state. */
async function refreshDetailsInPlace(view, seq, id) {
  if (seq !== state.renderSeq) return;
  // A form being typed in must not be lost: only redraw when focus is not inside an input.
  const active = document.activeElement;
  if (active && view.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
    later(() => refreshDetailsInPlace(view, seq, id), POLL_MS);
    return;
  }
  const y = window.scrollY;
  refreshClock();
  await viewTaskDetails(view, seq, id);
  window.scrollTo(0, y);
}

function contentCard(task) {
  const content = task.content || {};
  const tpl = content.template;
  const rows = [];
  if (tpl) {
    rows.push(['Template topic', h('span', { testid: 'detail-topic' }, tpl.topic || '—')]);
    rows.push(['Template body', h('span', { class: 'pre', testid: 'detail-template-body' }, tpl.body || '')]);
    rows.push(['Parameters', h('code', { class: 'pre', testid: 'detail-template-params' }, JSON.stringify(tpl.params || {}, null, 0))]);
  } else {
    rows.push(['Full text', h('span', { class: 'pre', testid: 'detail-text' }, content.text || task.content_summary || '')]);
  }
  rows.push(['Signature', h('span', { testid: 'detail-signature' }, task.signature ? `【${task.signature}】` : '—')]);
  rows.push(['Send time', h('span', { testid: 'detail-send-time' },
    task.send_type === 'scheduled' ? `${fmtTime(task.send_at)} (scheduled)` : `Immediate${task.send_at ? ` — ${fmtTime(task.send_at)}` : ''}`)]);
  rows.push(['Audience', h('span', { testid: 'detail-audience' }, task.audience_name || `#${task.audience_id}`)]);
  rows.push(['Platform · type', h('span', {}, `${task.platform} · ${SMS_TYPES[task.sms_type] || task.sms_type}`)]);
  rows.push(['Sub-activities', h('span', { testid: 'detail-sub-activities' },
    (task.sub_activities || []).length ? task.sub_activities.map((s) => `${s.id}: ${s.name}`).join(', ') : '—')]);
  rows.push(['Created', fmtTime(task.created_at)]);
  if (task.started_at) rows.push(['Sending started', h('span', { testid: 'detail-started' }, fmtTime(task.started_at))]);
  if (task.completed_at) rows.push(['Finished', h('span', { testid: 'detail-completed' }, fmtTime(task.completed_at))]);

  const preview = task.preview || null;
  const previewPanel = h('div', { class: 'preview', id: 'preview-panel', testid: 'preview-panel', hidden: !state.previewOpen },
    preview ? [
      h('div', { class: 'phone' }, h('div', { class: 'bubble', testid: 'preview-text' }, preview.text)),
      h('dl', { class: 'kv compact' },
        h('dt', {}, 'Encoding'), h('dd', { testid: 'preview-encoding' }, preview.encoding),
        h('dt', {}, 'Characters'), h('dd', { testid: 'preview-characters' }, fmtNum(preview.characters)),
        h('dt', {}, 'Parts per number'), h('dd', { testid: 'preview-parts' }, fmtNum(preview.parts))),
    ] : h('p', { class: 'muted' }, 'No preview available.'));
  const previewBtn = h('button', {
    type: 'button', class: 'btn', testid: 'preview-toggle', 'aria-expanded': String(state.previewOpen), 'aria-controls': 'preview-panel',
    onclick: () => {
      previewPanel.hidden = !previewPanel.hidden;
      state.previewOpen = !previewPanel.hidden;
      previewBtn.setAttribute('aria-expanded', String(!previewPanel.hidden));
      previewBtn.textContent = previewPanel.hidden ? 'Preview' : 'Hide preview';
    },
  }, state.previewOpen ? 'Hide preview' : 'Preview');

  return h('section', { class: 'card', testid: 'detail-content' },
    h('div', { class: 'card-head' }, h('h2', {}, 'Content'), previewBtn),
    h('dl', { class: 'kv' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    previewPanel);
}

function countsCard(task) {
  const sent = task.sent || 0;
  const done = (task.succeeded || 0) + (task.failed || 0);
  const pct = sent ? Math.round((done / sent) * 1000) / 10 : (task.status === 'completed' ? 100 : 0);
  const skipped = task.skipped || {};
  const skippedTotal = Object.values(skipped).reduce((a, b) => a + (Number(b) || 0), 0);
  const stat = (label, value, testid, cls = '') => h('div', { class: `stat ${cls}`, testid },
    h('div', { class: 'stat-value' }, fmtNum(value)), h('div', { class: 'stat-label' }, label));

  const progress = h('div', { class: 'progress-wrap', testid: 'progress' },
    h('div', {
      class: `progress ${task.status === 'sending' ? 'live' : ''}`, role: 'progressbar',
      'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(pct), testid: 'progress-bar',
    }, h('div', { class: 'progress-fill', style: `width:${Math.min(100, pct)}%` })),
    h('div', { class: 'progress-text', testid: 'progress-text' },
      `Feedback for ${fmtNum(done)} of ${plural(sent, 'sent number')} (${pct}%)`,
      task.status === 'sending' ? h('span', { class: 'muted', testid: 'auto-refresh' }, ' · refreshing every 2 s') : null));

  const skippedList = h('ul', { class: 'skipped', testid: 'detail-skipped' },
    Object.keys(skipped).length
      ? Object.entries(skipped).map(([k, v]) => h('li', { dataset: { reason: k } },
        h('span', { testid: 'skip-label' }, skipLabel(k)), h('span', { class: 'num' }, fmtNum(v))))
      : h('li', { class: 'muted' }, 'None'));

  const notes = [];
  if (task.late_receipts) {
    notes.push(h('li', { testid: 'detail-late-receipts' },
      `${plural(task.late_receipts, 'receipt')} arrived after the receipt timeout`,
      h('span', { class: 'muted' }, ' (each part of a message has its own receipt; a late one is recorded and changes no result).')));
  }
  if (task.duplicate_receipts) {
    notes.push(h('li', { testid: 'detail-duplicate-receipts' },
      `${plural(task.duplicate_receipts, 'duplicate receipt')} ${task.duplicate_receipts === 1 ? 'was' : 'were'} ignored.`));
  }

  return h('section', { class: 'card', testid: 'detail-counts' },
    h('div', { class: 'card-head' }, h('h2', {}, 'Sending status'),
      task.details_expired ? null : h('span', { class: 'muted', testid: 'detail-expire-at' }, task.details_expire_at
        ? `Per-number details kept until ${fmtTime(task.details_expire_at)}`
        : (task.sent ? '' : (task.status === 'failed' || task.status === 'rejected' ? 'Nothing was sent' : 'Not sent yet')))),
    h('div', { class: 'stats' },
      stat('Audience size', task.audience_size, 'count-audience-size'),
      stat('Sent', task.sent, 'count-sent'),
      stat('Succeeded', task.succeeded, 'count-succeeded', 'ok'),
      stat('Failed', task.failed, 'count-failed', 'bad'),
      stat('No feedback', task.pending, 'count-pending', 'warn'),
      stat('Skipped', skippedTotal, 'count-skipped'),
      stat('Segments (billed parts)', task.segments, 'count-segments')),
    progress,
    h('div', { class: 'two-col' },
      h('div', {}, h('h3', {}, 'Skipped by reason'), skippedList),
      h('div', {}, h('h3', {}, 'Why the counts differ'),
        h('p', { testid: 'detail-explanation' }, explainCounts(task)),
        notes.length ? h('ul', { class: 'receipt-notes', testid: 'detail-receipt-notes' }, notes) : null)));
}

/** Why audience size and sent differ, from the task's figures (every count formatted). */
export function explainCounts(task) {
  if (!task.started_at) {
    if (task.status === 'rejected') return 'Moderation rejected the task, so nothing was sent.';
    if (task.status === 'failed') return 'The task failed before sending, so nothing was sent.';
    return 'The task has not started sending yet.';
  }
  const lines = [`${plural(task.audience_size || 0, 'number')} in the audience, ${fmtNum(task.sent || 0)} sent.`];
  const reasons = Object.entries(task.skipped || {}).filter(([, v]) => Number(v) > 0);
  if (reasons.length) lines.push(`Not sent: ${reasons.map(([k, v]) => skipPhrase(k, Number(v))).join(', ')}.`);
  const parts = task.parts_per_message || 0;
  if (parts > 1) {
    lines.push(`The text is ${fmtNum(parts)} parts long, so the platform bills ${plural(task.segments || 0, 'message')}`
      + ` for ${plural(task.sent || 0, 'number')}.`);
  }
  return lines.join(' ');
}

function messagesCard(task, gen) {
  const M = state.messages;
  const reload = () => { M.cursors = [null]; M.page = 0; return loadMessages(task, body, gen, controls); };
  const sel = h('select', { id: 'messages-result', testid: 'messages-result', class: 'input' },
    h('option', { value: '' }, 'All results'),
    Object.entries(RESULT_LABELS).map(([v, l]) => h('option', { value: v, selected: M.result === v }, l)));
  sel.addEventListener('change', () => { M.result = sel.value; reload(); });
  const size = h('select', { id: 'messages-limit', testid: 'messages-limit', class: 'input' },
    PAGE_SIZES.map((n) => h('option', { value: String(n), selected: M.limit === n }, `${n} per page`)));
  size.addEventListener('change', () => { M.limit = Number(size.value); reload(); });
  const search = h('input', {
    id: 'messages-q', testid: 'messages-q', type: 'search', class: 'input', inputmode: 'tel', autocomplete: 'off',
    placeholder: 'e.g. 8000 or +86 138', value: M.q, 'aria-describedby': 'messages-q-error',
  });
  const searchError = h('small', { class: 'field-error', id: 'messages-q-error', testid: 'messages-q-error', hidden: true });
  const showSearchError = (message) => {
    searchError.textContent = message || '';
    searchError.hidden = !message;
    if (message) search.setAttribute('aria-invalid', 'true'); else search.removeAttribute('aria-invalid');
  };
  search.addEventListener('input', () => { if (!searchError.hidden && !numberSearchError(search.value)) showSearchError(''); });
  const controls = h('form', {
    class: 'filters filters-flat', testid: 'messages-filters', role: 'search', novalidate: true,
    onsubmit: (ev) => {
      ev.preventDefault();
      const problem = numberSearchError(search.value);
      showSearchError(problem);
      if (problem) return;
      M.q = search.value.trim();
      reload();
    },
  },
  h('label', { class: 'field-inline' }, h('span', {}, 'Result'), sel),
  h('div', { class: 'field-inline grow', dataset: { field: 'q' } },
    h('label', { for: 'messages-q' }, 'Search numbers by digits'),
    h('div', { class: 'input-row' }, search,
      h('button', { type: 'submit', class: 'btn', testid: 'messages-search' }, 'Search')),
    searchError),
  h('label', { class: 'field-inline' }, h('span', {}, 'Page size'), size));
  controls.showSearchError = showSearchError;
  const body = h('div', { testid: 'messages-body' }, h('p', { class: 'muted' }, 'Loading numbers…'));
  const card = h('section', { class: 'card', testid: 'detail-messages' },
    h('div', { class: 'card-head' }, h('h2', {}, 'Numbers')),
    controls, body);
  const ready = loadMessages(task, body, gen, controls);
  return { card, ready };
}

/** Why a number search cannot be sent, or '' (digits, with +, spaces, dashes or brackets). */
export function numberSearchError(value) {
  const v = String(value || '').trim();
  if (!v) return '';
  if (!/^[\d\s+\-()]+$/.test(v)) return 'Search by digits only, e.g. 8000 or +86 138.';
  if (!/\d/.test(v)) return 'Type at least one digit.';
  return '';
}

/** "1–20 of 1,234": which rows of how many this page shows. */
export function rangeText(offset, count, total) {
  if (!count) return `0 of ${fmtNum(total || 0)}`;
  return `${fmtNum(offset + 1)}–${fmtNum(offset + count)} of ${fmtNum(total)}`;
}

async function loadMessages(task, body, gen, controls) {
  const M = state.messages;
  const seq = state.renderSeq;
  let page;
  try {
    page = await api('GET', `/tasks/${task.id}/messages${qs({
      result: M.result, q: M.q, limit: M.limit, cursor: M.cursors[M.page],
    })}`);
  } catch (e) {
    if (seq !== state.renderSeq) return;
    if (e.status === 410 || e.code === 'details_expired') {
      controls.hidden = true;
      body.replaceChildren(expiredBox(e));
      gen.replaceChildren(h('h2', {}, 'Generate audience'), generateExpiredNote());
    } else if (e.field === 'q') {
      controls.showSearchError(sentence(fieldMessage(e)));
      body.replaceChildren();
    } else {
      body.replaceChildren(errorBox(e, 'messages-error'));
    }
    return;
  }
  if (seq !== state.renderSeq) return;
  const items = page.items || [];
  const total = typeof page.total === 'number' ? page.total : null;
  const offset = M.page * M.limit;
  const table = h('table', { class: 'table messages-table cards-on-narrow', testid: 'messages-table' },
    h('thead', {}, h('tr', {}, ['Number', 'Receipt time', 'Result', 'Failure reasons', 'Parts'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, items.map((m) => h('tr', { testid: 'message-row', dataset: { result: m.result } },
      td('Number', h('span', { class: 'mono', testid: 'message-number' }, m.number_masked)),
      td('Receipt time', h('span', { testid: 'message-receipt-at' }, fmtTime(m.receipt_at))),
      td('Result', h('span', { class: `result result-${m.result}`, testid: 'message-result' }, RESULT_LABELS[m.result] || m.result)),
      (m.failure_reasons || []).length
        ? td('Failure reasons', reasonsList(m.failure_reasons))
        : h('td', { 'data-label': 'Failure reasons', class: 'empty-cell' }, h('span', { class: 'muted' }, '—')),
      td('Parts', h('span', { class: 'num' }, fmtNum(m.segments)))))));
  const filtered = M.result || M.q;
  body.replaceChildren(
    items.length ? table : h('div', { class: 'empty', testid: 'messages-empty' },
      filtered ? 'No number matches these filters.' : 'No number has been sent yet.'),
    pager({
      prefix: 'messages', page: M.page, hasPrev: M.page > 0, hasNext: Boolean(page.next_cursor),
      label: total === null ? null : rangeText(offset, items.length, total),
      onPrev: () => { M.page -= 1; loadMessages(task, body, gen, controls); },
      onNext: () => { M.cursors[M.page + 1] = page.next_cursor; M.page += 1; loadMessages(task, body, gen, controls); },
    }));
}

/** Failure reasons for people. A reason naming a part says which (1-based: "Part 2: UNDELIV — …";
 *  the same reason on several parts is one line, "Parts 1–3, 5: …"); identical reasons without a
 *  part are counted ("UNDELIV ×3 — …"). */
export function groupReasons(reasons) {
  const groups = new Map();
  for (const r of reasons || []) {
    const key = `${r.code}\u0000${r.message}`;
    if (!groups.has(key)) groups.set(key, { code: r.code, message: r.message, parts: new Set(), bare: 0 });
    const g = groups.get(key);
    if (r.part === null || r.part === undefined) g.bare += 1;
    else g.parts.add(Number(r.part) + 1);
  }
  const out = [];
  for (const g of groups.values()) {
    if (g.parts.size) out.push({ code: g.code, message: g.message, parts: [...g.parts].sort((a, b) => a - b), count: 1 });
    if (g.bare) out.push({ code: g.code, message: g.message, parts: null, count: g.bare });
  }
  return out;
}

/** [1, 2, 3, 5] → "Parts 1–3, 5"; [2] → "Part 2". */
export function partsLabel(parts) {
  const runs = [];
  for (const p of parts) {
    const last = runs[runs.length - 1];
    if (last && p === last[1] + 1) last[1] = p; else runs.push([p, p]);
  }
  const text = runs.map(([a, b]) => (a === b ? String(a) : `${a}–${b}`)).join(', ');
  return `${parts.length === 1 ? 'Part' : 'Parts'} ${text}`;
}

function reasonsList(reasons) {
  return h('ul', { class: 'reasons', testid: 'message-reasons' }, groupReasons(reasons).map((g) => h('li', {
    testid: 'failure-reason', dataset: { code: g.code },
  },
  g.parts ? h('span', { class: 'reason-part' }, `${partsLabel(g.parts)}: `) : null,
  h('code', {}, g.code),
  g.count > 1 ? h('span', { class: 'reason-count', testid: 'reason-count' }, ` ×${fmtNum(g.count)}`) : null,
  g.message ? ` — ${g.message}` : null)));
}

function expiredBox(err, testid = 'details-expired') {
  return h('div', { class: 'alert alert-warn expired', role: 'status', testid },
    h('strong', {}, 'Details expired'),
    h('p', { testid: `${testid}-message` }, sentence(withHumanTimes(fieldMessage(err)))));
}

function generateExpiredNote() {
  return h('p', { class: 'muted', testid: 'generate-expired' },
    'An audience can no longer be generated: the per-number details were deleted (see Numbers above).');
}

function generateCard(task) {
  const name = h('input', {
    id: 'generate-name', testid: 'generate-name', class: 'input', required: true,
    value: `${task.name} — failed`,
  });
  const boxes = Object.entries(RESULT_LABELS).map(([v, l]) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'results', value: v, testid: `generate-result-${v}`, checked: v === 'failed' }), ` ${l}`));
  const out = h('div', { testid: 'generate-output' });
  const form = h('form', {
    class: 'card', testid: 'generate-form',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const results = [...form.querySelectorAll('input[name=results]:checked')].map((b) => b.value);
      if (!results.length) { out.replaceChildren(h('div', { class: 'alert alert-error' }, 'Choose at least one result.')); return; }
      try {
        const aud = await api('POST', `/tasks/${task.id}/audiences`, { name: name.value.trim(), results });
        out.replaceChildren(h('div', { class: 'alert alert-ok', testid: 'generate-result' },
          'Audience ', h('strong', {}, aud.name), ` created with ${plural(aud.size, 'number')}. `,
          h('a', { href: `#/tasks/new?audience=${aud.id}` }, 'Send a task to it')));
      } catch (e) {
        if (e.status === 410) form.replaceChildren(h('h2', {}, 'Generate audience'), generateExpiredNote());
        else out.replaceChildren(errorBox(e, 'generate-error'));
      }
    },
  },
  h('h2', {}, 'Generate audience'),
  h('p', { class: 'muted' }, 'Make a new audience from the numbers of this task whose result is:'),
  h('div', { class: 'checks' }, boxes),
  h('label', { for: 'generate-name' }, 'Audience name'), name,
  h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', testid: 'generate-submit' }, 'Generate audience')),
  out);
  if (task.details_expired) form.replaceChildren(h('h2', {}, 'Generate audience'), generateExpiredNote());
  return form;
}

// ---------------------------------------------------------------- ground truth

const OUTCOME_LABELS = {
  delivered: 'Delivered',
  failed: 'Failed',
  missing: 'No receipt (missing)',
  refused: 'Refused at submission',
};
const EXPECTED_LABELS = {
  succeeded: 'Succeeded',
  failed: 'Failed',
  receipt_timeout: 'Failed: RECEIPT_TIMEOUT (no receipt within the timeout)',
  refused: 'Not sent (skipped as refused)',
};

/** What the simulated carrier decided for each number of a task, and every receipt it planned,
 *  with times: the reference a QA engineer compares the task details with. */
async function viewGroundTruth(view, seq, id) {
  const T = state.truth;
  if (T.taskId !== id) state.truth = { taskId: id, limit: T.limit || PAGE_SIZE, cursors: [null], page: 0 };
  let task;
  try {
    task = await api('GET', `/tasks/${id}`);
  } catch (e) {
    if (seq === state.renderSeq) view.replaceChildren(h('p', {}, h('a', { href: '#/tasks' }, '‹ All tasks')), errorBox(e, 'task-error'));
    return;
  }
  if (seq !== state.renderSeq) return;
  const size = h('select', { id: 'truth-limit', testid: 'truth-limit', class: 'input' },
    PAGE_SIZES.map((n) => h('option', { value: String(n), selected: state.truth.limit === n }, `${n} per page`)));
  const body = h('div', { testid: 'truth-body' }, h('p', { class: 'muted' }, 'Loading the carrier’s decisions…'));
  size.addEventListener('change', () => {
    Object.assign(state.truth, { limit: Number(size.value), cursors: [null], page: 0 });
    loadGroundTruth(task, body, seq);
  });
  view.replaceChildren(
    h('div', { class: 'page-head' },
      h('div', {},
        h('p', { class: 'crumbs' }, h('a', { href: `#/tasks/${task.id}`, testid: 'truth-back' }, `‹ ${task.name}`)),
        h('h1', { testid: 'truth-title' }, 'Ground truth ', statusBadge(task, { align: 'left' }))),
      h('div', { class: 'head-actions' },
        h('label', { class: 'field-inline' }, h('span', {}, 'Page size'), size),
        h('button', { type: 'button', class: 'btn', testid: 'truth-refresh', onclick: () => route() }, 'Refresh'))),
    h('p', { class: 'muted lead' },
      'What the simulated carrier decided for each number of this task, the result the gateway must end up showing, '
      + 'and every receipt the carrier planned, with its time and when it was handed to the gateway. '
      + 'Parts are numbered from 1.'),
    body);
  await loadGroundTruth(task, body, seq);
}

async function loadGroundTruth(task, body, seq) {
  const T = state.truth;
  let page;
  try {
    page = await api('GET', `/simulator/ground-truth${qs({ task_id: task.id, limit: T.limit, cursor: T.cursors[T.page] })}`);
  } catch (e) {
    if (seq === state.renderSeq) body.replaceChildren(errorBox(e, 'truth-error'));
    return;
  }
  if (seq !== state.renderSeq) return;
  const items = page.items || [];
  const offset = T.page * T.limit;
  const table = h('table', { class: 'table truth-table cards-on-narrow', testid: 'truth-table' },
    h('thead', {}, h('tr', {}, ['Number', 'Submitted', 'Carrier decision', 'Expected result', 'Receipts'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, items.map((m) => truthRow(m))));
  const lastPage = !page.next_cursor;
  body.replaceChildren(
    items.length ? table : h('div', { class: 'empty', testid: 'truth-empty' },
      task.platform === 'sim' ? 'The carrier has no record for this task yet: nothing was submitted.'
        : `This task was sent through “${task.platform}”, not the simulated carrier.`),
    pager({
      prefix: 'truth', page: T.page, hasPrev: T.page > 0, hasNext: Boolean(page.next_cursor),
      label: items.length
        ? (lastPage ? rangeText(offset, items.length, offset + items.length) : `${fmtNum(offset + 1)}–${fmtNum(offset + items.length)}`)
        : null,
      onPrev: () => { T.page -= 1; loadGroundTruth(task, body, seq); },
      onNext: () => { T.cursors[T.page + 1] = page.next_cursor; T.page += 1; loadGroundTruth(task, body, seq); },
    }));
}

function truthRow(m) {
  const receipts = m.receipts || [];
  const decision = [
    h('span', { class: `outcome outcome-${m.outcome}`, testid: 'truth-outcome' }, OUTCOME_LABELS[m.outcome] || humanize(m.outcome)),
    m.code && m.outcome !== 'delivered' ? [' ', h('code', {}, m.code)] : null,
    h('small', { class: 'muted block' }, plural(m.parts || 1, 'part'),
      m.submit_latency ? ` · accepted after ${fmtSeconds(m.submit_latency)}` : null),
    m.rule ? h('small', { class: 'muted block', testid: 'truth-rule' }, ruleText(m.rule)) : null,
  ];
  const expectedResult = m.expected_result === 'receipt_timeout' ? 'failed' : m.expected_result;
  return h('tr', { testid: 'truth-row', dataset: { outcome: m.outcome, expected: m.expected_result } },
    td('Number', h('div', {}, h('span', { class: 'mono', testid: 'truth-number' }, m.number),
      m.platform_id ? h('small', { class: 'muted block mono', title: 'The carrier’s message id' }, m.platform_id) : null)),
    td('Submitted', h('span', { testid: 'truth-submitted' }, fmtTime(m.submitted_at))),
    td('Carrier decision', h('div', {}, decision)),
    td('Expected result', h('span', { class: `result result-${expectedResult}`, testid: 'truth-expected' },
      EXPECTED_LABELS[m.expected_result] || humanize(m.expected_result))),
    td('Receipts', receipts.length
      ? h('ul', { class: 'truth-receipts', testid: 'truth-receipts' }, receipts.map((r) => truthReceipt(r, m.parts)))
      : h('span', { class: 'muted', testid: 'truth-no-receipts' }, m.outcome === 'refused' ? 'None (not sent)' : 'None: the carrier never sends one')));
}

/** "number:+15005550031" → "Forced by the magic number +15005550031". */
function ruleText(rule) {
  const text = typeof rule === 'string' ? rule : JSON.stringify(rule);
  const m = text.match(/^(number|prefix):(.*)$/);
  if (!m) return `Forced by the rule ${text}`;
  return m[1] === 'number' ? `Forced by the magic number ${m[2]}` : `Forced by the number prefix ${m[2]}`;
}

function truthReceipt(r, parts) {
  const flags = [];
  if (r.duplicate) flags.push(h('span', { class: 'flag flag-dup', testid: 'truth-flag-duplicate' }, 'duplicate'));
  if (r.swallowed) flags.push(h('span', { class: 'flag flag-swallowed', testid: 'truth-flag-swallowed' }, 'swallowed (never sent)'));
  return h('li', { testid: 'truth-receipt', dataset: { status: r.status } },
    h('span', { class: 'truth-receipt-head' },
      r.part === null || r.part === undefined
        ? ((parts || 1) > 1 ? h('span', {}, 'Whole message · ') : null)
        : h('span', { testid: 'truth-receipt-part' }, `Part ${fmtNum(r.part + 1)} · `),
      h('span', { class: `receipt-status receipt-${r.status}` }, humanize(r.status)),
      r.code && r.code !== 'DELIVERED' ? [' ', h('code', {}, r.code)] : null,
      flags.length ? [' ', flags] : null),
    h('small', { class: 'muted block', testid: 'truth-receipt-times' },
      'due ', h('span', { class: 'nowrap' }, fmtTime(r.at)),
      r.swallowed ? null : (r.emitted_at
        ? [' · sent to the gateway ', h('span', { class: 'nowrap' }, fmtTime(r.emitted_at))]
        : ' · not sent yet')));
}

// ---------------------------------------------------------------- task form (create / edit)

const GSM7 = '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM7_EXT = '^{}\\[~]|€\f';

/** Estimate encoding and parts like the gateway does (GSM-7 160/153, UCS-2 70/67). */
export function estimateSegments(text) {
  let gsm = true;
  let units = 0;
  for (const ch of text) {
    if (GSM7.includes(ch)) units += 1;
    else if (GSM7_EXT.includes(ch)) units += 2;
    else { gsm = false; break; }
  }
  if (gsm) return { encoding: 'GSM-7', characters: units, parts: units <= 160 ? 1 : Math.ceil(units / 153) };
  const len = text.length; // UTF-16 code units
  return { encoding: 'UCS-2', characters: len, parts: len <= 70 ? 1 : Math.ceil(len / 67) };
}

function toLocalInputValue(iso) {
  // datetime-local input showing the UTC wall time of the service clock.
  const d = new Date(iso);
  return d.toISOString().slice(0, 19);
}

// Characters a name must not contain (the service refuses them with a 400): C0/C1 controls and
// the Unicode bidirectional controls.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

function controlCharError(value) {
  const m = String(value).match(CONTROL_CHARS);
  if (!m) return '';
  const code = m[0].codePointAt(0).toString(16).toUpperCase().padStart(4, '0');
  return `Remove the control character U+${code} (a line break, tab or invisible character).`;
}

/** "A1:Spring launch" lines → [{id, name}], or {error} naming the line that is wrong. */
export function parseSubActivities(text) {
  const items = [];
  const lines = String(text).split(/[\n,;]+/).map((l) => l.trim()).filter(Boolean);
  for (const [i, line] of lines.entries()) {
    const at = lines.length > 1 ? `Line ${i + 1} (“${line}”)` : `“${line}”`;
    const c = line.indexOf(':');
    if (c < 0) return { items, error: `${at} must be written as id:name, e.g. A1:Spring launch.` };
    const id = line.slice(0, c).trim();
    const name = line.slice(c + 1).trim();
    if (!id || !name) return { items, error: `${at} needs both an id and a name, e.g. A1:Spring launch.` };
    const bad = controlCharError(id) || controlCharError(name);
    if (bad) return { items, error: `${at}: ${bad}` };
    if (name.length > 200) return { items, error: `${at}: the name may have at most 200 characters.` };
    items.push({ id, name });
  }
  return { items, error: '' };
}

/** Which form field a service error names ("content.template.params.code" → params). */
export function formFieldOf(path, mode) {
  if (!path) return null;
  const p = String(path);
  const direct = { name: 'name', platform: 'platform', sms_type: 'sms_type', signature: 'signature', audience_id: 'audience', send_at: 'send_at', send_type: 'send_at', 'content.text': 'text' };
  if (direct[p]) return direct[p];
  if (p.startsWith('sub_activities')) return 'sub_activities';
  if (p.startsWith('content.template.topic')) return 'topic';
  if (p.startsWith('content.template.body')) return 'body';
  if (p.startsWith('content.template.params')) return 'params';
  if (p === 'content' || p.startsWith('content.')) return mode === 'template' ? 'topic' : 'text';
  return null;
}

async function viewTaskForm(view, seq, id, params) {
  const editing = id !== null;
  let task = null;
  let platforms = [];
  let audiences = [];
  try {
    [platforms, audiences, task] = await Promise.all([
      loadPlatforms(), loadAllAudiences(), editing ? api('GET', `/tasks/${id}`) : Promise.resolve(null),
    ]);
    await refreshClock();
  } catch (e) {
    if (seq === state.renderSeq) view.replaceChildren(errorBox(e, 'form-load-error'));
    return;
  }
  if (seq !== state.renderSeq) return;

  const tpl = task && task.content && task.content.template;
  // Every input has its error line right under it (data-field = the key used below).
  const labels = {};
  const field = (labelText, input, help, key, ...extra) => {
    labels[key] = labelText.replace(/ \(.*\)$/, '');
    input.setAttribute('aria-describedby', `${input.id}-error`);
    return h('div', { class: 'field', dataset: { field: key } },
      h('label', { for: input.id }, labelText), input,
      h('small', { class: 'field-error', id: `${input.id}-error`, testid: `task-form-error-${key}`, role: 'alert', hidden: true }),
      extra, help ? h('small', { class: 'help' }, help) : null);
  };

  const name = h('input', { id: 'task-name', name: 'name', testid: 'task-form-name', class: 'input', required: true, maxlength: '200', value: task ? task.name : '' });
  const platform = h('select', { id: 'task-platform', name: 'platform', testid: 'task-form-platform', class: 'input', required: true },
    platforms.map((p) => h('option', { value: p.name, selected: task ? task.platform === p.name : p.name === 'sim' }, p.name)));
  const platformHelp = h('small', { class: 'help', testid: 'task-form-platform-help' });
  const syncPlatform = () => {
    const p = platforms.find((x) => x.name === platform.value);
    platformHelp.textContent = p ? [p.description, p.max_recipients ? `up to ${fmtNum(p.max_recipients)} recipients per task` : null].filter(Boolean).join(' · ') : '';
  };
  platform.addEventListener('change', syncPlatform);
  syncPlatform();
  const smsType = h('select', { id: 'task-sms-type', name: 'sms_type', testid: 'task-form-sms-type', class: 'input' },
    Object.entries(SMS_TYPES).map(([v, l]) => h('option', { value: v, selected: task ? task.sms_type === v : v === 'marketing' }, l)));
  const signature = h('input', { id: 'task-signature', name: 'signature', testid: 'task-form-signature', class: 'input', value: task ? task.signature || '' : '', placeholder: 'e.g. smslab' });

  const modeText = h('input', { type: 'radio', name: 'content_mode', value: 'text', id: 'mode-text', testid: 'task-form-mode-text', checked: !tpl });
  const modeTpl = h('input', { type: 'radio', name: 'content_mode', value: 'template', id: 'mode-template', testid: 'task-form-mode-template', checked: Boolean(tpl) });
  const text = h('textarea', { id: 'task-text', name: 'content', testid: 'task-form-text', class: 'input', rows: '4' });
  text.value = task && task.content && task.content.text ? task.content.text : '';
  const counter = h('small', { class: 'help', testid: 'task-form-counter' });
  const topic = h('input', { id: 'task-topic', name: 'topic', testid: 'task-form-topic', class: 'input', value: tpl ? tpl.topic : '' });
  const body = h('textarea', { id: 'task-template-body', name: 'body', testid: 'task-form-template-body', class: 'input', rows: '3', placeholder: 'Your code is ${code}' });
  body.value = tpl ? tpl.body || '' : '';
  const paramsIn = h('textarea', { id: 'task-template-params', name: 'params', testid: 'task-form-template-params', class: 'input mono', rows: '3', placeholder: '{"code": "1234"}' });
  paramsIn.value = tpl ? JSON.stringify(tpl.params || {}, null, 2) : '';
  const textBlock = h('div', { class: 'mode-block', testid: 'task-form-text-block' }, field('Text', text, null, 'text', counter));
  const tplBlock = h('div', { class: 'mode-block', testid: 'task-form-template-block' },
    field('Template topic', topic, 'Shown as the task’s topic (digital SMS).', 'topic'),
    field('Template body', body, 'Placeholders are written ${name}.', 'body'),
    field('Parameters (JSON object)', paramsIn, null, 'params'));
  const syncMode = () => { textBlock.hidden = !modeText.checked; tplBlock.hidden = modeText.checked; };
  modeText.addEventListener('change', syncMode);
  modeTpl.addEventListener('change', syncMode);
  syncMode();
  const updateCounter = () => {
    const full = (signature.value.trim() ? `【${signature.value.trim()}】` : '') + text.value;
    const est = estimateSegments(full);
    counter.textContent = `${plural(est.characters, 'character')} incl. signature · ${est.encoding} · ${plural(est.parts, 'part')} per number (estimate)`;
  };
  text.addEventListener('input', updateCounter);
  signature.addEventListener('input', updateCounter);
  updateCounter();

  const preselect = params.get('audience');
  const audience = h('select', { id: 'task-audience', name: 'audience_id', testid: 'task-form-audience', class: 'input', required: true },
    h('option', { value: '' }, audiences.length ? 'Choose an audience' : 'No audience yet — create one first'),
    audiences.map((a) => h('option', {
      value: String(a.id),
      selected: task ? String(task.audience_id) === String(a.id) : preselect === String(a.id),
    }, `${a.name} (${plural(a.size, 'number')})`)));

  const sendImmediate = h('input', { type: 'radio', name: 'send_type', value: 'immediate', id: 'send-immediate', testid: 'task-form-send-immediate', checked: !task || task.send_type !== 'scheduled' });
  const sendScheduled = h('input', { type: 'radio', name: 'send_type', value: 'scheduled', id: 'send-scheduled', testid: 'task-form-send-scheduled', checked: Boolean(task && task.send_type === 'scheduled') });
  const nowIso = state.clock ? state.clock.now : new Date().toISOString();
  const defaultAt = task && task.send_at ? task.send_at : new Date(new Date(nowIso).getTime() + 10 * 60000).toISOString();
  const sendAt = h('input', { type: 'datetime-local', step: '1', id: 'task-send-at', name: 'send_at', testid: 'task-form-send-at', class: 'input', value: toLocalInputValue(defaultAt) });
  const quick = [3, 10, 60].map((m) => h('button', {
    type: 'button', class: 'btn btn-small', testid: `task-form-send-in-${m}`,
    onclick: () => {
      const base = state.clock ? new Date(state.clock.now) : new Date();
      sendAt.value = toLocalInputValue(new Date(base.getTime() + m * 60000).toISOString());
      sendScheduled.checked = true; syncSend();
    },
  }, m < 60 ? `now +${m} min` : 'now +1 h'));
  const schedBlock = h('div', { class: 'mode-block', testid: 'task-form-schedule-block' },
    field('Send at (UTC, service clock)', sendAt, `Service clock now: ${fmtTime(nowIso)}. Edit/delete stay possible until 5 minutes before.`, 'send_at'),
    h('div', { class: 'quick' }, quick));
  const syncSend = () => { schedBlock.hidden = !sendScheduled.checked; };
  sendImmediate.addEventListener('change', syncSend);
  sendScheduled.addEventListener('change', syncSend);
  syncSend();

  const subs = h('textarea', { id: 'task-sub-activities', name: 'sub_activities', testid: 'task-form-sub-activities', class: 'input', rows: '2', placeholder: 'A1:Spring promo\nA2:Reminder' });
  subs.value = task ? (task.sub_activities || []).map((s) => `${s.id}:${s.name}`).join('\n') : '';

  // -- validation: every field is checked before anything is sent; each error stays next to its
  // input until that input is fixed; the banner at the top lists what is left and then goes.
  const inputs = { name, platform, sms_type: smsType, signature, text, topic, body, params: paramsIn, audience, sub_activities: subs, send_at: sendAt };
  const mode = () => (modeText.checked ? 'text' : 'template');
  const active = (key) => {
    if (key === 'text') return modeText.checked;
    if (key === 'topic' || key === 'body' || key === 'params') return modeTpl.checked;
    if (key === 'send_at') return sendScheduled.checked;
    return true;
  };
  const parsedParams = () => {
    if (!paramsIn.value.trim()) return { value: {} };
    let p;
    try { p = JSON.parse(paramsIn.value); } catch (e) { return { error: `Not valid JSON: ${e.message}.` }; }
    if (!p || typeof p !== 'object' || Array.isArray(p)) return { error: 'Write a JSON object, e.g. {"code": "1234"}.' };
    const bad = Object.entries(p).find(([, v]) => typeof v !== 'string' && typeof v !== 'number');
    if (bad) return { error: `The value of “${bad[0]}” must be a string or a number.` };
    return { value: p };
  };
  const sendAtValue = () => (sendAt.value.length === 16 ? `${sendAt.value}:00` : sendAt.value);
  const validators = {
    name: () => {
      const v = name.value.trim();
      if (!v) return 'Give the task a name.';
      if (v.length > 200) return `At most 200 characters (this one has ${fmtNum(v.length)}).`;
      return controlCharError(v);
    },
    platform: () => (platform.value ? '' : 'Choose a platform.'),
    sms_type: () => (smsType.value ? '' : 'Choose an SMS type.'),
    signature: () => {
      const v = signature.value.trim();
      if (v.length > 40) return `At most 40 characters (this one has ${fmtNum(v.length)}).`;
      return controlCharError(v);
    },
    text: () => {
      if (!text.value.trim()) return 'Write the text of the message.';
      const est = estimateSegments((signature.value.trim() ? `【${signature.value.trim()}】` : '') + text.value);
      return est.parts > 63 ? `Too long: ${fmtNum(est.parts)} parts per number; at most 63.` : '';
    },
    topic: () => (topic.value.trim() ? '' : 'Give the template a topic.'),
    body: () => (body.value.trim() ? '' : 'Write the template body.'),
    params: () => {
      const p = parsedParams();
      if (p.error) return p.error;
      const missing = [...new Set([...body.value.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]))].filter((k) => !(k in p.value));
      return missing.length ? `Give a value for ${missing.map((k) => `“${k}”`).join(', ')} (used in the body).` : '';
    },
    audience: () => (audience.value ? '' : (audiences.length ? 'Choose an audience.' : 'Create an audience first (link below).')),
    sub_activities: () => parseSubActivities(subs.value).error,
    send_at: () => {
      if (!sendAt.value) return 'Choose the send time.';
      const when = Date.parse(`${sendAtValue()}Z`);
      if (Number.isNaN(when)) return 'Not a valid time.';
      const now = state.clock ? Date.parse(state.clock.now) : Date.now();
      return when <= now ? `Choose a time after the service clock’s now (${fmtTime(new Date(now).toISOString())}).` : '';
    },
  };
  const fieldErrors = new Map(); // key → message shown next to the input
  let general = null; // an error the service gave without a field
  const errors = h('div', { testid: 'task-form-errors' });
  const renderBanner = () => {
    const keys = Object.keys(inputs).filter((k) => fieldErrors.has(k));
    if (general) {
      errors.replaceChildren(errorBox(general, 'task-form-error'));
    } else if (keys.length) {
      errors.replaceChildren(h('div', { class: 'alert alert-error', role: 'alert', testid: 'task-form-error' },
        keys.length === 1 ? 'Fix the field marked below: ' : `Fix the ${fmtNum(keys.length)} fields marked below: `,
        keys.map((k, i) => [i ? ', ' : '', h('button', {
          type: 'button', class: 'btn-inline', testid: `task-form-error-link-${k}`, onclick: () => inputs[k].focus(),
        }, labels[k] || k)]), '.'));
    } else {
      errors.replaceChildren();
    }
  };
  const setFieldError = (key, message) => {
    const box = form.querySelector(`.field[data-field="${key}"] > .field-error`);
    if (message) fieldErrors.set(key, message); else fieldErrors.delete(key);
    if (box) { box.textContent = message || ''; box.hidden = !message; }
    if (message) inputs[key].setAttribute('aria-invalid', 'true'); else inputs[key].removeAttribute('aria-invalid');
  };
  const check = (key) => { setFieldError(key, active(key) ? validators[key]() : ''); };
  const recheck = (...keys) => {
    let changed = false;
    for (const key of keys) if (fieldErrors.has(key) || !active(key)) { check(key); changed = true; }
    if (changed || general) { general = null; renderBanner(); }
  };
  // Fixing a field clears its error at once (and a field another one depends on is checked again).
  const dependents = { signature: ['signature', 'text'], body: ['body', 'params'], text: ['text'] };
  for (const [key, input] of Object.entries(inputs)) {
    const again = () => recheck(...(dependents[key] || [key]));
    input.addEventListener('input', again);
    input.addEventListener('change', again);
  }
  for (const radio of [modeText, modeTpl, sendImmediate, sendScheduled]) {
    radio.addEventListener('change', () => recheck('text', 'topic', 'body', 'params', 'send_at'));
  }
  for (const b of quick) b.addEventListener('click', () => recheck('send_at'));

  const showServerError = (e) => {
    const key = e instanceof ApiError ? formFieldOf(e.field, mode()) : null;
    if (key && active(key)) {
      const sub = String(e.field).match(/^sub_activities\.(\d+)\.(\w+)$/);
      const msg = sentence(fieldMessage(e));
      setFieldError(key, sub ? `Sub-activity ${Number(sub[1]) + 1} (${sub[2]}): ${msg.charAt(0).toLowerCase()}${msg.slice(1)}` : msg);
      general = null;
    } else {
      general = e;
    }
    renderBanner();
    (key && active(key) ? inputs[key] : errors).scrollIntoView({ block: 'center' });
  };

  const form = h('form', {
    class: 'card form', id: 'task-form', testid: 'task-form', novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      general = null;
      for (const key of Object.keys(inputs)) check(key);
      renderBanner();
      const first = Object.keys(inputs).find((k) => fieldErrors.has(k));
      if (first) { inputs[first].focus(); return; }
      const payload = {
        name: name.value.trim(),
        platform: platform.value,
        sms_type: smsType.value,
        signature: signature.value.trim(),
        audience_id: /^\d+$/.test(audience.value) ? Number(audience.value) : audience.value,
        send_type: sendScheduled.checked ? 'scheduled' : 'immediate',
        sub_activities: parseSubActivities(subs.value).items,
        content: modeText.checked
          ? { text: text.value }
          : { template: { topic: topic.value.trim(), body: body.value, params: parsedParams().value } },
      };
      if (payload.send_type === 'scheduled') payload.send_at = `${sendAtValue()}Z`;
      const submit = form.querySelector('[type=submit]');
      submit.disabled = true;
      try {
        const saved = editing
          ? await api('PATCH', `/tasks/${id}`, payload)
          : await api('POST', '/tasks', payload);
        flash(editing ? `Task "${saved.name}" saved; it goes through moderation again.` : `Task "${saved.name}" created.`);
        window.location.hash = `#/tasks/${saved.id}`;
      } catch (e) {
        showServerError(e);
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('h1', {}, editing ? `Edit task “${task.name}”` : 'New task'),
  editing && !task.can_edit ? h('div', { class: 'alert alert-warn', testid: 'task-form-locked' }, lockText(task)) : null,
  errors,
  h('div', { class: 'grid2' },
    field('Name', name, 'Unique within the workspace.', 'name'),
    field('Platform', platform, null, 'platform', platformHelp),
    field('SMS type', smsType, null, 'sms_type'),
    field('Signature', signature, 'Sent as 【signature】 and counted in the length.', 'signature')),
  h('fieldset', {},
    h('legend', {}, 'Content'),
    h('div', { class: 'radios' },
      h('label', { class: 'check' }, modeText, ' Text'),
      h('label', { class: 'check' }, modeTpl, ' Template (topic, body, parameters)')),
    textBlock, tplBlock),
  h('div', { class: 'grid2' }, field('Audience', audience, h('a', { href: '#/audiences' }, 'Create an audience'), 'audience'),
    field('Sub-activities (one id:name per line)', subs, null, 'sub_activities')),
  h('fieldset', {},
    h('legend', {}, 'Sending type'),
    h('div', { class: 'radios' },
      h('label', { class: 'check' }, sendImmediate, ' Immediate (after moderation)'),
      h('label', { class: 'check' }, sendScheduled, ' Scheduled')),
    schedBlock),
  h('div', { class: 'form-actions' },
    h('button', { type: 'submit', class: 'btn btn-primary', testid: 'task-form-submit' }, editing ? 'Save changes' : 'Create task'),
    h('a', { class: 'btn', href: editing ? `#/tasks/${id}` : '#/tasks' }, 'Cancel')));
  view.replaceChildren(form);
}

// ---------------------------------------------------------------- audiences

async function viewAudiences(view, seq) {
  const name = h('input', { id: 'audience-name', testid: 'audience-name', class: 'input', required: true, placeholder: 'e.g. Spring customers' });
  const srcPaste = h('input', { type: 'radio', name: 'audience_source', value: 'paste', id: 'src-paste', testid: 'audience-source-paste', checked: true });
  const srcCsv = h('input', { type: 'radio', name: 'audience_source', value: 'csv', id: 'src-csv', testid: 'audience-source-csv' });
  const numbers = h('textarea', { id: 'audience-numbers', testid: 'audience-numbers', class: 'input mono', rows: '6', placeholder: '+8613800000001\n+8613800000002' });
  const file = h('input', { type: 'file', id: 'audience-file', testid: 'audience-file', accept: '.csv,text/csv', class: 'input' });
  const pasteBlock = h('div', { class: 'field' }, h('label', { for: 'audience-numbers' }, 'Numbers, one per line'), numbers,
    h('small', { class: 'help' }, 'Empty, invalid and duplicate numbers are kept in the audience and counted as skipped when a task sends.'));
  const csvBlock = h('div', { class: 'field' }, h('label', { for: 'audience-file' }, 'CSV file with a header row and a “phone” column'), file);
  const sync = () => { pasteBlock.hidden = !srcPaste.checked; csvBlock.hidden = srcPaste.checked; };
  srcPaste.addEventListener('change', sync);
  srcCsv.addEventListener('change', sync);
  sync();
  const out = h('div', { testid: 'audience-output' });
  // A name error (missing, a control character, or taken: 409 name_taken) stays under the name.
  const nameError = h('small', { class: 'field-error', id: 'audience-name-error', testid: 'audience-name-error', role: 'alert', hidden: true });
  name.setAttribute('aria-describedby', 'audience-name-error');
  const showNameError = (message) => {
    nameError.textContent = message || '';
    nameError.hidden = !message;
    if (message) name.setAttribute('aria-invalid', 'true'); else name.removeAttribute('aria-invalid');
  };
  name.addEventListener('input', () => { if (!nameError.hidden) showNameError(name.value.trim() ? controlCharError(name.value) : 'Give the audience a name.'); });
  const listBox = h('div', { testid: 'audience-list-body' }, h('p', { class: 'muted' }, 'Loading audiences…'));

  const form = h('form', {
    class: 'card form', testid: 'audience-form', novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      out.replaceChildren();
      const n = name.value.trim();
      showNameError(n ? controlCharError(n) : 'Give the audience a name.');
      if (!nameError.hidden) { name.focus(); return; }
      try {
        let aud;
        if (srcPaste.checked) {
          const list = numbers.value.split(/\r?\n/).map((s) => s.trim());
          while (list.length && list[list.length - 1] === '') list.pop();
          aud = await api('POST', '/audiences', { name: n, numbers: list });
        } else {
          if (!file.files.length) throw new ApiError(0, 'invalid', 'Choose a CSV file.', 'file');
          const csv = await file.files[0].text();
          aud = await api('POST', `/audiences${qs({ name: n })}`, csv, { contentType: 'text/csv' });
        }
        out.replaceChildren(h('div', { class: 'alert alert-ok', testid: 'audience-created' },
          'Audience ', h('strong', {}, aud.name), ` created with ${plural(aud.size, 'number')}. `,
          h('a', { href: `#/tasks/new?audience=${aud.id}`, testid: 'audience-created-send' }, 'Create a task for it')));
        form.reset();
        sync();
        loadAudienceList(listBox, seq, [null], 0);
      } catch (e) {
        if (e instanceof ApiError && e.field === 'name') showNameError(sentence(fieldMessage(e)));
        else out.replaceChildren(errorBox(e, 'audience-error'));
      }
    },
  },
  h('h2', {}, 'Create an audience'),
  h('div', { class: 'field', dataset: { field: 'name' } }, h('label', { for: 'audience-name' }, 'Name'), name, nameError),
  h('div', { class: 'radios' },
    h('label', { class: 'check' }, srcPaste, ' Paste numbers'),
    h('label', { class: 'check' }, srcCsv, ' Upload CSV')),
  pasteBlock, csvBlock,
  h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', testid: 'audience-submit' }, 'Create audience')),
  out);

  view.replaceChildren(h('div', { class: 'page-head' }, h('h1', {}, 'Audiences')), form,
    h('section', { class: 'card' }, h('h2', {}, 'All audiences'), listBox));
  loadAudienceList(listBox, seq, [null], 0);
}

async function loadAudienceList(box, seq, cursors, pageNo) {
  let page;
  try {
    page = await api('GET', `/audiences${qs({ limit: PAGE_SIZE, cursor: cursors[pageNo] })}`);
  } catch (e) {
    if (seq === state.renderSeq) box.replaceChildren(errorBox(e));
    return;
  }
  if (seq !== state.renderSeq) return;
  const items = page.items || [];
  box.replaceChildren(
    items.length ? h('table', { class: 'table cards-on-narrow', testid: 'audience-table' },
      h('thead', {}, h('tr', {}, ['Name', 'Size', 'Source', 'Created', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, items.map((a) => h('tr', { testid: 'audience-row', dataset: { audienceId: String(a.id) } },
        td('Name', h('span', { testid: 'audience-row-name' }, a.name)),
        td('Size', h('span', { class: 'num', testid: 'audience-row-size' }, fmtNum(a.size))),
        td('Source', a.source || '—'),
        td('Created', fmtTime(a.created_at)),
        td('', h('a', { class: 'btn btn-small', href: `#/tasks/new?audience=${a.id}` }, 'New task')))))) :
      h('div', { class: 'empty' }, 'No audiences yet.'),
    pager({
      prefix: 'audiences', page: pageNo, hasPrev: pageNo > 0, hasNext: Boolean(page.next_cursor),
      onPrev: () => loadAudienceList(box, seq, cursors, pageNo - 1),
      onNext: () => { cursors[pageNo + 1] = page.next_cursor; loadAudienceList(box, seq, cursors, pageNo + 1); },
    }));
}

// ---------------------------------------------------------------- inbound messages and opt-outs

/** A search box for digits of a number, with its error under it (letters are refused here,
 *  without asking the service; an error the service gives for the field goes there too). */
function digitSearch({ id, value, label, onSearch }) {
  const input = h('input', {
    id, testid: id, type: 'search', class: 'input', inputmode: 'tel', autocomplete: 'off',
    placeholder: 'e.g. 8000 or +86 138', value, 'aria-describedby': `${id}-error`,
  });
  const error = h('small', { class: 'field-error', id: `${id}-error`, testid: `${id}-error`, hidden: true });
  const show = (message) => {
    error.textContent = message || '';
    error.hidden = !message;
    if (message) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
  };
  input.addEventListener('input', () => { if (!error.hidden && !numberSearchError(input.value)) show(''); });
  const form = h('form', {
    class: 'filters filters-flat', testid: `${id}-form`, role: 'search', novalidate: true,
    onsubmit: (ev) => {
      ev.preventDefault();
      const problem = numberSearchError(input.value);
      show(problem);
      if (!problem) onSearch(input.value.trim());
    },
  },
  h('div', { class: 'field-inline grow', dataset: { field: 'q' } },
    h('label', { for: id }, label),
    h('div', { class: 'input-row' }, input, h('button', { type: 'submit', class: 'btn', testid: `${id}-submit` }, 'Search')),
    error));
  form.showError = show;
  return form;
}

/** A labelled input with its error line right under it; `.show(message)` sets or clears the error. */
function fieldWithError(labelText, input, help) {
  const error = h('small', { class: 'field-error', id: `${input.id}-error`, testid: `${input.dataset.testid}-error`, role: 'alert', hidden: true });
  input.setAttribute('aria-describedby', `${input.id}-error`);
  const box = h('div', { class: 'field' }, h('label', { for: input.id }, labelText), input, error,
    help ? h('small', { class: 'help' }, help) : null);
  box.show = (message) => {
    error.textContent = message || '';
    error.hidden = !message;
    if (message) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
  };
  input.addEventListener('input', () => box.show(''));
  return box;
}

const KEYWORDS_TEXT = 'STOP, UNSUBSCRIBE or TD unless the service is configured otherwise';

async function viewInbound(view, seq) {
  const S = state.inbound;
  let platforms = [];
  try { platforms = await loadPlatforms(); } catch { platforms = []; }
  if (seq !== state.renderSeq) return;
  const totalEl = h('span', { class: 'muted', testid: 'inbound-total' });
  const body = h('div', { testid: 'inbound-body' }, h('p', { class: 'muted' }, 'Loading replies…'));
  const load = () => loadInbound(body, totalEl, search, seq);
  const search = digitSearch({
    id: 'inbound-q', value: S.q, label: 'Search senders by digits',
    onSearch: (q) => { Object.assign(S, { q, cursors: [null], page: 0 }); load(); },
  });
  view.replaceChildren(
    h('div', { class: 'page-head' },
      h('h1', {}, 'Inbound'),
      h('div', { class: 'head-actions' },
        h('a', { class: 'btn', href: '#/opt-outs', testid: 'inbound-opt-outs-link' }, 'Opt-out list'),
        h('button', { type: 'button', class: 'btn', testid: 'inbound-refresh', onclick: () => route() }, 'Refresh'))),
    h('p', { class: 'muted lead' },
      'Replies from handsets (mobile-originated messages) to this workspace, newest first. A reply whose first word is an '
      + `opt-out keyword (${KEYWORDS_TEXT}) puts its sender on the `,
      h('a', { href: '#/opt-outs' }, 'opt-out list'), ', and tasks sent from then on skip the number.'),
    platforms.some((p) => p.name === 'sim') ? moForm(() => { Object.assign(S, { cursors: [null], page: 0 }); load(); }) : null,
    h('section', { class: 'card', testid: 'inbound-card' },
      h('div', { class: 'card-head' }, h('h2', {}, 'Replies'), totalEl),
      search, body));
  await load();
}

/** The simulated carrier's "a handset replies" (POST /simulator/mo), for trying opt-outs without SMPP. */
function moForm(after) {
  const from = h('input', { id: 'mo-from', testid: 'mo-from', class: 'input', inputmode: 'tel', autocomplete: 'off', placeholder: '+8613800138000' });
  const text = h('input', { id: 'mo-text', testid: 'mo-text', class: 'input', autocomplete: 'off', placeholder: 'STOP', maxlength: '1600' });
  const fromField = fieldWithError('From (the handset’s number)', from);
  const textField = fieldWithError('Text', text);
  const fields = { from: fromField, text: textField };
  const out = h('div', { testid: 'mo-output' });
  const form = h('form', {
    class: 'card form', testid: 'mo-form', novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      out.replaceChildren();
      const number = from.value.trim();
      if (!number) { fromField.show('Give the number the reply comes from.'); from.focus(); return; }
      const submit = form.querySelector('[type=submit]');
      submit.disabled = true;
      try {
        const reply = await api('POST', '/simulator/mo', { from: number, text: text.value });
        out.replaceChildren(h('div', { class: 'alert alert-ok', testid: 'mo-result' },
          `Reply from ${reply.sender} received`,
          reply.opted_out ? [': it is an opt-out keyword, so the number is now on the ', h('a', { href: '#/opt-outs' }, 'opt-out list'), '.'] : '.'));
        text.value = '';
        after();
      } catch (e) {
        const box = e instanceof ApiError ? fields[e.field] : null;
        if (box) box.show(sentence(fieldMessage(e)));
        else out.replaceChildren(errorBox(e, 'mo-error'));
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('h2', {}, 'Simulate a reply'),
  h('p', { class: 'muted' }, 'The simulated carrier hands a message from a handset to this workspace, as an operator’s SMSC would.'),
  h('div', { class: 'mo-grid' }, fromField, textField,
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', testid: 'mo-submit' }, 'Send reply'))),
  out);
  return form;
}

async function loadInbound(body, totalEl, search, seq) {
  const S = state.inbound;
  let page;
  try {
    page = await api('GET', `/inbound${qs({ sender: S.q, limit: PAGE_SIZE, cursor: S.cursors[S.page] })}`);
  } catch (e) {
    if (seq !== state.renderSeq) return;
    if (e.field === 'sender') { search.showError(sentence(fieldMessage(e))); body.replaceChildren(); }
    else body.replaceChildren(errorBox(e, 'inbound-error'));
    return;
  }
  if (seq !== state.renderSeq) return;
  const items = page.items || [];
  totalEl.textContent = S.q ? `${plural(page.total, 'reply', 'replies')} from matching numbers` : plural(page.total, 'reply', 'replies');
  const table = h('table', { class: 'table inbound-table cards-on-narrow', testid: 'inbound-table' },
    h('thead', {}, h('tr', {}, ['Received', 'From', 'To', 'Text', 'Platform', 'Opt-out'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, items.map(inboundRow)));
  body.replaceChildren(
    items.length ? table : h('div', { class: 'empty', testid: 'inbound-empty' },
      S.q ? 'No reply from a number with these digits.' : 'No reply yet.'),
    pager({
      prefix: 'inbound', page: S.page, hasPrev: S.page > 0, hasNext: Boolean(page.next_cursor),
      label: rangeText(S.page * PAGE_SIZE, items.length, page.total),
      onPrev: () => { S.page -= 1; loadInbound(body, totalEl, search, seq); },
      onNext: () => { S.cursors[S.page + 1] = page.next_cursor; S.page += 1; loadInbound(body, totalEl, search, seq); },
    }));
}

function inboundRow(m) {
  const marks = [];
  if (m.opted_out) {
    marks.push(withTip(h('span', { class: 'flag flag-optout', testid: 'inbound-opted-out' }, 'Opted out'),
      `${m.sender} replied with an opt-out keyword, so the number is on the opt-out list: tasks sent from now on skip it.`,
      { align: 'right' }));
  }
  if (m.workspace_id === null) {
    marks.push(withTip(h('span', { class: 'flag flag-noworkspace', testid: 'inbound-no-workspace' }, 'No workspace'),
      'The platform could not tell which workspace this reply belongs to, so it opts nobody out. Only admin tokens see it.',
      { align: 'right' }));
  }
  return h('tr', { testid: 'inbound-row', dataset: { optedOut: String(Boolean(m.opted_out)), inboundId: String(m.id) } },
    td('Received', h('span', { testid: 'inbound-received' }, fmtTime(m.received_at))),
    td('From', h('span', { class: 'mono', testid: 'inbound-sender' }, m.sender)),
    td('To', h('span', { class: 'mono', testid: 'inbound-recipient' }, m.recipient)),
    td('Text', m.text ? h('span', { class: 'inbound-text', testid: 'inbound-text' }, m.text) : h('span', { class: 'muted', testid: 'inbound-text' }, '(empty)')),
    td('Platform', h('span', { testid: 'inbound-platform' }, m.platform)),
    td('Opt-out', marks.length ? h('span', { class: 'flags' }, marks) : h('span', { class: 'muted' }, '—')));
}

async function viewOptOuts(view, seq) {
  const S = state.optouts;
  const totalEl = h('span', { class: 'muted', testid: 'optouts-total' });
  const body = h('div', { testid: 'optouts-body' }, h('p', { class: 'muted' }, 'Loading the opt-out list…'));
  const load = () => loadOptOuts(body, totalEl, search, seq);
  const search = digitSearch({
    id: 'optouts-q', value: S.q, label: 'Search numbers by digits',
    onSearch: (q) => { Object.assign(S, { q, cursors: [null], page: 0 }); load(); },
  });

  const number = h('input', { id: 'optout-number', testid: 'optout-number', class: 'input', inputmode: 'tel', autocomplete: 'off', placeholder: '+8613800138000' });
  const numberField = fieldWithError('Number', number, 'E.164 (+8613800138000), or a number of the service’s default region.');
  const out = h('div', { testid: 'optout-output' });
  const form = h('form', {
    class: 'card form', testid: 'optout-form', novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      out.replaceChildren();
      const value = number.value.trim();
      if (!value) { numberField.show('Give the number to opt out.'); number.focus(); return; }
      try {
        const { status, data } = await api('POST', '/opt-outs', { number: value }, { withStatus: true });
        out.replaceChildren(h('div', { class: 'alert alert-ok', testid: 'optout-added' }, status === 201
          ? `${data.number} is on the opt-out list: tasks sent from now on skip it.`
          : `${data.number} was on the opt-out list already (since ${fmtTime(data.created_at)}).`));
        number.value = '';
        Object.assign(S, { cursors: [null], page: 0 });
        load();
      } catch (e) {
        if (e instanceof ApiError && e.field === 'number') { numberField.show(sentence(fieldMessage(e))); number.focus(); }
        else out.replaceChildren(errorBox(e, 'optout-error'));
      }
    },
  },
  h('h2', {}, 'Add a number'),
  h('div', { class: 'add-row' }, numberField,
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', testid: 'optout-submit' }, 'Add to the list'))),
  out);

  view.replaceChildren(
    h('div', { class: 'page-head' },
      h('h1', {}, 'Opt-outs'),
      h('div', { class: 'head-actions' },
        h('a', { class: 'btn', href: '#/inbound', testid: 'optouts-inbound-link' }, 'Inbound replies'),
        h('button', { type: 'button', class: 'btn', testid: 'optouts-refresh', onclick: () => route() }, 'Refresh'))),
    h('p', { class: 'muted lead' },
      'Numbers this workspace’s tasks do not send to: they are counted as skipped, “Opted out”. A number gets here when it '
      + `replies with an opt-out keyword (${KEYWORDS_TEXT}) or when it is added below; removing it makes it sendable again.`),
    form,
    h('section', { class: 'card', testid: 'optouts-card' },
      h('div', { class: 'card-head' }, h('h2', {}, 'Opted-out numbers'), totalEl),
      search, body));
  await load();
}

async function loadOptOuts(body, totalEl, search, seq) {
  const S = state.optouts;
  let page;
  try {
    page = await api('GET', `/opt-outs${qs({ q: S.q, limit: PAGE_SIZE, cursor: S.cursors[S.page] })}`);
  } catch (e) {
    if (seq !== state.renderSeq) return;
    if (e.field === 'q') { search.showError(sentence(fieldMessage(e))); body.replaceChildren(); }
    else body.replaceChildren(errorBox(e, 'optouts-error'));
    return;
  }
  if (seq !== state.renderSeq) return;
  const items = page.items || [];
  totalEl.textContent = S.q ? `${plural(page.total, 'number')} match` : `${plural(page.total, 'number')} in all`;
  const reload = () => loadOptOuts(body, totalEl, search, seq);
  const table = h('table', { class: 'table optouts-table cards-on-narrow', testid: 'optouts-table' },
    h('thead', {}, h('tr', {}, ['Number', 'How', 'Since', ''].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, items.map((o) => optOutRow(o, reload))));
  body.replaceChildren(
    items.length ? table : h('div', { class: 'empty', testid: 'optouts-empty' },
      S.q ? 'No opted-out number has these digits.' : 'No number has opted out.'),
    pager({
      prefix: 'optouts', page: S.page, hasPrev: S.page > 0, hasNext: Boolean(page.next_cursor),
      label: rangeText(S.page * PAGE_SIZE, items.length, page.total),
      onPrev: () => { S.page -= 1; reload(); },
      onNext: () => { S.cursors[S.page + 1] = page.next_cursor; S.page += 1; reload(); },
    }));
}

function optOutRow(o, reload) {
  const how = o.source === 'reply'
    ? withTip(h('span', { class: 'pill', testid: 'optout-source', dataset: { source: 'reply' } }, `Replied “${o.keyword || 'STOP'}”`),
      `The number replied “${o.keyword || 'STOP'}” (an opt-out keyword)${o.inbound_id ? `: inbound message #${o.inbound_id}` : ''}.`)
    : h('span', { testid: 'optout-source', dataset: { source: 'api' } }, 'Added by hand');
  const remove = h('button', {
    type: 'button', class: 'btn btn-small btn-danger', testid: 'optout-remove',
    onclick: async () => {
      if (!window.confirm(`Remove ${o.number} from the opt-out list? Tasks sent from now on will send to it again.`)) return;
      try {
        await api('DELETE', `/opt-outs/${encodeURIComponent(o.number)}`);
        flash(`${o.number} removed from the opt-out list.`);
      } catch (e) {
        flash(e.message, 'error');
      }
      reload();
    },
  }, 'Remove');
  return h('tr', { testid: 'optout-row', dataset: { number: o.number, source: o.source } },
    td('Number', h('span', { class: 'mono', testid: 'optout-number-cell' }, o.number)),
    td('How', how),
    td('Since', h('span', { testid: 'optout-since' }, fmtTime(o.created_at))),
    td('', remove));
}

// ---------------------------------------------------------------- testbed

async function viewTestbed(view, seq) {
  const clockBox = h('div', { class: 'clockbar inline', id: 'testbed-clock', testid: 'testbed-clock' });
  const profileText = h('textarea', { id: 'profile-json', testid: 'profile-json', class: 'input mono', rows: '22', spellcheck: 'false' });
  const profileOut = h('div', { testid: 'profile-output' });
  const summaryBox = h('div', { testid: 'profile-summary-box' }, h('p', { class: 'muted' }, 'Loading the profile…'));
  const presetsBox = h('div', { testid: 'presets' }, h('p', { class: 'muted' }, 'Loading presets…'));
  const activeName = h('span', { class: 'muted', testid: 'profile-active-preset' });

  const showProfile = (p) => {
    profileText.value = JSON.stringify(p, null, 2);
    summaryBox.replaceChildren(profileSummary(p));
  };
  const loadProfile = async () => {
    try {
      showProfile(await api('GET', '/simulator/profile'));
    } catch (e) {
      profileOut.replaceChildren(errorBox(e, 'profile-error'));
    }
  };
  const loadPresets = async () => {
    let data;
    try {
      data = (await api('GET', '/simulator/presets')) || {};
    } catch (e) {
      if (seq === state.renderSeq) presetsBox.replaceChildren(errorBox(e));
      return;
    }
    if (seq !== state.renderSeq) return;
    const presets = data.items || [];
    const active = data.active || (presets.find((p) => p.active) || {}).name || null;
    activeName.textContent = active ? `equals the preset “${active}”` : 'no preset: changed by hand';
    presetsBox.replaceChildren(presets.length ? h('ul', { class: 'presets' }, presets.map((p) => {
      const isActive = p.name === active;
      return h('li', { testid: 'preset', class: isActive ? 'preset-active' : '', dataset: { preset: p.name, active: String(isActive) } },
        h('div', { class: 'preset-text' },
          h('div', { class: 'preset-name' }, h('strong', {}, p.name),
            isActive ? h('span', { class: 'badge badge-active', testid: 'preset-active-marker' }, 'active') : null),
          h('p', { class: 'muted' }, p.description || ''),
          p.profile ? h('p', { class: 'preset-brief', testid: 'preset-brief' }, profileBrief(p.profile)) : null),
        h('button', {
          type: 'button', class: `btn btn-small${isActive ? '' : ' btn-primary-outline'}`, testid: `preset-activate-${p.name}`,
          title: isActive ? 'Activate it again: outage windows count from the moment a preset is activated' : null,
          onclick: async () => {
            try {
              showProfile(await api('POST', `/simulator/presets/${encodeURIComponent(p.name)}`));
              profileOut.replaceChildren(h('div', { class: 'alert alert-ok', testid: 'profile-saved' }, `Preset “${p.name}” is now active.`));
            } catch (e) {
              profileOut.replaceChildren(errorBox(e, 'profile-error'));
            }
            await loadPresets();
          },
        }, isActive ? 'Activate again' : 'Activate'));
    })) : h('p', { class: 'muted' }, 'No presets.'));
  };
  const saveProfile = async () => {
    profileOut.replaceChildren();
    let body;
    try { body = JSON.parse(profileText.value); } catch (e) {
      profileOut.replaceChildren(h('div', { class: 'alert alert-error', testid: 'profile-error' }, `Not valid JSON: ${e.message}`));
      return;
    }
    try {
      showProfile(await api('PUT', '/simulator/profile', body));
      profileOut.replaceChildren(h('div', { class: 'alert alert-ok', testid: 'profile-saved' }, 'Profile saved; it applies to messages submitted from now on.'));
    } catch (e) {
      profileOut.replaceChildren(errorBox(e, 'profile-error'));
    }
    await loadPresets();
  };

  const editor = h('details', { class: 'json-editor', testid: 'profile-editor' },
    h('summary', { testid: 'profile-editor-toggle' }, 'Edit as JSON'),
    h('p', { class: 'muted' }, 'Every field of the profile (number rules, outages, moderation…). Save replaces the whole profile; a field left out takes its default.'),
    profileText,
    h('div', { class: 'form-actions' },
      h('button', { type: 'button', class: 'btn btn-primary', testid: 'profile-save', onclick: saveProfile }, 'Save'),
      h('button', { type: 'button', class: 'btn', testid: 'profile-reload', onclick: () => { profileOut.replaceChildren(); loadProfile(); loadPresets(); } }, 'Reload')));

  const profileCard = h('section', { class: 'card', testid: 'profile-card' },
    h('div', { class: 'card-head' }, h('h2', {}, 'Active carrier profile'), activeName),
    h('p', { class: 'muted' }, 'How the simulated carrier (platform “sim”) treats the messages submitted from now on.'),
    summaryBox, profileOut, editor);

  const presetsCard = h('section', { class: 'card', testid: 'presets-card' }, h('h2', {}, 'Presets'), presetsBox);
  const clockCard = h('section', { class: 'card', testid: 'clock-card' }, h('h2', {}, 'Clock'),
    h('p', { class: 'muted' }, 'Jump the virtual clock ahead: receipts, the 5-minute edit window, the 72-hour receipt timeout and the 168-hour retention all follow it.'),
    clockBox);

  view.replaceChildren(h('div', { class: 'page-head' }, h('h1', {}, 'Testbed')),
    h('div', { class: 'testbed-grid' }, h('div', {}, clockCard, presetsCard), profileCard));
  renderClockInto(clockBox, 'testbed-clock');
  await Promise.all([loadProfile(), loadPresets()]);
}

const num = (v) => Number(v) || 0;

/** A delay as words: "always 1 s", "between 0 s and 5 s", "about 5 s (lognormal, σ 1)". */
export function delayText(d) {
  if (d === null || d === undefined) return 'none';
  if (typeof d === 'number') return d ? `always ${fmtSeconds(d)}` : 'none';
  if (d.kind === 'fixed') return num(d.seconds) ? `always ${fmtSeconds(d.seconds)}` : 'none (at once)';
  if (d.kind === 'uniform') return `between ${fmtSeconds(d.low)} and ${fmtSeconds(d.high)}, evenly spread`;
  if (d.kind === 'lognormal') return `about ${fmtSeconds(d.median)} (median; lognormal, σ ${fmtNum(num(d.sigma))}): most sooner, a few much later`;
  return JSON.stringify(d);
}

function outcomeShares(o) {
  const total = num(o.delivered) + num(o.failed) + num(o.missing);
  return [['delivered', 'delivered'], ['failed', 'failed'], ['missing', 'no receipt']]
    .map(([k, label]) => ({ key: k, label, weight: num(o[k]), share: percentOf(num(o[k]), total), total }));
}

/** One line for a preset: the outcome shares and the receipt delay. */
function profileBrief(p) {
  const shares = outcomeShares(p.outcomes || {}).filter((x) => x.weight > 0).map((x) => `${x.share} ${x.label}`);
  const o = p.outcomes || {};
  const receipts = num(o.delivered) + num(o.failed) > 0 ? `receipts ${briefDelay(p.receipt_delay)}` : null;
  return [shares.join(' · '), receipts].filter(Boolean).join(' · ');
}

function briefDelay(d) {
  if (!d || typeof d === 'number') return d ? `after ${fmtSeconds(d)}` : 'at once';
  if (d.kind === 'fixed') return num(d.seconds) ? `after ${fmtSeconds(d.seconds)}` : 'at once';
  if (d.kind === 'uniform') return `after ${fmtSeconds(d.low)}–${fmtSeconds(d.high)}`;
  if (d.kind === 'lognormal') return `after about ${fmtSeconds(d.median)}`;
  return '';
}

function outageText(o) {
  const when = (v) => (typeof v === 'number' ? `${fmtSeconds(v)} after activation` : fmtTime(v));
  const what = o.kind === 'receipts' ? 'Receipts due' : 'Submissions refused';
  return `${what} from ${when(o.start)} to ${when(o.end)}${o.kind === 'receipts' ? ' are swallowed (never sent)' : ''}`;
}

/** The profile as sentences: outcome weights, codes, delays, duplicates, throughput, outages… */
export function profileSummary(p) {
  p = p || {};
  const o = p.outcomes || {};
  const shares = outcomeShares(o);
  const totalWeight = shares[0].total;
  const codes = Object.entries(p.failure_codes || {});
  const codeTotal = codes.reduce((a, [, w]) => a + num(w), 0);
  const rows = [];
  const row = (key, label, ...value) => rows.push([key, label, value]);
  row('outcomes', 'Outcomes',
    h('div', { class: 'share-bar', role: 'img', 'aria-label': shares.map((x) => `${x.share} ${x.label}`).join(', ') },
      shares.map((x) => (x.weight > 0 ? h('span', { class: `share share-${x.key}`, style: `flex:${x.weight}` }) : null))),
    h('span', {}, totalWeight
      ? shares.map((x) => `${x.share} ${x.label}`).join(' · ')
      : 'every weight is 0'));
  row('failure-codes', 'Failure codes', codes.length && codeTotal
    ? [codes.map(([c, w], i) => [i ? ' · ' : '', h('code', {}, c), ` ${percentOf(num(w), codeTotal)}`]), h('span', { class: 'muted' }, ' of failures')]
    : 'none');
  row('delay', 'Receipt delay', delayText(p.receipt_delay));
  row('duplicates', 'Duplicates', num(p.duplicate_rate)
    ? `${percentOf(num(p.duplicate_rate), 1)} of receipts are sent twice`
    : 'none');
  row('order', 'Order', p.reorder ? 'receipts may overtake each other' : 'receipts arrive in order');
  row('parts', 'Multi-part messages', {
    all: 'every part gets its own receipt', first: 'only the first part gets a receipt', last: 'only the last part gets a receipt',
  }[p.part_policy] || humanize(p.part_policy || 'all'));
  row('throughput', 'Throughput', p.throughput_limit === null || p.throughput_limit === undefined
    ? 'no limit'
    : `${fmtNum(num(p.throughput_limit))} messages/s; above that, submissions are refused as throttled`);
  row('latency', 'Submission latency', delayText(p.submit_latency));
  row('outages', 'Outages', (p.outages || []).length
    ? h('ul', { class: 'plain' }, p.outages.map((x) => h('li', {}, outageText(x))))
    : 'none');
  row('recipients', 'Recipients per task', p.max_recipients === undefined ? '—' : `at most ${fmtNum(num(p.max_recipients))}`);
  const mod = p.moderation || {};
  row('moderation', 'Moderation', `review takes ${fmtSeconds(num(mod.review_seconds))}; `,
    (mod.banned_words || []).length ? ['banned words: ', mod.banned_words.map((w, i) => [i ? ', ' : '', h('q', {}, w)])] : 'no banned words');
  row('rules', 'Number rules', (p.number_rules || []).length
    ? `${plural(p.number_rules.length, 'number rule')} (“magic numbers” with fixed fates)`
    : 'none');
  row('seed', 'Seed', p.seed === undefined ? '—' : String(p.seed));
  return h('dl', { class: 'kv profile-summary', testid: 'profile-summary' },
    rows.map(([key, label, value]) => [h('dt', {}, label), h('dd', { testid: `summary-${key}` }, value)]));
}

// ---------------------------------------------------------------- router

function parseHash() {
  const raw = (window.location.hash || '#/tasks').replace(/^#/, '');
  const [path, query] = raw.split('?');
  return { parts: path.split('/').filter(Boolean), params: new URLSearchParams(query || '') };
}

async function route() {
  if (!state.token) { renderSignIn(); return; }
  clearTimers();
  state.renderSeq += 1;
  const seq = state.renderSeq;
  const view = $('#view');
  const { parts, params } = parseHash();
  let nav = 'tasks';
  try {
    if (parts.length === 0 || (parts[0] === 'tasks' && parts.length === 1)) {
      await viewTaskList(view, seq);
    } else if (parts[0] === 'tasks' && parts[1] === 'new') {
      nav = 'new';
      await viewTaskForm(view, seq, null, params);
    } else if (parts[0] === 'tasks' && parts[2] === 'edit') {
      await viewTaskForm(view, seq, parts[1], params);
    } else if (parts[0] === 'tasks' && parts[2] === 'ground-truth') {
      await viewGroundTruth(view, seq, parts[1]);
    } else if (parts[0] === 'tasks') {
      await viewTaskDetails(view, seq, parts[1]);
    } else if (parts[0] === 'audiences') {
      nav = 'audiences';
      await viewAudiences(view, seq);
    } else if (parts[0] === 'inbound') {
      nav = 'inbound';
      await viewInbound(view, seq);
    } else if (parts[0] === 'opt-outs') {
      nav = 'opt-outs';
      await viewOptOuts(view, seq);
    } else if (parts[0] === 'testbed') {
      nav = 'testbed';
      await viewTestbed(view, seq);
    } else {
      view.replaceChildren(h('div', { class: 'empty' }, 'Nothing here. ', h('a', { href: '#/tasks' }, 'Go to the task list.')));
    }
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    if (seq === state.renderSeq) view.replaceChildren(errorBox(e));
  }
  document.querySelectorAll('[data-nav]').forEach((a) => a.classList.toggle('active', a.dataset.nav === nav));
  if (seq === state.renderSeq) view.dataset.ready = String(seq);
}

function start() {
  state.token = sessionStorage.getItem(TOKEN_KEY);
  if (!state.token) { renderSignIn(); return; }
  $('#nav').hidden = false;
  $('#signout').hidden = false;
  refreshClock();
  route();
}

function init() {
  readTokenFromFragment();
  window.addEventListener('hashchange', () => {
    if (readTokenFromFragment()) { start(); return; }
    route();
  });
  $('#signout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.platforms = null;
    renderSignIn('Signed out. The token is no longer kept in this tab.', 'ok');
  });
  // Open tooltips follow their element when the page scrolls or the window changes size.
  window.addEventListener('scroll', placeOpenTips, { capture: true, passive: true });
  window.addEventListener('resize', placeOpenTips);
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') document.querySelectorAll('.has-tip.tip-open').forEach(closeTip);
  });
  // Keep the header clock current (the virtual clock may run faster than real time).
  setInterval(() => { if (state.token && !document.hidden) refreshClock(); }, 10000);
  start();
}

init();
