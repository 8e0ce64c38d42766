// smslab web console — plain ES module, no build step, nothing loaded from the network.
// Hash routes: #/tasks, #/tasks/new, #/tasks/ID, #/tasks/ID/edit, #/audiences, #/testbed.
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
const SKIP_LABELS = {
  empty: 'Empty number',
  invalid: 'Invalid number',
  duplicate: 'Duplicate number',
  over_limit: 'Over the platform limit',
};
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
  messages: { taskId: null, result: '', cursors: [null], page: 0 },
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

function fmtNum(n) {
  if (n === null || n === undefined) return '—';
  return typeof n === 'number' ? n.toLocaleString('en-US') : String(n);
}

function fmtDuration(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** An element with a native title AND a CSS tooltip child, so hovering shows `text` either way. */
function withTip(el, text, { align = 'left' } = {}) {
  if (!text) return el;
  el.title = text;
  el.classList.add('has-tip');
  if (!el.hasAttribute('tabindex') && !/^(A|BUTTON|INPUT|SELECT|TEXTAREA)$/.test(el.tagName)) {
    el.tabIndex = 0;
  }
  el.append(h('span', { class: `tip tip-${align}`, role: 'tooltip', testid: 'tooltip' }, text));
  return el;
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

async function api(method, path, body, { contentType } = {}) {
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
  return data;
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
    withTip(el, task.status_reason, { align });
    el.dataset.reason = task.status_reason;
  } else if (task.status_reason) {
    el.title = task.status_reason;
  }
  return el;
}

function subActivitiesCell(subs) {
  subs = subs || [];
  if (subs.length === 0) return h('span', { class: 'muted' }, '—');
  const names = subs.map((s) => s.name || String(s.id));
  if (subs.length === 1) return h('span', { testid: 'sub-activities' }, names[0]);
  const el = h('span', { class: 'pill', testid: 'sub-activities' }, `${subs.length} sub-activities`);
  return withTip(el, names.join(', '));
}

/** An action button; disabled with its reason shown on hover when not allowed. */
function actionButton(label, { allowed, reason, testid, onclick, kind = '' }) {
  const btn = h('button', { type: 'button', class: `btn btn-small ${kind}`, testid, disabled: !allowed, onclick }, label);
  if (allowed) return btn;
  const wrap = h('span', { class: 'action-wrap', testid: `${testid}-locked` }, btn);
  return withTip(wrap, reason || 'Not allowed now.', { align: 'right' });
}

function lockText(task) {
  return task.lock_reason || 'Edit and delete are allowed only for a rejected task, or a scheduled task more than 5 minutes before its send time.';
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

function pager({ page, hasPrev, hasNext, onPrev, onNext, prefix }) {
  return h('div', { class: 'pager', testid: `${prefix}-pager` },
    h('button', { type: 'button', class: 'btn btn-small', testid: `${prefix}-prev`, disabled: !hasPrev, onclick: onPrev }, '‹ Prev'),
    h('span', { class: 'muted', testid: `${prefix}-page` }, `Page ${page + 1}`),
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
      if (body.matches(':hover') || document.hidden) { later(poll, LIST_POLL_MS); return; }
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
    state.messages = { taskId: id, result: '', cursors: [null], page: 0 };
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
      actionButton('Edit', {
        allowed: task.can_edit, reason: lockText(task), testid: 'detail-edit',
        onclick: () => { window.location.hash = `#/tasks/${task.id}/edit`; },
      }),
      actionButton('Delete', {
        allowed: task.can_delete, reason: lockText(task), testid: 'detail-delete', kind: 'btn-danger',
        onclick: () => deleteTask(task, () => { window.location.hash = '#/tasks'; }),
      })));

  const reason = (task.status === 'rejected' || task.status === 'failed') && task.status_reason
    ? h('div', { class: 'alert alert-error', testid: 'detail-status-reason' },
      h('strong', {}, `${STATUS_LABELS[task.status]}: `), task.status_reason)
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
      `${fmtNum(done)} of ${fmtNum(sent)} sent numbers have feedback (${pct}%)`,
      task.status === 'sending' ? h('span', { class: 'muted', testid: 'auto-refresh' }, ' · refreshing every 2 s') : null));

  const skippedList = h('ul', { class: 'skipped', testid: 'detail-skipped' },
    Object.keys(skipped).length
      ? Object.entries(skipped).map(([k, v]) => h('li', { dataset: { reason: k } },
        h('span', {}, SKIP_LABELS[k] || k), h('span', { class: 'num' }, fmtNum(v))))
      : h('li', { class: 'muted' }, 'None'));

  const extra = [];
  if (task.late_receipts) extra.push(`${fmtNum(task.late_receipts)} late receipt(s)`);
  if (task.duplicate_receipts) extra.push(`${fmtNum(task.duplicate_receipts)} duplicate receipt(s)`);

  return h('section', { class: 'card', testid: 'detail-counts' },
    h('div', { class: 'card-head' }, h('h2', {}, 'Sending status'),
      h('span', { class: 'muted', testid: 'detail-expire-at' }, task.details_expire_at
        ? `Per-number details ${task.details_expired ? 'expired' : 'kept until'} ${fmtTime(task.details_expire_at)}`
        : 'Not sent yet')),
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
        h('p', { testid: 'detail-explanation' }, task.explanation || 'Audience size = sent + skipped.'),
        extra.length ? h('p', { class: 'muted', testid: 'detail-receipt-notes' }, extra.join(' · ')) : null)));
}

function messagesCard(task, gen) {
  const M = state.messages;
  const sel = h('select', { id: 'messages-result', testid: 'messages-result', class: 'input' },
    h('option', { value: '' }, 'All results'),
    Object.entries(RESULT_LABELS).map(([v, l]) => h('option', { value: v, selected: M.result === v }, l)));
  const body = h('div', { testid: 'messages-body' }, h('p', { class: 'muted' }, 'Loading numbers…'));
  sel.addEventListener('change', () => {
    M.result = sel.value; M.cursors = [null]; M.page = 0;
    loadMessages(task, body, gen);
  });
  const card = h('section', { class: 'card', testid: 'detail-messages' },
    h('div', { class: 'card-head' }, h('h2', {}, 'Numbers'),
      h('label', { class: 'field-inline' }, h('span', {}, 'Result'), sel)),
    body);
  const ready = loadMessages(task, body, gen);
  return { card, ready };
}

async function loadMessages(task, body, gen) {
  const M = state.messages;
  const seq = state.renderSeq;
  let page;
  try {
    page = await api('GET', `/tasks/${task.id}/messages${qs({ result: M.result, limit: PAGE_SIZE, cursor: M.cursors[M.page] })}`);
  } catch (e) {
    if (seq !== state.renderSeq) return;
    if (e.status === 410 || e.code === 'details_expired') {
      body.replaceChildren(expiredBox(e));
      gen.replaceChildren(h('h2', {}, 'Generate audience'), expiredBox(e, 'generate-expired'));
    } else {
      body.replaceChildren(errorBox(e, 'messages-error'));
    }
    return;
  }
  if (seq !== state.renderSeq) return;
  const items = page.items || [];
  const table = h('table', { class: 'table messages-table cards-on-narrow', testid: 'messages-table' },
    h('thead', {}, h('tr', {}, ['Number', 'Receipt time', 'Result', 'Failure reasons', 'Parts'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, items.map((m) => h('tr', { testid: 'message-row', dataset: { result: m.result } },
      td('Number', h('span', { class: 'mono', testid: 'message-number' }, m.number_masked)),
      td('Receipt time', h('span', { testid: 'message-receipt-at' }, fmtTime(m.receipt_at))),
      td('Result', h('span', { class: `result result-${m.result}`, testid: 'message-result' }, RESULT_LABELS[m.result] || m.result)),
      (m.failure_reasons || []).length
        ? td('Failure reasons', h('ul', { class: 'reasons', testid: 'message-reasons' },
          m.failure_reasons.map((r) => h('li', { testid: 'failure-reason' }, h('code', {}, r.code), `: ${r.message}`))))
        : h('td', { 'data-label': 'Failure reasons', class: 'empty-cell' }, h('span', { class: 'muted' }, '—')),
      td('Parts', h('span', { class: 'num' }, fmtNum(m.segments)))))));
  body.replaceChildren(
    items.length ? table : h('div', { class: 'empty', testid: 'messages-empty' },
      M.result ? `No number with result “${RESULT_LABELS[M.result]}”.` : 'No number has been sent yet.'),
    pager({
      prefix: 'messages', page: M.page, hasPrev: M.page > 0, hasNext: Boolean(page.next_cursor),
      onPrev: () => { M.page -= 1; loadMessages(task, body, gen); },
      onNext: () => { M.cursors[M.page + 1] = page.next_cursor; M.page += 1; loadMessages(task, body, gen); },
    }));
}

function expiredBox(err, testid = 'details-expired') {
  return h('div', { class: 'alert alert-warn expired', role: 'status', testid },
    h('strong', {}, 'Details expired'),
    h('p', { testid: `${testid}-message` }, err.message),
    h('p', { class: 'muted' }, 'Per-number details are kept for 7 days (168 hours) after sending; the task counts remain.'));
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
          'Audience ', h('strong', {}, aud.name), ` created with ${fmtNum(aud.size)} number(s). `,
          h('a', { href: `#/tasks/new?audience=${aud.id}` }, 'Send a task to it')));
      } catch (e) {
        out.replaceChildren(e.status === 410 ? expiredBox(e, 'generate-expired') : errorBox(e, 'generate-error'));
      }
    },
  },
  h('h2', {}, 'Generate audience'),
  h('p', { class: 'muted' }, 'Make a new audience from the numbers of this task whose result is:'),
  h('div', { class: 'checks' }, boxes),
  h('label', { for: 'generate-name' }, 'Audience name'), name,
  h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', testid: 'generate-submit' }, 'Generate audience')),
  out);
  if (task.details_expired) {
    form.replaceChildren(h('h2', {}, 'Generate audience'), expiredBox(new Error('Per-number details of this task were deleted; an audience cannot be generated.'), 'generate-expired'));
  }
  return form;
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

function parseSubActivities(text) {
  const out = [];
  for (const raw of text.split(/[\n,;]+/)) {
    const line = raw.trim();
    if (!line) continue;
    const i = line.indexOf(':');
    if (i < 0) throw new ApiError(0, 'invalid', `Sub-activity “${line}” must be written as id:name.`, 'sub_activities');
    const id = line.slice(0, i).trim();
    const name = line.slice(i + 1).trim();
    if (!id || !name) throw new ApiError(0, 'invalid', `Sub-activity “${line}” needs both an id and a name.`, 'sub_activities');
    out.push({ id, name });
  }
  return out;
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
  const field = (labelText, input, help, fieldName) => h('div', { class: 'field', dataset: { field: fieldName || input.name || '' } },
    h('label', { for: input.id }, labelText), input, help ? h('small', { class: 'help' }, help) : null,
    h('small', { class: 'field-error', hidden: true }));

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
  const textBlock = h('div', { class: 'mode-block', testid: 'task-form-text-block' }, field('Text', text, null, 'content'), counter);
  const tplBlock = h('div', { class: 'mode-block', testid: 'task-form-template-block' },
    field('Template topic', topic, 'Shown as the task’s topic (digital SMS).', 'content'),
    field('Template body', body),
    field('Parameters (JSON object)', paramsIn, null, 'params'));
  const syncMode = () => { textBlock.hidden = !modeText.checked; tplBlock.hidden = modeText.checked; };
  modeText.addEventListener('change', syncMode);
  modeTpl.addEventListener('change', syncMode);
  syncMode();
  const updateCounter = () => {
    const full = (signature.value.trim() ? `【${signature.value.trim()}】` : '') + text.value;
    const est = estimateSegments(full);
    counter.textContent = `${est.characters} characters incl. signature · ${est.encoding} · ${est.parts} part(s) per number (estimate)`;
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
    }, `${a.name} (${fmtNum(a.size)} numbers)`)));

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

  const errors = h('div', { testid: 'task-form-errors' });
  const form = h('form', {
    class: 'card form', id: 'task-form', testid: 'task-form', novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      errors.replaceChildren();
      form.querySelectorAll('.field-error').forEach((e) => { e.hidden = true; e.textContent = ''; });
      let payload;
      try {
        payload = {
          name: name.value.trim(),
          platform: platform.value,
          sms_type: smsType.value,
          signature: signature.value.trim(),
          audience_id: audience.value ? (/^\d+$/.test(audience.value) ? Number(audience.value) : audience.value) : null,
          send_type: sendScheduled.checked ? 'scheduled' : 'immediate',
          sub_activities: parseSubActivities(subs.value),
        };
        if (modeText.checked) {
          payload.content = { text: text.value };
        } else {
          let p = {};
          if (paramsIn.value.trim()) {
            try { p = JSON.parse(paramsIn.value); } catch (e) {
              throw new ApiError(0, 'invalid', `Parameters are not valid JSON: ${e.message}`, 'params');
            }
            if (!p || typeof p !== 'object' || Array.isArray(p)) throw new ApiError(0, 'invalid', 'Parameters must be a JSON object.', 'params');
          }
          payload.content = { template: { topic: topic.value.trim(), body: body.value, params: p } };
        }
        if (payload.send_type === 'scheduled') {
          if (!sendAt.value) throw new ApiError(0, 'invalid', 'Choose the send time.', 'send_at');
          const v = sendAt.value.length === 16 ? `${sendAt.value}:00` : sendAt.value;
          payload.send_at = `${v}Z`;
        }
      } catch (e) {
        showFormError(form, errors, e);
        return;
      }
      const submit = form.querySelector('[type=submit]');
      submit.disabled = true;
      try {
        const saved = editing
          ? await api('PATCH', `/tasks/${id}`, payload)
          : await api('POST', '/tasks', payload);
        flash(editing ? `Task "${saved.name}" saved; it goes through moderation again.` : `Task "${saved.name}" created.`);
        window.location.hash = `#/tasks/${saved.id}`;
      } catch (e) {
        showFormError(form, errors, e);
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('h1', {}, editing ? `Edit task “${task.name}”` : 'New task'),
  editing && !task.can_edit ? h('div', { class: 'alert alert-warn', testid: 'task-form-locked' }, lockText(task)) : null,
  errors,
  h('div', { class: 'grid2' },
    field('Name', name, 'Unique within the workspace.'),
    h('div', { class: 'field', dataset: { field: 'platform' } }, h('label', { for: 'task-platform' }, 'Platform'), platform, platformHelp,
      h('small', { class: 'field-error', hidden: true })),
    field('SMS type', smsType),
    field('Signature', signature, 'Sent as 【signature】 and counted in the length.')),
  h('fieldset', {},
    h('legend', {}, 'Content'),
    h('div', { class: 'radios' },
      h('label', { class: 'check' }, modeText, ' Text'),
      h('label', { class: 'check' }, modeTpl, ' Template (topic, body, parameters)')),
    textBlock, tplBlock),
  h('div', { class: 'grid2' }, field('Audience', audience, h('a', { href: '#/audiences' }, 'Create an audience'), 'audience_id'),
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

function showFormError(form, errors, e) {
  errors.replaceChildren(errorBox(e, 'task-form-error'));
  if (e instanceof ApiError && e.field) {
    const parts = String(e.field).split(/[.[\]]+/).filter(Boolean);
    const f = [parts[parts.length - 1], parts[0]]
      .map((name) => form.querySelector(`.field[data-field="${name}"]:not([hidden]) .field-error`))
      .find((el) => el && el.offsetParent !== null);
    if (f) { f.textContent = e.message; f.hidden = false; }
  }
  errors.scrollIntoView({ block: 'nearest' });
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
  const listBox = h('div', { testid: 'audience-list-body' }, h('p', { class: 'muted' }, 'Loading audiences…'));

  const form = h('form', {
    class: 'card form', testid: 'audience-form', novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      out.replaceChildren();
      const n = name.value.trim();
      if (!n) { out.replaceChildren(h('div', { class: 'alert alert-error', testid: 'audience-error' }, 'Give the audience a name.')); return; }
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
          'Audience ', h('strong', {}, aud.name), ` created with ${fmtNum(aud.size)} number(s). `,
          h('a', { href: `#/tasks/new?audience=${aud.id}`, testid: 'audience-created-send' }, 'Create a task for it')));
        form.reset();
        sync();
        loadAudienceList(listBox, seq, [null], 0);
      } catch (e) {
        out.replaceChildren(errorBox(e, 'audience-error'));
      }
    },
  },
  h('h2', {}, 'Create an audience'),
  h('div', { class: 'field' }, h('label', { for: 'audience-name' }, 'Name'), name),
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

// ---------------------------------------------------------------- testbed

async function viewTestbed(view, seq) {
  const clockBox = h('div', { class: 'clockbar inline', id: 'testbed-clock', testid: 'testbed-clock' });
  const profileText = h('textarea', { id: 'profile-json', testid: 'profile-json', class: 'input mono', rows: '22', spellcheck: 'false' });
  const profileOut = h('div', { testid: 'profile-output' });
  const presetsBox = h('div', { testid: 'presets' }, h('p', { class: 'muted' }, 'Loading presets…'));

  const loadProfile = async () => {
    try {
      const p = await api('GET', '/simulator/profile');
      profileText.value = JSON.stringify(p, null, 2);
    } catch (e) {
      profileOut.replaceChildren(errorBox(e, 'profile-error'));
    }
  };
  const saveProfile = async () => {
    profileOut.replaceChildren();
    let body;
    try { body = JSON.parse(profileText.value); } catch (e) {
      profileOut.replaceChildren(h('div', { class: 'alert alert-error', testid: 'profile-error' }, `Not valid JSON: ${e.message}`));
      return;
    }
    try {
      const p = await api('PUT', '/simulator/profile', body);
      profileText.value = JSON.stringify(p, null, 2);
      profileOut.replaceChildren(h('div', { class: 'alert alert-ok', testid: 'profile-saved' }, 'Profile saved; it applies to messages submitted from now on.'));
    } catch (e) {
      profileOut.replaceChildren(errorBox(e, 'profile-error'));
    }
  };

  const profileCard = h('section', { class: 'card', testid: 'profile-card' },
    h('div', { class: 'card-head' }, h('h2', {}, 'Active carrier profile'),
      h('div', { class: 'head-actions' },
        h('button', { type: 'button', class: 'btn', testid: 'profile-reload', onclick: () => { profileOut.replaceChildren(); loadProfile(); } }, 'Reload'),
        h('button', { type: 'button', class: 'btn btn-primary', testid: 'profile-save', onclick: saveProfile }, 'Save'))),
    h('p', { class: 'muted' }, 'The simulated carrier (platform “sim”): outcome weights, failure codes, receipt delays, moderation rules… Save replaces the whole profile; a field left out takes its default.'),
    profileText, profileOut);

  const presetsCard = h('section', { class: 'card', testid: 'presets-card' }, h('h2', {}, 'Presets'), presetsBox);
  const clockCard = h('section', { class: 'card', testid: 'clock-card' }, h('h2', {}, 'Clock'),
    h('p', { class: 'muted' }, 'Jump the virtual clock ahead: receipts, the 5-minute edit window, the 72-hour receipt timeout and the 168-hour retention all follow it.'),
    clockBox);

  view.replaceChildren(h('div', { class: 'page-head' }, h('h1', {}, 'Testbed')),
    h('div', { class: 'testbed-grid' }, h('div', {}, clockCard, presetsCard), profileCard));
  renderClockInto(clockBox, 'testbed-clock');

  await loadProfile();
  let presets;
  try {
    presets = ((await api('GET', '/simulator/presets')) || {}).items || [];
  } catch (e) {
    if (seq === state.renderSeq) presetsBox.replaceChildren(errorBox(e));
    return;
  }
  if (seq !== state.renderSeq) return;
  presetsBox.replaceChildren(presets.length ? h('ul', { class: 'presets' }, presets.map((p) => h('li', { testid: 'preset', dataset: { preset: p.name } },
    h('div', {}, h('strong', {}, p.name), h('p', { class: 'muted' }, p.description || '')),
    h('button', {
      type: 'button', class: 'btn btn-small', testid: `preset-activate-${p.name}`,
      onclick: async () => {
        try {
          const prof = await api('POST', `/simulator/presets/${encodeURIComponent(p.name)}`);
          profileText.value = JSON.stringify(prof, null, 2);
          profileOut.replaceChildren(h('div', { class: 'alert alert-ok', testid: 'profile-saved' }, `Preset “${p.name}” is now active.`));
        } catch (e) {
          profileOut.replaceChildren(errorBox(e, 'profile-error'));
        }
      },
    }, 'Activate')))) : h('p', { class: 'muted' }, 'No presets.'));
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
    } else if (parts[0] === 'tasks') {
      await viewTaskDetails(view, seq, parts[1]);
    } else if (parts[0] === 'audiences') {
      nav = 'audiences';
      await viewAudiences(view, seq);
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
  // Keep the header clock current (the virtual clock may run faster than real time).
  setInterval(() => { if (state.token && !document.hidden) refreshClock(); }, 10000);
  start();
}

init();
