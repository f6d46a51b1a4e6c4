// Conversion analysis: for the teasers shown in the period, how many were clicked and
// converted, by trigger type, template or traffic source, and the same funnel over time;
// two inline SVG charts and a table. The charts are drawn at the width they are shown at,
// so their 12-px text stays 12 px on a phone instead of being scaled down with the picture.
// Below them, the experiment: each wording, all automatic teasers, the manual ones and the
// holdout, counted by session, each rate with its interval and each lift over the holdout.

import { api, query } from './api.js';
import { h, percent } from './dom.js';
import { experimentChart, groupBars, overTime, rangeText, rateText } from './charts.js';

const MAX_GROUPS = 8;
const GROUP_NAMES = { byTrigger: 'By trigger type', byTemplate: 'By template', bySource: 'By traffic source' };

export class Conversions {
  constructor() {
    this.chart = document.getElementById('conversion-chart');
    this.timeChart = document.getElementById('conversion-over-time');
    this.table = document.querySelector('#conversion-table tbody');
    this.experimentBox = document.getElementById('experiment-chart');
    this.experimentTable = document.querySelector('#experiment-table tbody');
    this.group = document.getElementById('conversion-group');
    this.report = null;
    this.width = 0;
    this.group.addEventListener('change', () => this.render());
    document.getElementById('conversion-refresh').addEventListener('click', () => this.load(this.period));
    this.experimentWidth = 0;
    const observer = new ResizeObserver(() => this.resized());
    observer.observe(this.chart);
    observer.observe(this.experimentBox);
  }

  async load(period) {
    this.period = period;
    this.report = await api('/api/dashboard/conversions' + query({ period }));
    this.render();
  }

  resized() {
    const [width, experimentWidth] = [this.chart, this.experimentBox].map((box) => Math.round(box.clientWidth));
    if (width === this.width && experimentWidth === this.experimentWidth) return;
    [this.width, this.experimentWidth] = [width, experimentWidth];
    this.render();
  }

  render() {
    if (!this.report || !this.width) return;
    const rows = this.report[this.group.value] || [];
    const total = { key: 'All teasers', ...this.report.totals };
    document.getElementById('groups-caption').textContent = GROUP_NAMES[this.group.value];
    this.table.replaceChildren(...[...rows, total].map((row, index) => h('tr', { class: index === rows.length ? 'total' : '' },
      h('td', {}, row.key), h('td', {}, row.shown), h('td', {}, row.clicked), h('td', {}, row.converted),
      h('td', {}, percent(row.clickRate)), h('td', {}, percent(row.conversionRate)))));
    this.chart.replaceChildren(rows.length ? groupBars(rows.slice(0, MAX_GROUPS), this.width)
      : h('p', { class: 'muted' }, 'No teaser was shown in this period.'));
    this.renderOverTime();
    this.renderExperiment();
  }

  // Servers from before the funnel over time send no `overTime`: that chart says so.
  renderOverTime() {
    const timeline = this.report.overTime;
    const caption = document.getElementById('over-time-caption');
    if (!timeline || !Array.isArray(timeline.points)) {
      caption.textContent = 'Over time';
      this.timeChart.replaceChildren(h('p', { class: 'muted' }, 'This server does not report the funnel over time.'));
      return;
    }
    caption.textContent = `Over time, per ${timeline.bucket}`;
    const any = timeline.points.some((point) => point.shown || point.clicked || point.converted);
    this.timeChart.replaceChildren(any ? overTime(timeline, this.width)
      : h('p', { class: 'muted' }, 'Nothing shown, clicked or converted in this period.'));
  }

  // Servers from before the experiment send no `experiment`: the section says so.
  renderExperiment() {
    const experiment = this.report.experiment;
    const method = document.getElementById('experiment-method');
    const table = document.getElementById('experiment-table');
    if (!experiment || !experiment.holdout) {
      method.textContent = '';
      table.hidden = true;
      this.experimentBox.replaceChildren(h('p', { class: 'muted' }, 'This server does not report variants and the holdout.'));
      return;
    }
    method.textContent = methodText(experiment);
    const rows = experimentRows(experiment);
    table.hidden = false;
    this.experimentTable.replaceChildren(...rows.map((row) => experimentRow(row, experiment.minimum)));
    const decided = experiment.holdout.sessions + experiment.auto.sessions > 0;
    this.experimentBox.replaceChildren(decided ? experimentChart(rows, experiment.holdout, this.experimentWidth)
      : h('p', { class: 'muted' }, 'No automatic decision in this period: no session qualified for an automatic teaser, so there is nothing to compare yet.'));
  }
}

// Each wording, then all automatic teasers, the manual ones and the holdout, with a name.
function experimentRows(experiment) {
  const named = (group, name) => ({ ...group, name });
  return [
    ...experiment.variants.map((group) => named(group, group.variant ? `${group.template} · ${group.variant}` : group.template)),
    named(experiment.auto, 'All auto teasers'),
    named(experiment.manual, 'Manual'),
    named(experiment.holdout, 'Holdout'),
  ];
}

function methodText(experiment) {
  const confidence = Math.round(experiment.confidence * 100);
  return `Counted by session: each session that qualified for an automatic teaser in the period is in the group of its first decision — `
    + `the wording it was sent, or the holdout, which was sent nothing. It converted if a conversion followed, or a goal within `
    + `${experiment.windowMinutes} minutes. Rates with their ${confidence} % Wilson interval; the lift over the holdout with `
    + `Newcombe's hybrid score interval. Manual: sessions shown an operator's teaser, with no automatic decision; `
    + 'chosen, not assigned at random, so no lift is claimed for them.';
}

function experimentRow(row, minimum) {
  return h('tr', { dataset: { arm: row.arm, key: row.key } },
    h('th', { scope: 'row' }, row.name),
    h('td', {}, row.sessions.toLocaleString()),
    h('td', {}, row.converted.toLocaleString()),
    h('td', {}, row.conversionRate === null ? '–' : rateText(row.conversionRate),
      row.interval ? h('span', { class: 'inline-interval' }, ' ', rangeText(row.interval)) : null),
    h('td', { class: 'interval' }, row.interval ? rangeText(row.interval) : notEnough(minimum, false)),
    h('td', { class: 'lift' }, liftText(row, minimum)));
}

function liftText(row, minimum) {
  if (row.arm === 'holdout') return '– (the baseline)';
  if (row.arm === 'manual') return '– (chosen by an operator, not at random)';
  if (!row.lift) return notEnough(minimum, true);
  const { absolute, relative, interval } = row.lift;
  return [h('span', { class: 'lift-value' }, `${points(absolute)} points`,
    relative === null ? '' : [' ', h('span', { class: 'relative' }, `(${signed(relative * 100, 0)} %)`)]),
    h('span', { class: 'lift-interval' }, `95 %: ${points(interval.low)} to ${points(interval.high)} points`)];
}

function notEnough(minimum, withHoldout) {
  return `not enough data yet (needs ${minimum.sessions} sessions and ${minimum.conversions} conversions in it${withHoldout ? ' and in the holdout' : ''})`;
}

function points(fraction) {
  return signed(fraction * 100, 1);
}

// With its sign, and a true minus: "+3.1", "−0.4".
function signed(value, digits) {
  const text = Math.abs(value).toFixed(digits);
  return (value < 0 && Number(text) !== 0 ? '−' : '+') + text;
}
