// The event feed: newest first, virtualised. Rows have one fixed height, so only the
// rows in view (plus a margin) exist in the DOM however many items are loaded; scrolling
// near the end asks for the next page. The height is the CSS's --row: a table row on wide
// screens, a taller card on a phone, read again whenever the feed changes size.

import { clock, h } from './dom.js';
import { customerText, facts, sessionLink, sourceText, zoneText } from './visitor.js';

const DEFAULT_ROW = 54;
const OVERSCAN = 10;
const MAX_ITEMS = 100000;
const HIGH_SCORE = 50;
const VIA = { websocket: ['⚡', 'socket'], poll: ['↻', 'poll'] };
const EVENT_LABELS = {
  page_view: 'Page view', time_on_page: 'Time on page', page_leave: 'Page leave',
  teaser_shown: 'Teaser shown', teaser_click: 'Teaser click', conversion: 'Conversion',
};

function sortKey(item) {
  if (!item._key) item._key = item.cursor.split('-').map(Number);
  return item._key;
}

// Negative when a comes first (is newer).
function compare(a, b) {
  const [x, y] = [sortKey(a), sortKey(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return y[i] - x[i];
  return 0;
}

export class Feed {
  constructor(viewport, { onSelect, onSession, onSend, onNeedMore }) {
    this.viewport = viewport;
    this.spacer = viewport.querySelector('.feed-spacer');
    this.handlers = { onSelect, onSession, onSend, onNeedMore };
    this.items = [];
    this.byKey = new Map();
    this.rows = new Map();
    this.fresh = new Set();
    this.selected = null;
    this.frame = 0;
    this.rowHeight = DEFAULT_ROW;
    viewport.addEventListener('scroll', () => this.schedule(), { passive: true });
    viewport.addEventListener('click', (event) => this.clicked(event));
    viewport.addEventListener('keydown', (event) => this.keyed(event));
    new ResizeObserver(() => this.resized()).observe(viewport);
  }

  // A media query may have switched between table rows and cards: keep the same first row.
  resized() {
    const height = parseFloat(getComputedStyle(this.viewport).getPropertyValue('--row')) || DEFAULT_ROW;
    if (height !== this.rowHeight) {
      const first = this.viewport.scrollTop / this.rowHeight;
      this.rowHeight = height;
      this.viewport.scrollTop = first * height;
    }
    this.schedule();
  }

  get size() {
    return this.items.length;
  }

  reset(items) {
    this.items = [];
    this.byKey.clear();
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
    this.viewport.scrollTop = 0;
    this.append(items);
  }

  // An older page: it goes after everything loaded.
  append(items) {
    for (const item of items) {
      if (this.byKey.has(item.key)) continue;
      this.byKey.set(item.key, item);
      this.items.push(item);
    }
    this.schedule();
  }

  // Live items: usually the newest, but a slow worker's may land lower down.
  insert(items) {
    const first = Math.floor(this.viewport.scrollTop / this.rowHeight);
    let above = 0;
    for (const item of items) {
      const known = this.byKey.get(item.key);
      if (known) {
        this.replace(known, item);
        continue;
      }
      const index = this.position(item);
      this.items.splice(index, 0, item);
      this.byKey.set(item.key, item);
      this.fresh.add(item.key);
      if (index < first) above++;
    }
    // Someone reading further down keeps their place while new rows arrive on top.
    if (above && this.viewport.scrollTop > 0) this.viewport.scrollTop += above * this.rowHeight;
    if (this.items.length > MAX_ITEMS) {
      for (const dropped of this.items.splice(MAX_ITEMS)) this.byKey.delete(dropped.key);
    }
    this.schedule();
  }

  // A teaser send row shows the message's fate as it happens.
  updateTeaser(id, changes) {
    const item = this.byKey.get('teaser_sent:' + id);
    if (item) this.replace(item, { ...item, ...changes });
  }

  replace(known, item) {
    const index = this.items.indexOf(known);
    if (index < 0) return;
    item._key = known._key;
    this.items[index] = item;
    this.byKey.set(item.key, item);
    const row = this.rows.get(item.key);
    if (row) {
      row.remove();
      this.rows.delete(item.key);
    }
    this.schedule();
  }

  position(item) {
    let low = 0;
    let high = this.items.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (compare(this.items[middle], item) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  render() {
    const ROW = this.rowHeight;
    this.spacer.style.height = this.items.length * ROW + 'px';
    const top = this.viewport.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(this.items.length, Math.ceil((top + this.viewport.clientHeight) / ROW) + OVERSCAN);
    const wanted = new Set();
    for (let index = first; index < last; index++) {
      const item = this.items[index];
      wanted.add(item.key);
      let row = this.rows.get(item.key);
      if (!row) {
        row = this.row(item);
        this.rows.set(item.key, row);
        this.viewport.append(row);
      }
      row.style.transform = `translateY(${index * ROW}px)`;
      row.dataset.index = index;
      row.classList.toggle('selected', item.key === this.selected);
    }
    for (const [key, row] of this.rows) {
      if (!wanted.has(key)) {
        row.remove();
        this.rows.delete(key);
      }
    }
    this.fresh.clear();
    if (last >= this.items.length - OVERSCAN) this.handlers.onNeedMore();
  }

  row(item) {
    const fresh = this.fresh.has(item.key) ? ' fresh' : '';
    const score = item.kind === 'event'
      ? h('span', { class: 'score' + (item.score >= HIGH_SCORE ? ' high' : ''), title: 'score' }, item.score) : h('span', { class: 'score' });
    return h('div', { class: 'row' + fresh, role: 'listitem', tabindex: '-1',
      dataset: { key: item.key, kind: item.kind, session: item.sessionId } },
      h('time', { datetime: item.at }, clock(item.at)),
      h('span', { class: 'what' }, describe(item)),
      who(item),
      page(item),
      score,
      h('span', { class: 'act' }, h('button', { type: 'button', class: 'send', dataset: { action: 'send' },
        'aria-label': 'Send Custom Teaser', title: 'Send Custom Teaser to this session' }, '📨 Send')),
    );
  }

  clicked(event) {
    const row = event.target.closest('.row');
    if (!row) return;
    const item = this.byKey.get(row.dataset.key);
    const action = event.target.closest('[data-action]');
    if (action) event.preventDefault();
    if (action && action.dataset.action === 'send') return this.handlers.onSend(item);
    if (action && action.dataset.action === 'session') return this.handlers.onSession(item.sessionId);
    this.select(item);
  }

  select(item) {
    this.selected = item.key;
    this.schedule();
    this.handlers.onSelect(item);
  }

  // Keyboard: the list takes focus, arrows move between rows, Enter opens one.
  keyed(event) {
    const row = event.target.closest('.row');
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10 };
    if (event.key in moves) {
      event.preventDefault();
      const from = row ? Number(row.dataset.index) : -1;
      this.focusRow(Math.max(0, Math.min(this.items.length - 1, from + moves[event.key])));
    } else if (row && event.target === row && (event.key === 'Enter' || event.key === ' ')) {
      event.preventDefault();
      this.select(this.byKey.get(row.dataset.key));
    }
  }

  focusRow(index) {
    const ROW = this.rowHeight;
    const view = this.viewport;
    if (index * ROW < view.scrollTop) view.scrollTop = index * ROW;
    else if ((index + 1) * ROW > view.scrollTop + view.clientHeight) view.scrollTop = (index + 1) * ROW - view.clientHeight;
    this.render();
    const row = this.rows.get(this.items[index].key);
    if (row) row.focus({ preventScroll: true });
  }
}

// A shop's own events (TeaserWidget.track / goal) by their name.
function eventLabel(item) {
  if (item.type === 'track' && item.name) return `▸ ${item.name}`;
  if (item.type === 'goal' && item.name) return `🎯 ${item.name}` + (item.value != null ? ` (${item.value})` : '');
  return EVENT_LABELS[item.type] || item.type;
}

export function describe(item) {
  if (item.kind === 'event') {
    return [h('span', { class: 'kind' }, eventLabel(item)),
      item.aiTriggered ? h('span', { class: 'tag ai', title: 'sent a teaser automatically' }, '🤖 AI') : null];
  }
  if (item.kind === 'teaser_sent') {
    return [h('span', { class: 'kind' }, item.priority === 'auto' ? '🤖 Auto teaser' : '📨 Manual teaser'),
      item.status === 'delivered' ? via(item.deliveredVia) : h('span', { class: 'tag ' + item.status }, item.status)];
  }
  return [h('span', { class: 'kind' }, '✅ Delivered'), via(item.deliveredVia)];
}

// "⚡ socket" or "↻ poll": short enough to be read whole in the narrowest column.
function via(transport) {
  const [icon, word] = VIA[transport] || ['', transport || '?'];
  return h('span', { class: 'tag delivered', title: `Delivered via ${transport}` },
    icon ? h('span', { 'aria-hidden': 'true' }, icon + ' ') : null, word);
}

// The short session id, then what is known about the visitor (from the row, else the session).
function who(item) {
  const known = facts(item);
  const parts = [
    [sourceText(known), 'source', 'source / campaign'],
    [customerText(known), 'customer', 'customer'],
    [zoneText(known.timeZone), 'zone', known.timeZone],
  ].filter(([text]) => text).map(([text, name, title]) => h('span', { class: name, title }, text));
  const line = parts.flatMap((part, index) => (index ? [' · ', part] : [part]));
  return h('span', { class: 'who' }, sessionLink(item.sessionId), ' ',
    h('span', { class: 'facts' }, line.length ? line : h('span', { class: 'muted' }, 'direct, anonymous')));
}

function page(item) {
  if (item.kind === 'event') {
    return h('span', { class: 'page', title: item.url || item.path || '' },
      h('span', { class: 'path' }, item.path || '–'),
      item.title ? h('span', { class: 'title muted' }, item.title) : null);
  }
  return h('span', { class: 'page message', title: item.message || '' }, `“${item.message}”`);
}
