// Conversion analysis: for the teasers shown in the period, how many were clicked and
// converted, by trigger type, template or traffic source; an inline SVG chart and a table.

import { api, query } from './api.js';
import { h, percent, svg } from './dom.js';

const WIDTH = 600;
const LABEL = 150;
const BAR = 12;
const GROUP = 3 * BAR + 18;
const MAX_GROUPS = 8;
const STAGES = [['shown', 'Shown'], ['clicked', 'Clicked'], ['converted', 'Converted']];

export class Conversions {
  constructor() {
    this.chart = document.getElementById('conversion-chart');
    this.table = document.querySelector('#conversion-table tbody');
    this.group = document.getElementById('conversion-group');
    this.report = null;
    this.group.addEventListener('change', () => this.render());
    document.getElementById('conversion-refresh').addEventListener('click', () => this.load(this.period));
  }

  async load(period) {
    this.period = period;
    this.report = await api('/api/dashboard/conversions' + query({ period }));
    this.render();
  }

  render() {
    if (!this.report) return;
    const rows = this.report[this.group.value];
    const total = { key: 'All teasers', ...this.report.totals };
    this.table.replaceChildren(...[...rows, total].map((row, index) => h('tr', { class: index === rows.length ? 'total' : '' },
      h('td', {}, row.key), h('td', {}, row.shown), h('td', {}, row.clicked), h('td', {}, row.converted),
      h('td', {}, percent(row.clickRate)), h('td', {}, percent(row.conversionRate)))));
    this.chart.replaceChildren(rows.length ? drawing(rows.slice(0, MAX_GROUPS))
      : h('p', { class: 'muted' }, 'No teaser was shown in this period.'));
  }
}

function drawing(rows) {
  const most = Math.max(1, ...rows.map((row) => row.shown));
  const scale = (WIDTH - LABEL - 60) / most;
  const height = rows.length * GROUP + 24;
  const picture = svg('svg', { viewBox: `0 0 ${WIDTH} ${height}`, role: 'img', 'aria-label': 'Teasers shown, clicked and converted' });
  STAGES.forEach(([stage, name], index) => {
    const x = LABEL + index * 90;
    picture.append(svg('rect', { x, y: 4, width: 10, height: 10, class: stage }), svg('text', { x: x + 14, y: 13 }, name));
  });
  rows.forEach((row, index) => {
    const top = 24 + index * GROUP;
    picture.append(svg('text', { x: 0, y: top + BAR * 1.5 + 4 }, truncate(row.key)));
    STAGES.forEach(([stage], line) => {
      const y = top + line * BAR;
      const width = Math.max(row[stage] ? 2 : 0, row[stage] * scale);
      const rate = stage === 'shown' ? '' : ` (${percent(stage === 'clicked' ? row.clickRate : row.conversionRate)})`;
      picture.append(
        svg('rect', { x: LABEL, y, width, height: BAR - 2, class: stage }, svg('title', {}, `${row.key}: ${row[stage]} ${stage}`)),
        svg('text', { x: LABEL + width + 4, y: y + BAR - 3 }, `${row[stage]}${rate}`));
    });
  });
  return picture;
}

function truncate(text) {
  return text.length > 20 ? text.slice(0, 19) + '…' : text;
}
