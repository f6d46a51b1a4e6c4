// The dashboard page: wires the feed, the cards, the side panel, the compose dialog and
// the conversion analysis and the webhooks dialog to the API and the live socket. Nothing here needs a reload.

import { api, query, setCsrfToken } from './api.js';
import { Compose } from './compose.js';
import { Conversions } from './conversions.js';
import { Feed } from './feed.js';
import { h } from './dom.js';
import { LiveSocket, State } from './live.js';
import { SidePanel } from './panel.js';
import { loadJourney, showItem } from './side.js';
import { Webhooks } from './webhooks.js';

const PAGE = 500;
const SEARCH_DELAY_MS = 250;
const FUNNEL_TYPES = new Set(['teaser_shown', 'teaser_click', 'conversion']);
const FILTER_NAMES = { ai: 'automatic trigger', high_score: 'high-scoring event' };
const byId = (id) => document.getElementById(id);

const view = { filter: 'all', q: '', period: byId('period').value };
let next = null;
let loading = false;
let generation = 0;

const me = await api('/api/operator/me');
setCsrfToken(me.csrfToken);
byId('site-name').textContent = me.siteId;
byId('operator-email').textContent = me.operator ? me.operator.email : '';
if (me.operator) byId('sign-out').title = `Signed in as ${me.operator.email}`;

const compose = new Compose();
compose.maxLength = me.maxMessageLength;
const conversions = new Conversions();
new Webhooks(); // its button in the top bar opens it
const panel = new SidePanel();
const actions = {
  onSend: (item) => compose.open(item.sessionId, customerOf(item)),
  onSession: (sessionId) => { loadJourney(sessionId); panel.show('journey'); },
};
const feed = new Feed(byId('feed'), {
  ...actions,
  onSelect: (item) => { showItem(item, actions); loadJourney(item.sessionId); panel.show('details'); },
  onNeedMore: () => loadMore(),
});

function customerOf(item) {
  const visitor = item.visitor || {};
  return item.customerId || item.customerEmail || visitor.customerId || visitor.customerEmail;
}
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
  byId('feed-status').textContent = text || (feed.size === 0 ? ''
    : `${feed.size.toLocaleString()} items loaded${next ? '; scroll for older ones' : ', all of them'}.`);
  empty(!text && feed.size === 0);
  for (const format of ['json', 'csv']) {
    byId('export-' + format).href = '/api/events/export' + query({ format, filter: view.filter, q: view.q, period: view.period });
  }
}

// An empty view says why where the rows would be: the search found nothing (with a way
// back), the filter matched nothing, or nothing has happened in the period yet.
function empty(isEmpty) {
  const box = byId('feed-empty');
  byId('feed-area').classList.toggle('empty', isEmpty);
  box.hidden = !isEmpty;
  if (!isEmpty) return;
  const option = byId('period').selectedOptions[0];
  const period = option.value === 'all' ? 'at all' : 'in the ' + option.textContent.toLowerCase();
  const filter = FILTER_NAMES[view.filter];
  box.replaceChildren(...(view.q
    ? [h('strong', {}, `No matches for “${view.q}”`),
      h('span', {}, `No session, customer, page or message${filter ? ` of the ${filter}s` : ''} matches it ${period}.`),
      h('button', { type: 'button', id: 'clear-search', onclick: clearSearch }, 'Clear search')]
    : filter
      ? [h('strong', {}, `No ${filter}s ${period}.`), h('button', { type: 'button', onclick: () => filterTo('all') }, 'Show all events')]
      : [h('strong', {}, `Nothing ${period} yet.`), h('span', {}, 'Events appear here as they happen.')]));
}

function clearSearch() {
  const input = byId('search');
  input.value = '';
  view.q = '';
  changed();
  input.focus();
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

function filterTo(name) {
  view.filter = name;
  for (const button of document.querySelectorAll('[data-filter]')) button.setAttribute('aria-pressed', String(button.dataset.filter === name));
  changed();
}

for (const button of document.querySelectorAll('[data-filter]')) {
  button.addEventListener('click', () => filterTo(button.dataset.filter));
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
status('Loading…');
