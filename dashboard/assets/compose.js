// 📨 Send Custom Teaser: see whether the visitor is there, write (or start from one of the
// site's template wordings, filled in for this visitor), send, then watch what
// happens to the message, live. A socket delivers within milliseconds, so a message still
// pending after a moment is waiting for the visitor's next poll (or for them to come back).

import { api } from './api.js';
import { characters, h } from './dom.js';
import { ago, shortId } from './visitor.js';

const LONG = 100;
const WAITING_AFTER_MS = 1500;
const STATUS_TEXT = {
  sending: '⏳ Sending…',
  waiting: '⏳ Waiting for poll: the visitor has no open socket right now',
  delivered: '✅ Delivered by WebSocket',
  consumed: '✅ Consumed by poll',
  expired: '⌛ Expired before the visitor picked it up',
};

const byId = (id) => document.getElementById(id);

export class Compose {
  constructor() {
    this.dialog = byId('compose');
    this.message = byId('compose-message');
    this.count = byId('compose-count');
    this.send = byId('compose-send');
    this.error = byId('compose-error');
    this.status = byId('compose-status');
    this.maxLength = 500;
    this.teaserId = null;
    this.timers = [];
    this.deliveries = new Map(); // a delivery can be heard before the send's answer arrives
    this.presence = byId('compose-presence');
    this.another = byId('compose-another');
    this.wording = byId('compose-wording');
    this.wordings = [];
    this.wording.addEventListener('change', () => this.picked());
    this.message.addEventListener('input', () => this.counted());
    this.message.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) { event.preventDefault(); this.submit(); }
    });
    byId('compose-form').addEventListener('submit', (event) => { event.preventDefault(); this.submit(); });
    byId('compose-close').addEventListener('click', () => this.dialog.close());
    this.another.addEventListener('click', () => this.fresh());
    this.dialog.addEventListener('close', () => this.forget());
  }

  open(sessionId, customer) {
    this.sessionId = sessionId;
    byId('compose-label').textContent = shortId(sessionId);
    byId('compose-session').textContent = sessionId;
    byId('compose-customer').textContent = customer ? `(customer ${customer})` : '';
    this.fresh();
    this.loadWordings();
    this.dialog.showModal();
  }

  // An empty message to the same session: on opening, and for "Send another".
  fresh() {
    this.forget();
    this.message.value = '';
    this.message.readOnly = false;
    this.error.hidden = true;
    this.another.hidden = true;
    this.send.hidden = false;
    this.wording.value = '';
    this.wording.disabled = !this.wordings.some((wording) => wording.text !== null);
    this.counted();
    this.checkPresence();
    this.message.focus();
  }

  // The site's template wordings, filled in for this session: a disabled entry has no text
  // for this visitor (a field it lacks, and no fallback). The send stays a manual teaser.
  async loadWordings() {
    const sessionId = this.sessionId;
    this.wordings = [];
    this.wording.disabled = true;
    this.wording.replaceChildren(h('option', { value: '' }, 'Loading wordings…'));
    try {
      const { wordings } = await api(`/api/dashboard/sessions/${encodeURIComponent(sessionId)}/wordings`);
      if (sessionId !== this.sessionId) return;
      this.wordings = wordings;
      this.wording.replaceChildren(h('option', { value: '' }, wordings.length ? 'Write your own' : "No templates in this site's rules"),
        ...wordings.map((wording, index) => wordingOption(wording, index)));
      this.wording.disabled = this.teaserId !== null || !wordings.some((wording) => wording.text !== null);
    } catch (failure) {
      if (sessionId !== this.sessionId) return;
      this.wording.replaceChildren(h('option', { value: '' }, `Wordings unavailable (${failure.message})`));
    }
  }

  picked() {
    const wording = this.wordings[Number(this.wording.value)];
    if (this.wording.value === '' || !wording || wording.text === null) return;
    this.message.value = wording.text;
    this.counted();
    this.message.focus();
  }

  // Whether the visitor is there to get it now: a socket, a poll, or gone for a while.
  async checkPresence() {
    const sessionId = this.sessionId;
    this.presence.dataset.state = 'checking';
    this.presence.textContent = 'Checking whether the visitor is online…';
    try {
      const session = await api(`/api/dashboard/sessions/${encodeURIComponent(sessionId)}`);
      if (sessionId === this.sessionId) this.showPresence(session);
    } catch (failure) {
      if (sessionId !== this.sessionId) return;
      this.presence.dataset.state = 'unknown';
      this.presence.textContent = `Online status unknown (${failure.message}).`;
    }
  }

  showPresence(session) {
    const seen = ago(session.lastPresence || session.lastSeen);
    const [state, text] = !session.online
      ? ['gone', `○ Not online${seen ? `: gone for ${seen.replace(' ago', '')}` : ''}. The message waits for the visitor's return until it expires.`]
      : session.transport === 'websocket'
        ? ['socket', '● Online, socket open: it arrives at once.']
        : ['polling', `● Online, polling${seen ? ` (last poll ${seen})` : ''}: it arrives at the next poll.`];
    this.presence.dataset.state = state;
    this.presence.textContent = text;
  }

  counted() {
    const used = characters(this.message.value);
    const over = used > this.maxLength;
    this.count.className = 'counter' + (over ? ' over' : used > LONG ? ' warn' : '');
    this.count.textContent = `${used} / ${this.maxLength} characters` + (over
      ? ` — too long: the server refuses more than ${this.maxLength}`
      : used > LONG ? ' — long: the bubble reads best under 100' : '');
    this.send.disabled = over || used === 0 || this.teaserId !== null;
  }

  async submit() {
    if (this.send.disabled) return;
    this.error.hidden = true;
    this.send.disabled = true;
    try {
      const teaser = await api('/api/dashboard/teasers', {
        method: 'POST',
        body: { sessionId: this.sessionId, message: this.message.value, expiresIn: Number(byId('compose-expiry').value) },
      });
      this.teaserId = teaser.id;
      this.message.readOnly = true;
      this.wording.disabled = true;
      this.send.hidden = true;
      this.another.hidden = false;
      this.another.focus();
      const via = teaser.deliveredVia || this.deliveries.get(teaser.id);
      this.show(via ? fate(via) : 'sending');
      this.timers.push(setTimeout(() => this.refresh(), WAITING_AFTER_MS));
      const untilExpiry = new Date(teaser.expiresAt) - Date.now();
      this.timers.push(setTimeout(() => this.refresh(), Math.min(untilExpiry + 500, 2 ** 31 - 1)));
    } catch (failure) {
      this.error.textContent = failure.message;
      this.error.hidden = false;
      this.send.disabled = false;
    }
  }

  // From the dashboard socket: {id, kind: teaser_sent|teaser_delivered, via}.
  heard(fates) {
    for (const entry of fates) {
      if (entry.kind === 'teaser_delivered') this.deliveries.set(entry.id, entry.via);
      if (this.deliveries.size > 1000) this.deliveries.clear();
      if (entry.id === this.teaserId && entry.kind === 'teaser_delivered') this.show(fate(entry.via));
    }
  }

  async refresh() {
    if (!this.teaserId) return;
    const teaser = await api(`/api/dashboard/teasers/${encodeURIComponent(this.teaserId)}`);
    if (teaser.status === 'delivered') this.show(fate(teaser.deliveredVia));
    else if (teaser.status === 'expired') this.show('expired');
    else if (this.status.dataset.state === 'sending') this.show('waiting');
  }

  show(state) {
    if (['delivered', 'consumed', 'expired'].includes(this.status.dataset.state) && !this.status.hidden) return;
    this.status.dataset.state = state;
    this.status.textContent = STATUS_TEXT[state] + (this.teaserId ? ` (${this.teaserId})` : '');
    this.status.hidden = false;
  }

  forget() {
    this.timers.forEach(clearTimeout);
    this.timers = [];
    this.teaserId = null;
    this.status.dataset.state = '';
    this.status.hidden = true;
  }
}

function wordingOption(wording, index) {
  const name = wording.variant ? `${wording.template} · ${wording.variant}` : wording.template;
  const missing = wording.text === null;
  return h('option', { value: String(index), disabled: missing, title: missing ? wording.source : wording.text },
    missing ? `${name} (nothing to fill it in with for this visitor)` : name);
}

function fate(via) {
  return via === 'websocket' ? 'delivered' : 'consumed';
}
