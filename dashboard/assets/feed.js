// The event feed: newest first, virtualised. Rows have one fixed height, so only the
// rows in view (plus a margin) exist in the DOM however many items are loaded; scrolling
// near the end asks for the next page.

import { clock, h } from './dom.js';

const ROW = 44;
const OVERSCAN = 10;
const MAX_ITEMS = 100000;
const HIGH_SCORE = 50;
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
    viewport.addEventListener('scroll', () => this.schedule(), { passive: true });
    viewport.addEventListener('click', (event) => this.clicked(event));
    new ResizeObserver(() => this.schedule()).observe(viewport);
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
    const first = Math.floor(this.viewport.scrollTop / ROW);
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
    if (above && this.viewport.scrollTop > 0) this.viewport.scrollTop += above * ROW;
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
      ? h('span', { class: 'score' + (item.score >= HIGH_SCORE ? ' high' : '') }, item.score) : h('span');
    return h('div', { class: 'row' + fresh, role: 'listitem', dataset: { key: item.key, kind: item.kind, session: item.sessionId } },
      h('time', { datetime: item.at }, clock(item.at)),
      h('span', { class: 'what' }, describe(item)),
      h('span', {}, h('a', { class: 'session', href: '#', title: item.sessionId, dataset: { action: 'session' } }, item.sessionId)),
      h('span', { class: 'page', title: item.url || item.path || item.message || '' }, item.kind === 'event' ? item.path : `“${item.message}”`),
      h('span', { class: 'source' }, [item.utmSource, item.utmCampaign].filter(Boolean).join(' / ') || '–'),
      h('span', { class: 'customer' }, item.customerId || item.customerEmail || '–'),
      score,
      h('span', {}, h('button', { type: 'button', class: 'send', dataset: { action: 'send' } }, '📨 Send Custom Teaser')),
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
    this.selected = item.key;
    this.schedule();
    this.handlers.onSelect(item);
  }
}

export function describe(item) {
  if (item.kind === 'event') {
    return [h('span', { class: 'kind' }, EVENT_LABELS[item.type] || item.type),
      item.aiTriggered ? h('span', { class: 'tag ai', title: 'sent a teaser automatically' }, '🤖 AI') : null];
  }
  if (item.kind === 'teaser_sent') {
    return [h('span', { class: 'kind' }, item.priority === 'auto' ? '🤖 Auto teaser' : '📨 Manual teaser'),
      h('span', { class: 'tag ' + item.status }, item.status === 'delivered' ? `via ${item.deliveredVia}` : item.status)];
  }
  return [h('span', { class: 'kind' }, '✅ Delivered'), h('span', { class: 'tag delivered' }, `via ${item.deliveredVia}`)];
}
