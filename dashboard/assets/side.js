// The side panel's contents: why an event scored what it did (what this event added, and
// the total), what the trigger decided, and a session's journey (pages, time on each,
// score changes, teasers and their fate).

import { api } from './api.js';
import { clock, h, when } from './dom.js';
import { describe } from './feed.js';
import { copyableId, customerText, facts, factLine, shortId, sourceText, zoneText } from './visitor.js';

const byId = (id) => document.getElementById(id);
let journeyWanted = null;

export function showItem(item, { onSession, onSend }) {
  const details = item.kind === 'event' ? explanation(item) : teaserDetails(item);
  byId('details').replaceChildren(
    h('h2', {}, describe(item)),
    h('p', { class: 'muted' }, item.kind === 'event' ? 'Event' : 'Teaser', ', ', h('time', { datetime: item.at }, when(item.at))),
    ...details.filter(Boolean),
    h('p', { class: 'actions-row' },
      h('button', { type: 'button', onclick: () => onSend(item) }, '📨 Send Custom Teaser'),
      h('button', { type: 'button', onclick: () => onSession(item.sessionId) }, 'Session journey →')),
  );
}

// The session's facts now: the event may have said nothing of its source or customer,
// while earlier events of the session did (and the rules below count them).
function visitorFacts(item) {
  const known = facts(item);
  const note = (from) => (from ? h('span', { class: 'muted from-session' }, ' (from the session)') : null);
  return [
    h('dt', {}, 'Session'), h('dd', {}, h('strong', {}, shortId(item.sessionId)), ' ', copyableId(item.sessionId)),
    h('dt', {}, 'Source'), h('dd', {}, sourceText(known) || '(direct)', known.utmMedium ? ` (${known.utmMedium})` : '', note(known.fromSession.source)),
    h('dt', {}, 'Customer'), h('dd', {}, [customerText(known), known.customerId ? known.customerEmail : null].filter(Boolean).join(' · ') || '–', note(known.fromSession.customer)),
    known.timeZone ? [h('dt', {}, 'Time zone'), h('dd', {}, zoneText(known.timeZone), h('span', { class: 'muted' }, ` (${known.timeZone})`))] : null,
    known.firstSeen ? [h('dt', {}, 'First seen'), h('dd', {}, when(known.firstSeen))] : null];
}

function explanation(item) {
  const why = item.explanation || {};
  const score = why.score || {};
  const trigger = why.trigger;
  return [
    h('dl', {}, visitorFacts(item),
      h('dt', {}, 'Page'), h('dd', {}, item.url || item.path || '–'),
      item.title ? [h('dt', {}, 'Title'), h('dd', {}, item.title)] : null,
      h('dt', {}, 'Score'), h('dd', { class: 'score' }, item.score)),
    why.duplicate ? h('p', { class: 'muted' }, 'A repeat of an event already counted: it changed nothing.') : null,
    ...scoring(score, item.score),
    h('h3', {}, 'Automatic trigger'),
    trigger ? triggerDetails(trigger) : h('p', { class: 'muted' }, 'Not evaluated for this kind of event.'),
  ];
}

// What this event added, then the total; events stored before `added` existed only have
// the cumulative list, and say so.
function scoring(score, total) {
  const all = score.rules || [];
  if (!Array.isArray(score.added)) {
    return [h('h3', {}, 'Rules counted so far'), all.length ? ruleList(all, 'rules') : h('p', { class: 'muted' }, 'None.')];
  }
  const previous = Number.isInteger(score.previous) ? score.previous : null;
  const delta = previous === null ? null : (score.total ?? total) - previous;
  return [
    h('h3', {}, 'This event'),
    score.added.length ? ruleList(score.added, 'rules added') : h('p', { class: 'muted' }, 'Added nothing to the score.'),
    (score.removed || []).length ? [h('p', { class: 'muted' }, 'No longer counted:'), ruleList(score.removed, 'rules removed')] : null,
    previous === null ? null : h('p', { class: 'sum' }, delta
      ? `Score ${score.total ?? total}: ${previous} before this event, ${points(delta)} from it.`
      : `Score ${previous}, unchanged by this event.`),
    all.length ? h('details', {}, h('summary', {}, `Score ${score.total ?? total} = all rules counted so far (${all.length})`), ruleList(all, 'rules all')) : null,
  ];
}

function ruleList(rules, className) {
  return h('ul', { class: className }, rules.map((rule) => h('li', {},
    h('span', { class: 'points' }, points(rule.points)), ' ', rule.label || rule.rule,
    rule.detail ? h('span', { class: 'muted' }, ` — ${rule.detail}`) : null)));
}

function points(value) {
  return (value > 0 ? '+' : '') + value;
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
  return [h('dl', {}, visitorFacts(item),
    h('dt', {}, 'Message'), h('dd', {}, `“${item.message}”`),
    h('dt', {}, 'Priority'), h('dd', {}, item.priority),
    h('dt', {}, 'Status'), h('dd', {}, item.status + (item.deliveredVia ? ` via ${item.deliveredVia}` : '')),
    h('dt', {}, 'Sent'), h('dd', {}, when(item.createdAt)),
    h('dt', {}, 'Delivered'), h('dd', {}, when(item.deliveredAt)),
    h('dt', {}, 'Expires'), h('dd', {}, when(item.expiresAt)))];
}

// Loads a journey into its tab; an answer for a session no longer wanted is dropped.
export async function loadJourney(sessionId) {
  const target = byId('journey');
  journeyWanted = sessionId;
  target.replaceChildren(h('h2', {}, 'Session journey'), h('p', { class: 'muted' }, 'Loading the journey…'));
  try {
    const journey = await api(`/api/dashboard/sessions/${encodeURIComponent(sessionId)}`);
    if (journeyWanted === sessionId) target.replaceChildren(...journeyView(journey));
  } catch (failure) {
    if (journeyWanted === sessionId) target.replaceChildren(h('h2', {}, 'Session journey'), h('p', { class: 'error' }, failure.message));
  }
}

function journeyView(journey) {
  const utm = journey.utm || {};
  const known = facts({ ...journey, utmSource: utm.utm_source, utmCampaign: utm.utm_campaign, utmMedium: utm.utm_medium });
  return [
    h('h2', {}, 'Session journey ', h('span', { class: 'muted' }, shortId(journey.sessionId))),
    h('p', { class: 'muted' }, factLine(known) || 'direct, anonymous'),
    h('dl', {},
      h('dt', {}, 'Session'), h('dd', {}, copyableId(journey.sessionId)),
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
  const soFar = Array.isArray(entry.added) ? null : (entry.rules || []).map((rule) => rule.label || rule.rule).join(', ');
  const change = entry.scoreChange
    ? h('span', { class: 'delta ' + (entry.scoreChange > 0 ? 'up' : 'down'), title: soFar ? 'rules counted so far: ' + soFar : null },
      ` ${points(entry.scoreChange)} → ${entry.score}`)
    : null;
  return h('li', { class: entry.type === 'conversion' ? 'conversion' : '' }, at, label(entry), change, reasons(entry),
    entry.aiTriggered ? h('span', { class: 'tag ai' }, '🤖 triggered a teaser') : null);
}

// What this step added; a step stored before `added` existed keeps its cumulative list
// on hover of its score change only, so the timeline does not repeat it at every step.
function reasons(entry) {
  if (!Array.isArray(entry.added) || !entry.added.length) return null;
  return h('span', { class: 'muted' }, ` (${entry.added.map((rule) => `${points(rule.points)} ${rule.label || rule.rule}`).join(', ')})`);
}

function label(entry) {
  switch (entry.type) {
    case 'page_view': return `Viewed ${entry.path}` + (entry.timeOnPage != null ? ` for ${entry.timeOnPage} s` : '');
    case 'time_on_page': return `${entry.secondsOnPage} s on ${entry.path}`;
    case 'page_leave': return `Left ${entry.path} after ${entry.secondsOnPage ?? '?'} s`;
    case 'teaser_shown': return `Saw teaser ${entry.teaserId || ''}`;
    case 'teaser_click': return `Clicked teaser ${entry.teaserId || ''}`;
    case 'conversion': return '🎯 Converted' + (entry.value != null ? ` (${entry.value})` : '');
    case 'track': return `▸ ${entry.name || 'track'}`;
    case 'goal': return `🎯 Goal ${entry.name || ''}` + (entry.value != null ? ` (${entry.value})` : '');
    default: return entry.type;
  }
}
