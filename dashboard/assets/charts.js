// The conversion charts as inline SVG, drawn for a given pixel width (one SVG unit is one
// CSS pixel): bars by group, and the funnel over time as three lines on a time axis.
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
