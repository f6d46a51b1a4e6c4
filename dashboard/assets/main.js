// The dashboard page: wires the feed, the cards, the side panel, the compose dialog and
// the conversion analysis to the API and the live socket. Nothing here needs a reload.

import { api, query, setCsrfToken } from './api.js';
import { Compose } from './compose.js';
import { Conversions } from './conversions.js';
import { Feed } from './feed.js';
import { LiveSocket, State } from './live.js';
import { showItem, showJourney } from './side.js';

const PAGE = 500;
const SEARCH_DELAY_MS = 250;
const FUNNEL_TYPES = new Set(['teaser_shown', 'teaser_click', 'conversion']);
const byId = (id) => document.getElementById(id);

const view = { filter: 'all', q: '', period: byId('period').value };
let next = null;
let loading = false;
let generation = 0;

const me = await api('/api/operator/me');
setCsrfToken(me.csrfToken);
byId('site-name').textContent = me.siteId;
byId('operator-email').textContent = me.operator ? me.operator.email : '';

const compose = new Compose();
compose.maxLength = me.maxMessageLength;
const conversions = new Conversions();
const actions = {
  onSend: (item) => compose.open(item.sessionId, item.customerId || item.customerEmail),
  onSession: (sessionId) => showJourney(sessionId),
};
const feed = new Feed(byId('feed'), {
  ...actions,
  onSelect: (item) => { showItem(item, actions); showJourney(item.sessionId); },
  onNeedMore: () => loadMore(),
});
const live = new LiveSocket('/api/dashboard/ws', { onFrame: heard, onState: connection });

async function reload() {
  const mine = ++generation;
  loading = true;
  status('Loading…');
  try {
    const page = await api('/api/events' + query({ ...view, limit: PAGE }));
    if (mine !== generation) return;
    feed.reset(page.events);
    next = page.next;
  } finally {
    if (mine === generation) loading = false;
  }
  status();
}

async function loadMore() {
  if (loading || !next) return;
  const mine = generation;
  loading = true;
  try {
    const page = await api('/api/events' + query({ ...view, limit: PAGE, before: next }));
    if (mine !== generation) return;
    feed.append(page.events);
    next = page.next;
  } finally {
    if (mine === generation) loading = false;
  }
  status();
}

function status(text) {
  byId('feed-status').textContent = text || (feed.size === 0 ? 'Nothing in this view yet: events appear here as they happen.'
    : `${feed.size.toLocaleString()} items loaded${next ? '; scroll for older ones' : ', all of them'}.`);
  for (const format of ['json', 'csv']) {
    byId('export-' + format).href = '/api/events/export' + query({ format, filter: view.filter, q: view.q, period: view.period });
  }
}

let funnelTimer = 0;
function heard(frame) {
  if (frame.type === 'hello' || frame.type === 'resync') reload();
  else if (frame.type === 'stats') cards(frame.stats);
  else if (frame.type === 'teasers') {
    compose.heard(frame.items);
    for (const fate of frame.items) {
      if (fate.kind === 'teaser_delivered') feed.updateTeaser(fate.id, { status: 'delivered', deliveredVia: fate.via });
    }
  } else if (frame.type === 'feed') {
    feed.insert(frame.items);
    status();
    if (frame.items.some((item) => FUNNEL_TYPES.has(item.type))) {
      clearTimeout(funnelTimer);
      funnelTimer = setTimeout(() => conversions.load(view.period), 2000);
    }
  }
}

function connection(state) {
  const badge = byId('connection');
  badge.dataset.state = state;
  badge.textContent = state === State.LIVE ? '● Live' : state === State.RECONNECTING ? 'Reconnecting…' : state;
}

function cards(stats) {
  const values = { ...stats, averageScore: stats.averageScore ?? '–' };
  for (const card of document.querySelectorAll('.card[data-metric]')) {
    const metric = card.dataset.metric;
    const before = card.textContent;
    if (metric === 'messages') {
      for (const part of card.querySelectorAll('[data-part]')) part.textContent = stats.messages[part.dataset.part].toLocaleString();
    } else {
      const value = values[metric];
      card.querySelector('.value').textContent = typeof value === 'number' ? value.toLocaleString() : value;
    }
    if (card.textContent !== before) flash(card);
  }
}

function flash(card) {
  card.classList.add('changed');
  setTimeout(() => card.classList.remove('changed'), 600);
}

function changed() {
  live.setView(view);
  reload();
}

for (const button of document.querySelectorAll('[data-filter]')) {
  button.addEventListener('click', () => {
    view.filter = button.dataset.filter;
    for (const other of document.querySelectorAll('[data-filter]')) other.setAttribute('aria-pressed', String(other === button));
    changed();
  });
}

let searchTimer = 0;
byId('search').addEventListener('input', (event) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { view.q = event.target.value.trim(); changed(); }, SEARCH_DELAY_MS);
});

byId('period').addEventListener('change', (event) => {
  view.period = event.target.value;
  changed();
  conversions.load(view.period);
});

byId('sign-out').addEventListener('click', async () => {
  await api('/api/operator/logout', { method: 'POST' });
  location.assign('/dashboard/login');
});

// Every other browser signed in as this operator is sent to sign in too: its next
// request is refused, and its live socket closes with SIGNED_OUT within a second or two.
byId('sign-out-everywhere').addEventListener('click', async () => {
  await api('/api/operator/logout?everywhere=true', { method: 'POST' });
  location.assign('/dashboard/login');
});

live.setView(view);
live.start();
conversions.load(view.period);
status();
