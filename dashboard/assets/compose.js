// 📨 Send Custom Teaser: write, send, then watch what happens to the message, live.
// A socket delivers within milliseconds, so a message still pending after a moment is
// waiting for the visitor's next poll (or for the visitor to come back).

import { api } from './api.js';
import { characters } from './dom.js';

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
    this.message.addEventListener('input', () => this.counted());
    byId('compose-form').addEventListener('submit', (event) => { event.preventDefault(); this.submit(); });
    byId('compose-close').addEventListener('click', () => this.dialog.close());
    this.dialog.addEventListener('close', () => this.forget());
  }

  open(sessionId, customer) {
    this.forget();
    this.sessionId = sessionId;
    byId('compose-session').textContent = sessionId;
    byId('compose-customer').textContent = customer ? `(customer ${customer})` : '';
    this.message.value = '';
    this.message.readOnly = false;
    this.error.hidden = true;
    this.status.hidden = true;
    this.counted();
    this.dialog.showModal();
    this.message.focus();
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

function fate(via) {
  return via === 'websocket' ? 'delivered' : 'consumed';
}
