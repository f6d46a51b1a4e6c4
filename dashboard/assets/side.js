// The side panel: why an event scored what it did and what the trigger decided, and a
// session's journey (pages, time on each, score changes, teasers and their fate).

import { api } from './api.js';
import { clock, h, when } from './dom.js';
import { describe } from './feed.js';

const side = () => document.getElementById('side');

export function showItem(item, { onSession, onSend }) {
  const details = item.kind === 'event' ? explanation(item) : teaserDetails(item);
  side().replaceChildren(
    h('h2', {}, item.kind === 'event' ? 'Event' : 'Teaser'),
    h('p', {}, describe(item), ' ', h('time', { class: 'muted' }, when(item.at))),
    ...details.filter(Boolean),
    h('p', {},
      h('button', { type: 'button', onclick: () => onSend(item) }, '📨 Send Custom Teaser'), ' ',
      h('button', { type: 'button', onclick: () => onSession(item.sessionId) }, 'Session journey')),
    h('div', { id: 'journey' }),
  );
}

function explanation(item) {
  const why = item.explanation || {};
  const rules = (why.score && why.score.rules) || [];
  const trigger = why.trigger;
  return [
    h('dl', {},
      h('dt', {}, 'Session'), h('dd', {}, h('code', {}, item.sessionId)),
      h('dt', {}, 'Page'), h('dd', {}, item.url || item.path || '–'),
      h('dt', {}, 'Source'), h('dd', {}, [item.utmSource, item.utmCampaign].filter(Boolean).join(' / ') || '(direct)'),
      h('dt', {}, 'Customer'), h('dd', {}, [item.customerId, item.customerEmail].filter(Boolean).join(' · ') || '–'),
      h('dt', {}, 'Score'), h('dd', { class: 'score' }, item.score)),
    why.duplicate ? h('p', { class: 'muted' }, 'A repeat of an event already counted: it changed nothing.') : null,
    h('h3', {}, 'Rules that fired'),
    rules.length
      ? h('ul', { class: 'rules' }, rules.map((rule) => h('li', {},
        h('span', { class: 'points' }, (rule.points > 0 ? '+' : '') + rule.points), ' ', rule.label || rule.rule,
        rule.detail ? h('span', { class: 'muted' }, ` — ${rule.detail}`) : null)))
      : h('p', { class: 'muted' }, 'None.'),
    h('h3', {}, 'Automatic trigger'),
    trigger ? triggerDetails(trigger) : h('p', { class: 'muted' }, 'Not evaluated for this kind of event.'),
  ];
}

function triggerDetails(trigger) {
  const cap = trigger.dailyCap || {};
  const outcome = trigger.send && trigger.teaserId
    ? `Sent ${trigger.teaserId} (template ${trigger.template || '?'}, ${trigger.situation || '?'})`
    : trigger.blockedBy ? `Blocked by ${trigger.blockedBy.replaceAll('_', ' ')}`
      : trigger.qualified ? 'Qualified, not sent' : 'Did not qualify';
  return h('dl', {},
    h('dt', {}, 'Outcome'), h('dd', {}, outcome),
    h('dt', {}, 'Reasons'), h('dd', {}, (trigger.reasons || []).join('; ') || '–'),
    trigger.message ? [h('dt', {}, 'Message'), h('dd', {}, `“${trigger.message}”`)] : null,
    h('dt', {}, 'Cooldown'), h('dd', {}, trigger.cooldownUntil ? `until ${when(trigger.cooldownUntil)}` : 'none'),
    h('dt', {}, 'Daily cap'), h('dd', {}, `${cap.used ?? '?'} of ${cap.limit ?? '?'} used`));
}

function teaserDetails(item) {
  return [h('dl', {},
    h('dt', {}, 'Session'), h('dd', {}, h('code', {}, item.sessionId)),
    h('dt', {}, 'Message'), h('dd', {}, `“${item.message}”`),
    h('dt', {}, 'Priority'), h('dd', {}, item.priority),
    h('dt', {}, 'Status'), h('dd', {}, item.status + (item.deliveredVia ? ` via ${item.deliveredVia}` : '')),
    h('dt', {}, 'Sent'), h('dd', {}, when(item.createdAt)),
    h('dt', {}, 'Delivered'), h('dd', {}, when(item.deliveredAt)),
    h('dt', {}, 'Expires'), h('dd', {}, when(item.expiresAt)))];
}

export async function showJourney(sessionId) {
  let target = document.getElementById('journey');
  if (!target) {
    side().replaceChildren(h('div', { id: 'journey' }));
    target = document.getElementById('journey');
  }
  target.replaceChildren(h('p', { class: 'muted' }, 'Loading the journey…'));
  try {
    const journey = await api(`/api/dashboard/sessions/${encodeURIComponent(sessionId)}`);
    target.replaceChildren(...journeyView(journey));
  } catch (failure) {
    target.replaceChildren(h('p', { class: 'error' }, failure.message));
  }
}

function journeyView(journey) {
  const utm = journey.utm || {};
  return [
    h('h2', {}, 'Session journey'),
    h('dl', {},
      h('dt', {}, 'Session'), h('dd', {}, h('code', {}, journey.sessionId)),
      h('dt', {}, 'Status'), h('dd', {}, journey.online
        ? h('span', { class: 'online' }, `● online (${journey.transport})`)
        : `last seen ${when(journey.lastPresence || journey.lastSeen)}`),
      h('dt', {}, 'Customer'), h('dd', {}, [journey.customerId, journey.customerEmail].filter(Boolean).join(' · ') || '–'),
      h('dt', {}, 'Source'), h('dd', {}, [utm.utm_source, utm.utm_medium, utm.utm_campaign].filter(Boolean).join(' / ') || '(direct)'),
      h('dt', {}, 'Score'), h('dd', { class: 'score' }, journey.score),
      h('dt', {}, 'Pages'), h('dd', {}, journey.pageViews),
      h('dt', {}, 'Converted'), h('dd', {}, journey.converted ? '✅ yes' : 'no')),
    h('h3', {}, 'Timeline'),
    journey.timeline.length
      ? h('ol', { class: 'timeline' }, journey.timeline.map(step))
      : h('p', { class: 'muted' }, 'Nothing yet.'),
  ];
}

function step(entry) {
  const at = h('time', { datetime: entry.at }, clock(entry.at));
  if (entry.kind === 'teaser_sent') {
    const fate = [entry.status + (entry.deliveredVia ? ` via ${entry.deliveredVia}` : ''),
      entry.shown ? 'shown' : null, entry.clicked ? 'clicked' : null, entry.converted ? 'converted' : null];
    return h('li', { class: 'teaser' }, at, `${entry.priority === 'auto' ? '🤖' : '📨'} “${entry.message}” `,
      h('span', { class: 'muted' }, `— ${fate.filter(Boolean).join(', ')}`));
  }
  if (entry.kind === 'teaser_delivered') return h('li', { class: 'teaser' }, at, `✅ delivered via ${entry.via}`);
  const change = entry.scoreChange
    ? h('span', { class: 'delta ' + (entry.scoreChange > 0 ? 'up' : 'down') }, ` ${entry.scoreChange > 0 ? '+' : ''}${entry.scoreChange} → ${entry.score}`)
    : null;
  const reasons = entry.scoreChange && entry.rules.length
    ? h('span', { class: 'muted' }, ` (${entry.rules.map((rule) => rule.label || rule.rule).join(', ')})`) : null;
  return h('li', { class: entry.type === 'conversion' ? 'conversion' : '' }, at, label(entry), change, reasons,
    entry.aiTriggered ? h('span', { class: 'tag ai' }, '🤖 triggered a teaser') : null);
}

function label(entry) {
  switch (entry.type) {
    case 'page_view': return `Viewed ${entry.path}` + (entry.timeOnPage != null ? ` for ${entry.timeOnPage} s` : '');
    case 'time_on_page': return `${entry.secondsOnPage} s on ${entry.path}`;
    case 'page_leave': return `Left ${entry.path} after ${entry.secondsOnPage ?? '?'} s`;
    case 'teaser_shown': return `Saw teaser ${entry.teaserId || ''}`;
    case 'teaser_click': return `Clicked teaser ${entry.teaserId || ''}`;
    case 'conversion': return '🎯 Converted' + (entry.value != null ? ` (${entry.value})` : '');
    default: return entry.type;
  }
}
