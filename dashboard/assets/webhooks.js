// Webhooks: the site's endpoints in a dialog. Add one (its secret shown once), rotate,
// remove, enable, send a test event, and per endpoint the latest deliveries with a replay.
// Every refusal from the API is shown beside what caused it, never in a pop-up.

import { api } from './api.js';
import { h, when } from './dom.js';

export const EVENTS = ['teaser.delivered', 'teaser.shown', 'teaser.clicked', 'teaser.converted', 'teaser.expired', 'auto_teaser.sent'];
// A test or a replay is sent within a second; these looks catch it, and a slow receiver.
const FOLLOW_UP_MS = [400, 1200, 3000, 7000];
const STATE_TEXT = { enabled: 'Enabled', failing: 'Failing', disabled: 'Disabled' };
const byId = (id) => document.getElementById(id);

export class Webhooks {
  constructor() {
    this.dialog = byId('webhooks');
    this.list = byId('webhook-list');
    this.secret = byId('webhook-secret');
    this.form = byId('webhook-add');
    this.addError = byId('webhook-add-error');
    this.open = new Set(); // endpoint numbers whose deliveries are shown
    this.focusKey = null; // the focused button's data-key, to focus again after a redraw
    this.timers = [];
    byId('webhooks-open').addEventListener('click', () => this.show());
    byId('webhooks-close').addEventListener('click', () => this.dialog.close());
    this.dialog.addEventListener('close', () => this.forget());
    this.form.addEventListener('submit', (event) => { event.preventDefault(); this.add(); });
    byId('webhook-events').replaceChildren(...EVENTS.map((name) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', name: 'events', value: name, checked: true }), ' ', h('code', {}, name))));
  }

  show() {
    this.secret.hidden = true;
    this.addError.hidden = true;
    this.dialog.showModal();
    byId('webhook-url').focus();
    this.load();
  }

  forget() {
    this.timers.forEach(clearTimeout);
    this.timers = [];
    this.secret.replaceChildren();
    this.secret.hidden = true; // a secret is shown once: not again on the next opening
  }

  // A redraw replaces the buttons; the one that had the focus gets it back.
  remember() {
    const key = this.dialog.contains(document.activeElement) && document.activeElement.dataset.key;
    if (key) this.focusKey = key;
  }

  refocus() {
    const again = this.focusKey && this.dialog.querySelector(`[data-key="${this.focusKey}"]`);
    if (again) { again.focus(); this.focusKey = null; }
  }

  async load() {
    try {
      const { endpoints } = await api('/api/webhooks');
      this.remember();
      this.list.replaceChildren(...(endpoints.length ? endpoints.map((each) => this.endpoint(each))
        : [h('li', { class: 'muted empty' }, 'No endpoints yet. Add one above to be told what happens to each teaser.')]));
      this.refocus();
      for (const number of this.open) this.deliveries(number);
    } catch (failure) {
      this.list.replaceChildren(h('li', { class: 'error', role: 'alert' }, `Could not load the endpoints: ${failure.message}`));
    }
  }

  async add() {
    this.addError.hidden = true;
    const chosen = [...this.form.querySelectorAll('input[name="events"]:checked')].map((box) => box.value);
    if (chosen.length === 0) return this.refuse(this.addError, 'Choose at least one event.');
    const events = chosen.length === EVENTS.length ? [] : chosen; // empty: every event, new ones too
    try {
      const created = await api('/api/webhooks', { method: 'POST', body: { url: byId('webhook-url').value.trim(), events } });
      this.form.reset();
      this.reveal(created.endpoint.number, created.secret, 'Added endpoint');
      await this.load();
    } catch (failure) {
      this.refuse(this.addError, failure.message);
    }
  }

  refuse(place, message) {
    place.textContent = message;
    place.hidden = false;
  }

  // The secret once, with a Copy button; closing the box or the dialog forgets it.
  reveal(number, secret, what, previousUntil) {
    const code = h('code', { id: 'webhook-secret-value', class: 'secret-value' }, secret);
    const said = h('span', { class: 'muted', role: 'status' });
    this.secret.replaceChildren(
      h('h3', {}, `${what} #${number}: its signing secret`),
      h('p', { class: 'copyable' }, code, ' ',
        h('button', { type: 'button', id: 'webhook-secret-copy', class: 'copy', onclick: () => copy(secret, code, said) }, 'Copy'), ' ', said),
      h('p', { class: 'warning' }, "Copy it now: you won't see this secret again. Your receiver verifies each request with it (Standard Webhooks)."),
      previousUntil ? h('p', {}, `The old secret keeps working beside it for 24 hours (until ${when(previousUntil)}), so you can switch your receiver over.`) : null,
      h('button', { type: 'button', onclick: () => { this.secret.hidden = true; this.secret.replaceChildren(); } }, 'Done'));
    this.secret.hidden = false;
    this.secret.querySelector('.copy').focus();
  }

  endpoint(endpoint) {
    const n = endpoint.number;
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    const deliveries = h('div', { class: 'deliveries', id: `webhook-${n}-deliveries`, hidden: !this.open.has(n) });
    const act = (label, work, extra = {}) => h('button', { type: 'button', dataset: { key: `${n}-${label}` }, ...extra, onclick: async (event) => {
      error.hidden = true;
      try { await work(event); } catch (failure) { this.refuse(error, failure.message); }
    } }, label);
    const toggle = act('Deliveries', () => this.toggle(n, toggle), { 'aria-expanded': String(this.open.has(n)), 'aria-controls': deliveries.id });
    const confirm = h('p', { class: 'confirm', hidden: true },
      h('span', {}, `Remove endpoint #${n}? Nothing more is sent to it, and what it still has pending fails.`), ' ',
      act('Yes, remove it', () => this.remove(n), { class: 'danger' }), ' ',
      h('button', { type: 'button', onclick: () => { confirm.hidden = true; remove.focus(); } }, 'Keep it'));
    const remove = h('button', { type: 'button', onclick: () => { confirm.hidden = false; confirm.querySelector('.danger').focus(); } }, 'Remove');
    return h('li', { class: 'endpoint', dataset: { number: n, state: endpoint.state } },
      h('div', { class: 'endpoint-head' },
        h('strong', {}, `#${n}`), ' ', h('code', { class: 'url' }, endpoint.url), ' ',
        h('span', { class: `tag ${endpoint.state}` }, STATE_TEXT[endpoint.state] || endpoint.state)),
      h('p', { class: 'facts small' }, facts(endpoint)),
      endpoint.disabledReason ? h('p', { class: 'reason small' }, `Disabled ${when(endpoint.disabledAt)}: ${endpoint.disabledReason}`) : null,
      h('div', { class: 'endpoint-actions' },
        act('Send test event', () => this.test(n), { class: 'primary' }), toggle,
        act('Rotate secret', () => this.rotate(n)),
        endpoint.state === 'disabled' ? act('Enable', () => this.enable(n)) : null,
        remove),
      confirm, error, deliveries);
  }

  async test(number) {
    await api(`/api/webhooks/${number}/test`, { method: 'POST' });
    this.follow(number);
  }

  async rotate(number) {
    const rotated = await api(`/api/webhooks/${number}/rotate`, { method: 'POST' });
    this.reveal(number, rotated.secret, 'Rotated endpoint', rotated.previousValidUntil);
  }

  async enable(number) {
    await api(`/api/webhooks/${number}/enable`, { method: 'POST' });
    await this.load();
  }

  async remove(number) {
    await api(`/api/webhooks/${number}`, { method: 'DELETE' });
    this.open.delete(number);
    await this.load();
    byId('webhook-url').focus();
  }

  async toggle(number, button) {
    if (this.open.has(number)) this.open.delete(number);
    else this.open.add(number);
    button.setAttribute('aria-expanded', String(this.open.has(number)));
    byId(`webhook-${number}-deliveries`).hidden = !this.open.has(number);
    if (this.open.has(number)) await this.deliveries(number);
  }

  // After a test or a replay: show the deliveries and look again as the attempt lands.
  follow(number) {
    if (!this.open.has(number)) {
      this.open.add(number);
      const item = this.list.querySelector(`[data-number="${number}"]`);
      item.querySelector('[aria-controls]').setAttribute('aria-expanded', 'true');
      byId(`webhook-${number}-deliveries`).hidden = false;
    }
    this.deliveries(number);
    for (const delay of FOLLOW_UP_MS) this.timers.push(setTimeout(() => this.load(), delay));
  }

  async deliveries(number) {
    const box = byId(`webhook-${number}-deliveries`);
    if (!box) return;
    try {
      const { deliveries } = await api(`/api/webhooks/${number}/deliveries`);
      this.remember();
      box.replaceChildren(h('h3', {}, 'Recent deliveries'), deliveries.length
        ? h('ol', { class: 'delivery-list' }, deliveries.map((each) => this.delivery(number, each)))
        : h('p', { class: 'muted' }, 'Nothing sent yet. "Send test event" sends one now.'));
      this.refocus();
    } catch (failure) {
      box.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Could not load the deliveries: ${failure.message}`));
    }
  }

  delivery(number, delivery) {
    const error = h('span', { class: 'error', role: 'alert', hidden: true });
    const replay = h('button', { type: 'button', class: 'replay', dataset: { key: `replay-${delivery.id}` }, onclick: async () => {
      error.hidden = true;
      try {
        await api(`/api/webhooks/${number}/deliveries/${delivery.id}/replay`, { method: 'POST' });
        this.follow(number);
      } catch (failure) { this.refuse(error, failure.message); }
    } }, 'Replay');
    return h('li', { class: 'delivery', dataset: { id: delivery.id, status: delivery.status } },
      h('div', { class: 'delivery-head' }, h('code', { class: 'type' }, delivery.type), ' ',
        h('span', { class: `tag ${delivery.status}` }, delivery.status)),
      h('div', { class: 'small' }, h('span', { class: 'muted' }, 'webhook-id '), h('code', { class: 'webhook-id' }, delivery.webhookId)),
      h('div', { class: 'small outcome' },
        h('span', { class: 'code' }, delivery.statusCode === null ? 'no answer' : `HTTP ${delivery.statusCode}`), ' · ',
        h('span', { class: 'latency' }, delivery.latencyMs === null ? '– ms' : `${delivery.latencyMs} ms`), ' · ',
        `${delivery.attempts} attempt${delivery.attempts === 1 ? '' : 's'}`, ' · ',
        h('time', { datetime: delivery.lastAttemptAt || delivery.createdAt }, when(delivery.lastAttemptAt || delivery.createdAt))),
      delivery.error ? h('div', { class: 'small reason' }, delivery.error) : null,
      h('div', {}, replay, ' ', error));
  }
}

function facts(endpoint) {
  const events = endpoint.events.length ? endpoint.events.join(', ') : 'every event';
  const last = endpoint.lastDeliveredAt ? `last delivery ${when(endpoint.lastDeliveredAt)}` : 'nothing delivered yet';
  const failing = endpoint.failingSince ? ` · failing since ${when(endpoint.failingSince)}` : '';
  return `${events} · ${last}${failing}`;
}

async function copy(text, code, said) {
  try {
    await navigator.clipboard.writeText(text);
    said.textContent = 'Copied';
  } catch {
    // Where the clipboard is closed, the secret is selected for Ctrl+C instead.
    const range = document.createRange();
    range.selectNodeContents(code);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    said.textContent = 'Selected: press Ctrl+C';
  }
}
