// The web UI of `weir serve`: the queries table, each query's page (live charts, the plan as a
// tree with per-operator figures, the last error, a stop button) and the SQL box.
//
// It owns no state on the server: it reads the JSON API (`GET /api/queries`,
// `GET /api/queries/{name}`, `POST /api/sql`, `POST /api/queries/{name}/stop`) about once a
// second and redraws what is on screen. Text from the server only ever reaches the page through
// `textContent` or attributes, never as HTML. Charts are hand-drawn SVG (`drawChart`).

const REFRESH_MS = 1000;
const SVG_NS = 'http://www.w3.org/2000/svg';
/** Batch phases in the order they run, stacked bottom-up in the phase chart. */
const PHASES = [
  ['latestOffset', 'latest offset', '#8da0cb'],
  ['walCommit', 'offset log', '#a6d854'],
  ['getBatch', 'read sources', '#66c2a5'],
  ['execute', 'execute', '#fc8d62'],
  ['sinkWrite', 'sink write', '#e78ac3'],
  ['commitOffsets', 'commit', '#ffd92f'],
];

// ---------------------------------------------------------------- DOM and formatting helpers

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** An SVG element with attributes. */
function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  if (text !== undefined) node.textContent = text;
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
}

const byId = (id) => document.getElementById(id);

function fmtNumber(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits });
}

function fmtRate(n) {
  if (n === null || n === undefined) return '–';
  return fmtNumber(n, n < 10 ? 2 : n < 1000 ? 1 : 0);
}

/** The unit to show durations up to `maxMs` in: [milliseconds per unit, unit name]. */
function durationUnit(maxMs) {
  const units = [[1, 'ms', 2000], [1000, 's', 120000], [60000, 'min', 7200000], [3600000, 'h', 172800000]];
  const [perUnit, name] = units.find(([, , below]) => maxMs < below) ?? [86400000, 'days'];
  return [perUnit, name];
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  const [perUnit, unit] = durationUnit(Math.abs(ms));
  return `${fmtNumber(ms / perUnit, perUnit === 1 ? 1 : 2)} ${unit}`;
}

function fmtBytes(bytes) {
  if (bytes === null || bytes === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${fmtNumber(value, unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** An ISO time as local `HH:MM:SS` (`.mmm` with `millis`), with the date when not today. */
function fmtTime(iso, millis = false) {
  if (!iso) return '–';
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return String(iso);
  const clock = clockLabel(t.getTime(), millis);
  const pad = (n) => String(n).padStart(2, '0');
  const date = `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}`;
  return t.toDateString() === new Date().toDateString() ? clock : `${date} ${clock}`;
}

function clockLabel(ms, millis = false) {
  const clock = new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
  return millis ? `${clock}.${String(new Date(ms).getMilliseconds()).padStart(3, '0')}` : clock;
}

// ---------------------------------------------------------------- API

/** Calls the API; the parsed JSON, or an Error carrying the server's message. */
async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: an error quotes the text.
  }
  if (response.ok) return json;
  const error = new Error(json?.error?.message ?? (text || response.statusText));
  error.status = response.status;
  throw error;
}

function setConnection(ok, detail) {
  const badge = byId('connection');
  badge.className = `connection ${ok ? 'ok' : 'down'}`;
  badge.textContent = ok ? `live · ${clockLabel(Date.now())}` : `cannot update: ${detail}`;
}

// ---------------------------------------------------------------- routing

/** The page the hash names: `{view: 'home'}`, `{view: 'sql'}` or `{view: 'query', name}`. */
function currentRoute() {
  const hash = location.hash.replace(/^#/, '');
  const match = hash.match(/^\/queries\/(.+)$/);
  if (match) return { view: 'query', name: decodeURIComponent(match[1]) };
  if (hash === '/sql') return { view: 'sql' };
  return { view: 'home' };
}

function queryHref(name) {
  return `#/queries/${encodeURIComponent(name)}`;
}

function showRoute() {
  const route = currentRoute();
  byId('view-home').hidden = route.view === 'query';
  byId('view-query').hidden = route.view !== 'query';
  byId('nav-queries').classList.toggle('active', route.view === 'home');
  byId('nav-sql').classList.toggle('active', route.view === 'sql');
  if (route.view === 'sql') {
    byId('sql-panel').scrollIntoView();
    byId('sql-input').focus();
  }
  if (route.view === 'query') {
    document.title = `${route.name} · Weir`;
    byId('q-name').textContent = route.name;
    byId('q-crumb').textContent = route.name;
  } else {
    document.title = 'Weir';
  }
  refresh();
}

// ---------------------------------------------------------------- queries table

function stateBadge(state) {
  return el('span', { class: `state state-${state}`, text: state });
}

function watermarkOf(progress) {
  return progress?.eventTime?.watermark ?? null;
}

function renderQueries(queries) {
  const rows = queries.map((q) => {
    const p = q.last_progress;
    const cell = (col, content, cls) => el('td', { 'data-col': col, class: cls }, content);
    return el(
      'tr',
      { 'data-testid': 'query-row', 'data-query': q.name },
      cell('name', el('a', { href: queryHref(q.name), text: q.name })),
      cell('state', stateBadge(q.state)),
      cell('sources', q.sources.join(', ')),
      cell('batches', fmtNumber(q.batches_run), 'num'),
      cell('input-rate', p ? fmtRate(p.inputRowsPerSecond) : '–', 'num'),
      cell('processed-rate', p ? fmtRate(p.processedRowsPerSecond) : '–', 'num'),
      cell('duration', p ? fmtMs(p.batchDuration) : '–', 'num'),
      cell('watermark', fmtTime(watermarkOf(p), true), 'nowrap'),
      cell('error', q.last_error ? el('div', { class: 'clamp', title: q.last_error, text: q.last_error }) : '',
        q.last_error ? 'error-cell' : ''),
    );
  });
  byId('queries-body').replaceChildren(...rows);
  byId('queries-empty').hidden = queries.length > 0;
}

// ---------------------------------------------------------------- one query

function renderQuery(q) {
  byId('q-missing').hidden = true;
  byId('q-state').replaceChildren(stateBadge(q.state));
  const stop = byId('q-stop');
  stop.disabled = q.state !== 'running';
  stop.dataset.query = q.name;

  const p = q.last_progress;
  const stateTotals = sumState(p);
  const facts = [
    ['Sources', q.sources.join(', ') || '–'],
    ['Batches run', fmtNumber(q.batches_run)],
    ['Input rows/s', p ? fmtRate(p.inputRowsPerSecond) : '–'],
    ['Processed rows/s', p ? fmtRate(p.processedRowsPerSecond) : '–'],
    ['Last batch', p ? `#${p.batchId} · ${fmtMs(p.batchDuration)}` : '–'],
    ['Last batch rows', p ? `${fmtNumber(p.numInputRows)} in · ${fmtNumber(p.sink?.numOutputRows)} out` : '–'],
    ['Watermark', fmtTime(watermarkOf(p), true)],
    ['State', p?.stateOperators?.length ? `${fmtNumber(stateTotals.rows)} rows · ${fmtBytes(stateTotals.bytes)}` : 'none'],
  ];
  byId('q-summary').replaceChildren(...facts.map(([term, value]) =>
    el('div', { 'data-fact': term }, el('dt', { text: term }), el('dd', { text: value }))));

  const error = q.last_error ?? stopErrors.get(q.name);
  byId('q-error').hidden = !error;
  byId('q-error-text').textContent = error ?? '';

  const history = remember(q.name, q.recent_progress ?? []);
  renderCharts(history, q.state === 'running' ? 'Waiting for the first batch…' : 'No batch ran.');
  byId('plan-text').textContent = q.plan ?? '';
  renderPlan(byId('plan-tree'), q.plan, p?.stateOperators ?? []);
  renderBatches(history);
}

/** How many batches the charts show at most. */
const HISTORY_LIMIT = 300;
/** The batches seen per query: each answer has only the last 100, the charts reach further. */
const histories = new Map();

/** Merges a query's `recent_progress` into what was seen of it; its batches, oldest first. */
function remember(name, recent) {
  const kept = histories.get(name) ?? [];
  const newest = recent[recent.length - 1];
  // A query created anew under the same name counts its batches from 0 again.
  const anew = newest && kept.length > 0 && newest.batchId < kept[kept.length - 1].batchId;
  const byBatch = new Map((anew ? [] : kept).map((p) => [p.batchId, p]));
  for (const p of recent) byBatch.set(p.batchId, p);
  const merged = [...byBatch.values()].sort((a, b) => a.batchId - b.batchId).slice(-HISTORY_LIMIT);
  histories.set(name, merged);
  return merged;
}

function renderMissing(name, error) {
  byId('q-state').replaceChildren();
  byId('q-stop').disabled = true;
  const missing = byId('q-missing');
  missing.hidden = false;
  missing.textContent = error.status === 404 ? `No query named '${name}'.` : error.message;
}

function sumState(progress) {
  const ops = progress?.stateOperators ?? [];
  return {
    rows: ops.reduce((sum, o) => sum + (o.numRowsTotal ?? 0), 0),
    bytes: ops.reduce((sum, o) => sum + (o.memoryUsedBytes ?? 0), 0),
  };
}

/** The last ten batches, newest first. */
function renderBatches(recent) {
  const num = (text) => el('td', { class: 'num', text });
  const rows = recent.slice(-10).reverse().map((p) => el('tr', { 'data-batch': p.batchId },
    num(p.batchId), el('td', { text: fmtTime(p.timestamp, true) }),
    num(fmtNumber(p.numInputRows)), num(fmtNumber(p.sink?.numOutputRows)),
    num(fmtRate(p.inputRowsPerSecond)), num(fmtRate(p.processedRowsPerSecond)),
    num(fmtMs(p.batchDuration)), el('td', { text: fmtTime(watermarkOf(p), true) })));
  const none = el('tr', {}, el('td', { colspan: 8, class: 'empty', text: 'No batches yet.' }));
  byId('batches-body').replaceChildren(...(rows.length ? rows : [none]));
}

/** Why stopping a query failed, by query name, shown until it stops. */
const stopErrors = new Map();

async function stopQuery() {
  const button = byId('q-stop');
  const name = button.dataset.query;
  if (!name) return;
  button.disabled = true;
  button.textContent = 'Stopping…';
  try {
    await api('POST', `/api/queries/${encodeURIComponent(name)}/stop`, {});
    stopErrors.delete(name);
  } catch (error) {
    stopErrors.set(name, `stopping failed: ${error.message}`);
  } finally {
    button.textContent = 'Stop query';
    refresh();
  }
}

// ---------------------------------------------------------------- charts

/** The four charts of a query page from its batches' progress (oldest first). */
function renderCharts(recent, noBatch) {
  const xs = recent.map((p) => Date.parse(p.timestamp));
  const batchIds = recent.map((p) => p.batchId);
  drawChart(byId('chart-rates'), {
    xs,
    batchIds,
    yLabel: 'rows/s',
    yFormat: fmtRate,
    empty: recent.length ? null : noBatch,
    series: [
      { key: 'input', label: 'input rows/s', color: '#2f6fdf', values: recent.map((p) => p.inputRowsPerSecond) },
      { key: 'processed', label: 'processed rows/s', color: '#e8772e', values: recent.map((p) => p.processedRowsPerSecond) },
    ],
  });
  drawChart(byId('chart-phases'), {
    xs,
    batchIds,
    stacked: true,
    empty: recent.length ? null : noBatch,
    yLabel: 'ms',
    yFormat: (v) => fmtNumber(v, 1),
    series: PHASES.map(([key, label, color]) =>
      ({ key, label, color, values: recent.map((p) => p.durationMs?.[key] ?? 0) })),
  });
  const delaysMs = recent.map((p) => {
    const watermark = watermarkOf(p);
    return watermark ? Date.parse(p.timestamp) - Date.parse(watermark) : null;
  });
  const [perUnit, unit] = durationUnit(Math.max(0, ...delaysMs.filter(isNum)));
  drawChart(byId('chart-watermark'), {
    xs,
    batchIds,
    yLabel: unit,
    yFormat: (v) => fmtNumber(v, 2),
    empty: !recent.length ? noBatch : delaysMs.some((d) => d !== null) ? null : 'This query has no watermark.',
    series: [{
      key: 'delay',
      label: `watermark delay (${unit})`,
      color: '#7b52c7',
      values: delaysMs.map((d) => (d === null ? null : d / perUnit)),
    }],
  });
  const totals = recent.map(sumState);
  const stateful = recent.some((p) => (p.stateOperators ?? []).length > 0);
  drawChart(byId('chart-state'), {
    xs,
    batchIds,
    yLabel: 'rows',
    whole: true,
    y2Label: 'bytes',
    yFormat: (v) => fmtNumber(v),
    y2Format: fmtBytes,
    y2Bytes: true,
    empty: !recent.length ? noBatch : stateful ? null : 'This query keeps no state.',
    series: [
      { key: 'rows', label: 'state rows (left)', color: '#1b9e77', values: totals.map((t) => t.rows) },
      { key: 'bytes', label: 'state bytes (right)', color: '#d95f02', values: totals.map((t) => t.bytes), axis: 'right', dashed: true },
    ],
  });
}

/**
 * Round tick values from 0 up to at least `max`: whole numbers with `whole` (counts), round
 * in KiB, MiB… with `bytes`.
 */
function niceTicks(max, { whole = false, bytes = false } = {}) {
  if (bytes && max >= 1024) {
    const unit = 1024 ** Math.floor(Math.log(max) / Math.log(1024));
    return niceTicks(max / unit).map((v) => v * unit);
  }
  const top = max > 0 ? max : 1;
  const raw = top / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  if (whole || bytes) step = Math.max(1, Math.round(step));
  const ticks = [0];
  while (ticks[ticks.length - 1] < top - step * 1e-9) ticks.push(ticks.length * step);
  return ticks;
}

/** Round time ticks (ms since the epoch) between `t0` and `t1`. */
function timeTicks(t0, t1) {
  const steps = [0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]
    .map((s) => s * 1000);
  const step = steps.find((s) => (t1 - t0) / s <= 5) ?? 7200000;
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return { ticks, millis: step < 1000 };
}

/**
 * Draws a time-series chart into `root` (an <svg>), replacing what was there.
 * spec: {xs: [ms], series: [{key, label, color, values, axis?: 'right', dashed?}],
 *        batchIds?, stacked?, yLabel, yFormat, whole?, y2Label?, y2Format?, y2Bytes?,
 *        empty?: the message to show instead of the data}
 * The <svg> gets `data-points` (number of batches plotted); each line or area is a <path>
 * with `data-series`.
 */
function drawChart(root, spec) {
  const W = 560;
  const H = 250;
  const right = spec.y2Label ? 64 : 16;
  const m = { left: 64, right, top: 18 + drawLegend(null, spec.series, 64, W - right) * 16, bottom: 40 };
  const plotW = W - m.left - m.right;
  const plotH = H - m.top - m.bottom;
  root.setAttribute('viewBox', `0 0 ${W} ${H}`);
  root.setAttribute('preserveAspectRatio', 'xMidYMid meet');
  const points = spec.empty || !spec.xs.length ? 0 : spec.xs.length;
  root.dataset.points = String(points);
  root.replaceChildren();

  drawLegend(root, spec.series, m.left, W - m.right);
  if (points === 0) {
    hovers.get(root)?.draw(null);
    const message = spec.empty;
    root.append(svg('text', { x: W / 2, y: H / 2, class: 'chart-empty', 'text-anchor': 'middle' }, message));
    return;
  }

  // Domains: at least a second of time.
  const pad = Math.max(0, 1000 - (Math.max(...spec.xs) - Math.min(...spec.xs))) / 2;
  const t0 = Math.min(...spec.xs) - pad;
  const t1 = Math.max(...spec.xs) + pad;
  const x = (t) => m.left + ((t - t0) / (t1 - t0)) * plotW;
  const left = spec.series.filter((s) => s.axis !== 'right');
  const rightSeries = spec.series.filter((s) => s.axis === 'right');
  const stacks = spec.stacked ? stackValues(left) : null;
  const leftMax = stacks
    ? Math.max(0, ...stacks[stacks.length - 1])
    : Math.max(0, ...left.flatMap((s) => s.values.filter(isNum)));
  const yTicks = niceTicks(leftMax, { whole: spec.whole });
  const yTop = yTicks[yTicks.length - 1];
  const y = (v) => m.top + plotH - (v / yTop) * plotH;
  const rightMax = Math.max(0, ...rightSeries.flatMap((s) => s.values.filter(isNum)));
  const y2Ticks = niceTicks(rightMax, { bytes: spec.y2Bytes });
  const y2Top = y2Ticks[y2Ticks.length - 1];
  const y2 = (v) => m.top + plotH - (v / y2Top) * plotH;

  // Grid and axes.
  for (const tick of yTicks) {
    root.append(svg('line', { x1: m.left, x2: m.left + plotW, y1: y(tick), y2: y(tick), class: 'grid' }));
    root.append(svg('text', { x: m.left - 6, y: y(tick) + 4, 'text-anchor': 'end', class: 'tick' }, spec.yFormat(tick)));
  }
  if (spec.y2Label) {
    for (const tick of y2Ticks) {
      root.append(svg('text', { x: m.left + plotW + 6, y: y2(tick) + 4, class: 'tick' }, spec.y2Format(tick)));
    }
    root.append(axisTitle(W - 10, m.top + plotH / 2, spec.y2Label, 90));
  }
  const time = timeTicks(t0, t1);
  for (const tick of time.ticks) {
    root.append(svg('line', { x1: x(tick), x2: x(tick), y1: m.top + plotH, y2: m.top + plotH + 4, class: 'axis' }));
    root.append(svg('text', { x: x(tick), y: m.top + plotH + 18, 'text-anchor': 'middle', class: 'tick' }, clockLabel(tick, time.millis)));
  }
  root.append(svg('line', { x1: m.left, x2: m.left + plotW, y1: m.top + plotH, y2: m.top + plotH, class: 'axis' }));
  root.append(svg('line', { x1: m.left, x2: m.left, y1: m.top, y2: m.top + plotH, class: 'axis' }));
  root.append(axisTitle(14, m.top + plotH / 2, spec.yLabel, -90));
  root.append(svg('text', { x: m.left + plotW / 2, y: H - 4, 'text-anchor': 'middle', class: 'axis-title' }, 'batch time'));

  // Data. Batches the page did not see (more ran between two refreshes than an answer holds) leave
  // a gap rather than a straight line across them.
  const runs = contiguousRuns(spec.batchIds ?? spec.xs.map((_, i) => i));
  if (stacks) {
    left.forEach((s, i) => {
      const d = runs.map(([a, b]) => {
        const top = [];
        const bottom = [];
        for (let j = a; j <= b; j += 1) {
          top.push([x(spec.xs[j]), y(stacks[i][j])]);
          bottom.unshift([x(spec.xs[j]), y(i === 0 ? 0 : stacks[i - 1][j])]);
        }
        return `M${top.map(pt).join('L')}L${bottom.map(pt).join('L')}Z`;
      }).join('');
      root.append(svg('path', { d, fill: s.color, 'fill-opacity': 0.75, stroke: s.color, 'data-series': s.key, class: 'area' }));
    });
  } else {
    const starts = new Set(runs.map(([a]) => a));
    // The first series is drawn last, on top (the input rate over the noisier processing rate).
    for (const s of [...spec.series].reverse()) {
      const scale = s.axis === 'right' ? y2 : y;
      drawLine(root, s, spec.xs.map(x), s.values.map((v) => (isNum(v) ? scale(v) : null)), starts);
    }
  }
  drawHover(root, spec, x, m, plotW, plotH, stacks);
}

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
const pt = ([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`;

/** Cumulative sums of the series' values, bottom-up. */
function stackValues(series) {
  const sums = [];
  series.forEach((s, i) => {
    sums.push(s.values.map((v, j) => (isNum(v) ? v : 0) + (i > 0 ? sums[i - 1][j] : 0)));
  });
  return sums;
}

/** The index ranges `[first, last]` of consecutive batch ids. */
function contiguousRuns(ids) {
  const runs = [];
  ids.forEach((id, i) => {
    if (i > 0 && id === ids[i - 1] + 1) runs[runs.length - 1][1] = i;
    else runs.push([i, i]);
  });
  return runs;
}

/** One series as a line (gaps where a value or batches are missing), with dots when few. */
function drawLine(root, s, px, py, starts) {
  let d = '';
  let pen = false;
  py.forEach((v, i) => {
    if (starts.has(i)) pen = false;
    if (v === null) {
      pen = false;
      return;
    }
    d += `${pen ? 'L' : 'M'}${pt([px[i], v])}`;
    pen = true;
  });
  root.append(svg('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 2,
    'stroke-dasharray': s.dashed ? '6 3' : null, 'data-series': s.key, class: 'line' }));
  if (px.length <= 30) {
    py.forEach((v, i) => {
      if (v !== null) root.append(svg('circle', { cx: px[i], cy: v, r: 2.5, fill: s.color }));
    });
  }
}

/** Lays out the legend in rows between `x0` and `x1` (draws it unless `root` is null); the rows. */
function drawLegend(root, series, x0, x1) {
  let x = x0;
  let row = 0;
  for (const s of series) {
    const width = 16 + s.label.length * 6.2 + 14;
    if (x > x0 && x + width - 14 > x1) {
      x = x0;
      row += 1;
    }
    const y = 8 + row * 16;
    root?.append(svg('rect', { x, y, width: 11, height: 11, rx: 2, fill: s.color }));
    root?.append(svg('text', { x: x + 15, y: y + 10, class: 'legend' }, s.label));
    x += width;
  }
  return row + 1;
}

function axisTitle(cx, cy, text, angle) {
  const transform = `rotate(${angle} ${cx} ${cy})`;
  return svg('text', { x: cx, y: cy, 'text-anchor': 'middle', class: 'axis-title', transform }, text);
}

/** What the pointer shows on each chart: the function that draws it at an x, and that x. */
const hovers = new WeakMap();

/**
 * A guide line and a box listing the values of the batch nearest the pointer. The listeners sit
 * on the <svg>, which outlives the redraws, so the box stays put while the chart refreshes.
 */
function drawHover(root, spec, x, m, plotW, plotH, stacks) {
  const px = spec.xs.map(x);
  const layer = svg('g', { class: 'hover-layer', 'pointer-events': 'none' });
  root.append(layer);
  const draw = (at) => {
    if (at === null || at < m.left || at > m.left + plotW) {
      layer.replaceChildren();
      return;
    }
    let i = 0;
    px.forEach((p, j) => {
      if (Math.abs(p - at) < Math.abs(px[i] - at)) i = j;
    });
    const lines = [`batch ${spec.batchIds?.[i] ?? i} · ${clockLabel(spec.xs[i], true)}`];
    for (const s of spec.series) {
      const v = s.values[i];
      const format = s.axis === 'right' ? spec.y2Format : spec.yFormat;
      lines.push(`${s.label}: ${isNum(v) ? format(v) : '–'}`);
    }
    if (stacks) lines.push(`total: ${spec.yFormat(stacks[stacks.length - 1][i])}`);
    const width = Math.max(...lines.map((l) => l.length)) * 6 + 16;
    const height = lines.length * 14 + 8;
    const boxX = px[i] + 10 + width > m.left + plotW ? px[i] - 10 - width : px[i] + 10;
    const box = svg('g', { transform: `translate(${boxX} ${m.top + 4})` });
    box.append(svg('rect', { width, height, rx: 4, class: 'hover-box' }));
    lines.forEach((line, k) => box.append(svg('text', { x: 8, y: 15 + k * 14, class: 'hover-text' }, line)));
    layer.replaceChildren(
      svg('line', { x1: px[i], x2: px[i], y1: m.top, y2: m.top + plotH, class: 'hover-guide' }),
      box,
    );
  };
  const state = hovers.get(root);
  if (state) {
    state.draw = draw;
    draw(state.at);
    return;
  }
  const fresh = { draw, at: null };
  hovers.set(root, fresh);
  root.addEventListener('mousemove', (event) => {
    const box = root.getBoundingClientRect();
    fresh.at = ((event.clientX - box.left) * root.viewBox.baseVal.width) / box.width;
    fresh.draw(fresh.at);
  });
  root.addEventListener('mouseleave', () => {
    fresh.at = null;
    fresh.draw(null);
  });
}

// ---------------------------------------------------------------- plan tree

/**
 * Parses DataFusion's indented plan text (two spaces per level) into a forest of
 * `{name, detail, metrics: [[key, value]], id, children}`.
 */
function parsePlan(text) {
  const roots = [];
  const stack = [];
  for (const raw of (text ?? '').split('\n')) {
    if (!raw.trim()) continue;
    const depth = Math.floor((raw.length - raw.trimStart().length) / 2);
    const node = parsePlanLine(raw.trim());
    while (stack.length && stack[stack.length - 1].depth >= depth) stack.pop();
    if (stack.length) stack[stack.length - 1].node.children.push(node);
    else roots.push(node);
    stack.push({ depth, node });
  }
  return roots;
}

function parsePlanLine(line) {
  const colon = line.indexOf(':');
  const name = colon < 0 ? line : line.slice(0, colon);
  let detail = colon < 0 ? '' : line.slice(colon + 1).trim();
  let metrics = [];
  const at = detail.lastIndexOf('metrics=[');
  if (at >= 0 && detail.endsWith(']')) {
    metrics = splitTopLevel(detail.slice(at + 'metrics=['.length, -1))
      .map((item) => {
        const eq = item.indexOf('=');
        return eq < 0 ? [item, ''] : [item.slice(0, eq), item.slice(eq + 1)];
      })
      .filter(([key]) => key);
    detail = detail.slice(0, at).replace(/,\s*$/, '');
  }
  const id = detail.match(/\b(?:id|operator)=([A-Za-z_][\w.-]*)/)?.[1] ?? null;
  return { name, detail, metrics, id, children: [] };
}

/** Splits on commas that are not inside brackets or parentheses. */
function splitTopLevel(text) {
  const parts = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (c === '[' || c === '(' || c === '{') depth += 1;
    else if (c === ']' || c === ')' || c === '}') depth -= 1;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts.filter(Boolean);
}

/** Draws the plan as nested boxes, joining stateful operators to their `stateOperators` entry. */
function renderPlan(container, planText, stateOperators) {
  const roots = parsePlan(planText);
  if (!roots.length) {
    container.replaceChildren(el('p', { class: 'empty', text: 'No plan yet: it appears after the first batch.' }));
    return;
  }
  const byName = new Map(stateOperators.map((o) => [o.operatorName, o]));
  const list = (nodes) => el('ul', {}, nodes.map((n) => el('li', {}, planNode(n, byName), n.children.length ? list(n.children) : null)));
  container.replaceChildren(list(roots));
}

function planNode(node, stateByName) {
  const state = node.id ? stateByName.get(node.id) : undefined;
  const box = el('div', {
    class: `plan-node${state ? ' stateful' : ''}`,
    'data-testid': 'plan-node',
    'data-operator': node.name,
    'data-operator-id': node.id,
  });
  box.append(el('div', { class: 'plan-title' },
    el('span', { class: 'plan-name', text: node.name }),
    node.id ? el('span', { class: 'plan-id', text: node.id }) : null));
  if (node.detail) box.append(el('code', { class: 'plan-detail', title: node.detail, text: node.detail }));
  if (node.metrics.length) {
    box.append(figures('metrics', node.metrics));
  }
  if (state) {
    box.append(figures('state', [
      ['state rows', fmtNumber(state.numRowsTotal)],
      ['state bytes', fmtBytes(state.memoryUsedBytes)],
      ['rows updated', fmtNumber(state.numRowsUpdated)],
      ['rows removed', fmtNumber(state.numRowsRemoved)],
      ['dropped late', fmtNumber(state.numRowsDroppedByWatermark)],
      ['time', fmtMs(state.timeMs)],
    ]));
  }
  return box;
}

function figures(kind, pairs) {
  return el('dl', { class: `figures figures-${kind}`, 'data-figures': kind },
    pairs.map(([key, value]) => el('div', { 'data-key': key }, el('dt', { text: key }), el('dd', { text: value }))));
}

// ---------------------------------------------------------------- SQL box

async function runSql() {
  const input = byId('sql-input');
  const sql = input.value.trim();
  const results = byId('sql-results');
  const status = byId('sql-status');
  if (!sql) {
    status.textContent = 'Type a statement first.';
    return;
  }
  const button = byId('sql-run');
  button.disabled = true;
  status.textContent = 'Running…';
  const started = performance.now();
  try {
    const answer = await api('POST', '/api/sql', { sql });
    const took = fmtMs(performance.now() - started);
    const list = answer?.results ?? [];
    status.textContent = `${list.length} statement${list.length === 1 ? '' : 's'} in ${took}`;
    results.replaceChildren(...list.map((r, i) => resultCard(r, i + 1)));
    refresh();
  } catch (error) {
    status.textContent = 'Failed.';
    results.replaceChildren(el('div', { class: 'error-box', 'data-testid': 'sql-error' },
      el('strong', { text: error.status ? `Error (HTTP ${error.status})` : 'Error' }),
      el('pre', { text: error.message })));
  } finally {
    button.disabled = false;
  }
}

function resultCard(result, n) {
  const card = el('div', { class: 'result', 'data-testid': 'sql-result', 'data-kind': result.kind });
  card.append(el('div', { class: 'result-label', text: `Statement ${n}` }));
  if (result.kind === 'rows') {
    card.append(...rowsTable(result.columns ?? [], result.rows ?? []));
  } else if (result.kind === 'started') {
    card.append(el('p', {}, 'Started query ', el('a', { href: queryHref(result.query), text: result.query }), '.'));
  } else {
    card.append(el('p', { text: result.message ?? result.kind }));
  }
  return card;
}

function rowsTable(columns, rows) {
  const shown = rows.slice(0, 500);
  const cell = (value) => {
    if (value === null || value === undefined) return el('td', { class: 'null', text: 'NULL' });
    const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
    return el('td', { class: typeof value === 'number' ? 'num' : null, text });
  };
  const wrap = el('div', { class: 'table-wrap' },
    el('table', { class: 'grid compact', 'data-testid': 'sql-rows' },
      el('thead', {}, el('tr', {}, columns.map((c) => el('th', { text: c })))),
      el('tbody', {}, shown.map((row) => el('tr', {}, columns.map((c) => cell(row[c])))))));
  const count = el('p', { class: 'hint', text: rows.length > shown.length
    ? `${fmtNumber(rows.length)} rows (first ${shown.length} shown)`
    : `${fmtNumber(rows.length)} row${rows.length === 1 ? '' : 's'}` });
  return [wrap, count];
}

// ---------------------------------------------------------------- refresh loop

let timer = null;
let generation = 0;

/** Loads what the current page shows, draws it, and schedules the next load. */
async function refresh() {
  clearTimeout(timer);
  const mine = ++generation;
  const route = currentRoute();
  try {
    if (route.view === 'query') {
      try {
        const query = await api('GET', `/api/queries/${encodeURIComponent(route.name)}`);
        if (mine === generation) renderQuery(query);
      } catch (error) {
        if (!error.status) throw error;
        if (mine === generation) renderMissing(route.name, error);
      }
    } else {
      const answer = await api('GET', '/api/queries');
      if (mine === generation) renderQueries(answer.queries ?? []);
    }
    setConnection(true);
  } catch (error) {
    setConnection(false, error.message);
  }
  if (mine === generation) timer = setTimeout(refresh, REFRESH_MS);
}

function start() {
  byId('sql-run').addEventListener('click', runSql);
  byId('sql-input').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      runSql();
    }
  });
  byId('q-stop').addEventListener('click', stopQuery);
  window.addEventListener('hashchange', showRoute);
  showRoute();
}

start();
