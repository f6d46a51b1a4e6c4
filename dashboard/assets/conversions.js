// Conversion analysis: for the teasers shown in the period, how many were clicked and
// converted, by trigger type, template or traffic source, and the same funnel over time;
// two inline SVG charts and a table. The charts are drawn at the width they are shown at,
// so their 12-px text stays 12 px on a phone instead of being scaled down with the picture.

import { api, query } from './api.js';
import { h, percent } from './dom.js';
import { groupBars, overTime } from './charts.js';

const MAX_GROUPS = 8;
const GROUP_NAMES = { byTrigger: 'By trigger type', byTemplate: 'By template', bySource: 'By traffic source' };

export class Conversions {
  constructor() {
    this.chart = document.getElementById('conversion-chart');
    this.timeChart = document.getElementById('conversion-over-time');
    this.table = document.querySelector('#conversion-table tbody');
    this.group = document.getElementById('conversion-group');
    this.report = null;
    this.width = 0;
    this.group.addEventListener('change', () => this.render());
    document.getElementById('conversion-refresh').addEventListener('click', () => this.load(this.period));
    new ResizeObserver(() => this.resized()).observe(this.chart);
  }

  async load(period) {
    this.period = period;
    this.report = await api('/api/dashboard/conversions' + query({ period }));
    this.render();
  }

  resized() {
    const width = Math.round(this.chart.clientWidth);
    if (width === this.width) return;
    this.width = width;
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
}
