// Who a row is about, in words an operator can tell apart. Widget session ids share a
// millisecond-timestamp prefix (sess_<ms>_<random>), so the random tail is the part that
// differs; the session's known facts (source, customer, time zone) say who it is.

import { h } from './dom.js';

const TIMESTAMPED = /^sess_\d{10,}_(.+)$/;
const TAIL = 12;

// The part of a session id that differs between sessions.
export function shortId(sessionId) {
  const id = String(sessionId || '');
  const match = TIMESTAMPED.exec(id);
  const rest = match ? match[1] : id.replace(/^sess_/, '');
  return rest.length > TAIL ? '…' + rest.slice(-TAIL) : rest;
}

// The session's facts now, with what the row itself reported taking precedence.
export function facts(item) {
  const visitor = item.visitor || {};
  const pick = (own, known) => (own ?? null) || (known ?? null);
  return {
    utmSource: pick(item.utmSource, visitor.utmSource),
    utmMedium: pick(item.utmMedium, visitor.utmMedium),
    utmCampaign: pick(item.utmCampaign, visitor.utmCampaign),
    customerId: pick(item.customerId, visitor.customerId),
    customerEmail: pick(item.customerEmail, visitor.customerEmail),
    timeZone: pick(item.timeZone, visitor.timeZone),
    firstSeen: visitor.firstSeen || null,
    // Which facts came from the session rather than from this row.
    fromSession: {
      source: !item.utmSource && !item.utmCampaign && Boolean(visitor.utmSource || visitor.utmCampaign),
      customer: !item.customerId && !item.customerEmail && Boolean(visitor.customerId || visitor.customerEmail),
    },
  };
}

export function sourceText(known) {
  return [known.utmSource, known.utmCampaign].filter(Boolean).join(' / ');
}

export function customerText(known) {
  const id = known.customerId;
  if (id) return /^\d+$/.test(id) ? '#' + id : id;
  return known.customerEmail || '';
}

// Europe/Berlin → "Berlin time", America/Argentina/Buenos_Aires → "Buenos Aires time".
export function zoneText(timeZone) {
  if (!timeZone) return '';
  if (!timeZone.includes('/')) return timeZone;
  return timeZone.split('/').pop().replaceAll('_', ' ') + ' time';
}

// "facebook / chairs_sale · #12345 · Berlin time": whatever is known, in that order.
export function factLine(known) {
  return [sourceText(known), customerText(known), zoneText(known.timeZone)].filter(Boolean).join(' · ');
}

// The short id as a link to the session's journey, with the full id on hover.
export function sessionLink(sessionId) {
  return h('a', { class: 'session', href: '#', title: sessionId, dataset: { action: 'session' },
    'aria-label': `Session ${sessionId}: journey` }, shortId(sessionId));
}

export function ago(iso, now = Date.now()) {
  if (!iso) return null;
  const seconds = Math.max(0, Math.round((now - new Date(iso)) / 1000));
  if (seconds < 90) return `${seconds} s ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h ago` : `${Math.round(hours / 24)} days ago`;
}

// The full id, and a button that copies it (or selects it where the clipboard is closed).
export function copyableId(sessionId) {
  const code = h('code', { class: 'full-id' }, sessionId);
  const said = h('span', { class: 'muted copied', role: 'status' });
  const button = h('button', { type: 'button', class: 'copy', 'aria-label': 'Copy the session id',
    onclick: () => copy(sessionId, code, said) }, 'Copy');
  return h('span', { class: 'copyable' }, code, ' ', button, ' ', said);
}

async function copy(text, code, said) {
  try {
    await navigator.clipboard.writeText(text);
    said.textContent = 'Copied';
  } catch {
    const range = document.createRange();
    range.selectNodeContents(code);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    said.textContent = 'Selected: press Ctrl+C';
  }
  setTimeout(() => { said.textContent = ''; }, 2500);
}
