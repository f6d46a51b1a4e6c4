// The conversion charts as inline SVG, drawn for a given pixel width (one SVG unit is one
// CSS pixel): bars by group, the funnel over time as three lines on a time axis, and the
// experiment's rates with their intervals.
// Zero values get no label, so an empty stage is an empty row, not "0 (0%)" clutter.

import { clock, percent, svg } from './dom.js';

const STAGES = [['shown', 'Shown'], ['clicked', 'Clicked'], ['converted', 'Converted']];
const BAR = 12;
const VALUE_ROOM = 72; // "1234 (100%)" to the right of the longest bar
const CHAR = 7; // px of a 12-px system-ui character, near enough for cutting labels
const STACK_BELOW = 440; // narrower than this, a group's name goes above its bars

function legend(picture, y) {
  STAGES.forEach(([stage, name], index) => {
    const x = index * 88;
    picture.append(svg('rect', { x, y, width: 10, height: 10, class: stage }), svg('text', { x: x + 14, y: y + 9 }, name));
  });
}

function cut(text, room) {
  const fits = Math.max(4, Math.floor(room / CHAR));
  return text.length > fits ? text.slice(0, fits - 1) + '…' : text;
}

function valueText(row, stage) {
  if (!row[stage]) return '';
  if (stage === 'shown') return String(row[stage]);
  return `${row[stage]} (${percent(stage === 'clicked' ? row.clickRate : row.conversionRate)})`;
}

export function groupBars(rows, width) {
  const stacked = width < STACK_BELOW;
  const label = stacked ? 0 : Math.min(150, Math.round(width * 0.3));
  const nameRoom = stacked ? 16 : 0;
  const group = nameRoom + 3 * BAR + 14;
  const most = Math.max(1, ...rows.map((row) => row.shown));
  const scale = Math.max(20, width - label - VALUE_ROOM) / most;
  const height = 22 + rows.length * group;
  const picture = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
    'aria-label': 'Teasers shown, clicked and converted, by group' });
  legend(picture, 2);
  rows.forEach((row, index) => {
    const top = 22 + index * group;
    picture.append(stacked
      ? svg('text', { x: 0, y: top + 12 }, cut(row.key, width))
      : svg('text', { x: 0, y: top + BAR * 1.5 + 4 }, cut(row.key, label - 8)));
    STAGES.forEach(([stage], line) => {
      const y = top + nameRoom + line * BAR;
      const length = row[stage] ? Math.max(2, row[stage] * scale) : 0;
      if (length) picture.append(svg('rect', { x: label, y, width: length, height: BAR - 2, class: stage }, svg('title', {}, `${row.key}: ${row[stage]} ${stage}`)));
      const text = valueText(row, stage);
      if (text) picture.append(svg('text', { x: label + length + 4, y: y + BAR - 3 }, text));
    });
  });
  return picture;
}

function niceMax(value) {
  if (value <= 4) return Math.max(1, value);
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((step) => step * power).find((candidate) => candidate >= value);
}

function tickText(iso, bucket) {
  const at = new Date(iso);
  return bucket === 'day' ? at.toLocaleDateString([], { day: 'numeric', month: 'short' }) : clock(iso).slice(0, 5);
}

// A tick names the hour only (24 of them must fit); a point's tooltip and the chart's
// description name the day too, since a 24-hour chart holds the same hour twice.
function pointText(iso, bucket) {
  if (bucket === 'day') return tickText(iso, bucket);
  return new Date(iso).toLocaleDateString([], { weekday: 'short', day: 'numeric', month: 'short' }) + ', ' + tickText(iso, bucket);
}

export function overTime({ bucket, points }, width) {
  const sorted = [...points].sort((a, b) => new Date(a.start) - new Date(b.start));
  const top = 24;
  const height = 180;
  const most = niceMax(Math.max(...sorted.map((point) => point.shown), ...sorted.map((point) => point.clicked)));
  const left = 10 + CHAR * String(most).length;
  const plot = { left, right: width - 12, top: top + 6, bottom: height - 22 };
  const times = sorted.map((point) => new Date(point.start).getTime());
  const span = times[times.length - 1] - times[0];
  const x = (index) => (span ? plot.left + ((times[index] - times[0]) / span) * (plot.right - plot.left) : (plot.left + plot.right) / 2);
  const y = (value) => plot.bottom - (value / most) * (plot.bottom - plot.top);
  const totals = STAGES.map(([stage, name]) => `${sorted.reduce((sum, point) => sum + point[stage], 0)} ${name.toLowerCase()}`);
  const picture = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
    'aria-label': `Teasers per ${bucket}, ${pointText(sorted[0].start, bucket)} to ${pointText(sorted[sorted.length - 1].start, bucket)}: ${totals.join(', ')}` });
  legend(picture, 2);
  for (const value of [0, most / 2, most]) {
    if (!Number.isInteger(value)) continue;
    picture.append(svg('line', { x1: plot.left, x2: plot.right, y1: y(value), y2: y(value), class: 'grid' }),
      svg('text', { x: plot.left - 6, y: y(value) + 4, 'text-anchor': 'end', class: 'axis' }, value.toLocaleString()));
  }
  timeAxis(picture, sorted, bucket, x, plot);
  for (const [stage, name] of STAGES) {
    picture.append(svg('polyline', { class: 'line ' + stage, points: sorted.map((point, index) => `${x(index)},${y(point[stage])}`).join(' ') }));
    sorted.forEach((point, index) => picture.append(svg('circle', { cx: x(index), cy: y(point[stage]), r: 2.5, class: stage },
      svg('title', {}, `${pointText(point.start, bucket)}: ${point[stage]} ${name.toLowerCase()}`))));
  }
  return picture;
}

// As many time labels as fit, each about 60 px apart, the first and last kept inside.
function timeAxis(picture, sorted, bucket, x, plot) {
  const fits = Math.max(2, Math.floor((plot.right - plot.left) / 60));
  const every = Math.max(1, Math.ceil(sorted.length / fits));
  picture.append(svg('line', { x1: plot.left, x2: plot.right, y1: plot.bottom, y2: plot.bottom, class: 'grid' }));
  sorted.forEach((point, index) => {
    if (index % every) return;
    const at = x(index);
    const anchor = sorted.length === 1 ? 'middle' : at < plot.left + 20 ? 'start' : at > plot.right - 20 ? 'end' : 'middle';
    picture.append(svg('line', { x1: at, x2: at, y1: plot.bottom, y2: plot.bottom + 4, class: 'grid' }),
      svg('text', { x: at, y: plot.bottom + 16, 'text-anchor': anchor, class: 'axis' }, tickText(point.start, bucket)));
  });
}

// The experiment: one row per group, its conversion rate as a dot with its 95 % interval
// as a whisker, over a shaded band that is the holdout's interval, so a row whose whisker
// clears the band at a glance differs from doing nothing. A group below the minimum
// sample says so in words, where a whisker would claim more than the data holds.
const ROW = 26;

// A rate to a tenth of a point: intervals a few points wide compare at that grain.
export function rateText(rate) {
  return (rate * 100).toFixed(1) + '%';
}

export function experimentChart(rows, holdout, width) {
  const stacked = width < STACK_BELOW;
  const label = stacked ? 0 : Math.min(180, Math.round(width * 0.3));
  const nameRoom = stacked ? 16 : 0;
  const step = ROW + nameRoom;
  const [legend, top] = experimentLegend(holdout, width);
  const plot = { left: label + 8, right: width - 48, top, bottom: top + rows.length * step, width };
  const height = plot.bottom + 22;
  const most = rateMax(rows);
  const x = (rate) => plot.left + (rate / most) * (plot.right - plot.left);
  const summary = rows.map(rowSummary).join('; ');
  const picture = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
    'aria-label': `Conversion rate by group, with its 95 % interval: ${summary}` }, svg('title', {}, summary), legend);
  if (holdout.interval) {
    const band = svg('rect', { x: x(holdout.interval.low), y: plot.top - 2, width: Math.max(1, x(holdout.interval.high) - x(holdout.interval.low)),
      height: plot.bottom - plot.top + 4, class: 'band' }, svg('title', {}, `Holdout's 95 % interval: ${rangeText(holdout.interval)}`));
    picture.append(band);
  }
  rateAxis(picture, most, x, plot);
  rows.forEach((row, index) => {
    const at = plot.top + index * step;
    const middle = at + nameRoom + ROW / 2;
    picture.append(stacked
      ? svg('text', { x: 0, y: at + 12, class: 'group-name' }, cut(row.name, width))
      : svg('text', { x: 0, y: middle + 4, class: 'group-name' }, cut(row.name, label - 8)));
    picture.append(row.interval ? whisker(row, x, middle, plot) : svg('text', { x: plot.left + 4, y: middle + 4, class: 'no-data' }, 'not enough data yet'));
  });
  return picture;
}

function whisker(row, x, middle, plot) {
  const [low, high, at] = [x(row.interval.low), x(row.interval.high), x(row.conversionRate)];
  const value = rateText(row.conversionRate);
  // The value goes right of the whisker, or left of it when the right edge is too near.
  const right = high + 6 + CHAR * value.length <= plot.width;
  return svg('g', { class: 'estimate ' + row.arm },
    svg('title', {}, rowSummary(row)),
    svg('line', { x1: low, x2: high, y1: middle, y2: middle, class: 'whisker' }),
    svg('line', { x1: low, x2: low, y1: middle - 5, y2: middle + 5, class: 'whisker' }),
    svg('line', { x1: high, x2: high, y1: middle - 5, y2: middle + 5, class: 'whisker' }),
    svg('circle', { cx: at, cy: middle, r: 4.5, class: 'dot' }),
    svg('text', right ? { x: high + 6, y: middle + 4 } : { x: low - 6, y: middle + 4, 'text-anchor': 'end' }, value));
}

// The legend's second entry goes on a line of its own when the first leaves it no room;
// answers it and the room it takes above the rows.
function experimentLegend(holdout, width) {
  const said = holdout.interval ? "holdout's interval" : 'holdout: not enough data yet';
  const beside = 168 + 20 + CHAR * said.length <= width;
  const [x, y] = beside ? [168, 0] : [0, 18];
  return [svg('g', { class: 'legend' },
    svg('line', { x1: 0, x2: 20, y1: 7, y2: 7, class: 'whisker' }),
    svg('circle', { cx: 10, cy: 7, r: 4, class: 'dot' }),
    svg('text', { x: 26, y: 11 }, 'rate, 95 % interval'),
    holdout.interval ? svg('rect', { x, y: y + 1, width: 14, height: 12, class: 'band' }) : svg('g', {}),
    svg('text', { x: holdout.interval ? x + 20 : x, y: y + 11, class: holdout.interval ? '' : 'no-data' }, said)), y + 22];
}

// Percent ticks under the rows: 0, the middle and the top of a scale that holds every whisker.
function rateAxis(picture, most, x, plot) {
  picture.append(svg('line', { x1: plot.left, x2: plot.right, y1: plot.bottom, y2: plot.bottom, class: 'grid' }));
  for (const value of [0, most / 2, most]) {
    picture.append(svg('line', { x1: x(value), x2: x(value), y1: plot.top - 2, y2: plot.bottom + 4, class: 'grid' }),
      svg('text', { x: x(value), y: plot.bottom + 16, 'text-anchor': value ? (value === most ? 'end' : 'middle') : 'start', class: 'axis' }, percent(value)));
  }
}

function rateMax(rows) {
  const highs = rows.flatMap((row) => (row.interval ? [row.interval.high, row.conversionRate] : []));
  const top = Math.max(0.01, ...highs);
  const steps = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1];
  return steps.find((candidate) => candidate >= top) ?? 1;
}

export function rangeText(interval) {
  return `${rateText(interval.low)}–${rateText(interval.high)}`;
}

function rowSummary(row) {
  if (!row.interval) return `${row.name}: not enough data yet (${row.sessions} sessions, ${row.converted} converted)`;
  return `${row.name}: ${rateText(row.conversionRate)} (95 % interval ${rangeText(row.interval)}), ${row.sessions} sessions`;
}
